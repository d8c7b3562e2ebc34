#!/usr/bin/env python3
"""Calls benchmark on loopback: a real SecantusDB, actor node (multiprocTCPBase) and gateway,
hundreds of members online and a couple of hundred calls in progress at once, driven by
websocket clients, a share of them carrying aiortc peers; the figures the calls issue asks
for, each beside the baseline it is judged against, taken in the same run:

- call → `incoming_call` at the host (p50, p99; goal p99 < 50 ms);
- accept → both data channels open, through the gateway's relayed signaling, against two
  aiortc peers connected directly in this process (the same peer code, minus the gateway;
  goal p50 ≤ 1.3×);
- signal relay round trip (caller → host's page → straight back) against a bare Tornado
  echo, with the same client code (goal p99 ≤ 3×);
- how late a negotiation that runs out ends (`call_state` ended, no_agreement, against its
  `deadline_ms`; goal p99 < 250 ms); the node and gateway are restarted with a short
  negotiation window for that batch;
- calls running, node processes and memory per call, and how the CPU was shared.

Prints `name=value` lines (units in the names) and `#` lines that say how the figures were
taken. Starts every process it needs and stops them all; every wait is bounded.

    .venv/bin/python scripts/bench_calls.py [--quick] [--calls N] [--peers P]
"""
import argparse
import asyncio
import functools
import math
import os
import statistics
import sys
import time

from benchkit import (CLK_TCK, Page, WebsocketsClient, add_shards_option, bring_online, comment, cpu_line, emit,
                      idle_window, insert_accounts, machine_busy_s, measure_roundtrips, memory_reading,
                      percentile, progress, raise_open_files_limit, report_goal, run_bench, session_pids,
                      settings_of, sign_up_through_api, start_echo, system_cpu_watch)

SIGNUP_SAMPLES = 1            # a sign-up through the real API, to check the stored shape
FRAME_TIMEOUT_S = 30          # one expected frame; generous, the machine is shared
# Calls placed early in a phase still ring when the bench comes to accept them (peer calls
# wait for the peer phase), and the main phase's calls must not run out of negotiation time
# while they are measured.
RING_TIMEOUT_S = 600
MAIN_NEGOTIATION_WINDOW_S = 3600
EXPIRY_WINDOW_MIN_S = 3
EXPIRY_MARGIN_S = 3           # the first window closes this long after the last call was placed
ROUNDTRIP_WARMUP_S = 1
PAYOUT_EMAIL = "payouts@example.com"
# time.time() at the page readers' time.monotonic() stamps: deadlines are epoch milliseconds,
# taken by the actors on this same machine.
EPOCH_OFFSET_S = time.time() - time.monotonic()
PROBE_GAP_S = 0.05
GOALS = (("call_ring_p99_ms", "<", 50), ("call_ring_single_p99_ms", "<", 50), ("peer_setup_ratio", "<=", 1.3),
         ("relay_rt_p99_ratio", "<=", 3), ("relay_rt_two_gateways_p99_ratio", "<=", 5),
         ("node_cpu_per_call_ms", "<=", 5), ("expiry_late_p99_ms", "<", 250))


# ---------------------------------------------------------------- a page as the calls see it

class FrameRefused(Exception):
    pass


class Mailbox:
    """A bench page as tests.peers sees a socket (`request`, `expect`), keeping when each frame
    arrived. Frames nobody waits for yet stay unread for a later expect; an error frame fails
    whoever waits on the page. A `responder` answers frames at once (the far end of the relay)."""

    def __init__(self, page):
        self.page = page
        self.unread = []          # (frame, received_at)
        self.waiters = []         # (matches, future)
        self.next_id = 1
        self.responder = None     # frame → reply frame, or None
        self.replies = set()      # reply sends in flight
        page.on_frame = self.on_frame

    @property
    def member_id(self):
        return self.page.account.member_id

    def on_frame(self, page, frame, received_at):
        if self.responder is not None and (reply := self.responder(frame)) is not None:
            task = asyncio.ensure_future(page.send(reply))
            self.replies.add(task)
            task.add_done_callback(self.replies.discard)
            return
        for index, (matches, future) in enumerate(self.waiters):
            if not future.done() and matches(frame):
                del self.waiters[index]
                future.set_result((frame, received_at))
                return
        if frame.get("type") == "error":
            for _, future in self.waiters:
                if not future.done():
                    future.set_exception(FrameRefused(f"member {self.member_id}'s page was refused: {frame}"))
            self.waiters.clear()
        self.unread.append((frame, received_at))

    async def request(self, frame_type, **fields):
        request_id = self.next_id
        self.next_id += 1
        await self.page.send(dict(type=frame_type, id=request_id, **fields))
        return request_id

    async def expect_timed(self, frame_type, timeout_s=FRAME_TIMEOUT_S, where=None, **fields):
        """(frame, monotonic arrival time) of the first frame of this type whose fields match."""
        def matches(frame):
            return (frame.get("type") == frame_type and all(frame.get(k) == v for k, v in fields.items())
                    and (where is None or where(frame)))
        for index, (frame, received_at) in enumerate(self.unread):
            if matches(frame):
                del self.unread[index]
                return frame, received_at
        entry = (matches, asyncio.get_running_loop().create_future())
        self.waiters.append(entry)
        try:
            return await asyncio.wait_for(entry[1], timeout_s)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no {frame_type} {fields} on member {self.member_id}'s page "
                               f"within {timeout_s} s") from None
        finally:
            if entry in self.waiters:
                self.waiters.remove(entry)

    async def expect(self, frame_type, timeout_s=FRAME_TIMEOUT_S, **fields):
        return (await self.expect_timed(frame_type, timeout_s, **fields))[0]


