"""`interkanect serve` as an operator runs it: the whole system from one command, stopped
cleanly with nothing left behind, its data kept across a restart, and clear errors."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from interkanect.processes import alive
from tests.kit.client import Member
from tests.kit.system import free_port, run

START_TIMEOUT_S = 90


def descendants(pid):
    """Every live process below `pid`, from /proc."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Serve:
    """`interkanect serve` with `args` (by default `--paypal emulator`, as the quick start passes)."""

    def __init__(self, data_dir, args=("--paypal", "emulator"),
                 command=(sys.executable, "-m", "interkanect.cli", "serve"), **env):
        self.command, self.args = list(command), list(args)
        self.port = free_port()
        self.env = dict(os.environ, IK_DATA_DIR=str(data_dir), IK_PORT=str(self.port),
                        IK_ADMIN_PORT=str(free_port()), IK_DB_PORT=str(free_port()),
                        IK_PAYPAL_EMULATOR_PORT=str(free_port()), **env)
        self.process = None
        self.output = []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.process = subprocess.Popen([*self.command, *self.args], env=self.env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        for line in self.process.stdout:
            self.output.append(line)
            if "is running at" in line:
                return line
            assert time.monotonic() < deadline, "".join(self.output)
        raise AssertionError("serve exited before it was ready:\n" + "".join(self.output))

    def stop(self, signum=signal.SIGTERM, timeout_s=60):
        family = descendants(self.process.pid)
        assert family, "serve should own child processes"
        self.process.send_signal(signum)
        self.output.append(self.process.communicate(timeout=timeout_s)[0])
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in family) and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.process.returncode, [pid for pid in family if alive(pid)]


def test_serve_runs_everything_prints_the_url_and_stops_with_no_orphans(tmp_path):
    serve = Serve(tmp_path / "var")
    try:
        assert f"http://127.0.0.1:{serve.port}/" in serve.start()

        async def sign_up_and_open_a_page():
            member = await Member(serve.url, "kept@example.com").sign_up("Kept")
            socket = await member.socket()
            await socket.expect("hello", status="online")
            health = await member.request("GET", "/healthz", xsrf=False)
            assert health.code == 200 and health.json()["ok"]
            assert health.json()["paypal"] == "emulator"     # told to, and says so
            assert health.json()["actors"]["shards"] == os.cpu_count()  # the default: one per core
            await socket.close()
        run(sign_up_and_open_a_page())
    finally:
        code, left = serve.stop(signal.SIGINT)
    assert code == 0, "".join(serve.output)
    assert left == []

    # A restart on the same data directory keeps the account.
    again = Serve(tmp_path / "var")
    try:
        again.start()

        async def log_in():
            answer = await Member(again.url, "kept@example.com").log_in()
            assert answer.code == 200, answer.body
            assert answer.json()["member"]["display_name"] == "Kept"
        run(log_in())
    finally:
        code, left = again.stop(signal.SIGTERM)
    assert code == 0 and left == []


def test_a_taken_port_is_a_clear_error_and_starts_nothing(tmp_path):
    serve = Serve(tmp_path / "var")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", serve.port))
        squatter.listen()
        result = subprocess.run([sys.executable, "-m", "interkanect.cli", "serve", *serve.args], env=serve.env,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"port {serve.port}" in result.stderr and "already in use" in result.stderr
    assert "IK_PORT" in result.stderr
    assert not (tmp_path / "var" / "db").exists()


def test_mongodb_url_uses_an_existing_database_instead_of_starting_one(tmp_path, database_url):
    serve = Serve(tmp_path / "var", MONGODB_URL=database_url, IK_DB_NAME="serve_external")
    try:
        serve.start()
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in descendants(serve.process.pid)
                    if alive(pid)]
        assert not any(b"secantusd" in command for command in commands)

        async def sign_up():
            await Member(serve.url, "external@example.com").sign_up()
        run(sign_up())
    finally:
        code, left = serve.stop()
    assert code == 0 and left == []
    import pymongo
    assert pymongo.MongoClient(database_url).serve_external.members.find_one({"email": "external@example.com"})


def test_a_killed_actor_node_stops_serve_and_leaves_no_actor_behind(tmp_path):
    from interkanect.processes import listening_pids
    serve = Serve(tmp_path / "var")
    serve.start()
    admin_port = int(serve.env["IK_ADMIN_PORT"])
    admin = listening_pids(admin_port)
    assert admin, "the actor node's admin listens on its port"
    node = [pid for pid in descendants(serve.process.pid)
            if b"node" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
    os.kill(node[0], signal.SIGKILL)  # the node dies without shutting its actor system down
    serve.output.append(serve.process.communicate(timeout=60)[0])
    assert serve.process.returncode != 0
    assert "actor node exited" in "".join(serve.output)
    assert listening_pids(admin_port) == set()
    assert not any(alive(pid) for pid in admin)


def test_without_paypal_credentials_serve_runs_the_emulator_only_when_told(tmp_path):
    serve = Serve(tmp_path / "var", args=())
    result = subprocess.run([sys.executable, "-m", "interkanect.cli", "serve"], env=serve.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "no PayPal credentials" in result.stderr and "--paypal emulator" in result.stderr
    assert not (tmp_path / "var" / "db").exists()     # nothing started

    # Told to emulate while real credentials are set: which one was meant is not ours to guess.
    both = Serve(tmp_path / "var", IK_PAYPAL_CLIENT_ID="live-id", IK_PAYPAL_CLIENT_SECRET="live-secret",
                 IK_PAYPAL_WEBHOOK_ID="LIVEWEBHOOK")
    result = subprocess.run([sys.executable, "-m", "interkanect.cli", "serve", *both.args], env=both.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "PayPal credentials are set" in result.stderr
    assert not (tmp_path / "var" / "db").exists()


def test_the_quick_start_runs_with_no_arguments_on_the_emulator_and_says_so(tmp_path):
    serve = Serve(tmp_path / "var", command=[str(Path(__file__).resolve().parent.parent / "scripts" / "serve")],
                  args=())
    try:
        serve.start()

        async def health():
            answer = await Member(serve.url).request("GET", "/healthz", xsrf=False)
            assert answer.code == 200 and answer.json()["paypal"] == "emulator"
            site = await Member(serve.url).request("GET", "/api/site", xsrf=False)
            assert site.json() == {"paypal": "emulator"}      # what every page's footer shows
        run(health())
    finally:
        code, left = serve.stop()
    assert code == 0 and left == []
