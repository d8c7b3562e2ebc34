#!/usr/bin/env python3
"""Presence and gateway↔actor benchmark on loopback: a real SecantusDB, actor node
(multiprocTCPBase) and gateway, a thousand members online, and the figures the design's
promises rest on (presence fan-out, memory per member and per socket, how fast members come
online, round trips through a member's shard against a bare Tornado echo).

Prints `name=value` lines (units in the names) and `#` lines that say how the figures
were taken. Starts every process it needs and stops them all; every wait is bounded.

    .venv/bin/python scripts/bench_presence.py [--quick] [--members N] [--watchers W]
"""
import argparse
import asyncio
import os
import statistics
import sys
import time

from benchkit import (Page, add_shards_option, bring_online, comment, cpu_line, cpu_snapshot, emit, idle_window,
                      insert_accounts, memory_reading, percentile, progress, raise_open_files_limit,
                      report_goal, run_bench, run_roundtrip_worker, settings_of, sign_up_through_api,
                      start_echo, system_cpu_watch)

PRESENCE_TIMEOUT_S = 5        # a status change not seen by then counts as lost
SIGNUP_SAMPLES = 2            # sign-ups through the real API, to time Argon2 and check the stored shape
ROUNDTRIP_WARMUP_S = 1


# ---------------------------------------------------------------- 3. members brought online per second

def report_creation(pages, first_open, hellos, wall_s, used, depth_cpu):
    emit("members_brought_online", len(hellos))
    emit("members_online_per_s", len(hellos) / (hellos[-1] - first_open))
    edge = min(100, len(hellos) // 2)
    if edge >= 10:
        emit(f"members_online_per_s_first_{edge}", edge / (hellos[edge - 1] - first_open))
        emit(f"members_online_per_s_last_{edge}", edge / (hellos[-1] - hellos[-edge - 1]))
    emit("member_open_upgrade_p50_ms", percentile([p.upgrade_ms for p in pages], 50))
    emit("member_open_attach_p50_ms", percentile([p.attach_ms for p in pages], 50))
    emit("member_open_attach_p99_ms", percentile([p.attach_ms for p in pages], 99))
    comment(cpu_line("members coming online", wall_s, used))
    comment("  node CPU by depth below the Thespian admin: " + ", ".join(
        f"{name} {100 * s / wall_s:.0f}%" for name, s in depth_cpu.items()))


# ---------------------------------------------------------------- 2. memory

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
            f"opens and closes a page {toggles} times (+1 cold open bringing it online in its shard) with "
            f"{members_online} members online; a sample is one viewer's delay from the member's connect() "
            f"call (or close() call) to that viewer reading the presence frame, client-side reads included")
    comment(cpu_line("presence toggling", wall_s, used))


# ---------------------------------------------------------------- 4. round trips

async def run_roundtrip_phase(system, args, pages, workdir):
    """Median of `repeats` runs of each kind, the same client code for all."""
    echo, echo_port = start_echo(system, workdir)
    clients = min(args.rt_clients, len(pages))
    movers = [p.account for p in pages[-clients:]]
    kinds = {
        "echo": {"url": f"ws://127.0.0.1:{echo_port}/ws", "origin": None, "tokens": [None] * clients,
                 "hello": False, "cpu": {"echo": [echo.pid]}},
        "members": {"url": system.ws_url, "origin": system.url, "hello": True,
                    "tokens": [a.token for a in movers]},
        "one_member": {"url": system.ws_url, "origin": system.url, "hello": True,
                       "tokens": [movers[-1].token] * clients},
    }
    groups = {"gateway": system.gateway_pids(), "node": system.node_pids(), "db": [system.db.pid],
              "bench": [os.getpid()]}
    results = {kind: [] for kind in kinds}
    for repeat in range(args.rt_repeats):
        for kind, spec in kinds.items():
            spec = dict(spec, seconds=args.rt_seconds, warmup_s=ROUNDTRIP_WARMUP_S, lib=args.client_lib,
                        cpu=dict(groups, **spec.get("cpu", {})))
            results[kind].append(await run_roundtrip_worker(system, spec, workdir))
            progress(f"round trips {kind} run {repeat + 1}: {results[kind][-1]['per_s']:.0f}/s")
    return results, clients


def report_roundtrips(results, clients, lib):
    def median(kind, key):
        return statistics.median(r[key] for r in results[kind])
    members, echo = median("members", "per_s"), median("echo", "per_s")
    emit("roundtrips_per_s", members)
    emit("bare_tornado_echo_per_s", echo)
    emit("roundtrip_ratio", members / echo)
    report_goal("roundtrip_ratio", ">=", 0.6, members / echo)
    emit("roundtrips_one_member_per_s", median("one_member", "per_s"))
    emit("roundtrip_p50_ms", median("members", "p50_ms"))
    emit("roundtrip_p99_ms", median("members", "p99_ms"))
    emit("bare_tornado_echo_p50_ms", median("echo", "p50_ms"))
    comment(f"round trips: {clients} clients ({lib} library) in one client process, each sending a ping and "
            f"awaiting its answer; 'members' = {clients} different members (in their shards), 'one_member' = "
            f"{clients} pages of one member; median of {len(results['echo'])} run(s) of each; figures per kind:")
    for kind, runs in results.items():
        comment(f"  {kind}: " + ", ".join(f"{r['per_s']:.0f}/s" for r in runs))
    for kind, runs in results.items():
        run = runs[len(runs) // 2]
        comment(cpu_line(f"round trips, {kind}", run["seconds"], run["cpu"]))


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


def actor_cpu_by_depth(system, before, depths_before):
    names = {0: "node+admin", 1: "directory+logger", 2: "shards and adapters", 3: "calls and the rest"}
    depths = {**depths_before, **system.actor_depths()}
    after = cpu_snapshot(system.node_pids())
    out = {name: 0.0 for name in names.values()}
    for pid, cpu in after.items():
        name = names.get(depths.get(pid, 0), "calls and the rest")
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
    add_shards_option(p)
    p.add_argument("--time-limit-s", type=float, help="give up after this long (default 900; quick 120)")
    args = p.parse_args(argv)
    defaults = dict(members=(100, 1000), watchers=(20, 100), toggles=(10, 20), rt_seconds=(2, 5),
                    rt_repeats=(1, 3), time_limit_s=(120, 900))
    for name, (quick, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.watchers > args.members:
        p.error("--watchers cannot exceed --members: the viewers are pages of online members")
    return args


def main(argv=None):
    args = parse_args(argv)
    # Sockets: ~2 per member here and in the gateway, ~3 per actor in the Thespian admin (inherited).
    nofile = raise_open_files_limit(max(4096, 6 * args.members + 1024))
    header = (f"bench_presence: {args.members} members, {args.watchers} watchers, {os.cpu_count()} CPUs, "
              f"open files limit {nofile}, load average at start {os.getloadavg()[0]:.2f}")
    return run_bench("bench-presence", header, lambda system, workdir: bench(system, args, workdir),
                     args.time_limit_s, settings=settings_of(args))


if __name__ == "__main__":
    sys.exit(main())
