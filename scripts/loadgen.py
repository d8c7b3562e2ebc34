#!/usr/bin/env python3
"""Load generator on loopback: a real SecantusDB, PayPal emulator, actor node and gateway;
N members online and M calls driven through the whole flow by websocket clients, as browsers
would: ring, accept, terms, Pay, approval on the PayPal emulator's page, capture, running,
signaling, hang up. Some calls carry aiortc peers sending real video. Then a burst: every
member's page drops at once and reconnects, re-attaching to its call.

Phases, in order (each bounded; the run stops by itself):
1. online: N members open a page (hello from their member, in its shard);
2. steady: M calls placed at --rate calls/s, half paid through PayPal (the emulator), the rest
   free terms; each kept running;
3. media: --media of the running calls connect aiortc peers through the relayed signaling and
   exchange video frames for a moment;
4. signaling: round trips of `signal` frames caller → host's page → back, on every running call;
5. storm: every page closes at once; all reconnect, each caller and host re-attaching to its call;
6. end: every call hung up; processes and memory read before and after;
7. ceilings (--ceilings): the same machine's bare figures in the same run: a bare Tornado
   websocket echo holding as many sockets as members were online (memory per socket, round
   trips with as many at once as calls ran) and bare Thespian actors (multiprocTCPBase, an
   actor that does nothing: creation rate and memory per actor).

Prints `name=value` lines (units in the names) and `#` lines saying how figures were taken:
call setup p50/p99 (call sent → the caller's page reads `running`), signaling round trip
p50/p99, errors per phase, node processes and memory per member and per call, the storm's time.

    .venv/bin/python scripts/loadgen.py [--members N] [--calls M] [--rate R] [--media K] [--quick]
"""
import argparse
import asyncio
import os
import signal
import sys
import time

from bench_calls import Mailbox, close_pages, upgrade_hosts
from benchkit import (WebsocketsClient, add_shards_option, bring_online, comment, cpu_line, emit, emit_gc_pauses,
                      free_port, gateway_gc_pauses, idle_window, insert_accounts, memory_of, memory_reading,
                      percentile, progress, raise_open_files_limit, report_goal, run_bench, session_pids,
                      settings_of, sign_up_through_api, start_echo, system_cpu_watch)

FRAME_TIMEOUT_S = 60          # one expected frame under load on a shared 2-core machine
PAID_PRICE_CENTS = 1500
CALL_LENGTH_S = 3600          # calls keep running until the end phase hangs them up
MEDIA_SECONDS = 3             # video flows this long on each media call
SIGNAL_ROUND_TRIPS = 5        # per call, one after another
# A page that dropped is away for at most this long before the storm reconnects it; the
# reconnect grace (policy) is far longer, so no call ends for it.
RECONNECT_GRACE_S = 600


class Errors:
    """Failures by phase: a load run reports them rather than stopping at the first."""

    def __init__(self):
        self.by_phase = {}
        self.first = {}

    def add(self, phase, error):
        self.by_phase[phase] = self.by_phase.get(phase, 0) + 1
        self.first.setdefault(phase, repr(error))

    async def guard(self, phase, coroutine):
        try:
            return await coroutine
        except Exception as error:  # counted and reported; the other calls go on
            self.add(phase, error)
            return None


class LoadCall:
    def __init__(self, host, caller, paid):
        self.host, self.caller, self.paid = host, caller, paid
        self.call_id = None
        self.setup_ms = None


def approve_on_paypal(approve_url):
    """The payer's browser on PayPal's (the emulator's) page: Approve, then back to us."""
    from tests.kit.paypal import approve_on_paypal as approve
    return approve(approve_url, payer_email="loadgen-payer@example.com")


