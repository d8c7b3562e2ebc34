#!/usr/bin/env python3
"""Money benchmark on loopback: a real SecantusDB, actor node, gateway and the PayPal emulator.

- webhooks/s end to end: N calls wait for payment on real PayPal orders the payer approved
  (never coming back to us); then N signed CHECKOUT.ORDER.APPROVED deliveries (signed by the
  emulator's /emulator/webhooks/sign) are POSTed to the gateway at once, and the clock runs
  until every call's ledger transaction exists and every caller's page has been told
  (verified → the call → capture at PayPal → ledger → call resumed), against raw two-insert
  transactions/s on the same database in the same run (the ledger's write is one such
  transaction), ratio printed; and the capture floor: the same number of approved orders
  captured with our PayPal client and booked as one two-insert transaction each, nothing else
  (what the ratio would be if the rest of a webhook's way cost nothing);
- a payout run for M members (ledger seeded directly: one available balance each) through
  the real PayoutScheduler and the emulator's Payouts API: wall time, the seconds of each step
  the run reports, and the peak memory (VmHWM) of the node process that grew most (the
  scheduler's);
- a member's earnings (GET /api/earnings through the gateway, real sessions) after W weekly
  payouts of M members each (ledger and payout documents seeded directly, as the run writes
  them: one transaction per item): p50/p99 over every sample member, several times each.

Prints `name=value` lines and `#` lines that say how the figures were taken.

    .venv/bin/python scripts/bench_money.py [--calls N] [--members M] [--weeks W] [--only PART ...]
"""
import argparse
import asyncio
import concurrent.futures
import datetime
import json
import sys
import time
from pathlib import Path

from benchkit import comment, emit, progress, report_goal, run_bench, session_pids

import pymongo
from bson import ObjectId
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from actors import payments
from interkanect.paypal.payments import PayPal
from rules import ledger, payout_calendar
from tests.kit.calls import ring
from tests.kit.client import PASSWORD, Member
from tests.kit.paypal import approve_and_never_come_back, control

TRANSACTIONS = 300          # raw two-insert transactions timed
PAYOUT_GOALS_S = {10_000: 15, 100_000: 150}   # issue 12: a payout run's wall time by members paid
SEED_CHUNK = 1000
FRAME_TIMEOUT_S = 60


class Target:
    """What the tests' helpers need of a system: its URL and database."""

    def __init__(self, system):
        self.url, self.settings = system.url, system.settings
        self.db = pymongo.MongoClient(system.settings.database_url, tz_aware=True)[system.settings.db_name]


async def awaiting_call(target, index):
    """An upgraded host and a caller, a call agreed at $15.00, the payer approved on PayPal."""
    host = await Member(target.url).sign_up(f"Bench Host {index}")
    answer = await host.request("PATCH", "/api/me",
                                {"payout_email": f"host{index}@example.com", "password": PASSWORD})
    assert answer.code == 200, answer.body
    target.db.members.update_one({"_id": ObjectId(host.id)}, {"$set": {"tier": "upgraded"}})
    caller = await Member(target.url).sign_up(f"Bench Caller {index}")
    host_page, caller_page = await host.socket(), await caller.socket()
    call_id = await ring(caller_page, [host_page], host.id)
    await host_page.request("accept", call_id=call_id)
    await host_page.request("propose", call_id=call_id, price_cents=1500, length_s=600)
    proposal = (await caller_page.expect("call_state", event="proposed", timeout_s=FRAME_TIMEOUT_S))["proposal"]
    await caller_page.request("pay", call_id=call_id, proposal=proposal["proposal"])
    ready = await caller_page.expect("call_state", event="payment_ready", timeout_s=FRAME_TIMEOUT_S)
    await asyncio.to_thread(approve_and_never_come_back, ready["payment"]["approve_url"])
    return call_id, ready["payment"]["order_id"], caller_page, host_page


