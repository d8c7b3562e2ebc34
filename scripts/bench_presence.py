#!/usr/bin/env python3
"""Presence and gateway↔actor benchmark on loopback: a real SecantusDB, actor node
(multiprocTCPBase) and gateway, a thousand members online, and the figures the design's
promises rest on (presence fan-out, memory per member and per socket, member actor
creation rate, round trips through a member actor against a bare Tornado echo).

Prints `name=value` lines (units in the names) and `#` lines that say how the figures
were taken. Starts every process it needs and stops them all; every wait is bounded.

    .venv/bin/python scripts/bench_presence.py [--quick] [--members N] [--watchers W]
"""
import argparse
import asyncio
import dataclasses
import datetime
import functools
import json
import math
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402
import pymongo  # noqa: E402

from interkanect import config, processes  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
# The flood limit (50 frames/s a socket by default) would close the round-trip clients;
# nothing else in this benchmark comes near it.
FLOOD_RATE_PER_S = 1_000_000
FLOOD_BURST = 1_000_000
START_TIMEOUT_S = 60
OPEN_TIMEOUT_S = 30           # one member's socket: upgrade + attach (the hub gives up after 10 s)
OPEN_ATTEMPTS = 3
PRESENCE_TIMEOUT_S = 5        # a status change not seen by then counts as lost
SETTLE_S = 3                  # after the members are online, before memory is read
SIGNUP_SAMPLES = 2            # sign-ups through the real API, to time Argon2 and check the stored shape
ROUNDTRIP_WARMUP_S = 1
STOP_TIMEOUT_S = 15           # what `serve` and the tests give each child (Supervisor's default)


# ---------------------------------------------------------------- /proc readings

