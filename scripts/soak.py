#!/usr/bin/env python3
"""Soak on loopback: a real SecantusDB, PayPal emulator, actor node and gateway, with calls
churning for N minutes the way people use them, then the books and the processes checked.

Each of P caller/host pairs loops until the time is up, picking at random:
- a paid call: ring, accept, terms, PayPal approval, running, sometimes a tip, hang up; some
  callers then ask for a refund, which an operator notes and approves;
- an abandoned payment: terms agreed, PayPal never approved, the payment window ends it;
- a dropped page: while running the caller's page closes and a new one takes the call back
  (`attach_call`), then hangs up;
- a free call; a ring nobody answers (the host declines).

Every few seconds the node's and gateway's memory, processes and file descriptors are read.
At the end (after the calls settle): every ledger transaction balanced, no call still live,
`interkanect ledger reconcile` at zero difference, processes and descriptors back to their
level after warm-up, and memory growth per hour (a straight-line fit over the run).

    .venv/bin/python scripts/soak.py [--minutes N] [--pairs P] [--seed S]

Prints `name=value` lines and `#` lines (goals included), like the other benchmarks.
"""
import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time

from benchkit import comment, emit, memory_of, progress, report_goal, run_bench

from bson import ObjectId

from tests.kit.calls import Call, ring
from tests.kit.client import PASSWORD, Member
from tests.kit.paypal import approve_on_paypal

FRAME_TIMEOUT_S = 30
SAMPLE_EVERY_S = 5
# Short product durations, so a run of minutes sees many whole calls.
POLICY = dict(payment_window_s=4, reconnect_grace_s=10, min_length_s=2, extension_offer_s=2, ring_timeout_s=10,
              refund_retry_s=2, rings_per_host_per_minute=1000, missed_call_mail_interval_s=3600)
SCENARIOS = ("paid", "paid", "abandoned", "dropped", "free", "declined")