def signed_approval(system, order_id, index):
    event = {"id": f"WH-BENCH-{index:06d}-{order_id}", "event_version": "1.0",
             "create_time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "resource_type": "checkout-order", "event_type": "CHECKOUT.ORDER.APPROVED",
             "summary": "An order has been approved by buyer",
             "resource": {"id": order_id, "status": "APPROVED", "intent": "CAPTURE"}, "links": []}
    body = json.dumps(event, separators=(",", ":"))
    return body, control(system, "/emulator/webhooks/sign", {"body": body}, timeout_s=30)["headers"]


async def webhooks_per_s(system, target, calls):
    progress(f"setting up {calls} calls awaiting payment on approved PayPal orders")
    # Only our deliveries reach the gateway.
    control(system, "/emulator/webhook", {"url": ""}, method="PUT", timeout_s=30)
    waiting = []
    for index in range(calls):
        waiting.append(await awaiting_call(target, index))
    deliveries = [signed_approval(system, order_id, i) for i, (_, order_id, _, _) in enumerate(waiting)]
    client = AsyncHTTPClient(max_clients=calls)
    progress(f"posting {calls} signed webhooks at once")
    started = time.monotonic()
    answers = await asyncio.gather(*(client.fetch(HTTPRequest(
        f"{system.url}/paypal/webhook", method="POST", body=body, headers=dict(headers, **{
            "Content-Type": "application/json"}), request_timeout=120), raise_error=False)
        for body, headers in deliveries))
    acknowledged_s = time.monotonic() - started
    await asyncio.gather(*(page.expect("call_state", event="payment_captured", timeout_s=FRAME_TIMEOUT_S)
                           for _, _, page, _ in waiting))
    elapsed_s = time.monotonic() - started
    call_ids = [call_id for call_id, _, _, _ in waiting]
    booked = target.db.ledger.count_documents({"call_id": {"$in": call_ids}, "kind": "call_payment"})
    if booked != calls or any(answer.code != 200 for answer in answers):
        raise SystemExit(f"error: {booked} of {calls} calls booked; answers {[a.code for a in answers]}")
    comment(f"{calls} webhooks acknowledged (200) within {acknowledged_s:.2f} s; every call resumed and booked "
            f"within {elapsed_s:.2f} s of the first POST")
    for _, _, caller_page, host_page in waiting:
        await caller_page.close()
        await host_page.close()
    return calls / elapsed_s


def two_inserts(client, db, key, entries):
    """One database transaction of two inserts: a ledger transaction and its mail, as a booking."""
    with client.start_session() as session:
        session.with_transaction(lambda s: (
            db.bench_ledger.insert_one({"_id": key, "entries": entries}, session=s),
            db.bench_mails.insert_one({"_id": f"{key}:mail", "state": "held"}, session=s)))


def two_insert_transactions_per_s(system):
    client = pymongo.MongoClient(system.settings.database_url, tz_aware=True)
    db = client[system.settings.db_name]
    started = time.monotonic()
    for index in range(TRANSACTIONS):
        two_inserts(client, db, f"t{index}", [1, -1])
    return TRANSACTIONS / (time.monotonic() - started)


def capture_floor_per_s(system, calls):
    """Captures/s with nothing of ours in the way: `calls` orders created and approved at the
    emulator, then each captured with our PayPal client and booked as one two-insert
    transaction, by as many threads as the payments adapter captures at once. What a webhook
    must do at the least (PayPal's capture, the booking), on the same machine."""
    settings = system.settings
    paypal = PayPal(settings.paypal_url, settings.paypal_client_id_in_use, settings.paypal_client_secret_in_use)
    orders = []
    for index in range(calls):
        order_id, approve_url = paypal.create_order(1500, f"floor-order-{index}", f"floor-{index}",
                                                    "http://127.0.0.1/return", "http://127.0.0.1/cancel")
        approve_and_never_come_back(approve_url)
        orders.append(order_id)
    client = pymongo.MongoClient(settings.database_url, tz_aware=True)
    db = client[settings.db_name]

    def capture_and_book(order_id):
        captured = paypal.capture(order_id, f"floor-capture-{order_id}")
        two_inserts(client, db, f"floor:{order_id}", [captured["amount_cents"], -captured["amount_cents"]])
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(payments.CAPTURES_AT_ONCE) as pool:
        list(pool.map(capture_and_book, orders))
    return calls / (time.monotonic() - started)