class DirectPort:
    """One end of an in-process signaling link: the peers' code path with the gateway left out."""

    def __init__(self):
        self.frames = asyncio.Queue()
        self.far = None

    @classmethod
    def pair(cls):
        a, b = cls(), cls()
        a.far, b.far = b, a
        return a, b

    async def request(self, frame_type, **fields):
        self.far.frames.put_nowait(dict(type=frame_type, **fields))
        return 0

    async def expect(self, frame_type, timeout_s=FRAME_TIMEOUT_S, **fields):
        frame = await asyncio.wait_for(self.frames.get(), timeout_s)
        if frame["type"] != frame_type or any(frame.get(k) != v for k, v in fields.items()):
            raise RuntimeError(f"direct signaling: expected {frame_type} {fields}, got {frame}")
        return frame


class CallRun:
    """One call of the benchmark: its two pages and what was measured on it."""

    def __init__(self, host, caller):
        self.host, self.caller = host, caller   # their pages' mailboxes
        self.call_id = None
        # time.monotonic() when the caller sent `call`, the host's page read `incoming_call`,
        # the caller's read `call_state` ringing; the host sent `accept`, the caller's page read
        # `call_state` negotiating.
        self.sent_at = self.rang_at = self.ringing_at = None
        self.accepted_at = self.negotiating_at = None
        self.deadline_ms = {}             # side → deadline_ms of the negotiation, as shown
        self.peers = ()

    @property
    def ring_ms(self):
        return 1000 * (self.rang_at - self.sent_at)


# ---------------------------------------------------------------- ring and accept

async def place(run):
    run.sent_at = time.monotonic()
    await run.caller.request("call", member_id=run.host.member_id)
    (incoming, run.rang_at), (_, run.ringing_at) = await asyncio.gather(
        run.host.expect_timed("incoming_call", where=lambda f: f["caller"]["id"] == run.caller.member_id),
        run.caller.expect_timed("call_state", state="ringing"))
    run.call_id = incoming["call_id"]


async def accept(run):
    run.accepted_at = time.monotonic()
    await run.host.request("accept", call_id=run.call_id)
    for side, mailbox in (("caller", run.caller), ("host", run.host)):
        state, received_at = await mailbox.expect_timed("call_state", call_id=run.call_id, state="negotiating")
        run.deadline_ms[side] = state["deadline_ms"]
        if side == "caller":
            run.negotiating_at = received_at


async def ring_all(runs, window, accept_now):
    """Place every call, at most `window` being set up at once (ringing, or accepted and not
    yet negotiating), so calls arrive as fast as the system takes them and no faster; accept
    those `accept_now` picks as soon as they ring. Returns the calls placed per second."""
    gate = asyncio.Semaphore(window)
    started = time.monotonic()

    async def one(run):
        async with gate:
            await place(run)
            if accept_now(run):
                await accept(run)
    await asyncio.gather(*(one(r) for r in runs))
    return len(runs) / (time.monotonic() - started)


def report(figures):
    """Print `name=value` lines; returns the figures, for the goals at the end."""
    for name, value in figures.items():
        emit(name, value)
    return figures