class Soak:
    def __init__(self, system, args):
        self.system, self.args = system, args
        self.random = random.Random(args.seed)
        self.done = {name: 0 for name in SCENARIOS}
        self.errors = {}
        self.samples = []        # (seconds since start, node kB, gateway kB, node processes, fds)
        self.fds_at_warmup = None  # {pid: (descriptors, what)} after warm-up

    def error(self, scenario, error):
        key = f"{scenario}:{type(error).__name__}"
        self.errors[key] = self.errors.get(key, 0) + 1
        if self.errors[key] <= 2:
            comment(f"error in {scenario}: {error!r}"[:300])

    # People ---------------------------------------------------------------------------

    async def member(self, name, upgraded=False):
        member = await Member(self.system.url).sign_up(name)
        if upgraded:
            answer = await member.request("PATCH", "/api/me", {"payout_email": f"{member.id}@example.com",
                                                               "password": PASSWORD})
            assert answer.code == 200, answer.body
            self.db.members.update_one({"_id": ObjectId(member.id)}, {"$set": {"tier": "upgraded"}})
        return member

    @property
    def db(self):
        import pymongo
        if not hasattr(self, "_db"):
            self._db = pymongo.MongoClient(self.system.settings.database_url, tz_aware=True)[
                self.system.settings.db_name]
        return self._db

    def cli(self, *args):
        return subprocess.run([sys.executable, "-m", "interkanect.cli", *args], env=self.system.env,
                              capture_output=True, text=True, timeout=120)

    # Scenarios ------------------------------------------------------------------------

    async def pair_loop(self, index, deadline):
        host = await self.member(f"Soak Host {index}", upgraded=True)
        caller = await self.member(f"Soak Caller {index}")
        while time.monotonic() < deadline:
            scenario = self.random.choice(SCENARIOS)
            pages = []   # every page opened for this call, a replaced one (dropped) included
            try:
                host_page, caller_page = await host.socket(), await caller.socket()
                pages += [host_page, caller_page]
                call = Call(host, caller, host_page, caller_page, await ring(caller_page, [host_page], host.id))
                call.opened = pages
                await getattr(self, scenario)(call)
                self.done[scenario] += 1
            except Exception as error:   # counted and shown; the loop goes on with fresh pages
                self.error(scenario, error)
            finally:
                for page in pages:
                    try:
                        await page.close()
                    except Exception:
                        pass

    async def paid(self, call):
        await call.host_page.request("accept", call_id=call.id)
        await call.agree(self.random.choice((300, 1500, 4999)), 2)
        ready = await call.caller_page.expect("call_state", event="payment_ready", timeout_s=FRAME_TIMEOUT_S)
        await asyncio.to_thread(approve_on_paypal, ready["payment"]["approve_url"])
        await call.host_page.expect("call_state", state="running", event="payment_captured", timeout_s=FRAME_TIMEOUT_S)
        if self.random.random() < 0.3:
            await call.caller_page.request("tip", call_id=call.id, amount_cents=500)
            tip = await call.caller_page.expect("call_state", event="tip_ready", timeout_s=FRAME_TIMEOUT_S)
            await asyncio.to_thread(approve_on_paypal, tip["tips"][-1]["approve_url"])
            await call.host_page.expect("call_state", event="tip_received", timeout_s=FRAME_TIMEOUT_S)
        await call.host_page.request("hang_up", call_id=call.id)
        await call.caller_page.expect("call_state", state="ended", timeout_s=FRAME_TIMEOUT_S)
        if self.random.random() < 0.3:
            await self.refund(call)

    async def refund(self, call):
        for _ in range(50):   # the ended call is stored a moment after its pages hear of it
            asked = await call.caller.request("POST", f"/api/calls/{call.id}/refund", {"reason": "soak"})
            if asked.code != 409 or asked.error_code != "call_not_ended":
                break
            await asyncio.sleep(0.1)
        assert asked.code == 201, asked.body
        request_id = asked.json()["id"]
        noted = await self.operator.request("POST", f"/api/refunds/{request_id}/notes", {"text": "soak interview"})
        assert noted.code == 201, noted.body
        decided = await self.operator.request("POST", f"/api/refunds/{request_id}/decision", {"decision": "approve"})
        assert decided.code == 200, decided.body

    async def abandoned(self, call):
        await call.host_page.request("accept", call_id=call.id)
        await call.agree(1500, 2)
        await call.caller_page.expect("call_state", event="payment_ready", timeout_s=FRAME_TIMEOUT_S)
        ended = await call.caller_page.expect("call_state", state="ended", timeout_s=FRAME_TIMEOUT_S)
        assert ended["end_reason"] == "payment_timeout", ended

    async def dropped(self, call):
        await call.host_page.request("accept", call_id=call.id)
        await call.agree(0, 600)
        await call.caller_page.close()
        call.caller_page = await call.caller.socket()
        call.opened.append(call.caller_page)
        await call.caller_page.request("attach_call", call_id=call.id)
        await call.caller_page.expect("call_state", call_id=call.id, timeout_s=FRAME_TIMEOUT_S)
        await call.caller_page.request("hang_up", call_id=call.id)
        await call.host_page.expect("call_state", state="ended", timeout_s=FRAME_TIMEOUT_S)

    async def free(self, call):
        await call.host_page.request("accept", call_id=call.id)
        await call.agree(0, 600)
        await call.host_page.request("hang_up", call_id=call.id)
        await call.caller_page.expect("call_state", state="ended", timeout_s=FRAME_TIMEOUT_S)

    async def declined(self, call):
        await call.host_page.request("hang_up", call_id=call.id)
        await call.caller_page.expect("call_state", state="ended", timeout_s=FRAME_TIMEOUT_S)

    # Readings -------------------------------------------------------------------------

    def reading(self):
        node_pids = self.system.node_pids()
        fds = 0
        for pid in node_pids + self.system.gateway_pids():
            try:
                fds += len(os.listdir(f"/proc/{pid}/fd"))
            except OSError:
                pass
        # Proportional set size: shared pages counted once over the node's many processes.
        return memory_of(node_pids)["Pss"], memory_of(self.system.gateway_pids())["Pss"], len(node_pids), fds

    def fds_by_process(self):
        """{pid: (open descriptors, what it is)} of the node's and gateway's processes."""
        found = {}
        for pid in self.system.node_pids() + self.system.gateway_pids():
            try:
                count = len(os.listdir(f"/proc/{pid}/fd"))
                what = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")[:80]
            except OSError:
                continue
            found[pid] = (count, what)
        return found

    async def sampler(self, started, deadline):
        warm_at = started + min(60, self.args.minutes * 60 / 4)
        while time.monotonic() < deadline:
            self.samples.append((time.monotonic() - started, *self.reading()))
            if self.fds_at_warmup is None and time.monotonic() >= warm_at:
                self.fds_at_warmup = self.fds_by_process()
            await asyncio.sleep(SAMPLE_EVERY_S)

    # The run --------------------------------------------------------------------------

    async def run(self):
        made = await self.member("Soak Operator")
        answer = self.cli("members", "set-operator", made.email)
        assert answer.returncode == 0, answer.stderr
        self.operator = made
        started = time.monotonic()
        deadline = started + self.args.minutes * 60
        progress(f"{self.args.pairs} pairs churning calls for {self.args.minutes:g} minutes")
        await asyncio.gather(self.sampler(started, deadline),
                             *(self.pair_loop(index, deadline) for index in range(self.args.pairs)))
        progress("letting the last calls, refunds and mails settle")
        await self.settle()
        self.report(started)

    async def settle(self, timeout_s=60):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            live = self.db.calls.count_documents({"state": {"$ne": "ended"}})
            open_refunds = self.db.refund_requests.count_documents({"state": "open", "decision": {"$ne": None}})
            if not live and not open_refunds:
                return
            await asyncio.sleep(1)

    def report(self, started):
        for name, count in self.done.items():
            emit(f"calls_{name}", count)
        emit("errors", sum(self.errors.values()))
        if self.errors:
            comment(f"errors by scenario and kind: {json.dumps(self.errors, sort_keys=True)}")
        unbalanced = sum(1 for t in self.db.ledger.find({}, {"entries": 1})
                         if sum(e["amount_cents"] for e in t["entries"]) != 0)
        emit("ledger_transactions", self.db.ledger.count_documents({}))
        emit("ledger_unbalanced", unbalanced)
        live = self.db.calls.count_documents({"state": {"$ne": "ended"}})
        emit("calls_live_at_end", live)
        reconciled = self.cli("ledger", "reconcile", "--json")
        figures = json.loads(reconciled.stdout) if reconciled.stdout.strip() else {"difference_cents": None}
        emit("reconcile_difference_cents", figures["difference_cents"])
        warm = [s for s in self.samples if s[0] >= min(60, self.args.minutes * 60 / 4)] or self.samples
        first, last = warm[0], self.samples[-1]
        end = (time.monotonic() - started, *self.reading())
        emit("node_processes_after_warmup", first[3])
        emit("node_processes_at_end", end[3])
        emit("fds_after_warmup", first[4])
        emit("fds_at_end", end[4])
        if self.fds_at_warmup:
            now = self.fds_by_process()
            grown = sorted(((now[pid][0] - count, pid, what) for pid, (count, what) in self.fds_at_warmup.items()
                            if pid in now), reverse=True)[:3]
            comment("descriptors grown since warm-up, most first: " + "; ".join(
                f"pid {pid} +{delta} ({what.strip()})" for delta, pid, what in grown))
        growth = slope([(s[0], s[1] + s[2]) for s in warm])   # kB per second, node + gateway
        emit("memory_growth_mb_per_hour", growth * 3600 / 1024)
        comment(f"memory node+gateway: {(first[1] + first[2]) / 1024:.0f} MB after warm-up, "
                f"{(last[1] + last[2]) / 1024:.0f} MB at the last sample ({len(self.samples)} samples)")
        report_goal("ledger_unbalanced", "<=", 0, unbalanced)
        report_goal("calls_live_at_end", "<=", 0, live)
        report_goal("reconcile_difference_cents_abs", "<=", 0, abs(figures["difference_cents"] or 0)
                    if figures["difference_cents"] is not None else float("inf"))
        report_goal("node_process_growth", "<=", 0, end[3] - first[3])
        report_goal("fd_growth", "<=", 20, end[4] - first[4])


def slope(points):
    """Least-squares slope of (x, y) points (0 with fewer than two)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    async def soak(system, workdir):
        await Soak(system, args).run()
    return run_bench("soak", f"soak: {args.pairs} pairs for {args.minutes:g} minutes", soak,
                     time_limit_s=args.minutes * 60 + 600, policy=POLICY)


if __name__ == "__main__":
    sys.exit(main())