async def run_call(call):
    """Ring → accept → terms → Pay (→ PayPal) → running, as the two pages see it."""
    started = time.monotonic()
    await call.caller.request("call", member_id=call.host.member_id)
    incoming = await call.host.expect("incoming_call", timeout_s=FRAME_TIMEOUT_S)
    call.call_id = incoming["call_id"]
    await call.host.request("accept", call_id=call.call_id)
    await call.caller.expect("call_state", timeout_s=FRAME_TIMEOUT_S, call_id=call.call_id, state="negotiating")
    await call.host.request("propose", call_id=call.call_id, price_cents=PAID_PRICE_CENTS if call.paid else 0,
                            length_s=CALL_LENGTH_S)
    proposed = await call.caller.expect("call_state", timeout_s=FRAME_TIMEOUT_S, call_id=call.call_id,
                                        event="proposed")
    await call.caller.request("pay", call_id=call.call_id, proposal=proposed["proposal"]["proposal"])
    if call.paid:
        ready = await call.caller.expect("call_state", timeout_s=FRAME_TIMEOUT_S, call_id=call.call_id,
                                         event="payment_ready")
        await asyncio.get_running_loop().run_in_executor(None, approve_on_paypal, ready["payment"]["approve_url"])
    await call.caller.expect("call_state", timeout_s=FRAME_TIMEOUT_S, call_id=call.call_id, state="running")
    call.setup_ms = 1000 * (time.monotonic() - started)


async def steady_phase(pairs, args, errors):
    """Place the calls at a steady rate; each goes through the whole flow on its own."""
    calls = [LoadCall(host, caller, paid=index % 2 == 0) for index, (host, caller) in enumerate(pairs)]
    tasks = []
    for call in calls:
        tasks.append(asyncio.ensure_future(errors.guard("steady", run_call(call))))
        await asyncio.sleep(1 / args.rate)  # the steady rate is the point of this phase
    await asyncio.gather(*tasks)
    return [call for call in calls if call.setup_ms is not None]


# ---------------------------------------------------------------- media

class MediaPeer:
    """An aiortc peer that sends a synthetic video track and counts the frames it receives."""

    def __init__(self, page, call_id):
        self.page, self.call_id = page, call_id
        self.pc = None
        self.frames = 0
        self.readers = []

    def _new_connection(self):
        from aiortc import RTCConfiguration, RTCPeerConnection
        from aiortc.mediastreams import VideoStreamTrack
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # loopback: host candidates suffice
        self.pc.addTrack(VideoStreamTrack())

        @self.pc.on("track")
        def on_track(track):
            self.readers.append(asyncio.ensure_future(self._count(track)))

    async def _count(self, track):
        from aiortc.mediastreams import MediaStreamError
        try:
            while True:
                await track.recv()
                self.frames += 1
        except MediaStreamError:
            pass

    async def offer(self):
        from aiortc import RTCSessionDescription
        self._new_connection()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.page.request("signal", call_id=self.call_id, kind="offer", sdp=self.pc.localDescription.sdp)
        answer = await self.page.expect("signal", timeout_s=FRAME_TIMEOUT_S, call_id=self.call_id, kind="answer")
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))

    async def answer(self):
        from aiortc import RTCSessionDescription
        offer = await self.page.expect("signal", timeout_s=FRAME_TIMEOUT_S, call_id=self.call_id, kind="offer")
        self._new_connection()
        await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.page.request("signal", call_id=self.call_id, kind="answer", sdp=self.pc.localDescription.sdp)

    async def close(self):
        if self.pc is not None:
            await self.pc.close()
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


async def media_phase(calls, errors):
    """Video both ways on each media call, through the gateway's signaling; frames counted."""
    peers = []

    async def one(call):
        caller_peer, host_peer = MediaPeer(call.caller, call.call_id), MediaPeer(call.host, call.call_id)
        peers.extend((caller_peer, host_peer))
        await asyncio.gather(caller_peer.offer(), host_peer.answer())
        deadline = time.monotonic() + FRAME_TIMEOUT_S
        while min(caller_peer.frames, host_peer.frames) == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no video frame on call {call.call_id} within {FRAME_TIMEOUT_S} s")
            await asyncio.sleep(0.1)  # polling a counter the track readers increment
        return caller_peer, host_peer

    started = time.monotonic()
    connected = [p for p in await asyncio.gather(*(errors.guard("media", one(c)) for c in calls)) if p]
    setup_s = time.monotonic() - started
    before = sum(p.frames for pair in connected for p in pair)
    await asyncio.sleep(MEDIA_SECONDS)  # a measured window of media flowing
    frames = sum(p.frames for pair in connected for p in pair) - before
    await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
    return len(connected), setup_s, frames / MEDIA_SECONDS / max(1, 2 * len(connected))