def stored_times(settings, runs):
    """call_id → (created_at, answered_at, ended_at) in epoch seconds (ms precision, None when
    not yet), as each call session stored them: when it took the CallStart, the host's accept,
    and the end."""
    import pymongo
    db = pymongo.MongoClient(settings.database_url, tz_aware=True)[settings.db_name]
    fields = ("created_at", "answered_at", "ended_at")
    try:
        documents = db.calls.find({"_id": {"$in": [r.call_id for r in runs]}}, dict.fromkeys(fields, 1))
        return {d["_id"]: tuple(d[f] and d[f].timestamp() for f in fields) for d in documents}
    finally:
        db.client.close()


def split_at_session(runs, stored, prefix):
    """Ring (and accept) cut in two where the call session took it, on the machine's one clock."""
    def ms(since, until):
        return [1000 * (u - s) for s, u in zip(since, until)]
    def epoch(at):
        return at + EPOCH_OFFSET_S
    created = [stored[r.call_id][0] for r in runs]
    figures = {f"{prefix}_to_session_p50_ms": percentile(ms([epoch(r.sent_at) for r in runs], created), 50),
               f"{prefix}_session_to_host_p50_ms": percentile(ms(created, [epoch(r.rang_at) for r in runs]), 50)}
    accepted = [r for r in runs if r.negotiating_at is not None and stored[r.call_id][1]]
    if accepted:
        answered = [stored[r.call_id][1] for r in accepted]
        figures.update({
            "accept_to_session_p50_ms": percentile(ms([epoch(r.accepted_at) for r in accepted], answered), 50),
            "accept_session_to_caller_p50_ms": percentile(ms(answered, [epoch(r.negotiating_at) for r in accepted]),
                                                          50)})
    return figures


def report_ring(runs, placed_per_s, stored):
    ring = [r.ring_ms for r in runs]
    figures = {"calls_placed": len(runs), "calls_placed_per_s": placed_per_s, "call_ring_p50_ms": percentile(ring, 50),
               "call_ring_p99_ms": percentile(ring, 99), "call_ring_max_ms": max(ring),
               "call_ringing_at_caller_p50_ms": percentile([1000 * (r.ringing_at - r.sent_at) for r in runs], 50)}
    accepted = [1000 * (r.negotiating_at - r.accepted_at) for r in runs if r.negotiating_at is not None]
    if accepted:
        figures.update(accept_to_negotiating_p50_ms=percentile(accepted, 50),
                       accept_to_negotiating_p99_ms=percentile(accepted, 99))
    return report(dict(figures, **split_at_session(runs, stored, "call_ring")))


async def probe_rings(settings, runs, count):
    """Calls placed one at a time while every call of the run is in progress: caller i rings
    host i+1 (an upgraded host in a call may take another) and cancels once it rang."""
    probes = []
    for i in range(count):
        probe = CallRun(runs[(i + 1) % len(runs)].host, runs[i % len(runs)].caller)
        await place(probe)
        await probe.caller.request("cancel", call_id=probe.call_id)
        await probe.caller.expect("call_state", call_id=probe.call_id, state="ended")
        await probe.host.expect("ring_stopped", call_id=probe.call_id)
        probes.append(probe)
        await asyncio.sleep(PROBE_GAP_S)
    ring_ms = [p.ring_ms for p in probes]
    stored = await asyncio.get_running_loop().run_in_executor(None, stored_times, settings, probes)
    return report(dict({"call_ring_single_p50_ms": percentile(ring_ms, 50),
                        "call_ring_single_p99_ms": percentile(ring_ms, 99), "call_ring_single_max_ms": max(ring_ms)},
                       **split_at_session(probes, stored, "call_ring_single")))


def cpu_per(label, used, count, unit):
    """Milliseconds of CPU each of our process groups spent per operation."""
    ours = {name: s for name, s in used.items() if name != "other"}
    return f"  CPU per {label}: " + ", ".join(f"{name} {1000 * s / count:.2f} ms" for name, s in ours.items()) + \
        f" (over {count} {unit}; CPU time is counted in {1000 // CLK_TCK} ms ticks)"


# ---------------------------------------------------------------- aiortc peers

def loopback_peers():
    """tests.peers: its peers have no ICE server (aiortc's default is Google's public STUN
    server), so this benchmark stays on this machine (host candidates are all it needs)."""
    from tests.kit import peers
    return peers


async def check_talk(caller_peer, host_peer):
    await caller_peer.say("hello")
    if await host_peer.heard() != "hello":
        raise RuntimeError("the data channel carried something else")


async def direct_setup(peers):
    """Milliseconds for two peers in this process to have both data channels open."""
    caller_port, host_port = DirectPort.pair()
    caller_peer, host_peer = peers.Peer(caller_port, "direct"), peers.Peer(host_port, "direct")
    started = time.monotonic()
    await peers.connect(caller_peer, host_peer)
    setup_ms = 1000 * (time.monotonic() - started)
    await check_talk(caller_peer, host_peer)
    await asyncio.gather(caller_peer.close(), host_peer.close())
    return setup_ms


