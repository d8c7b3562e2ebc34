"""A whole deployment on loopback for multi-node tests: a convention of actor nodes (a leader
and nodes that --join it, each on its own admin port and in its own process session), any
number of gateways (separate processes, each attached to a node's admin as on that node's
machine: the first to the leader's, the next to the last joined node's), the PayPal emulator
and a database. Every process it starts, actor sessions included, is killed at stop."""
import dataclasses
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pymongo

from interkanect import config, processes
from interkanect.cli import start_paypal_emulator
from tests.kit.system import TEST_POLICY, RunningSystem, free_port, healthy

ME = [sys.executable, "-m", "interkanect.cli"]
# Liveness fast enough for tests and still realistic: production defaults of config.Policy.
CLUSTER_POLICY = dict(TEST_POLICY, convention_checkin_s=2, convention_missed_checkins=3, bridge_heartbeat_s=1,
                      bridge_missed_heartbeats=3, node_wait_s=60)


@dataclasses.dataclass
class Node:
    name: str
    admin_port: int
    process: subprocess.Popen
    sessions: set


@dataclasses.dataclass
class Gateway:
    system: RunningSystem       # for the helpers tests share (url, db, health)
    process: subprocess.Popen

    @property
    def url(self):
        return self.system.url


class Cluster:
    def __init__(self, database_url, log_dir, node_count, gateway_count, **policy):
        policy = config.Policy(**dict(CLUSTER_POLICY, **policy))
        self.log_dir = Path(log_dir)
        self.settings = config.Settings(port=free_port(), admin_port=free_port(), paypal_emulator_port=free_port(),
                                        mongodb_url=database_url, db_name="t" + secrets.token_hex(4),
                                        data_dir=str(log_dir), policy=policy, node_name="leader", check_frames=True,
                                        member_nodes=node_count, member_shards=8)
        self.children = processes.Supervisor()
        self.nodes = []
        self.gateways = []
        self.node_count, self.gateway_count = node_count, gateway_count

    @property
    def db(self):
        return pymongo.MongoClient(self.settings.database_url, tz_aware=True)[self.settings.db_name]

    def start(self):
        try:
            if self.settings.paypal_emulated:
                start_paypal_emulator(self.children, self.settings, self.environ(self.settings),
                                      stdout=self.log("paypal"), stderr=subprocess.STDOUT)
            self.start_node(self.settings)
            leader = f"127.0.0.1:{self.settings.admin_port}"
            for number in range(1, self.node_count):
                self.start_node(dataclasses.replace(self.settings, admin_port=free_port(), join=leader,
                                                    node_name=f"node-{number}"))
            for _ in range(self.gateway_count):
                self.add_gateway()
        except BaseException:
            self.stop()
            raise
        return self

    def environ(self, settings):
        return dict(os.environ, **config.to_environ(settings))

    def log(self, name):
        return open(self.log_dir / f"{name}.log", "ab")

    def start_node(self, settings):
        process = self.children.start(settings.node_name, ME + ["node"], env=self.environ(settings),
                                      stdout=self.log(settings.node_name), stderr=subprocess.STDOUT)
        processes.wait_until(lambda: processes.port_listening(settings.actor_host, settings.admin_port), 60,
                             f"actor node {settings.node_name}", process=process)
        node = Node(settings.node_name, settings.admin_port, process,
                    processes.actor_system_sessions(settings.admin_port))
        self.nodes.append(node)
        return node

    def add_gateway(self, node=None):
        """A gateway process; waits until it answers /healthz. The first one serves the
        deployment's URL (PayPal's returns and webhooks go there) and talks to the leader's
        admin (or `node`'s); the second to the last joined node's, as a gateway on that node's
        machine would."""
        node = node or self.nodes[-len(self.gateways) % len(self.nodes)]
        settings = dataclasses.replace(self.settings, port=self.settings.port if not self.gateways else free_port(),
                                       admin_port=node.admin_port)
        process = self.children.start("gateway", ME + ["gateway"], env=self.environ(settings),
                                      stdout=self.log(f"gateway-{settings.port}"), stderr=subprocess.STDOUT)
        gateway = Gateway(RunningSystem(settings, self.children, self.log_dir), process)
        processes.wait_until(lambda: healthy(gateway.system), 120, "a gateway", process=process)
        self.gateways.append(gateway)
        return gateway

    def node(self, name):
        return next(node for node in self.nodes if node.name == name)

    def placement(self):
        """{shard index: node name} as the directory reports it (through a gateway's /healthz)."""
        status, health = self.gateways[0].system.health()
        return {int(index): node for index, node in health["actors"]["placement"].items()}

    def node_of_pid(self, pid):
        session = processes.session_of(pid)
        return next((node.name for node in self.nodes if session in node.sessions), None)

    def kill_node(self, name):
        """SIGKILL the node's process and every actor of it at once, as if its machine died."""
        node = self.node(name)
        processes.kill_sessions(node.sessions | {processes.session_of(node.process.pid)}, signals=(signal.SIGKILL,))
        node.process.wait(10)

    def restart_leader(self):
        """A new leader node (on a fresh admin port, the same database) after the old one died;
        gateways started afterwards talk to it."""
        self.nodes = [node for node in self.nodes if node.name != "leader"]
        self.settings = dataclasses.replace(self.settings, admin_port=free_port())
        leader = self.start_node(self.settings)
        self.nodes.remove(leader)
        self.nodes.insert(0, leader)  # the leader is stopped first (stop())

    def kill_gateway(self, gateway):
        gateway.process.send_signal(signal.SIGKILL)
        gateway.process.wait(10)
        self.gateways.remove(gateway)

    def stop(self):
        sessions = set()
        for node in self.nodes:
            sessions |= node.sessions | processes.actor_system_sessions(node.admin_port)
        # The leader first: stopped after the others, it would move their shards onto itself.
        if self.nodes and self.nodes[0].process.poll() is None:
            self.nodes[0].process.send_signal(signal.SIGTERM)
            try:
                self.nodes[0].process.wait(15)
            except subprocess.TimeoutExpired:
                pass
        self.children.stop_all()
        processes.kill_sessions(sessions)