def vm_hwm_kb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def seed_balances(target, members):
    """`members` upgraded members with a payout email and one available balance each ($9.16:
    a $10.00 tip, fee 84 cents), written straight to the database."""
    now = datetime.datetime.now(datetime.timezone.utc)
    for start in range(0, members, SEED_CHUNK):
        ids = [ObjectId() for _ in range(start, min(start + SEED_CHUNK, members))]
        target.db.members.insert_many([{"_id": oid, "email": f"seed{oid}@example.com", "display_name": "Seeded",
                                        "payout_email": f"payee{oid}@example.com", "tier": "upgraded",
                                        "created_at": now} for oid in ids])
        target.db.ledger.insert_many([dict(ledger.tip_transaction(f"seed{oid}", str(oid), "seedcaller", f"SEED{oid}",
                                                                  1000, 84).document(), at=now) for oid in ids])


def payout_run(system, target, members):
    from actors.payouts import ask_run
    progress(f"seeding {members} members with an available balance")
    seed_balances(target, members)
    instant = payout_calendar.next_payouts(datetime.datetime.now(payout_calendar.LOS_ANGELES)
                                           - datetime.timedelta(days=8), 1)[0]
    pids = system.node_pids()
    before = {pid: vm_hwm_kb(pid) for pid in pids}
    progress(f"running the payout of {instant.isoformat()}")
    started = time.monotonic()
    answer = ask_run(system.settings, instant, timeout_s=900)
    elapsed_s = time.monotonic() - started
    if answer is None or answer.error:
        raise SystemExit(f"error: the payout run failed: {answer and answer.error}")
    report = answer.report
    after = {pid: vm_hwm_kb(pid) for pid in session_pids(system.actor_sid) + [system.node.pid]}
    grown = max(after, key=lambda pid: after[pid] - before.get(pid, 0))
    comment(f"payout {report.get('batch_id')}: {report.get('state')}, {len(report.get('items', []))} items in "
            f"{len(report.get('parts', []))} batches, {report.get('paid_cents')} cents; the process that grew most (pid {grown}) went from "
            f"{before.get(grown, 0)} kB to {after[grown]} kB peak; seconds per step {report.get('step_s')}")
    return elapsed_s, after[grown], len(report.get("items", []))


def seed_weekly_payouts(target, members, weeks, sample_ids):
    """`weeks` past payout batches of `members` members each (the sample members among them),
    written as the payout run writes them: the batch document and its members' read model
    (MongoPayoutStore's own code), and one `payout:<batch>:<member>` ledger transaction per item."""
    from actors.payouts import MongoPayoutStore
    store = MongoPayoutStore(target.db)
    store.ensure_indexes()
    now = datetime.datetime.now(datetime.timezone.utc)
    others = [str(ObjectId()) for _ in range(members - len(sample_ids))]
    everyone = list(sample_ids) + others
    instants = payout_calendar.next_payouts(now - datetime.timedelta(days=7 * weeks + 7), weeks)
    for week, instant in enumerate(instants):
        batch_id = payout_calendar.payout_batch_id(instant)
        items = [{"member_id": m, "receiver": f"payee{m}@example.com", "amount_cents": 916, "status": "SUCCESS",
                  "item_id": f"BENCH{week}I{n}"} for n, m in enumerate(everyone)]
        document = {"_id": batch_id, "instant": instant, "state": "final", "planned_at": instant, "items": items,
                    "skipped": [], "batch_status": "SUCCESS"}
        target.db.payouts.insert_one(document)
        store.write_read_model(document)
        for start in range(0, members, SEED_CHUNK):
            target.db.ledger.insert_many([dict(ledger.payout_item_transaction(batch_id, m, 916).document(), at=now)
                                          for m in everyone[start:start + SEED_CHUNK]], ordered=False)
        progress(f"seeded payout week {week + 1} of {weeks}")


