"""The gateway's HTTP application served in the test process (issue 15 item 5): the real
handlers, the real database (SecantusDB), no actor node and no child process. For tests of
accounts, XSRF, errors and the HTTP API that need nothing of the actors: a module starts one in
~0.1 s where a whole system takes seconds.

The server runs on an event loop of its own, in a thread, so the tests talk to it over real
HTTP exactly as they talk to a gateway process (`tests.kit.client.Member`, `system.url`,
`system.db`). pytest-tornado cannot be used (it imports pkg_resources, gone from setuptools);
this is what its fixtures would give, on the loop the gateway really runs on.
"""
import asyncio
import dataclasses
import secrets
import threading

import pytest
import tornado.httpserver

from gateway import refunds
from gateway.app import Gateway
from interkanect import config, processes
from interkanect import db as database
from tests.kit.system import TEST_POLICY, RunningSystem, free_port

START_TIMEOUT_S = 30


class InProcessGateway:
    def __init__(self, settings):
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="in-process gateway", daemon=True)
        self.gateway = self.server = None

    def start(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(START_TIMEOUT_S)

    async def _start(self):
        # Gateway.start without the actors: its indexes and its HTTP server, no bridge to a node.
        self.gateway = Gateway(self.settings)
        await database.ensure_indexes(self.gateway.db)
        await refunds.ensure_indexes(self.gateway.db)
        self.server = tornado.httpserver.HTTPServer(
            self.gateway.application(), max_body_size=self.settings.policy.avatar_max_bytes + 64 * 1024)
        self.server.listen(self.settings.port, self.settings.host)

    def stop(self):
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(START_TIMEOUT_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(START_TIMEOUT_S)

    async def _stop(self):
        self.server.stop()
        await self.server.close_all_connections()
        await self.gateway.db.client.close()


def serve(database_url, log_dir, **overrides):
    """(RunningSystem, InProcessGateway) with the test policy plus `overrides`, as start_system
    takes them: policy fields and settings alike."""
    policy_fields = {f.name for f in dataclasses.fields(config.Policy)}
    policy = config.Policy(**{**TEST_POLICY, **{k: v for k, v in overrides.items() if k in policy_fields}})
    settings = config.Settings(port=free_port(), mongodb_url=database_url, db_name="h" + secrets.token_hex(4),
                               data_dir=str(log_dir), policy=policy,
                               **{"check_frames": True, **{k: v for k, v in overrides.items() if k not in policy_fields}})
    served = InProcessGateway(settings)
    served.start()
    processes.wait_until(lambda: processes.port_listening(settings.host, settings.port), START_TIMEOUT_S,
                         "the in-process gateway")
    return RunningSystem(settings, processes.Supervisor(), log_dir), served


@pytest.fixture(scope="module")
def http_system(database_url, tmp_path_factory):
    """A RunningSystem (url, db, cli) whose gateway is in this process and has no actor node."""
    system, served = serve(database_url, tmp_path_factory.mktemp("http"))
    yield system
    served.stop()


@pytest.fixture
def http_system_with(database_url, tmp_path_factory):
    """A factory like system_with, for gateways in this process: http_system_with(login_window_s=600)."""
    started = []

    def start(**overrides):
        system, served = serve(database_url, tmp_path_factory.mktemp("http"), **overrides)
        started.append(served)
        return system
    yield start
    for served in started:
        served.stop()