async def relayed_setup(peers, run):
    """Milliseconds from the host's accept to both data channels open, signaling relayed by the
    gateway as a browser's would be: the caller offers once its page shows the call accepted."""
    caller_peer, host_peer = peers.Peer(run.caller, run.call_id), peers.Peer(run.host, run.call_id)
    started = time.monotonic()
    await run.host.request("accept", call_id=run.call_id)
    state = await run.caller.expect("call_state", call_id=run.call_id, state="negotiating")
    await peers.connect(caller_peer, host_peer)
    setup_ms = 1000 * (time.monotonic() - started)
    run.deadline_ms["caller"] = state["deadline_ms"]
    run.deadline_ms["host"] = (await run.host.expect("call_state", call_id=run.call_id,
                                                     state="negotiating"))["deadline_ms"]
    await check_talk(caller_peer, host_peer)
    run.peers = (caller_peer, host_peer)
    return setup_ms


async def peer_phase(system, runs):
    """One call at a time, each beside a direct pair, so both see the machine as it is then."""
    peers = loopback_peers()
    await direct_setup(peers)  # warm-up: first use of aiortc's crypto and SCTP code
    direct_ms, relayed_ms = [], []
    watch = system_cpu_watch(system)
    for run in runs:
        direct_ms.append(await direct_setup(peers))
        relayed_ms.append(await relayed_setup(peers, run))
    wall_s, used = watch.stop()
    figures = report({"peer_calls": len(runs), "peer_setup_p50_ms": percentile(relayed_ms, 50),
                      "peer_setup_p99_ms": percentile(relayed_ms, 99), "direct_setup_p50_ms": percentile(direct_ms, 50),
                      "direct_setup_p99_ms": percentile(direct_ms, 99),
                      "peer_setup_ratio": percentile(relayed_ms, 50) / percentile(direct_ms, 50)})
    comment(f"peers: {len(runs)} calls, one at a time, each set up by two aiortc peers (tests/peers.py, no ICE "
            f"server, host candidates on this machine) from the host's accept to both data channels open, the "
            f"caller offering once its page shows the call accepted; each beside a direct pair: the same peer "
            f"code with the signaling handed over in this process; ratio = p50 / p50")
    comment(cpu_line("peer setups", wall_s, used))
    return figures


# ---------------------------------------------------------------- signal relay round trips

def candidate_frame(call_ids, index, seq):
    """A small ICE candidate whose foundation carries the sequence number."""
    return {"type": "signal", "id": seq, "call_id": call_ids[index], "kind": "candidate",
            "candidate": {"candidate": f"candidate:{seq} 1 udp 2122260223 192.0.2.1 9 typ host",
                          "sdpMid": "0", "sdpMLineIndex": 0}}


def candidate_seq(frame):
    if frame.get("type") != "signal" or frame.get("kind") != "candidate":
        return None
    return int(frame["candidate"]["candidate"].split(" ", 1)[0].split(":", 1)[1])


def send_back(mailbox):
    """The host's page answers a candidate with the same candidate, at once."""
    def reply(frame):
        if frame.get("type") != "signal" or frame.get("kind") != "candidate":
            return None
        mailbox.next_id += 1
        return {"type": "signal", "id": mailbox.next_id, "call_id": frame["call_id"], "kind": "candidate",
                "candidate": frame["candidate"]}
    return reply