def proc_stat(pid):
    """(ppid, sid, cpu_s) of a process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[3]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def all_pids():
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def session_pids(sid):
    return [pid for pid in all_pids() if (stat := proc_stat(pid)) and stat[1] == sid]


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


def listening_pids(port):
    """Processes holding the listening TCP socket of `port` (this user's only)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    found = set()
    for pid in all_pids():
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    found.add(pid)
                    break
        except OSError:
            continue
    return found


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

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class System:
    """SecantusDB, one actor node and one gateway, as in tests/conftest.py, on unused ports."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        policy = config.Policy(flood_rate_per_s=FLOOD_RATE_PER_S, flood_burst=FLOOD_BURST)
        db_port = free_port()
        self.settings = config.Settings(port=free_port(), admin_port=free_port(), db_port=db_port,
                                        mongodb_url=f"mongodb://127.0.0.1:{db_port}/?directConnection=true",
                                        db_name="bench", data_dir=str(self.workdir), policy=policy)
        self.children = processes.Supervisor()
        self.env = dict(os.environ, **config.to_environ(self.settings), PYTHONPATH=str(ROOT))
        self.db = self.node = self.gateway = None
        self.actor_sid = None  # Thespian's admin daemonizes: its actors share its own session

    @property
    def url(self):
        return self.settings.url.rstrip("/")

    def start(self):
        s = self.settings
        secantusd = shutil.which("secantusd-py", path=str(Path(sys.executable).parent)) or "secantusd-py"
        self.db = self._start("database", [secantusd, "--host", "127.0.0.1", "--port", str(s.db_port),
                                           "--storage-path", str(self.workdir / "db")])
        from interkanect.db import ping
        processes.wait_until(lambda: ping(s), START_TIMEOUT_S, "SecantusDB", process=self.db)
        me = [sys.executable, "-m", "interkanect.cli"]
        self.node = self._start("node", me + ["node"])
        processes.wait_until(lambda: processes.port_listening("127.0.0.1", s.admin_port), START_TIMEOUT_S,
                             "the actor node", process=self.node)
        self.gateway = self._start("gateway", me + ["gateway"])
        processes.wait_until(self._healthy, START_TIMEOUT_S, "the gateway", process=self.gateway)
        admins = listening_pids(s.admin_port) - {self.node.pid}
        sids = {proc_stat(pid)[1] for pid in admins if proc_stat(pid)}
        if len(sids) != 1:
            raise SystemExit(f"error: cannot find the actor admin's session (listeners {admins}, sessions {sids})")
        self.actor_sid = sids.pop()
        self.admin_pid = min(admins)

    def _start(self, name, argv):
        log = open(self.workdir / f"{name}.log", "ab")
        return self.children.start(name, argv, env=self.env, cwd=ROOT, stdout=log, stderr=log)

    def _healthy(self):
        import urllib.request
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as answer:
                return json.load(answer)["ok"]
        except OSError:
            return False

    def start_script_role(self, name, argv, **popen_options):
        return self.children.start(name, [sys.executable, str(Path(__file__).resolve())] + argv,
                                   env=self.env, cwd=ROOT, **popen_options)

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

    def stop(self):
        started = time.monotonic()
        self.children.stop_all(STOP_TIMEOUT_S)
        stop_s = time.monotonic() - started
        left = []
        if self.actor_sid is not None:
            # Thespian's admin setsid()s away from the node's process group, so killpg on the
            # node cannot reach it: whatever the node's own shutdown did not stop is ours to end.
            deadline = time.monotonic() + 10
            while (pids := session_pids(self.actor_sid)) and time.monotonic() < deadline:
                left = left or pids
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.2)
        return stop_s, len(left)


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
    from tests.client import Member
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
    async def open(cls, system, account):
        """Open a page and wait for its `hello` (the member's actor holds it then)."""
        import websockets
        started = time.monotonic()
        ws = await websockets.connect(
            "ws" + system.url[len("http"):] + "/ws", origin=system.url,
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
        page.attach_ms = 1000 * (time.monotonic() - upgraded)      # Open → shard → member actor → hello
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


# ---------------------------------------------------------------- 3. member actors created per second

async def bring_online(system, accounts, window):
    """Open each member's first page, at most `window` waiting for their hello at once."""
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


def report_creation(pages, first_open, hellos, wall_s, used, depth_cpu):
    emit("members_brought_online", len(hellos))
    emit("member_actors_created_per_s", len(hellos) / (hellos[-1] - first_open))
    edge = min(100, len(hellos) // 2)
    if edge >= 10:
        emit(f"member_actors_created_per_s_first_{edge}", edge / (hellos[edge - 1] - first_open))
        emit(f"member_actors_created_per_s_last_{edge}", edge / (hellos[-1] - hellos[-edge - 1]))
    emit("member_open_upgrade_p50_ms", percentile([p.upgrade_ms for p in pages], 50))
    emit("member_open_attach_p50_ms", percentile([p.attach_ms for p in pages], 50))
    emit("member_open_attach_p99_ms", percentile([p.attach_ms for p in pages], 99))
    comment(cpu_line("member creation", wall_s, used))
    comment("  node CPU by depth below the Thespian admin: " + ", ".join(
        f"{name} {100 * s / wall_s:.0f}%" for name, s in depth_cpu.items()))


# ---------------------------------------------------------------- 2. memory

def memory_reading(system):
    node_pids = system.node_pids()
    return {"node": memory_of(node_pids), "node_processes": len(node_pids),
            "gateway": memory_of(system.gateway_pids())}


def report_memory(before, after, members, connections):
    node_pss_mb = (after["node"]["Pss"] - before["node"]["Pss"]) / 1024
    emit("pss_per_member_mb", node_pss_mb / members)
    emit("node_pss_before_mb", before["node"]["Pss"] / 1024)
    emit("node_pss_after_mb", after["node"]["Pss"] / 1024)
    emit("node_processes_before", before["node_processes"])
    emit("node_processes_after", after["node_processes"])
    emit("gateway_kb_per_connection", (after["gateway"]["Pss"] - before["gateway"]["Pss"]) / connections)
    emit("gateway_rss_kb_per_connection", (after["gateway"]["Rss"] - before["gateway"]["Rss"]) / connections)
    emit("gateway_pss_after_mb", after["gateway"]["Pss"] / 1024)


# ---------------------------------------------------------------- 1. presence fan-out

class PresenceRecorder:
    """When each viewer saw the watched member's status become `expected`."""

    def __init__(self, member_id, viewers):
        self.member_id = member_id
        self.viewers = viewers
        self.expected = None
        self.arrivals = {}
        self.all_seen = asyncio.Event()
        for page in viewers:
            page.on_frame = self.on_frame

    def expect(self, status):
        self.expected = status
        self.arrivals = {}
        self.all_seen = asyncio.Event()

    def on_frame(self, page, frame, received_at):
        if frame.get("type") == "presence" and frame.get("member_id") == self.member_id \
                and frame.get("status") == self.expected and page not in self.arrivals:
            self.arrivals[page] = received_at
            if len(self.arrivals) == len(self.viewers):
                self.all_seen.set()

    async def wait(self, since, timeout_s=PRESENCE_TIMEOUT_S):
        """Milliseconds from `since` to each viewer's frame, and how many never came."""
        try:
            await asyncio.wait_for(self.all_seen.wait(), timeout_s)
        except asyncio.TimeoutError:
            pass
        return [1000 * (t - since) for t in self.arrivals.values()], len(self.viewers) - len(self.arrivals)


async def measure_presence(system, watched, viewers, toggles):
    recorder = PresenceRecorder(watched.member_id, viewers)
    recorder.expect("offline")
    sent = time.monotonic()
    await asyncio.gather(*(v.send({"type": "watch", "id": 1, "members": [watched.member_id]}) for v in viewers))
    _, initial_missing = await recorder.wait(sent, timeout_s=2)

    samples = {"cold_open": [], "open": [], "close": [], "hello": []}
    lost = 0
    for round_no in range(toggles + 1):
        kind = "cold_open" if round_no == 0 else "open"
        recorder.expect("online")
        started = time.monotonic()
        page = await Page.open(system, watched)
        samples["hello"].append(1000 * (time.monotonic() - started))
        delays, missing = await recorder.wait(started)
        samples[kind] += delays
        lost += missing
        recorder.expect("offline")
        started = time.monotonic()
        await page.close()
        delays, missing = await recorder.wait(started)
        samples["close"] += delays
        lost += missing
    return samples, lost, initial_missing


def report_presence(samples, lost, initial_missing, viewers, toggles, members_online, wall_s, used):
    warm = samples["open"] + samples["close"]
    emit("presence_fanout_p50_ms", percentile(warm, 50))
    emit("presence_fanout_p99_ms", percentile(warm, 99))
    emit("presence_fanout_max_ms", max(warm))
    emit("presence_open_p50_ms", percentile(samples["open"], 50))
    emit("presence_close_p50_ms", percentile(samples["close"], 50))
    emit("presence_cold_open_p50_ms", percentile(samples["cold_open"], 50))
    emit("presence_watched_member_hello_p50_ms", percentile(samples["hello"], 50))
    emit("presence_samples", len(warm))
    emit("presence_frames_lost", lost)
    emit("presence_initial_frames_missing", initial_missing)
    comment(f"presence: {viewers} viewer sockets (pages of online members) watch one more member, which "
            f"opens and closes a page {toggles} times (+1 cold open creating its actor) with "
            f"{members_online} members online; a sample is one viewer's delay from the member's connect() "
            f"call (or close() call) to that viewer reading the presence frame, client-side reads included")
    comment(cpu_line("presence toggling", wall_s, used))


# ---------------------------------------------------------------- 4. round trips

async def run_roundtrip_phase(system, args, pages, workdir):
    """Median of `repeats` runs of each kind, the same client code for all."""
    echo_port = free_port()
    echo = system.start_script_role("echo", ["--role", "echo", "--port", str(echo_port)],
                                    stdout=subprocess.DEVNULL, stderr=open(Path(workdir) / "echo.log", "ab"))
    processes.wait_until(lambda: processes.port_listening("127.0.0.1", echo_port), START_TIMEOUT_S,
                         "the echo server", process=echo)
    clients = min(args.rt_clients, len(pages))
    movers = [p.account for p in pages[-clients:]]
    kinds = {
        "echo": {"url": f"ws://127.0.0.1:{echo_port}/ws", "origin": None, "tokens": [None] * clients,
                 "hello": False, "cpu": {"echo": [echo.pid]}},
        "members": {"url": "ws" + system.url[4:] + "/ws", "origin": system.url, "hello": True,
                    "tokens": [a.token for a in movers]},
        "one_member": {"url": "ws" + system.url[4:] + "/ws", "origin": system.url, "hello": True,
                       "tokens": [movers[-1].token] * clients},
    }
    groups = {"gateway": system.gateway_pids(), "node": system.node_pids(), "db": [system.db.pid],
              "bench": [os.getpid()]}
    results = {kind: [] for kind in kinds}
    for repeat in range(args.rt_repeats):
        for kind, spec in kinds.items():
            spec = dict(spec, seconds=args.rt_seconds, warmup_s=ROUNDTRIP_WARMUP_S, lib=args.client_lib,
                        cpu=dict(groups, **spec.get("cpu", {})))
            results[kind].append(await run_worker(system, spec, workdir))
            progress(f"round trips {kind} run {repeat + 1}: {results[kind][-1]['per_s']:.0f}/s")
    return results, clients


async def run_worker(system, spec, workdir):
    path = Path(workdir) / f"spec-{secrets.token_hex(4)}.json"
    path.write_text(json.dumps(spec))
    worker = system.start_script_role("round-trip client", ["--role", "roundtrip", "--spec", str(path)],
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


def report_roundtrips(results, clients, lib):
    def median(kind, key):
        return statistics.median(r[key] for r in results[kind])
    members, echo = median("members", "per_s"), median("echo", "per_s")
    emit("roundtrips_per_s", members)
    emit("bare_tornado_echo_per_s", echo)
    emit("roundtrip_ratio", members / echo)
    emit("roundtrips_one_member_per_s", median("one_member", "per_s"))
    emit("roundtrip_p50_ms", median("members", "p50_ms"))
    emit("roundtrip_p99_ms", median("members", "p99_ms"))
    emit("bare_tornado_echo_p50_ms", median("echo", "p50_ms"))
    comment(f"round trips: {clients} clients ({lib} library) in one client process, each sending a ping and "
            f"awaiting its answer; 'members' = {clients} different members (one actor each), 'one_member' = "
            f"{clients} pages of one member; median of {len(results['echo'])} run(s) of each; figures per kind:")
    for kind, runs in results.items():
        comment(f"  {kind}: " + ", ".join(f"{r['per_s']:.0f}/s" for r in runs))
    for kind, runs in results.items():
        run = runs[len(runs) // 2]
        comment(cpu_line(f"round trips, {kind}", run["seconds"], run["cpu"]))


# ---------------------------------------------------------------- roles run in their own processes

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


async def roundtrip_worker(spec):
    """Clients that each send a ping and await its answer, counted over `seconds`."""
    lib = {"websockets": WebsocketsClient, "tornado": TornadoClient}[spec["lib"]]
    conns = await asyncio.gather(*(lib.connect(spec["url"], spec["origin"], {"Cookie": f"ik_session={t}"} if t else {})
                                   for t in spec["tokens"]))
    if spec["hello"]:
        for conn in conns:
            frame = msgpack.unpackb(await asyncio.wait_for(conn.recv(), OPEN_TIMEOUT_S), raw=False)
            assert frame["type"] == "hello", frame
    state = {"measuring": False, "stop": False}
    latencies_s = []

    async def client(conn):
        request_id = 0
        while not state["stop"]:
            request_id += 1
            sent = time.perf_counter()
            await conn.send(msgpack.packb({"type": "ping", "id": request_id}, use_bin_type=True))
            while True:
                frame = msgpack.unpackb(await asyncio.wait_for(conn.recv(), 10), raw=False)
                if frame.get("id") == request_id:
                    break
                if frame.get("type") == "error":
                    raise RuntimeError(f"error frame: {frame}")
            if state["measuring"]:
                latencies_s.append(time.perf_counter() - sent)

    tasks = [asyncio.create_task(client(c)) for c in conns]
    await asyncio.sleep(spec["warmup_s"])
    watch = CpuWatch({name: functools.partial(lambda pids: pids, pids) for name, pids in spec["cpu"].items()}
                     | {"client": lambda: [os.getpid()]})
    state["measuring"] = True
    await asyncio.sleep(spec["seconds"])
    state["measuring"] = False
    count = len(latencies_s)
    wall_s, used = watch.stop()
    state["stop"] = True
    await asyncio.wait_for(asyncio.gather(*tasks), 15)
    await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
    print(json.dumps({"per_s": count / wall_s, "seconds": wall_s, "p50_ms": 1000 * percentile(latencies_s, 50),
                      "p99_ms": 1000 * percentile(latencies_s, 99), "cpu": used}), flush=True)


# ---------------------------------------------------------------- the whole run

async def bench(system, args, workdir):
    signed_up, signup_ms, reference = await sign_up_through_api(system, SIGNUP_SAMPLES)
    comment(f"signing up through POST /api/signup (Argon2id) took {statistics.mean(signup_ms):.0f} ms a member "
            f"here; the other {args.members + 1} members and their sessions are written straight into the "
            f"database in the shape that sign-up stored (checked field by field)")
    accounts = await asyncio.get_running_loop().run_in_executor(
        None, insert_accounts, system.settings, args.members + 1, reference)
    watched, online = accounts[0], accounts[1:]

    warm_page = await Page.open(system, signed_up[0])  # baseline: one member already online
    await asyncio.sleep(1)
    await idle_window(system, "idle with 1 member online", 1)
    before = memory_reading(system)

    progress(f"bringing {len(online)} members online, {args.open_window} opening at a time")
    depths_before = system.actor_depths()
    node_cpu_before = cpu_snapshot(system.node_pids())
    watch = system_cpu_watch(system)
    pages, failures, retries, first_open, hellos = await bring_online(system, online, args.open_window)
    wall_s, used = watch.stop()
    depth_cpu = actor_cpu_by_depth(system, node_cpu_before, depths_before)
    if failures:
        comment(f"{len(failures)} members could not be brought online; first: {failures[0]!r}")
    emit("member_open_retries", retries)
    report_creation(pages, first_open, hellos, wall_s, used, depth_cpu)

    await idle_window(system, f"idle with {len(pages) + 1} members online", len(pages) + 1)
    after = memory_reading(system)
    report_memory(before, after, len(pages), len(pages))

    progress(f"presence: {args.watchers} viewers, {args.toggles} toggles")
    viewers = pages[:args.watchers]
    watch = system_cpu_watch(system)
    samples, lost, initial_missing = await measure_presence(system, watched, viewers, args.toggles)
    wall_s, used = watch.stop()
    report_presence(samples, lost, initial_missing, len(viewers), args.toggles, len(pages) + 1, wall_s, used)

    progress("round trips")
    results, clients = await run_roundtrip_phase(system, args, pages, workdir)
    report_roundtrips(results, clients, args.client_lib)

    await asyncio.gather(*(p.close() for p in pages + [warm_page]), return_exceptions=True)


async def idle_window(system, label, websockets_open):
    """CPU of an idle system over SETTLE_S, with the gateway's threads apart."""
    watch = system_cpu_watch(system)
    threads_before = thread_cpu_snapshot(system.gateway.pid)
    await asyncio.sleep(SETTLE_S)
    wall_s, used = watch.stop()
    threads = thread_cpu_snapshot(system.gateway.pid)
    loop_pct = 100 * (threads.get(system.gateway.pid, 0) - threads_before.get(system.gateway.pid, 0)) / wall_s
    others = [100 * (cpu - threads_before.get(tid, 0)) / wall_s for tid, cpu in threads.items()
              if tid != system.gateway.pid]
    comment(cpu_line(label, wall_s, used))
    comment(f"  gateway threads: event loop {loop_pct:.0f}%, busiest other thread {max(others, default=0):.0f}%; "
            f"the gateway holds {socket_count(system.gateway.pid)} sockets for {websockets_open} websockets")


def system_cpu_watch(system):
    return CpuWatch({"gateway": system.gateway_pids, "node": system.node_pids, "db": lambda: [system.db.pid],
                     "bench": lambda: [os.getpid()]})


def actor_cpu_by_depth(system, before, depths_before):
    names = {0: "node+admin", 1: "directory+logger", 2: "shards", 3: "members"}
    depths = {**depths_before, **system.actor_depths()}
    after = cpu_snapshot(system.node_pids())
    out = {name: 0.0 for name in names.values()}
    for pid, cpu in after.items():
        name = names.get(depths.get(pid, 0), "members")
        out[name] += cpu - before.get(pid, 0.0)
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="100 members, 20 watchers, short runs (< 1 minute)")
    p.add_argument("--members", type=int, help="members online (default 1000; quick 100)")
    p.add_argument("--watchers", type=int, help="viewer sockets watching one member (default 100; quick 20)")
    p.add_argument("--toggles", type=int, help="page open/close cycles of the watched member (default 20; quick 10)")
    p.add_argument("--open-window", type=int, default=16, help="member pages waiting for their hello at once")
    p.add_argument("--rt-clients", type=int, default=50, help="round-trip clients")
    p.add_argument("--rt-seconds", type=float, help="measured seconds per round-trip run (default 5; quick 2)")
    p.add_argument("--rt-repeats", type=int, help="runs of each round-trip kind, median kept (default 3; quick 1)")
    p.add_argument("--client-lib", choices=("websockets", "tornado"), default="websockets",
                   help="websocket client library of the round-trip clients")
    p.add_argument("--time-limit-s", type=float, help="give up after this long (default 900; quick 120)")
    p.add_argument("--role", choices=("bench", "echo", "roundtrip"), default="bench", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    defaults = dict(members=(100, 1000), watchers=(20, 100), toggles=(10, 20), rt_seconds=(2, 5),
                    rt_repeats=(1, 3), time_limit_s=(120, 900))
    for name, (quick, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.watchers > args.members:
        p.error("--watchers cannot exceed --members: the viewers are pages of online members")
    return args


def raise_open_files_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None):
    args = parse_args(argv)
    if args.role == "echo":
        return serve_echo(args.port)
    if args.role == "roundtrip":
        return asyncio.run(roundtrip_worker(json.loads(Path(args.spec).read_text())))
    signal.signal(signal.SIGTERM, on_signal)
    # Sockets: ~2 per member here and in the gateway, ~3 per actor in the Thespian admin (inherited).
    nofile = raise_open_files_limit(max(4096, 6 * args.members + 1024))
    started = time.monotonic()
    comment(f"bench_presence: {args.members} members, {args.watchers} watchers, {os.cpu_count()} CPUs, "
            f"open files limit {nofile}, load average at start {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="bench-presence-") as workdir:
        system = System(workdir)
        status = 0
        try:
            progress(f"starting SecantusDB, actor node and gateway (logs in {workdir})")
            system.start()
            asyncio.run(asyncio.wait_for(bench(system, args, workdir), args.time_limit_s))
        except asyncio.TimeoutError:
            print(f"error: the benchmark ran over its time limit of {args.time_limit_s:.0f} s", file=sys.stderr)
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
    emit("bench_wall_s", time.monotonic() - started)
    return status


if __name__ == "__main__":
    sys.exit(main())