# ---------------------------------------------------------------- signaling round trips

def echo_candidates(mailbox):
    """The host's page sends every candidate straight back: the far end of the round trip."""
    def reply(frame):
        if frame.get("type") == "signal" and frame.get("kind") == "candidate":
            return {"type": "signal", "id": 0, "call_id": frame["call_id"], "kind": "candidate",
                    "candidate": frame["candidate"]}
        return None
    return reply


async def round_trips(call, samples):
    for seq in range(SIGNAL_ROUND_TRIPS):
        candidate = {"candidate": f"candidate:{seq} 1 udp 2122260223 192.0.2.1 9 typ host", "sdpMid": "0",
                     "sdpMLineIndex": 0}
        started = time.monotonic()
        await call.caller.request("signal", call_id=call.call_id, kind="candidate", candidate=candidate)
        await call.caller.expect("signal", timeout_s=FRAME_TIMEOUT_S, call_id=call.call_id, kind="candidate",
                                 candidate=candidate)
        samples.append(1000 * (time.monotonic() - started))


async def signaling_phase(calls, errors):
    for call in calls:
        call.host.responder = echo_candidates(call.host)
    samples = []
    await asyncio.gather(*(errors.guard("signaling", round_trips(call, samples)) for call in calls))
    for call in calls:
        call.host.responder = None
    return samples


# ---------------------------------------------------------------- the reconnect storm

async def storm_phase(system, accounts, mailboxes, calls, args, errors):
    """Every page drops at once; every member reconnects, and both sides of each call re-attach.
    Returns (seconds until all are back, the new mailboxes by member id)."""
    await close_pages(mailboxes)
    watch = system_cpu_watch(system)
    started = time.monotonic()
    pages, failures, *_ = await bring_online(system, accounts, args.open_window)
    emit("storm_pages_back_s", time.monotonic() - started)
    for failure in failures:
        errors.add("storm", failure)
    by_member = {page.account.member_id: Mailbox(page) for page in pages}

    async def reattach(call):
        for side in ("host", "caller"):
            mailbox = by_member[getattr(call, side).member_id]
            await mailbox.request("attach_call", call_id=call.call_id)
            await mailbox.expect("call_state", timeout_s=FRAME_TIMEOUT_S, call_id=call.call_id)
            setattr(call, side, mailbox)
    await asyncio.gather(*(errors.guard("storm", reattach(call)) for call in calls))
    storm_s = time.monotonic() - started
    wall_s, used = watch.stop()
    comment(cpu_line("the reconnect storm", wall_s, used))
    return storm_s, by_member


async def end_phase(calls, errors):
    async def hang_up(call):
        await call.caller.request("hang_up", call_id=call.call_id)
        await call.host.expect("call_state", timeout_s=FRAME_TIMEOUT_S, call_id=call.call_id, state="ended")
    await asyncio.gather(*(errors.guard("end", hang_up(call)) for call in calls))


# ---------------------------------------------------------------- the machine's ceilings

