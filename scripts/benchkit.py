#!/usr/bin/env python3
"""What the loopback benchmarks (scripts/bench_*.py) share: the system under test (SecantusDB,
an actor node and a gateway on unused ports) and its stop, members with live sessions
written straight into the database, their websocket pages, /proc readings of CPU and
memory, `name=value` output, and the bare Tornado websocket echo the round trips are
compared with, with its client loop.

Run as a script it plays one of the roles the benchmarks start in processes of their own:

    .venv/bin/python scripts/benchkit.py --role echo --port PORT
    .venv/bin/python scripts/benchkit.py --role roundtrip --spec SPEC.json
"""
import argparse
import asyncio
import dataclasses
import datetime
import functools
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402
import pymongo  # noqa: E402
from thespian.actors import Actor  # noqa: E402

from interkanect import config, processes  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
# The flood limit (50 frames/s a socket by default) would close the round-trip clients;
# nothing else in the benchmarks comes near it.
FLOOD_RATE_PER_S = 1_000_000
FLOOD_BURST = 1_000_000
# The limits on one account's work (README, Configuration) would refuse the benchmarks' own
# load: 50 pages of one member, thousands of rings to a few hosts.
BENCH_LIMITS = dict(pages_per_member_max=1_000_000, watched_per_page_max=1_000_000,
                    watched_per_member_max=1_000_000, rings_per_host_per_minute=1_000_000,
                    signups_per_address=1_000_000)
START_TIMEOUT_S = 60
OPEN_TIMEOUT_S = 30           # one member's socket: upgrade + attach (the hub gives up after 10 s)
OPEN_ATTEMPTS = 3
SETTLE_S = 3                  # an idle window, before memory is read
STOP_TIMEOUT_S = 15           # what `serve` and the tests give each child (Supervisor's default)
# The node returns from its shutdown while its actors are still exiting; those still there
# after this long count as outliving it.
ACTOR_EXIT_GRACE_S = 3
ANSWER_TIMEOUT_S = 10         # a round-trip client waits this long for one answer


# ---------------------------------------------------------------- /proc readings

def proc_stat(pid):
    """(ppid, sid, cpu_s) of a process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[3]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def report_goal(name, relation, limit, value):
    """One `# goal NAME OP LIMIT: VALUE (met)` line, for a goal an issue names."""
    met = {"<": value < limit, "<=": value <= limit, ">": value > limit, ">=": value >= limit}[relation]
    comment(f"goal {name} {relation} {limit:g}: {value:.3g} ({'met' if met else 'missed'})")


def session_pids(sid):
    return processes.session_pids({sid})


def thread_cpu_snapshot(pid):
    """tid → CPU seconds of each thread of one process."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        if stat := proc_stat(f"{pid}/task/{tid}"):
            out[int(tid)] = stat[2]
    return out


def socket_count(pid):
    count = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
            except OSError:
                pass
    except OSError:
        pass
    return count


