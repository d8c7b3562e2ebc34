"""An actor node: a Thespian multiprocTCPBase system on this machine, running until SIGINT or
SIGTERM shuts it down (its actor processes outlive this one otherwise).

The first node of a deployment leads the convention and runs the member directory; every
other node joins it (`--join HOST:PORT`) and hosts the member shards the directory places
there (docs/operating.md)."""
import datetime
import logging
import signal
import threading
import time

import pymongo
from thespian.actors import ActorSystem

from actors import (actor_transport, convention, leadership, lifelines, node_metrics, process_memory,
                    transport_tuning)
from actors.directory import DIRECTORY_NAME, Directory
from actors.messages import Configure, Shards
from interkanect import collector, logs, processes

log = logging.getLogger(__name__)

# How long a starting node waits for the database to answer its first lease question.
DATABASE_WAIT_S = 60


def start(settings, stop):
    # All before the system forks its admin and actors, which inherit them.
    transport_tuning.install()
    actor_transport.install(settings.actor_host)
    process_memory.install()
    lifelines.install()
    convention.install_timers(settings.policy)
    collector.tune()
    db = pymongo.MongoClient(settings.database_url, tz_aware=True, serverSelectionTimeoutMS=5000)[settings.db_name]
    lease, leader = None, None
    if not settings.join:
        # The first node leads, unless another node holds the lease (it took over while this
        # one was down): then this one joins it.
        lease = first_lease(db, settings)
        if lease is None:
            leader = leadership.current(db).admin
            log.warning("node %s joins %s:%d, which holds the leader's lease", convention.node_name(settings), *leader)
    system = ActorSystem("multiprocTCPBase", capabilities=convention.capabilities(settings, leader),
                         logDefs=logs.actor_log_config(settings.log_level), transientUnique=True)
    keeper = LeaseKeeper(settings, system, db, lease, leader or (convention.parse_join(settings.join)
                                                                 if settings.join else None), stop)
    threading.Thread(target=keeper.run, name="lease-keeper", daemon=True).start()
    if lease is None:
        return system, keeper  # the leader's directory places shards here once the convention has us
    directory = system.createActor(Directory, globalName=leadership.global_name(DIRECTORY_NAME, lease.token))
    # The directory answers once the shards are placed: when `member_nodes` nodes are in.
    answer = system.ask(directory, Configure(settings, lease.token), settings.policy.node_wait_s + 30)
    if not isinstance(answer, Shards) or not answer.addresses:
        system.shutdown()
        raise SystemExit(f"the member directory did not start (answer: {answer!r})")
    return system, keeper


def first_lease(db, settings):
    """The lease for this node, or None when another live node holds it. A holder whose admin
    does not answer (it died; a deployment restarted on other ports) is waited out: its lease
    lapses within `leader_lease_s`."""
    deadline = time.monotonic() + DATABASE_WAIT_S
    while True:
        try:
            lease = leadership.take(db, convention.node_name(settings), settings.actor_host, settings.admin_port,
                                    settings.policy.leader_lease_s)
            holder = leadership.current(db) if lease is None else None
        except pymongo.errors.ConnectionFailure as error:
            if time.monotonic() > deadline:
                raise SystemExit(f"the database did not answer the leader's lease question: {error}") from None
            log.warning("waiting for the database to take the leader's lease (%s)", type(error).__name__)
            time.sleep(1)
            continue
        if lease is not None or holder is None:
            return lease
        if processes.port_listening(*holder.admin):
            return None
        log.warning("the leader's lease is held by %s, whose admin does not answer; waiting for it to lapse",
                    holder.node)
        time.sleep(min(1.0, settings.policy.leader_lease_s / 3))


class LeaseKeeper:
    """The leader's lease, every third of `leader_lease_s`: the leader renews it (and stops if
    another node took it: it was cut off longer than a lease); another node follows whoever
    holds it (joining their convention) and takes it over when it lapses: its actor system
    becomes the convention's leader and starts a directory that adopts the surviving shards."""

    def __init__(self, settings, system, db, lease, leader, stop):
        self.settings, self.system, self.db, self.stop = settings, system, db, stop
        self.lease = lease          # ours, while this node leads
        self.leader = leader        # (host, admin port) of the convention this node is in, else None
        self.name = convention.node_name(settings)
        self.lapsed_seen = None     # the lease as last seen lapsed (None: it was not)

    def run(self):
        while not self.stop.wait(self.settings.policy.leader_lease_s / 3):
            try:
                self.tick()
            except pymongo.errors.PyMongoError as error:
                log.warning("the leader's lease could not be read or renewed (%s); trying again", error)
            except Exception:
                log.exception("lease keeper failed; trying again")

    def tick(self):
        lease_s = self.settings.policy.leader_lease_s
        if self.lease is not None:
            renewed = leadership.renew(self.db, self.lease, lease_s)
            if renewed is None:
                log.critical("node %s lost the leader's lease to %s; stopping (it leads now)", self.name,
                             getattr(leadership.current(self.db), "node", None))
                self.stop.set()
                return
            self.lease = renewed
            return
        seen = leadership.current(self.db)
        lapsed = seen is None or seen.expires_at <= datetime.datetime.now(datetime.timezone.utc)
        # Taken only when seen lapsed twice running, unchanged: after a database outage the
        # leader (which could not renew either) gets one renewal's time to say it is alive.
        confirmed = lapsed and self.lapsed_seen == seen
        self.lapsed_seen = seen if lapsed else None
        if confirmed:
            lease = leadership.take(self.db, self.name, self.settings.actor_host, self.settings.admin_port, lease_s)
            if lease is not None:
                self.lead(lease, seen)
                return
            seen = leadership.current(self.db)
        if seen is not None and seen.node != self.name and tuple(seen.admin) != tuple(self.leader or ()):
            log.warning("node %s now follows %s at %s:%d", self.name, seen.node, *seen.admin)
            self.system.updateCapability(convention.CONVENTION_ADDRESS, tuple(seen.admin))
            self.leader = tuple(seen.admin)

    def lead(self, lease, lost):
        log.warning("the leader %s is lost; node %s takes over (lease token %d)", getattr(lost, "node", None),
                    self.name, lease.token)
        self.lease, self.leader = lease, None
        self.system.updateCapability(convention.CONVENTION_ADDRESS, None)
        self.system.updateCapability(convention.LEADER, True)
        placement = self.db.deployment.find_one({"_id": "placement"})
        if placement is not None:
            placement["lost_node"] = getattr(lost, "node", None)
        directory = self.system.createActor(Directory, globalName=leadership.global_name(DIRECTORY_NAME, lease.token))
        self.system.tell(directory, Configure(self.settings, lease.token, takeover=placement))


def run(settings):
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    system, keeper = start(settings, stop)
    node_metrics.serve(settings)
    role = "convention leader" if keeper.lease else "joined {}:{}".format(*keeper.leader)
    log.info("actor node %s ready on %s:%d (%s)", convention.node_name(settings), settings.actor_host,
             settings.admin_port, role)
    print(f"actor node ready on {settings.actor_host}:{settings.admin_port} ({role})", flush=True)
    try:
        stop.wait()
    finally:
        system.shutdown()
        if keeper.lease is not None:
            try:
                leadership.release(keeper.db, keeper.lease)
            except pymongo.errors.PyMongoError as error:
                log.warning("could not give the leader's lease back (%s); it lapses by itself", error)
        log.info("actor node stopped")
