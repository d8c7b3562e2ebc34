"""Fixtures that start real processes on unused ports: a SecantusDB server for the session,
and per test module an actor node (multiprocTCPBase) and a gateway, stopped afterwards
with everything they started (what they start is tests/kit/system.py), and a headless
Chromium (tests/kit/browser.py); and each test's tier."""
import os

import hypothesis
import pytest

from interkanect import config, processes
from tests.kit.system import Database, free_port, secantusd, start_system


def _worker_port_range(whole=processes.PORT_RANGE):
    """Under pytest-xdist (scripts/test runs the suite in several workers) each worker hands out
    ports from its own slice of the range: two workers never pick the same port in the moment
    between the pick and a child's bind (or while a test's database is down for a restart)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")      # gw0, gw1, ...
    if not worker:
        return whole
    count, index = int(os.environ["PYTEST_XDIST_WORKER_COUNT"]), int(worker.removeprefix("gw"))
    size = (whole[1] - whole[0]) // count
    return whole[0] + index * size, whole[0] + (index + 1) * size


processes.PORT_RANGE = _worker_port_range()

# The suite shares 2 cores among its workers (and whatever else runs): a property test's input
# may take seconds to draw or an example seconds to run when a worker is starved of CPU. Neither
# is a failure of the code under test; every property still runs its examples and its asserts.
hypothesis.settings.register_profile("suite", deadline=None,
                                     suppress_health_check=[hypothesis.HealthCheck.too_slow])
hypothesis.settings.load_profile("suite")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    port = free_port()
    storage = tmp_path_factory.mktemp("secantus")
    children = processes.Supervisor()
    log = open(storage / "server.log", "ab")
    process = children.start("database", [secantusd(), "--host", "127.0.0.1", "--port", str(port),
                                          "--storage-path", str(storage / "data")], stdout=log, stderr=log)
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    settings = config.Settings(mongodb_url=url)
    try:
        processes.wait_until(lambda: _ping(settings), 60, "SecantusDB", process=process)
        yield url
    finally:
        children.stop_all()


def _ping(settings):
    from interkanect.db import ping
    return ping(settings)


@pytest.fixture(scope="module")
def system(database_url, tmp_path_factory):
    running = start_system(database_url, tmp_path_factory.mktemp("system"))
    yield running
    running.finish()


@pytest.fixture
def system_with(database_url, tmp_path_factory):
    """A factory for a system with its own policy: system_with(flood_rate_per_s=5)."""
    started = []

    def start(**overrides):
        started.append(start_system(database_url, tmp_path_factory.mktemp("system"), **overrides))
        return started[-1]
    yield start
    try:
        for running in started:
            running.check_books()
    finally:
        for running in started:
            running.stop()


@pytest.fixture
def own_database(tmp_path):
    database = Database(tmp_path)
    database.start()
    yield database
    database.stop()


@pytest.fixture
def system_on_own_database(own_database, tmp_path_factory):
    running = start_system(own_database.url, tmp_path_factory.mktemp("system"))
    yield running
    running.stop()


# Tiers ---------------------------------------------------------------------------------------
#
# Every test is marked with one tier, from what it uses: `browser` (drives Chromium or
# Firefox), `multinode` (a convention of nodes), `system` (real processes: SecantusDB, actor
# nodes, gateways, the PayPal emulator, coturn), else `rules` (a test_*_rules.py module: pure
# code) or `actors` (in-process: simpleSystemBase, aiosmtpd, Tornado in this process).
# `scripts/test --fast` runs rules and actors only.

PROCESS_FIXTURES = {"database_url", "emulator", "coturn", "browser", "system", "cluster", "system_with",
                    "own_database"}
# Modules whose tests start processes themselves (`interkanect serve`, a gateway behind a proxy).
PROCESS_MODULES = {"test_serve", "test_gateway_headers", "test_production"}


def tier_of(item):
    if item.get_closest_marker("browser"):
        return "browser"
    module = item.module.__name__.rsplit(".", 1)[-1]
    if module == "test_multinode":
        return "multinode"
    if module in PROCESS_MODULES or PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
        return "system"
    return "rules" if module.endswith("_rules") else "actors"


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(getattr(pytest.mark, tier_of(item)))


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, through Playwright: one per test module."""
    playwright = pytest.importorskip("playwright.sync_api")
    from tests.kit.browser import CHROMIUM, CHROMIUM_ARGS
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (.ci/run does)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
