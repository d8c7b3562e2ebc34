"""How an actor node takes part in a Thespian convention: its capabilities (who it is, whether
it hosts members, which leader it joins) and the convention's liveness timers.

Every process that starts or joins an actor system calls `install_timers` first, so that a
node killed without a word is noticed in seconds rather than Thespian's ~22 minutes.
"""
import os
import socket
from datetime import timedelta

# Capability names, read by the directory's and MemberShard's actorSystemCapabilityCheck.
NODE = "interkanect.node"          # this node's name, unique in the convention
MEMBERS = "interkanect.members"    # True when member shards (members, their calls) may live here
LEADER = "interkanect.leader"      # True on the node that runs the directory
CONVENTION_ADDRESS = "Convention Address.IPv4"


def install_timers(policy):
    """Shorten the convention's check-in period and missed check-ins before the system starts.

    Thespian reads them from the environment when its convention module loads (the admin is
    forked from this process or started fresh, so both paths are covered) and uses the module
    values whenever it arms a timer. A joined node checks in every period; the leader declares
    it dead after `convention_missed_checkins` periods without one (NOTES-THESPIAN.md)."""
    period_s = max(1, int(round(policy.convention_checkin_s)))
    os.environ["CONVENTION_REREGISTRATION_PERIOD"] = f"{period_s // 60}:{period_s % 60:02d}"
    os.environ["CONVENTION_REGISTRATION_MISS_MAX"] = str(policy.convention_missed_checkins)
    # A lost leader is looked for again this often (default 3m22s).
    os.environ["CONVENTION_RESTART_PERIOD"] = f"{period_s // 60}:{period_s % 60:02d}"
    from thespian.system.admin import convention
    convention.CONVENTION_REREGISTRATION_PERIOD = timedelta(seconds=period_s)
    convention.CONVENTION_RESTART_PERIOD = timedelta(seconds=period_s)
    convention.CONVENTION_REGISTRATION_MISS_MAX = policy.convention_missed_checkins


def node_name(settings):
    """The configured name, else host:admin-port (unique on a machine, readable in logs)."""
    return settings.node_name or f"{socket.gethostname()}:{settings.admin_port}"


def parse_join(join):
    """'HOST:PORT' → (host, port); refuses anything else with a message saying what is wanted."""
    host, _, port = join.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--join wants HOST:PORT (the leader's address and admin port), not {join!r}")
    return host, int(port)


def capabilities(settings, leader=None):
    """The capabilities this node's actor system starts with: leading, or joining `leader`
    ((host, admin port): the lease's holder, actors/leadership.py), or `--join`'s address."""
    leader = leader or (parse_join(settings.join) if settings.join else None)
    caps = {"Admin Port": settings.admin_port, NODE: node_name(settings), MEMBERS: bool(settings.hosts_members),
            LEADER: leader is None}
    if leader is not None:
        caps[CONVENTION_ADDRESS] = tuple(leader)
    return caps


def hosts_shard(capabilities, requirements):
    """MemberShard's placement check: a member-hosting node, and the very node asked for if any.
    A system that says nothing of members (simpleSystemBase in tests) is a single node: yes."""
    if MEMBERS not in capabilities:
        return True
    if not capabilities.get(MEMBERS):
        return False
    wanted = (requirements or {}).get(NODE)
    return wanted is None or wanted == capabilities.get(NODE)


def runs_directory(capabilities, requirements):
    """The directory's placement check: the leader only. A gateway attached to a joined node's
    admin (on that node's machine) asks for the directory by its global name there; that admin
    cannot host it, so Thespian passes the request to the leader, which answers with its own."""
    return capabilities.get(LEADER, True)  # a system with no such capability is a single node
