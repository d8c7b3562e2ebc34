"""A whole system on unused ports for tests and their helpers: an actor node (multiprocTCPBase)
and a gateway with the test policy, the PayPal emulator, on a SecantusDB database (the
session's, or one of a test's own that it can stop and start again); and messages told to a
call from outside. The pytest fixtures that start them are in tests/conftest.py."""
import asyncio
import dataclasses
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pymongo

from interkanect import config, processes
from interkanect.cli import start_paypal_emulator
from tests.kit.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent

# Fast policy for tests: windows of seconds instead of minutes.
# Every test signs up from 127.0.0.1: the per-address sign-up limit is lifted (its own test sets it).
TEST_POLICY = dict(member_exit_grace_s=0.5, session_check_interval_s=0.2, ws_ping_interval_s=5,
                   ws_ping_timeout_s=5, signups_per_address=100_000, capture_settle_check_s=0.25)
# Under pytest-xdist, tests/conftest.py gives each worker its own slice of the port range.
free_port = processes.free_port


def secantusd():
    """The SecantusDB server command installed beside this Python."""
    return shutil.which("secantusd-py", path=str(Path(sys.executable).parent)) or "secantusd-py"


def run(coroutine):
    """Run one async test scenario to its end."""
    return asyncio.run(coroutine)


@dataclasses.dataclass
class RunningSystem:
    settings: config.Settings
    children: processes.Supervisor
    log_dir: Path
    actor_sessions: set = dataclasses.field(default_factory=set)

    @property
    def url(self):
        return self.settings.url.rstrip("/")

    @property
    def db(self):
        return pymongo.MongoClient(self.settings.database_url, tz_aware=True)[self.settings.db_name]

    def health(self):
        # A TLS test system serves a self-signed certificate; the probe only asks whether it is up.
        context = None
        if self.settings.tls:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with urllib.request.urlopen(self.url + "/healthz", timeout=5, context=context) as answer:
            return answer.status, json.load(answer)

    def cli(self, *args):
        env = dict(os.environ, **config.to_environ(self.settings))
        return subprocess.run([sys.executable, "-m", "interkanect.cli", *args], env=env, capture_output=True,
                              text=True, timeout=60)

    def add_gateway(self):
        """Another gateway process on the same actor node and database; returns its URL."""
        settings = dataclasses.replace(self.settings, port=free_port(),
                                       gateway_link_port=self.settings.gateway_link_port and free_port())
        env = dict(os.environ, **config.to_environ(settings))
        log = open(self.log_dir / f"gateway-{settings.port}.log", "ab")
        process = self.children.start("gateway", [sys.executable, "-m", "interkanect.cli", "gateway"], env=env,
                                      stdout=log, stderr=log)
        other = RunningSystem(settings, self.children, self.log_dir)
        processes.wait_until(lambda: healthy(other), 60, "the second gateway", process=process)
        return other.url

    def books(self):
        """`interkanect ledger reconcile --json`: the ledger against the PayPal emulator's balance."""
        answer = self.cli("ledger", "reconcile", "--json")
        try:
            return json.loads(answer.stdout)
        except ValueError:
            return {"error": (answer.stderr or answer.stdout)[-500:]}

    def check_books(self, timeout_s=20):
        """Whatever the tests did with money, the ledger ends reconciled with PayPal's balance to
        the cent (issue 12): waited for, bounded, as money in flight settles."""
        if not self.settings.paypal_emulated:
            return
        wait_for(self.books, "the ledger reconciled with PayPal's balance", timeout_s,
                 until=lambda report: report.get("difference_cents") == 0, poll_s=0.5)

    def stop(self):
        self.children.stop_all()
        processes.kill_sessions(self.actor_sessions)

    def finish(self):
        """The end of a test system: its books checked (check_books), then every process stopped."""
        try:
            self.check_books()
        finally:
            self.stop()


def start_system(database_url, log_dir, **overrides):
    """An actor node and a gateway on unused ports, with the test policy plus `overrides`."""
    policy_fields = {f.name for f in dataclasses.fields(config.Policy)}
    policy = config.Policy(**{**TEST_POLICY, **{k: v for k, v in overrides.items() if k in policy_fields}})
    settings = config.Settings(port=free_port(), admin_port=free_port(), paypal_emulator_port=free_port(),
                               mongodb_url=database_url,
                               db_name="t" + secrets.token_hex(4), data_dir=str(log_dir), policy=policy,
                               # 8 shards whatever the machine: tests kill some and count on others
                               **{"check_frames": True, "member_shards": 8,
                                  **{k: v for k, v in overrides.items() if k not in policy_fields}})
    env = dict(os.environ, **config.to_environ(settings))
    me = [sys.executable, "-m", "interkanect.cli"]
    children = processes.Supervisor()
    system = RunningSystem(settings, children, log_dir)
    try:
        if settings.paypal_emulated:
            start_paypal_emulator(children, settings, env, stdout=open(log_dir / "paypal.log", "ab"),
                                  stderr=subprocess.STDOUT)
        node_log = open(log_dir / "node.log", "ab")
        node = children.start("node", me + ["node"], env=env, stdout=node_log, stderr=node_log)
        processes.wait_until(lambda: processes.port_listening(settings.actor_host, settings.admin_port), 60,
                             "the actor node", process=node)
        system.actor_sessions = processes.actor_system_sessions(settings.admin_port)
        gateway_log = open(log_dir / "gateway.log", "ab")
        gateway = children.start("gateway", me + ["gateway"], env=env, stdout=gateway_log, stderr=gateway_log)
        processes.wait_until(lambda: healthy(system), 60, "the gateway", process=gateway)
    except BaseException:
        children.stop_all()
        processes.kill_sessions(system.actor_sessions | processes.actor_system_sessions(settings.admin_port))
        raise
    return system


def healthy(system):
    try:
        return system.health()[1]["ok"]
    except OSError:
        return False


def tell_call(system, host_id, call_id, message):
    """Send a message to a call from outside, as the money side will: through the host's shard."""
    from actors import leadership
    from actors.actor_transport import outside_system
    from actors.directory import DIRECTORY_NAME, Directory
    from actors.messages import GetShards, ToCall
    from rules.shards import shard_index
    actors = outside_system(system.settings)
    name = leadership.global_name(DIRECTORY_NAME, leadership.current_token(system.settings))
    directory = actors.createActor(Directory, globalName=name)
    shards = actors.ask(directory, GetShards(1), 10).addresses
    actors.tell(shards[shard_index(host_id, len(shards))], ToCall(host_id, call_id, message))


# A database of a test's own, to stop and start again ----------------------------------------

class Database:
    """A SecantusDB server of this test's own, which it can stop and start again on the same
    port and files (the session's shared database must stay up for the other tests)."""

    def __init__(self, storage):
        self.port, self.storage, self.process = free_port(), storage, None
        self.url = f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self):
        log = open(self.storage / "server.log", "ab")
        self.process = subprocess.Popen([secantusd(), "--host", "127.0.0.1", "--port", str(self.port),
                                         "--storage-path", str(self.storage / "data")], stdout=log, stderr=log)
        from interkanect.db import ping
        processes.wait_until(lambda: ping(config.Settings(mongodb_url=self.url)), 60, "SecantusDB",
                             process=self.process)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