def bare_thespian(count):
    """(actors created per second, PSS kB per actor) for `count` actors that do nothing, in a
    multiprocTCPBase system of their own (one process per actor, as ours are)."""
    from thespian.actors import ActorSystem
    from actors import actor_transport
    from interkanect import processes
    actor_transport.install("127.0.0.1")  # as a node listens, so the ceiling compares like with like
    admin_port = free_port()
    # The admin forks from this process: it must not inherit the benchmark's SIGTERM handler,
    # or its stop prints a KeyboardInterrupt.
    handler = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        system = ActorSystem("multiprocTCPBase", capabilities={"Admin Port": admin_port}, transientUnique=True)
    finally:
        signal.signal(signal.SIGTERM, handler)
    sessions = processes.actor_system_sessions(admin_port)
    try:
        def pss():
            return memory_of([pid for sid in sessions for pid in session_pids(sid)])["Pss"]
        before = pss()
        started = time.monotonic()
        actors = [system.createActor("benchkit.BareActor") for _ in range(count)]
        created_s = time.monotonic() - started
        for actor in actors:  # each really runs: it answers
            if system.ask(actor, "ping", 30) != "pong":
                raise RuntimeError("a bare actor did not answer")
        time.sleep(1)  # let the processes settle before reading memory
        return count / created_s, (pss() - before) / count
    finally:
        system.shutdown()
        processes.kill_sessions(sessions)


async def bare_tornado(system, workdir, sockets, concurrent):
    """(PSS kB per socket, round-trip samples in ms) of the bare echo with `sockets` open and
    `concurrent` clients doing the signaling phase's round trips at once."""
    echo, port = start_echo(system, workdir)
    url = f"ws://127.0.0.1:{port}/ws"
    before = memory_of([echo.pid])["Pss"]
    clients = []
    for _ in range(sockets):
        clients.append(await WebsocketsClient.connect(url, None, {}))
    await asyncio.sleep(1)  # settle before reading memory
    per_socket_kb = (memory_of([echo.pid])["Pss"] - before) / sockets
    samples = []

    async def round_trips_of(client):
        for seq in range(SIGNAL_ROUND_TRIPS):
            started = time.monotonic()
            await client.send(b"x" * 120)  # about a relayed candidate frame
            await client.recv()
            samples.append(1000 * (time.monotonic() - started))
    await asyncio.gather(*(round_trips_of(c) for c in clients[:concurrent]))
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    echo.terminate()
    return per_socket_kb, samples


async def ceilings_phase(system, args, workdir, figures):
    members, calls = figures["members_online"], max(1, figures["calls_running"])
    progress(f"ceilings: a bare Tornado echo with {members} sockets, {calls} round-tripping at once")
    per_socket_kb, samples = await bare_tornado(system, workdir, members, calls)
    emit("bare_tornado_pss_per_socket_kb", per_socket_kb)
    emit("bare_tornado_rt_p50_ms", percentile(samples, 50))
    emit("bare_tornado_rt_p99_ms", percentile(samples, 99))
    if "signal_rt_p99_ms" in figures:
        emit("signal_rt_p99_ratio", figures["signal_rt_p99_ms"] / percentile(samples, 99))
        report_goal("signal_rt_p99_ratio", "<=", 5, figures["signal_rt_p99_ms"] / percentile(samples, 99))
    count = min(args.members, args.bare_actors)
    progress(f"ceilings: {count} bare Thespian actors")
    per_s, per_actor_kb = bare_thespian(count)  # in this thread: it sets a signal handler while forking
    emit("bare_thespian_actors_per_s", per_s)
    emit("bare_thespian_pss_per_actor_mb", per_actor_kb / 1024)
    comment("ceilings: measured in this run beside the figures above; the member's memory goal (3 MB) is judged "
            "against bare_thespian_pss_per_actor_mb, the relay against the bare echo")


# ---------------------------------------------------------------- the run