async def earnings_latency_ms(system, target, members, weeks, sample=20, rounds=10):
    progress(f"signing up {sample} members whose earnings are read")
    readers = [await Member(target.url).sign_up(f"Earner {n}") for n in range(sample)]
    await asyncio.to_thread(seed_weekly_payouts, target, members, weeks, [r.id for r in readers])
    # Each reader's balances must be what the seeded batches make them (paid out 52 × $9.16).
    first = (await readers[0].request("GET", "/api/earnings")).json()
    if first["paid_out_cents"] != 916 * weeks or len(first["payouts"]) != min(weeks, 52):
        raise SystemExit(f"error: the earnings read back are not the seeded ones: {first['paid_out_cents']} cents, "
                         f"{len(first['payouts'])} payouts")
    times = []
    for _ in range(rounds):
        for reader in readers:
            started = time.monotonic()
            answer = await reader.request("GET", "/api/earnings")
            times.append((time.monotonic() - started) * 1000)
            if answer.code != 200:
                raise SystemExit(f"error: earnings answered {answer.code}")
    times.sort()
    comment(f"{len(times)} earnings reads by {sample} members, each in all {weeks} batches of {members} items")
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--weeks", type=int, default=52, help="weekly payouts seeded before earnings are read")
    parser.add_argument("--only", choices=("webhooks", "payout", "earnings"), action="append",
                        help="run only these parts (repeatable; default: all three)")
    args = parser.parse_args(argv)
    parts = set(args.only or ("webhooks", "payout", "earnings"))

    async def bench(system, workdir):
        target = Target(system)
        if "webhooks" in parts:
            rate = await webhooks_per_s(system, target, args.calls)
            emit("webhooks_end_to_end_per_s", rate)
            raw = two_insert_transactions_per_s(system)
            emit("raw_two_insert_transactions_per_s", raw)
            emit("webhooks_vs_raw_transactions_ratio", rate / raw)
            floor = await asyncio.to_thread(capture_floor_per_s, system, args.calls)
            emit("capture_floor_per_s", floor)
            emit("capture_floor_vs_raw_transactions_ratio", floor / raw)
            emit("webhooks_vs_capture_floor_ratio", rate / floor)
            comment("capture floor: PayPal's capture (the emulator, our client) and one two-insert booking per "
                    "order, nothing else, as many at once as the payments adapter captures: what the goal's "
                    "ratio would be for a webhook path that cost nothing of ours")
            report_goal("webhooks_vs_raw_transactions_ratio", ">=", 0.5, rate / raw)
        if "payout" in parts:
            elapsed_s, peak_kb, items = await asyncio.to_thread(payout_run, system, target, args.members)
            emit("payout_members", items)
            emit("payout_run_s", elapsed_s)
            emit("payout_peak_memory_mb", peak_kb / 1024)
            if args.members in PAYOUT_GOALS_S:
                report_goal(f"payout_run_{args.members}_members_s", "<=", PAYOUT_GOALS_S[args.members], elapsed_s)
            report_goal("payout_peak_memory_mb", "<=", 300, peak_kb / 1024)
        if "earnings" in parts:
            p50, p99 = await earnings_latency_ms(system, target, args.members, args.weeks)
            emit("earnings_p50_ms", p50)
            emit("earnings_p99_ms", p99)
            if args.members == 10_000 and args.weeks == 52:
                report_goal("earnings_p99_after_52_payouts_of_10000_ms", "<=", 20, p99)

    return run_bench("bench-money", "money benchmark: webhooks end to end, raw transactions, a payout run",
                     bench, time_limit_s=1800)


if __name__ == "__main__":
    sys.exit(main())