async def roundtrip_phase(system, args, runs, workdir):
    """Caller → gateway → call session → host's page → back, against the bare echo; the
    callers' sockets are read by the same client loop as the echo's clients."""
    echo, echo_port = start_echo(system, workdir)
    call_ids = [r.call_id for r in runs]
    for run in runs:
        run.host.responder = send_back(run.host)
    relay_conns = [await run.caller.page.detach() for run in runs]
    echo_conns = await asyncio.gather(*(WebsocketsClient.connect(f"ws://127.0.0.1:{echo_port}/ws", None, {})
                                        for _ in runs))
    groups = {"gateway": system.gateway_pids, "node": system.node_pids, "db": lambda: [system.db.pid],
              "bench": lambda: [os.getpid()], "echo": lambda: [echo.pid]}
    measure = functools.partial(measure_roundtrips, cpu_groups=groups, warmup_s=ROUNDTRIP_WARMUP_S,
                                frame_of=functools.partial(candidate_frame, call_ids), answer_of=candidate_seq)
    results = {"echo": [], "relay": [], "echo_single": [], "relay_single": []}
    for repeat in range(args.rt_repeats):
        for kind, conns in (("echo", echo_conns), ("relay", relay_conns)):
            results[kind].append(await measure(conns, seconds=args.rt_seconds))
            progress(f"round trips {kind} run {repeat + 1}: {results[kind][-1]['per_s']:.0f}/s")
    for kind, conns in (("echo_single", echo_conns[:1]), ("relay_single", relay_conns[:1])):
        results[kind].append(await measure(conns, seconds=args.rt_seconds))
    progress("round trips with each host's page moved to a second gateway")
    await hosts_on_second_gateway(system, runs)
    groups["gateway"] = lambda: system.gateway_pids() + session_pids(system.gateway_b.pid)
    for repeat in range(args.rt_repeats):
        results.setdefault("relay_two_gateways", []).append(await measure(relay_conns, seconds=args.rt_seconds))
        progress(f"round trips relay over two gateways run {repeat + 1}: "
                 f"{results['relay_two_gateways'][-1]['per_s']:.0f}/s")
    await asyncio.gather(*(c.close() for c in echo_conns), return_exceptions=True)
    return results


async def hosts_on_second_gateway(system, runs):
    """Each host opens a page on a second gateway and takes its call there (`attach_call`), as
    after a refresh through a load balancer: the caller's frames then cross the host's shard."""
    url = system.start_second_gateway()
    for run in runs:
        page = Mailbox(await Page.open(system, run.host.page.account, url))
        await page.request("attach_call", call_id=run.call_id)
        await page.expect("call_state", call_id=run.call_id)
        page.responder = send_back(page)
        run.host.responder = None