async def load(system, args, workdir):
    errors = Errors()
    _, _, reference = await sign_up_through_api(system, 1)
    loop = asyncio.get_running_loop()
    accounts = await loop.run_in_executor(None, insert_accounts, system.settings, args.members, reference)
    hosts = accounts[:args.calls]
    await loop.run_in_executor(None, upgrade_hosts, system.settings, hosts)
    comment(f"{args.members} members written straight into the database in a real sign-up's shape; the first "
            f"{args.calls} are upgraded hosts with a payout email")

    progress(f"online: {args.members} members opening a page")
    base = memory_reading(system)
    watch = system_cpu_watch(system)
    started = time.monotonic()
    pages, failures, *_ = await bring_online(system, accounts, args.open_window)
    online_s = time.monotonic() - started
    wall_s, used = watch.stop()
    for failure in failures:
        errors.add("online", failure)
    figures = {"members_online": len(pages)}
    emit("members_online", len(pages))
    emit("online_s", online_s)
    comment(cpu_line(f"bringing {len(pages)} members online", wall_s, used))
    await idle_window(system, f"idle with {len(pages)} members online", len(pages), args.settle_s)
    online_memory = memory_reading(system)

    by_member = {page.account.member_id: Mailbox(page) for page in pages}
    pairs = [(by_member[h.member_id], by_member[c.member_id])
             for h, c in zip(hosts, accounts[args.calls:2 * args.calls])
             if h.member_id in by_member and c.member_id in by_member]
    progress(f"steady: {len(pairs)} calls at {args.rate}/s, half paid through the PayPal emulator")
    watch = system_cpu_watch(system)
    calls = await steady_phase(pairs, args, errors)
    wall_s, used = watch.stop()
    setups = [call.setup_ms for call in calls]
    figures["calls_running"] = len(calls)
    emit("calls_running", len(calls))
    emit("paid_calls_running", sum(call.paid for call in calls))
    if setups:
        emit("call_setup_p50_ms", percentile(setups, 50))
        emit("call_setup_p99_ms", percentile(setups, 99))
        paid = [call.setup_ms for call in calls if call.paid]
        if paid:
            emit("paid_call_setup_p50_ms", percentile(paid, 50))
    comment("call setup: the caller's `call` sent → its page reads `running`: ring, accept, terms, Pay and, for a "
            "paid call, PayPal's approval page (form posted like a browser) and the capture")
    comment(cpu_line(f"{len(pairs)} calls set up", wall_s, used))
    await idle_window(system, f"idle with {len(calls)} calls running", len(pages), args.settle_s)
    calls_memory = memory_reading(system)

    media_calls = calls[:args.media]
    if media_calls:
        progress(f"media: {len(media_calls)} calls with aiortc video both ways")
        connected, setup_s, fps = await media_phase(media_calls, errors)
        emit("media_calls", connected)
        emit("media_setup_s", setup_s)
        emit("media_fps_per_stream", fps)
        comment(f"media: aiortc peers (synthetic VP8 video, loopback host candidates) signaled through the gateway; "
                f"frames counted at each receiver over {MEDIA_SECONDS} s")

    progress(f"signaling: {SIGNAL_ROUND_TRIPS} round trips on each of {len(calls)} calls at once")
    collected = gateway_gc_pauses(system)
    samples = await signaling_phase(calls, errors)
    emit_gc_pauses("signaling", collected, gateway_gc_pauses(system))
    if samples:
        figures["signal_rt_p99_ms"] = percentile(samples, 99)
        emit("signal_rt_p50_ms", percentile(samples, 50))
        emit("signal_rt_p99_ms", percentile(samples, 99))
    comment("signaling round trip: a `signal` candidate from the caller's page, relayed to the host's page, sent "
            "straight back and relayed again; all calls at once")

    if args.storm:
        progress(f"storm: all {len(pages)} pages drop and reconnect at once")
        storm_s, by_member = await storm_phase(system, accounts, list(by_member.values()), calls, args, errors)
        emit("storm_reattached_s", storm_s)
        figures["storm_reattached_s"] = storm_s
        comment(f"storm: every page closed at once, then {len(accounts)} members reconnect (at most "
                f"{args.open_window} opening at once) and both sides of each of {len(calls)} calls send "
                f"`attach_call` and read its `call_state`; time from the first reconnect to the last re-attach")

    progress("end: hanging up every call")
    await end_phase(calls, errors)
    await close_pages(list(by_member.values()))

    members = max(1, len(pages))
    emit("node_processes_online", online_memory["node_processes"])
    emit("node_processes_with_calls", calls_memory["node_processes"])
    emit("node_pss_per_member_mb", (online_memory["node"]["Pss"] - base["node"]["Pss"]) / 1024 / members)
    if calls:
        grown_kb = calls_memory["node"]["Pss"] - online_memory["node"]["Pss"]
        figures["node_pss_per_call_mb"] = grown_kb / 1024 / len(calls)
        emit("node_pss_per_call_mb", figures["node_pss_per_call_mb"])
    emit("gateway_pss_per_member_kb", (online_memory["gateway"]["Pss"] - base["gateway"]["Pss"]) / members)
    emit("node_pss_total_mb", calls_memory["node"]["Pss"] / 1024)
    if args.ceilings:
        await ceilings_phase(system, args, workdir, figures)
    emit("errors", sum(errors.by_phase.values()))
    # The goals of issue 11, judged at --members 2000 --calls 500 (printed at any size).
    if "storm_reattached_s" in figures:
        report_goal("storm_reattached_s", "<=", 30, figures["storm_reattached_s"])
    if "node_pss_per_call_mb" in figures:
        report_goal("node_pss_per_call_mb", "<=", 0.2, figures["node_pss_per_call_mb"])
    report_goal("errors", "<=", 0, sum(errors.by_phase.values()))
    for phase, count in errors.by_phase.items():
        emit(f"errors_{phase}", count)
        comment(f"first {phase} error: {errors.first[phase]}")
    comment(f"machine: {os.cpu_count()} CPUs, load average now {os.getloadavg()[0]:.2f}")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="40 members, 10 calls, 2 media calls (about a minute)")
    p.add_argument("--members", type=int, help="members online (default 400)")
    p.add_argument("--calls", type=int, help="calls running, each between two of the members (default 100)")
    p.add_argument("--rate", type=float, default=5, help="calls placed per second in the steady phase")
    p.add_argument("--media", type=int, help="of the calls, those with aiortc video (default 4; quick 2)")
    p.add_argument("--no-storm", dest="storm", action="store_false", help="skip the reconnect storm")
    p.add_argument("--ceilings", action="store_true", help="also measure a bare Tornado echo and bare Thespian "
                                                           "actors in this run")
    p.add_argument("--bare-actors", type=int, default=200, help="bare Thespian actors created for the ceilings")
    p.add_argument("--open-window", type=int, default=32, help="pages waiting for their hello at once")
    p.add_argument("--settle-s", type=float, default=3, help="idle seconds before memory is read")
    add_shards_option(p)
    p.add_argument("--time-limit-s", type=float, help="give up after this long (default 1800; quick 300)")
    args = p.parse_args(argv)
    for name, (quick, full) in dict(members=(40, 400), calls=(10, 100), media=(2, 4),
                                    time_limit_s=(300, 1800)).items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if not 1 <= 2 * args.calls <= args.members:
        p.error("--calls must be at least 1 and at most half of --members (each call has its own host and caller)")
    if not 0 <= args.media <= args.calls or args.rate <= 0:
        p.error("--media must be between 0 and --calls, --rate positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    nofile = raise_open_files_limit(max(4096, 8 * args.members + 1024))
    header = (f"loadgen: {args.members} members, {args.calls} calls at {args.rate}/s ({args.media} with video), "
              f"storm {'on' if args.storm else 'off'}; {os.cpu_count()} CPUs, open files limit {nofile}, "
              f"load average at start {os.getloadavg()[0]:.2f}")
    return run_bench("loadgen", header, lambda system, workdir: load(system, args, workdir), args.time_limit_s,
                     settings=settings_of(args),
                     policy=dict(reconnect_grace_s=RECONNECT_GRACE_S, negotiation_window_s=3600,
                                 payment_window_s=600, ring_timeout_s=600),
                     report_leftovers=True)


if __name__ == "__main__":
    sys.exit(main())