def memory_kb(pid):
    """{'Pss': kB, 'Rss': kB} of one process from smaps_rollup (zeros once it is gone)."""
    out = {"Pss": 0, "Rss": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in out:
                out[key] = int(rest.split()[0])
    except OSError:
        pass
    return out


def memory_of(pids):
    totals = {"Pss": 0, "Rss": 0}
    for pid in pids:
        for key, value in memory_kb(pid).items():
            totals[key] += value
    return totals


def cpu_snapshot(pids):
    return {pid: stat[2] for pid in pids if (stat := proc_stat(pid))}


def cpu_delta(before, after):
    return sum(after[pid] - before.get(pid, 0.0) for pid in after)


def machine_busy_s():
    """CPU seconds spent busy by the whole machine (all cores) since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLK_TCK


class CpuWatch:
    """CPU seconds of named process groups (and of everything else) over a window."""

    def __init__(self, groups):
        self.groups = groups  # name → callable returning pids
        self.start()

    def start(self):
        self.wall = time.monotonic()
        self.busy = machine_busy_s()
        self.before = {name: cpu_snapshot(pids()) for name, pids in self.groups.items()}

    def stop(self):
        wall = time.monotonic() - self.wall
        used = {name: cpu_delta(self.before[name], cpu_snapshot(pids())) for name, pids in self.groups.items()}
        used["other"] = max(0.0, machine_busy_s() - self.busy - sum(used.values()))
        return wall, used


def cpu_line(label, wall_s, used):
    parts = "  ".join(f"{name} {100 * s / wall_s:.0f}%" for name, s in used.items())
    return f"cpu during {label} ({wall_s:.1f} s; % of one core, 200% = both): {parts}"


# ---------------------------------------------------------------- output

def emit(name, value):
    if isinstance(value, float):
        value = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    print(f"{name}={value}", flush=True)


def comment(text):
    print(f"# {text}", flush=True)


def progress(text):
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def percentile(values, p):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# ---------------------------------------------------------------- the system under test

free_port = processes.free_port


class System:
    """SecantusDB, one actor node and one gateway, as tests/kit/system.py starts them, on unused ports.

    The node and gateway ("the app") can be restarted with another policy on the same
    database; every process this starts is remembered, so `leftovers()` can prove none is left.
    """

    def __init__(self, workdir, settings=None, **policy):
        self.workdir = Path(workdir)
        self.db_port = free_port()
        self.overrides = settings or {}          # Settings fields (member_shards, call_hosting ...)
        self.settings = self._settings(policy)
        self.database = processes.Supervisor()   # stopped last
        self.children = processes.Supervisor()   # node, gateway and the benchmark's helper roles
        self.db = self.node = self.gateway = None
        self.gateway_b = None                   # start_second_gateway
        self.actor_sid = None  # Thespian's admin daemonizes: its actors share its own session
        self.admin_pid = None
        self.sessions = set()  # every session this started (each child leads its own)

    def _settings(self, policy):
        policy = config.Policy(**dict(dict(flood_rate_per_s=FLOOD_RATE_PER_S, flood_burst=FLOOD_BURST, **BENCH_LIMITS),
                                      **policy))
        return config.Settings(port=free_port(), admin_port=free_port(), db_port=self.db_port,
                               paypal_emulator_port=free_port(),
                               mongodb_url=f"mongodb://127.0.0.1:{self.db_port}/?directConnection=true",
                               db_name="bench", data_dir=str(self.workdir), policy=policy, **self.overrides)

    @property
    def env(self):
        return dict(os.environ, **config.to_environ(self.settings), PYTHONPATH=str(ROOT))

    @property
    def url(self):
        return self.settings.url.rstrip("/")

    @property
    def ws_url(self):
        return "ws" + self.url[len("http"):] + "/ws"

    def start(self):
        secantusd = shutil.which("secantusd-py", path=str(Path(sys.executable).parent)) or "secantusd-py"
        argv = [secantusd, "--host", "127.0.0.1", "--port", str(self.db_port), "--storage-path",
                str(self.workdir / "db")]
        self.db = self._start(self.database, "database", argv)
        from interkanect.db import ping
        processes.wait_until(lambda: ping(self.settings), START_TIMEOUT_S, "SecantusDB", process=self.db)
        self.start_app()

    def start_app(self):
        s = self.settings
        me = [sys.executable, "-m", "interkanect.cli"]
        if s.paypal_emulated:  # paid calls need PayPal: the local emulator, as `serve` runs it
            from interkanect.cli import start_paypal_emulator
            log = open(self.workdir / "paypal.log", "ab")
            start_paypal_emulator(self.children, s, self.env, stdout=log, stderr=log)
        self.node = self._start(self.children, "node", me + ["node"])
        processes.wait_until(lambda: processes.port_listening(s.actor_host, s.admin_port), START_TIMEOUT_S,
                             "the actor node", process=self.node)
        self.gateway = self._start(self.children, "gateway", me + ["gateway"])
        processes.wait_until(self._healthy, START_TIMEOUT_S, "the gateway", process=self.gateway)
        admins = processes.listening_pids(s.admin_port) - {self.node.pid}
        sids = {processes.session_of(pid) for pid in admins} - {None}
        if len(sids) != 1:
            raise SystemExit(f"error: cannot find the actor admin's session (listeners {admins}, sessions {sids})")
        self.actor_sid = sids.pop()
        self.sessions.add(self.actor_sid)
        self.admin_pid = min(admins)

    def restart_app(self, **policy):
        """Stop the node and gateway (and helper roles); start them again with this policy
        on the same database. Returns what stop_app returned."""
        stopped = self.stop_app()
        self.settings = self._settings(policy)
        self.start_app()
        return stopped

    def _start(self, supervisor, name, argv, **popen_options):
        if "stdout" not in popen_options:
            popen_options["stdout"] = open(self.workdir / f"{name}.log", "ab")
        popen_options.setdefault("stderr", popen_options["stdout"])
        process = supervisor.start(name, argv, env=self.env, cwd=ROOT, **popen_options)
        self.sessions.add(process.pid)  # start_new_session: the child leads its own session
        return process

    def _healthy(self):
        import urllib.request
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as answer:
                return json.load(answer)["ok"]
        except OSError:
            return False

    def start_second_gateway(self):
        """Another gateway beside the same node (behind a load balancer, caller and host are
        rarely on one); returns its base URL."""
        port = free_port()
        env = dict(self.env, IK_PORT=str(port))
        log = open(self.workdir / "gateway-b.log", "ab")
        process = self.children.start("gateway-b", [sys.executable, "-m", "interkanect.cli", "gateway"], env=env,
                                      cwd=ROOT, stdout=log, stderr=log)
        self.sessions.add(process.pid)
        url = f"http://{self.settings.host}:{port}"

        def healthy():
            import urllib.request
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as answer:
                    return json.load(answer)["ok"]
            except OSError:
                return False
        processes.wait_until(healthy, START_TIMEOUT_S, "the second gateway", process=process)
        self.gateway_b = process
        return url

    def start_role(self, name, argv, **popen_options):
        """One of benchkit's roles (see the module's usage) in a process of its own."""
        return self._start(self.children, name, [sys.executable, str(Path(__file__).resolve())] + argv,
                           **popen_options)

    def node_pids(self):
        return [self.node.pid] + session_pids(self.actor_sid)

    def gateway_pids(self):
        return session_pids(self.gateway.pid)

    def actor_depths(self):
        """pid → depth below the admin (1: directory and logger, 2: shards, 3: members)."""
        parents = {pid: stat[0] for pid in session_pids(self.actor_sid) if (stat := proc_stat(pid))}
        depths = {}
        for pid in parents:
            depth, p = 0, pid
            while p != self.admin_pid and p in parents and depth < 10:
                p, depth = parents[p], depth + 1
            depths[pid] = depth
        return depths

    def log_tail(self, name, lines=15):
        try:
            return "\n".join((self.workdir / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop_app(self):
        """(seconds the children took to stop, actor processes that outlived the node's stop)."""
        started = time.monotonic()
        self.children.stop_all(STOP_TIMEOUT_S)
        return time.monotonic() - started, self._end_actor_session()

    def _end_actor_session(self, grace_s=ACTOR_EXIT_GRACE_S):
        # Thespian's admin setsid()s away from the node's process group, so killpg on the
        # node cannot reach it: whatever the node's own shutdown did not stop is ours to end.
        if self.actor_sid is None:  # the start failed before the admin was found: find it by its port
            processes.kill_sessions(processes.actor_system_sessions(self.settings.admin_port))
            return 0
        deadline = time.monotonic() + grace_s
        while (left := session_pids(self.actor_sid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        if left:
            processes.kill_sessions([self.actor_sid])
        self.actor_sid = None
        return len(left)

    def stop(self):
        """Everything, the database last: (seconds the children took to stop, actor processes
        that outlived the node's stop)."""
        app_s, left = self.stop_app()
        started = time.monotonic()
        self.database.stop_all(STOP_TIMEOUT_S)
        return app_s + time.monotonic() - started, left

    def leftovers(self):
        """Processes still alive in any session this system started."""
        return [pid for sid in sorted(self.sessions) for pid in session_pids(sid)]


def system_cpu_watch(system, **groups):
    return CpuWatch(dict({"gateway": system.gateway_pids, "node": system.node_pids, "db": lambda: [system.db.pid],
                          "bench": lambda: [os.getpid()]}, **groups))


def memory_reading(system):
    node_pids = system.node_pids()
    return {"node": memory_of(node_pids), "node_processes": len(node_pids),
            "gateway": memory_of(system.gateway_pids())}


GC_PAUSE_LINE = re.compile(r'^interkanect_gc_pause_seconds_(count|sum)\{generation="([0-2])"\} ([0-9.e+-]+)$')


def gateway_gc_pauses(system):
    """{generation: [collections, seconds stopped]} so far, from the gateway's /metrics."""
    with urllib.request.urlopen(f"{system.url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    pauses = {generation: [0, 0.0] for generation in (0, 1, 2)}
    for line in text.splitlines():
        if (found := GC_PAUSE_LINE.match(line)) is not None:
            pauses[int(found[2])][0 if found[1] == "count" else 1] += float(found[3])
    return pauses


def emit_gc_pauses(label, before, after):
    """The gateway's collections between two readings: how many, how long it stood still."""
    stopped_s = sum(after[g][1] - before[g][1] for g in after)
    emit(f"gateway_full_collections_{label}", after[2][0] - before[2][0])
    emit(f"gateway_gc_stopped_ms_{label}", 1000 * stopped_s)


async def idle_window(system, label, websockets_open, settle_s=SETTLE_S):
    """CPU of an idle system over `settle_s`, with the gateway's threads apart."""
    watch = system_cpu_watch(system)
    threads_before = thread_cpu_snapshot(system.gateway.pid)
    await asyncio.sleep(settle_s)
    wall_s, used = watch.stop()
    threads = thread_cpu_snapshot(system.gateway.pid)
    loop_pct = 100 * (threads.get(system.gateway.pid, 0) - threads_before.get(system.gateway.pid, 0)) / wall_s
    others = [100 * (cpu - threads_before.get(tid, 0)) / wall_s for tid, cpu in threads.items()
              if tid != system.gateway.pid]
    comment(cpu_line(label, wall_s, used))
    comment(f"  gateway threads: event loop {loop_pct:.0f}%, busiest other thread {max(others, default=0):.0f}%; "
            f"the gateway holds {socket_count(system.gateway.pid)} sockets for {websockets_open} websockets")


# ---------------------------------------------------------------- members and their pages

@dataclasses.dataclass(frozen=True)
class Account:
    member_id: str
    token: str


def member_document(index, password_hash):
    """The document Accounts.sign_up stores (checked against a real sign-up before use)."""
    return {"email": f"bench{index}-{secrets.token_hex(3)}@example.com", "password_hash": password_hash,
            "display_name": f"Bench member {index}", "headline": "", "bio": "", "payout_email": "",
            "tier": "free", "created_at": datetime.datetime.now(datetime.timezone.utc)}


def session_document(token, member_id, ttl_s):
    from gateway.accounts import token_hash
    now = datetime.datetime.now(datetime.timezone.utc)
    return {"_id": token_hash(token), "member_id": member_id, "created_at": now,
            "expires_at": now + datetime.timedelta(seconds=ttl_s)}


def insert_accounts(settings, count, reference):
    """`count` members with a live session each, written straight into the database in the
    shape a real sign-up left there (`reference`: that member's document and session)."""
    db = pymongo.MongoClient(settings.database_url, tz_aware=True)[settings.db_name]
    try:
        member_doc, session_doc = reference
        members = [member_document(i, member_doc["password_hash"]) for i in range(count)]
        sample_session = session_document("x", None, 1)
        for mine, real, what in ((members[0], member_doc, "member"), (sample_session, session_doc, "session")):
            if set(mine) | {"_id"} != set(real) | {"_id"}:
                raise SystemExit(f"error: a signed-up {what} has fields {sorted(real)}, this script writes "
                                 f"{sorted(mine)}; update member_document/session_document")
        ids = db.members.insert_many(members).inserted_ids
        tokens = [secrets.token_urlsafe(32) for _ in ids]
        db.sessions.insert_many([session_document(t, i, settings.policy.session_ttl_s) for t, i in zip(tokens, ids)])
        return [Account(str(i), t) for i, t in zip(ids, tokens)]
    finally:
        db.client.close()


async def sign_up_through_api(system, samples):
    """Sign up through POST /api/signup (Argon2 included); returns the accounts and ms each."""
    from tests.kit.client import Member
    accounts, times_ms = [], []
    for i in range(samples):
        started = time.monotonic()
        member = await Member(system.url).sign_up(f"Signed-up member {i}")
        times_ms.append(1000 * (time.monotonic() - started))
        accounts.append(Account(member.id, member.cookies["ik_session"]))
    db = pymongo.MongoClient(system.settings.database_url, tz_aware=True)[system.settings.db_name]
    try:
        from bson import ObjectId
        member_doc = db.members.find_one({"_id": ObjectId(accounts[0].member_id)})
        session_doc = db.sessions.find_one({"member_id": member_doc["_id"]})
    finally:
        db.client.close()
    return accounts, times_ms, (member_doc, session_doc)


class OpenFailed(Exception):
    pass


class Page:
    """One open websocket of a member; a task reads it and hands frames to `on_frame`."""

    def __init__(self, account, ws):
        self.account = account
        self.ws = ws
        self.on_frame = None
        self.reader = None

    @classmethod
    async def open(cls, system, account, url=None):
        """Open a page (on the gateway at `url`, by default the system's) and wait for its
        `hello` (the member's shard holds it then)."""
        import websockets
        started = time.monotonic()
        url = url or system.url
        ws = await websockets.connect(
            "ws" + url[len("http"):] + "/ws", origin=url,
            additional_headers={"Cookie": f"ik_session={account.token}"}, compression=None,
            ping_interval=None, max_size=None, open_timeout=OPEN_TIMEOUT_S, close_timeout=5)
        upgraded = time.monotonic()
        try:
            frame = msgpack.unpackb(await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT_S), raw=False)
        except BaseException:
            await ws.close()
            raise
        if frame.get("type") != "hello":
            await ws.close()
            raise OpenFailed(f"first frame is {frame!r}")
        page = cls(account, ws)
        page.upgrade_ms = 1000 * (upgraded - started)              # HTTP upgrade, session looked up
        page.attach_ms = 1000 * (time.monotonic() - upgraded)      # Open → shard (member) → hello
        page.reader = asyncio.create_task(page._read())
        return page

    async def _read(self):
        import websockets
        try:
            async for data in self.ws:
                received_at = time.monotonic()
                if self.on_frame is not None:
                    self.on_frame(self, msgpack.unpackb(data, raw=False), received_at)
        except websockets.ConnectionClosed:
            pass

    async def send(self, frame):
        await self.ws.send(msgpack.packb(frame, use_bin_type=True))

    async def detach(self):
        """Stop the reading task and hand the socket over as a round-trip client, which then
        reads it itself, exactly as the echo's clients read theirs."""
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
            self.reader = None
        return WebsocketsClient(self.ws)

    async def close(self):
        await self.ws.close()
        if self.reader is not None:
            await asyncio.wait_for(self.reader, 5)


async def open_with_retries(system, account):
    """(page, retries needed); a refused or timed-out open is tried again, and counted."""
    for attempt in range(OPEN_ATTEMPTS):
        try:
            return await Page.open(system, account), attempt
        except Exception as error:  # any failure to get a hello: refused, timed out, closed
            last = error
    raise OpenFailed(f"member {account.member_id}: {last!r}")


async def bring_online(system, accounts, window):
    """Open each member's first page, at most `window` waiting for their hello at once.
    Returns (pages in the order of `accounts`, failures left out; failures; retries; when the first open
    started; the hello times, sorted)."""
    gate = asyncio.Semaphore(window)
    starts, hellos, retries = [], [], [0]

    async def one(account):
        async with gate:
            starts.append(time.monotonic())
            page, attempts = await open_with_retries(system, account)
            hellos.append(time.monotonic())
            retries[0] += attempts
            return page

    results = await asyncio.gather(*(one(a) for a in accounts), return_exceptions=True)
    pages = [r for r in results if isinstance(r, Page)]
    failures = [r for r in results if not isinstance(r, Page)]
    return pages, failures, retries[0], min(starts), sorted(hellos)


# ---------------------------------------------------------------- the bare echo and the round-trip clients

def serve_echo(port):
    """The bare Tornado websocket echo: what the round trips are compared with."""
    import tornado.web
    import tornado.websocket

    class Echo(tornado.websocket.WebSocketHandler):
        def check_origin(self, origin):
            return True

        def on_message(self, message):
            self.write_message(message, binary=isinstance(message, bytes))

    async def serve():
        tornado.web.Application([(r"/ws", Echo)]).listen(port, "127.0.0.1")
        await asyncio.Event().wait()
    asyncio.run(serve())


def start_echo(system, workdir):
    """The echo server in a process of its own (stopped with the app); returns (process, port)."""
    port = free_port()
    echo = system.start_role("echo", ["--role", "echo", "--port", str(port)], stdout=subprocess.DEVNULL,
                             stderr=open(Path(workdir) / "echo.log", "ab"))
    processes.wait_until(lambda: processes.port_listening("127.0.0.1", port), START_TIMEOUT_S,
                         "the echo server", process=echo)
    return echo, port


class WebsocketsClient:
    @staticmethod
    async def connect(url, origin, headers):
        import websockets
        ws = await websockets.connect(url, origin=origin, additional_headers=headers, compression=None,
                                      ping_interval=None, max_size=None, open_timeout=OPEN_TIMEOUT_S)
        return WebsocketsClient(ws)

    def __init__(self, ws):
        self.ws = ws
        self.send = ws.send
        self.recv = ws.recv
        self.close = ws.close


class TornadoClient:
    @staticmethod
    async def connect(url, origin, headers):
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect
        if origin:
            headers = dict(headers, Origin=origin)
        ws = await websocket_connect(HTTPRequest(url, headers=headers, connect_timeout=OPEN_TIMEOUT_S,
                                                 request_timeout=OPEN_TIMEOUT_S), ping_interval=None)
        return TornadoClient(ws)

    def __init__(self, ws):
        self.ws = ws

    async def send(self, data):
        await self.ws.write_message(data, binary=True)

    async def recv(self):
        data = await self.ws.read_message()
        if data is None:
            raise ConnectionError("the server closed the socket")
        return data

    async def close(self):
        self.ws.close()


def ping_frame(index, seq):
    return {"type": "ping", "id": seq}


def answer_id(frame):
    return frame.get("id")


async def measure_roundtrips(conns, cpu_groups, seconds, warmup_s, frame_of=ping_frame, answer_of=answer_id):
    """Each connection sends `frame_of(its index, seq)` and awaits the frame whose
    `answer_of(frame)` is that seq, again and again; the round trips of `seconds` after a
    `warmup_s` are counted. Returns per_s, seconds, p50_ms, p99_ms and the CPU of `cpu_groups`."""
    state = {"measuring": False, "stop": False}
    latencies_s = []

    async def client(index, conn):
        seq = 0
        while not state["stop"]:
            seq += 1
            sent = time.perf_counter()
            await conn.send(msgpack.packb(frame_of(index, seq), use_bin_type=True))
            while True:
                frame = msgpack.unpackb(await asyncio.wait_for(conn.recv(), ANSWER_TIMEOUT_S), raw=False)
                if answer_of(frame) == seq:
                    break
                if frame.get("type") == "error":
                    raise RuntimeError(f"error frame: {frame}")
            if state["measuring"]:
                latencies_s.append(time.perf_counter() - sent)

    tasks = [asyncio.create_task(client(i, c)) for i, c in enumerate(conns)]
    try:
        await asyncio.sleep(warmup_s)
        watch = CpuWatch(cpu_groups)
        state["measuring"] = True
        await asyncio.sleep(seconds)
        state["measuring"] = False
        count = len(latencies_s)
        wall_s, used = watch.stop()
        state["stop"] = True
        await asyncio.wait_for(asyncio.gather(*tasks), 15)
    finally:
        for task in tasks:
            task.cancel()
    return {"per_s": count / wall_s, "seconds": wall_s, "p50_ms": 1000 * percentile(latencies_s, 50),
            "p99_ms": 1000 * percentile(latencies_s, 99), "cpu": used}


async def roundtrip_worker(spec):
    """The `roundtrip` role: clients that each send a ping and await its answer, counted
    over `seconds`; prints the result as one JSON line."""
    lib = {"websockets": WebsocketsClient, "tornado": TornadoClient}[spec["lib"]]
    conns = await asyncio.gather(*(lib.connect(spec["url"], spec["origin"], {"Cookie": f"ik_session={t}"} if t else {})
                                   for t in spec["tokens"]))
    if spec["hello"]:
        for conn in conns:
            frame = msgpack.unpackb(await asyncio.wait_for(conn.recv(), OPEN_TIMEOUT_S), raw=False)
            assert frame["type"] == "hello", frame
    groups = {name: functools.partial(lambda pids: pids, pids) for name, pids in spec["cpu"].items()}
    result = await measure_roundtrips(conns, groups | {"client": lambda: [os.getpid()]}, spec["seconds"],
                                      spec["warmup_s"])
    await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
    print(json.dumps(result), flush=True)


async def run_roundtrip_worker(system, spec, workdir):
    """Run the `roundtrip` role on `spec` in a process of its own; returns its result."""
    path = Path(workdir) / f"spec-{secrets.token_hex(4)}.json"
    path.write_text(json.dumps(spec))
    worker = system.start_role("round-trip client", ["--role", "roundtrip", "--spec", str(path)],
                               stdout=subprocess.PIPE, stderr=open(Path(workdir) / "worker.log", "ab"))
    limit_s = spec["seconds"] + spec["warmup_s"] + 60
    try:
        out, _ = await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(worker.communicate, timeout=limit_s))
    except subprocess.TimeoutExpired:
        worker.kill()
        raise SystemExit(f"error: a round-trip client ran over {limit_s} s")
    if worker.returncode != 0:
        raise SystemExit(f"error: a round-trip client failed (status {worker.returncode}); see worker.log:\n"
                         + (Path(workdir) / "worker.log").read_text()[-2000:])
    return json.loads(out.decode().strip().splitlines()[-1])


# ---------------------------------------------------------------- a whole run

class BareActor(Actor):
    """An actor that does nothing but answer: the Thespian ceiling the load generator measures.
    Here rather than in a script run as __main__, so the actor processes can import it by name."""

    def receiveMessage(self, message, sender):
        if message == "ping":
            self.send(sender, "pong")


def raise_open_files_limit(wanted):
    """Take the hard limit (as `interkanect` does for its children); say so if it is below `wanted`."""
    processes.raise_open_file_limit()
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < wanted:
        print(f"warning: the open files limit is {soft}, this run may need {wanted}", file=sys.stderr)
    return soft


def on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_bench(prefix, header, bench, time_limit_s, policy=None, report_leftovers=False, settings=None):
    """Start the system (with `policy` and `settings` overrides), run `bench(system, workdir)` within the
    time limit, stop every process, print the wall time; returns the exit status."""
    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    comment(header)
    with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as workdir:
        system = System(workdir, settings, **(policy or {}))
        status = 0
        try:
            progress(f"starting SecantusDB, actor node and gateway (logs in {workdir})")
            system.start()
            asyncio.run(asyncio.wait_for(bench(system, workdir), time_limit_s))
        except asyncio.TimeoutError:
            print(f"error: the benchmark ran over its time limit of {time_limit_s:.0f} s", file=sys.stderr)
            status = 1
        except (KeyboardInterrupt, SystemExit, Exception) as error:
            if isinstance(error, Exception):
                traceback.print_exc()
            print(f"error: {error!r}", file=sys.stderr)
            for name in ("node", "gateway"):
                print(f"--- {name}.log (tail)\n{system.log_tail(name)}", file=sys.stderr)
            status = 1
        finally:
            progress("stopping every process")
            stop_s, leftovers = system.stop()
            comment(f"stopping took {stop_s:.1f} s; {leftovers} actor processes outlived the node's stop "
                    f"and were killed by this script")
            if report_leftovers:
                left = system.leftovers()
                emit("processes_left", len(left))
                if left:
                    comment(f"processes still alive in the sessions this run started: {left}; killing them")
                    processes.kill_sessions(system.sessions)
    emit("bench_wall_s", time.monotonic() - started)
    return status


def add_shards_option(parser):
    """`--shards N`: the node's member shards (default: the setting's default)."""
    parser.add_argument("--shards", type=int, help="member shards on the node (default: the member_shards setting's)")


def settings_of(args):
    """The Settings overrides a benchmark's options ask for."""
    return {"member_shards": args.shards} if args.shards else {}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--role", choices=("echo", "roundtrip"), required=True)
    p.add_argument("--port", type=int, help="echo: the port to listen on (127.0.0.1)")
    p.add_argument("--spec", help="roundtrip: a JSON file written by run_roundtrip_worker")
    args = p.parse_args(argv)
    if args.role == "echo":
        return serve_echo(args.port)
    return asyncio.run(roundtrip_worker(json.loads(Path(args.spec).read_text())))


if __name__ == "__main__":
    sys.exit(main())