def report_roundtrips(results, pairs):
    def median(kind, key):
        return statistics.median(r[key] for r in results[kind])
    figures = report({
        "relay_rt_pairs": pairs, "relay_rt_p50_ms": median("relay", "p50_ms"),
        "relay_rt_p99_ms": median("relay", "p99_ms"), "relay_rt_per_s": median("relay", "per_s"),
        "bare_echo_rt_p50_ms": median("echo", "p50_ms"), "bare_echo_rt_p99_ms": median("echo", "p99_ms"),
        "bare_echo_rt_per_s": median("echo", "per_s"),
        "relay_rt_p99_ratio": median("relay", "p99_ms") / median("echo", "p99_ms"),
        "relay_rt_single_p50_ms": median("relay_single", "p50_ms"),
        "relay_rt_single_p99_ms": median("relay_single", "p99_ms"),
        "bare_echo_rt_single_p50_ms": median("echo_single", "p50_ms"),
        "bare_echo_rt_single_p99_ms": median("echo_single", "p99_ms"),
        "relay_rt_single_p99_ratio": median("relay_single", "p99_ms") / median("echo_single", "p99_ms"),
        "relay_rt_two_gateways_p50_ms": median("relay_two_gateways", "p50_ms"),
        "relay_rt_two_gateways_p99_ms": median("relay_two_gateways", "p99_ms"),
        "relay_rt_two_gateways_p99_ratio": median("relay_two_gateways", "p99_ms") / median("echo", "p99_ms")})
    comment(f"signal relay: {pairs} calls at once, each caller's socket sending a `signal` candidate frame "
            f"and awaiting the same candidate, which the host's page sends back as soon as it reads it; the "
            f"echo: {pairs} sockets to a bare Tornado echo, the same frames and the same client loop; median of "
            f"{len(results['echo'])} run(s) of each; 'single': one caller alone (no queueing); figures per run:")
    for kind, runs in results.items():
        comment(f"  {kind}: " + ", ".join(f"{r['per_s']:.0f}/s p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms"
                                          for r in runs))
    for kind in ("echo", "relay"):
        run = results[kind][len(results[kind]) // 2]
        comment(cpu_line(f"round trips, {kind}", run["seconds"], run["cpu"]))
        comment(cpu_per("round trip", run["cpu"], round(run["per_s"] * run["seconds"]), "round trips"))
    return figures


# ---------------------------------------------------------------- negotiation expiry

async def expiry_phase(system, args, hosts, callers, placed_per_s):
    """Calls accepted and left to run out of negotiation time: how late each side hears so.
    Unless told, the window is long enough (at the rate the calls were placed before) for all
    of them to be negotiating when the first one runs out."""
    window_s = args.expiry_window_s or float(max(EXPIRY_WINDOW_MIN_S,
                                                 math.ceil(1.25 * len(hosts) / placed_per_s + EXPIRY_MARGIN_S)))
    progress(f"restarting the node and gateway with a {window_s:g} s negotiation window")
    stop_s, left = system.restart_app(ring_timeout_s=RING_TIMEOUT_S, negotiation_window_s=window_s)
    comment(f"restart for the expiry batch: stopping the node and gateway (with every call above in progress) "
            f"took {stop_s:.1f} s; {left} actor processes outlived the node's stop and were killed")
    pages = await online(system, hosts + callers, args.open_window)
    runs = [CallRun(h, c) for h, c in zip(pages[:len(hosts)], pages[len(hosts):])]
    progress(f"expiry: {len(runs)} calls placed and accepted, then left to run out")
    placed_per_s = await ring_all(runs, args.ring_window, accept_now=lambda run: True)
    first_deadline_ms = min(min(r.deadline_ms.values()) for r in runs)
    concurrent = sum(1 for r in runs if (r.accepted_at + EPOCH_OFFSET_S) * 1000 < first_deadline_ms)
    watch = system_cpu_watch(system)
    arrivals, other_endings = [], []   # (run, side, epoch seconds the page read it)
    timeout_s = window_s + FRAME_TIMEOUT_S

    async def ended(run, side):
        state, received_at = await getattr(run, side).expect_timed("call_state", timeout_s, call_id=run.call_id,
                                                                   state="ended")
        if state["end_reason"] != "no_agreement":
            other_endings.append(state["end_reason"])
        else:
            arrivals.append((run, side, received_at + EPOCH_OFFSET_S))
    await asyncio.gather(*(ended(r, side) for r in runs for side in ("caller", "host")))
    wall_s, used = watch.stop()
    stored = await asyncio.get_running_loop().run_in_executor(None, stored_times, system.settings, runs)
    late_ms = [1000 * at - run.deadline_ms[side] for run, side, at in arrivals]
    # Cut where the call session ended the call: the round's timer and its outcome reaching the
    # session, then the store write and the frame's way to the page.
    to_session_ms = [1000 * stored[run.call_id][2] - run.deadline_ms[side] for run, side, _ in arrivals]
    to_page_ms = [1000 * (at - stored[run.call_id][2]) for run, _, at in arrivals]
    figures = report({"expiry_window_s": window_s, "expiry_calls": len(runs), "expiry_calls_concurrent": concurrent,
                      "expiry_late_p50_ms": percentile(late_ms, 50), "expiry_late_p99_ms": percentile(late_ms, 99),
                      "expiry_late_max_ms": max(late_ms), "expiry_late_min_ms": min(late_ms),
                      "expiry_late_to_session_p50_ms": percentile(to_session_ms, 50),
                      "expiry_late_to_session_p99_ms": percentile(to_session_ms, 99),
                      "expiry_session_to_page_p50_ms": percentile(to_page_ms, 50),
                      "expiry_session_to_page_p99_ms": percentile(to_page_ms, 99),
                      "expiry_other_endings": len(other_endings)})
    ring = [r.ring_ms for r in runs]
    comment(f"expiry: {len(runs)} calls placed, at most {args.ring_window} being set up at once ({placed_per_s:.1f}/s; "
            f"ring p50 {percentile(ring, 50):.0f} ms, p99 {percentile(ring, 99):.0f} ms), each accepted as it rang, "
            f"{concurrent} of them negotiating when the first window closed; a sample is one side's "
            f"`call_state` ended (no_agreement) read by its page, minus the `deadline_ms` it was shown at accept "
            f"(same machine, same clock), also cut where the call session ended the call (its stored ended_at)")
    comment(cpu_line("negotiation expiries", wall_s, used))
    await close_pages(pages)
    return figures


# ---------------------------------------------------------------- the whole run

async def online(system, accounts, window):
    """A page for each account, in order, as a mailbox; or fail: calls pair hosts with callers."""
    pages, failures, *_ = await bring_online(system, accounts, window)
    if failures:
        raise SystemExit(f"error: {len(failures)} members could not be brought online; first: {failures[0]!r}")
    return [Mailbox(page) for page in pages]


async def close_pages(mailboxes):
    await asyncio.gather(*(m.page.close() for m in mailboxes), return_exceptions=True)


def upgrade_hosts(settings, accounts):
    """Hosts are upgraded members with a payout email: hosts of paid calls, no free-tier cap."""
    import pymongo
    from bson import ObjectId
    db = pymongo.MongoClient(settings.database_url, tz_aware=True)[settings.db_name]
    try:
        db.members.update_many({"_id": {"$in": [ObjectId(a.member_id) for a in accounts]}},
                               {"$set": {"tier": "upgraded", "payout_email": PAYOUT_EMAIL}})
    finally:
        db.client.close()


def calls_in_progress(settings):
    import pymongo
    db = pymongo.MongoClient(settings.database_url, tz_aware=True)[settings.db_name]
    try:
        return db.calls.count_documents({"state": {"$ne": "ended"}})
    finally:
        db.client.close()


def report_memory(before, after, calls):
    emit("calls_running", calls)
    emit("node_processes_before", before["node_processes"])
    emit("node_processes_after", after["node_processes"])
    emit("node_processes_per_call", (after["node_processes"] - before["node_processes"]) / calls)
    emit("node_pss_before_mb", before["node"]["Pss"] / 1024)
    emit("node_pss_after_mb", after["node"]["Pss"] / 1024)
    emit("node_pss_per_call_mb", (after["node"]["Pss"] - before["node"]["Pss"]) / 1024 / calls)
    emit("gateway_pss_after_mb", after["gateway"]["Pss"] / 1024)


def report_goals(figures):
    for name, relation, goal in GOALS:
        if name in figures:
            report_goal(name, relation, goal, figures[name])


async def bring_members_online(system, args):
    """2 × calls members online (hosts first), with the node's memory read once they idle."""
    _, _, reference = await sign_up_through_api(system, SIGNUP_SAMPLES)
    loop = asyncio.get_running_loop()
    accounts = await loop.run_in_executor(None, insert_accounts, system.settings, 2 * args.calls, reference)
    hosts, callers = accounts[:args.calls], accounts[args.calls:]
    await loop.run_in_executor(None, upgrade_hosts, system.settings, hosts)
    comment(f"{len(accounts)} members ({args.calls} upgraded hosts, {args.calls} callers) and their sessions are "
            f"written straight into the database in the shape a real sign-up stored (checked field by field)")
    progress(f"bringing {len(accounts)} members online")
    watch = system_cpu_watch(system)
    pages = await online(system, hosts + callers, args.open_window)
    wall_s, used = watch.stop()
    emit("members_online", len(pages))
    comment(cpu_line(f"bringing {len(pages)} members online", wall_s, used))
    await idle_window(system, f"idle with {len(pages)} members online", len(pages), args.settle_s)
    return hosts, callers, pages, memory_reading(system)


async def ring_phase(system, args, runs, peer_runs):
    progress(f"placing {len(runs)} calls, at most {args.ring_window} at once; accepting all but the "
             f"{len(peer_runs)} peer calls")
    watch = system_cpu_watch(system)
    placed_per_s = await ring_all(runs, args.ring_window, accept_now=lambda run: run not in peer_runs)
    wall_s, used = watch.stop()
    stored = await asyncio.get_running_loop().run_in_executor(None, stored_times, system.settings, runs)
    figures = report_ring(runs, placed_per_s, stored)
    comment(f"ring: {len(runs)} calls placed by {len(runs)} callers to {len(runs)} hosts, at most "
            f"{args.ring_window} being set up at once, each host's page accepting as soon as it rang (the "
            f"{len(peer_runs)} peer calls "
            f"are accepted later, one at a time); a ring sample is the caller's `call` sent → the host's page "
            f"reading `incoming_call`; accept → negotiating is read on the caller's page; both are also cut where "
            f"the call session took them (its stored created_at and answered_at, on the same clock)")
    comment(cpu_line("placing and accepting calls", wall_s, used))
    comment(cpu_per("call placed (and accepted, but for the peer calls)", used, len(runs), "calls"))
    figures["node_cpu_per_call_ms"] = 1000 * used["node"] / len(runs)
    emit("node_cpu_per_call_ms", figures["node_cpu_per_call_ms"])
    plain = [run for run in runs if run not in peer_runs]
    if len(plain) >= 2 and args.probe_calls:
        progress(f"ring probes: {args.probe_calls} calls one at a time, with {len(runs)} calls in progress")
        figures.update(await probe_rings(system.settings, plain, args.probe_calls))
        comment(f"ring, one at a time: {args.probe_calls} more calls placed one after another while the "
                f"{len(runs)} calls are in progress (a caller of one of them rings the host of another, and "
                f"cancels once it rang); a sample is taken as above")
    return figures


async def bench(system, args, workdir):
    busy_before, wall_before = machine_busy_s(), time.monotonic()
    hosts, callers, pages, before = await bring_members_online(system, args)
    runs = [CallRun(h, c) for h, c in zip(pages[:args.calls], pages[args.calls:])]
    peer_runs, plain = runs[len(runs) - args.peers:], runs[:len(runs) - args.peers]
    figures = await ring_phase(system, args, runs, peer_runs)
    if peer_runs:
        progress(f"peers: {len(peer_runs)} calls set up by aiortc peers, each beside a direct pair")
        figures.update(await peer_phase(system, peer_runs))

    await idle_window(system, f"idle with {len(runs)} calls negotiating", len(pages), args.settle_s)
    after = memory_reading(system)
    report_memory(before, after, await asyncio.get_running_loop().run_in_executor(None, calls_in_progress,
                                                                                   system.settings))
    pairs = min(args.rt_pairs, len(plain))
    if pairs:
        progress(f"signal relay round trips: {pairs} calls against the bare echo")
        figures.update(report_roundtrips(await roundtrip_phase(system, args, plain[:pairs], workdir), pairs))
    for run in peer_runs:
        await asyncio.gather(*(peer.close() for peer in run.peers))
    await close_pages(pages)

    if args.expire_calls:
        figures.update(await expiry_phase(system, args, hosts[:args.expire_calls], callers[:args.expire_calls],
                                          figures["calls_placed_per_s"]))
    busy_s, wall_s = machine_busy_s() - busy_before, time.monotonic() - wall_before
    comment(f"the machine ({os.cpu_count()} CPUs) was busy {100 * busy_s / wall_s:.0f}% of one core on average "
            f"over the run, this run's processes included (the 'other' of each cpu line is everything else: "
            f"other sessions); load average now {os.getloadavg()[0]:.2f}")
    report_goals(figures)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="20 calls, 4 peers, short runs (well under a minute)")
    p.add_argument("--calls", type=int, help="calls at once, each between its own host and caller "
                                             "(default 200; quick 20)")
    p.add_argument("--peers", type=int, help="of those, calls set up by aiortc peers (default 20; quick 4)")
    p.add_argument("--ring-window", type=int, default=4, help="calls being set up at once (ringing, or accepted "
                                                             "and not yet negotiating) while they are placed")
    p.add_argument("--probe-calls", type=int, help="calls placed one at a time once all are in progress "
                                                   "(default 20; quick 5)")
    p.add_argument("--rt-pairs", type=int, default=50, help="calls whose signaling round trips are timed at once")
    p.add_argument("--rt-seconds", type=float, help="measured seconds per round-trip run (default 5; quick 1.5)")
    p.add_argument("--rt-repeats", type=int, help="runs of each round-trip kind, median kept (default 3; quick 1)")
    p.add_argument("--expire-calls", type=int, help="calls left to run out of negotiation time (default: --calls)")
    p.add_argument("--expiry-window-s", type=float,
                   help=f"their negotiation window (default: long enough for all of them to be placed first, at "
                        f"the rate the main calls were, and at least {EXPIRY_WINDOW_MIN_S} s)")
    p.add_argument("--open-window", type=int, default=16, help="member pages waiting for their hello at once")
    add_shards_option(p)
    p.add_argument("--time-limit-s", type=float, help="give up after this long (default 900; quick 120)")
    args = p.parse_args(argv)
    defaults = dict(calls=(20, 200), peers=(4, 20), probe_calls=(5, 20), rt_seconds=(1.5, 5), rt_repeats=(1, 3),
                    time_limit_s=(120, 900), settle_s=(1.5, 3))
    for name, (quick, full) in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, quick if args.quick else full)
    if args.expire_calls is None:
        args.expire_calls = args.calls
    if not 0 <= args.peers <= args.calls or args.calls < 1:
        p.error("--calls must be at least 1 and --peers between 0 and --calls")
    if not 0 <= args.expire_calls <= args.calls:
        p.error("--expire-calls must be between 0 and --calls: the batch reuses the hosts and callers")
    if args.ring_window < 1:
        p.error("--ring-window must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    # Sockets: one per page here, one per page and ~3 per actor in the node (inherited limit).
    nofile = raise_open_files_limit(max(4096, 16 * args.calls + 1024))
    header = (f"bench_calls: {args.calls} calls ({args.peers} with aiortc peers), {2 * args.calls} members, "
              f"{os.cpu_count()} CPUs, open files limit {nofile}, load average at start {os.getloadavg()[0]:.2f}")
    return run_bench("bench-calls", header, lambda system, workdir: bench(system, args, workdir), args.time_limit_s,
                     settings=settings_of(args),
                     policy=dict(ring_timeout_s=RING_TIMEOUT_S, negotiation_window_s=MAIN_NEGOTIATION_WINDOW_S),
                     report_leftovers=True)


if __name__ == "__main__":
    sys.exit(main())
