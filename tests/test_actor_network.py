"""The actor transport is reachable only where it must be: Thespian runs whatever a
connection sends it (unauthenticated pickle), so no socket of a running system listens on every
address, and a node told to use one address answers on that one only (docs/operating.md)."""
import os
import socket
import subprocess
import sys

import pytest

from interkanect import config, processes

WILDCARDS = {"0.0.0.0", "::"}


def listening_addresses(system):
    """(address, port) of every listening socket held by a process of `system`: its children
    (each a session of its own) and the actor node's forked actors."""
    sessions = {process.pid for _, process in system.children.children} | set(system.actor_sessions)
    sockets = processes.listening_sockets()
    return {where for pid in processes.session_pids(sessions) for where in processes.sockets_of(pid, sockets)}


def test_no_socket_of_a_running_system_listens_on_every_address(system):
    found = listening_addresses(system)
    ports = {port for _, port in found}
    # What must be there: the gateway, the emulator, the node's admin, and its actors (shards and
    # adapters: each a process with a socket of its own).
    assert {system.settings.port, system.settings.paypal_emulator_port, system.settings.admin_port} <= ports
    assert len(found) >= 8, found
    assert not [where for where in found if where[0] in WILDCARDS], found


def test_a_node_on_one_address_answers_there_and_nowhere_else(system_with):
    system = system_with(actor_host="127.0.0.2")
    # The gateway reached the node's directory through its bridge on 127.0.0.2: it is healthy.
    assert system.health()[1]["ok"]
    admin_port = system.settings.admin_port
    assert processes.port_listening("127.0.0.2", admin_port)
    for elsewhere in ("127.0.0.3", "127.0.0.1"):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((elsewhere, admin_port), timeout=2).close()
    actor_sockets = {where for where in listening_addresses(system)
                     if where[1] not in (system.settings.port, system.settings.paypal_emulator_port)}
    assert len(actor_sockets) >= 5
    assert {address for address, _ in actor_sockets} == {"127.0.0.2"}, actor_sockets


@pytest.mark.parametrize("host", ["0.0.0.0", "localhost:19010", "every"])
def test_a_node_refuses_a_wildcard_or_malformed_actor_host(host):
    env = dict(os.environ, **config.to_environ(config.Settings(admin_port=processes.free_port())))
    env["IK_ACTOR_HOST"] = host
    finished = subprocess.run([sys.executable, "-m", "interkanect.cli", "node"], env=env, capture_output=True,
                              text=True, timeout=60)
    assert finished.returncode != 0
    assert "IK_ACTOR_HOST" in finished.stderr
    assert "Traceback" not in finished.stderr
