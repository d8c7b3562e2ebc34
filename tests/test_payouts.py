"""The weekly payout: which held earnings are released, one PayPal batch per payout instant that
is never paid twice (crashes, retries, restarts, repeated operator runs), items that come back
to the member once, and what members see and are told. Pure rules first, then a random-walk
model of whole runs with crashes anywhere, then runs against SecantusDB and the PayPal
emulator, then a paid call through the whole system to its payout."""
import copy
import datetime
import json
import secrets
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from bson import ObjectId
from hypothesis import given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from rules import fees, ledger, payout_calendar, payout_rules
from rules.ledger import Ledger, available, capture_transaction, paid_out, tip_transaction
from rules.payout_calendar import LOS_ANGELES, payout_batch_id
from rules.payout_rules import (BACK, EMPTY, FINAL, INTENT, PAID, REFUSED, SENT, WAITING, PayoutRun, PayoutStuck,
                                 Release, item_outcome, is_payout_instant, latest_payout_at_or_before, plan_items,
                                 poll_delay_s, releases_due, wake_delay_s)
from interkanect.config import Policy
from tests.kit import calls
from tests.kit.calls import net, upgraded_host
from tests.kit.client import PASSWORD, Member
from tests.kit.paypal import paypal_api
from tests.kit.system import free_port, run, start_system
from tests.kit.waiting import wait_for

HOLD_S = 24 * 3600
HOUR = datetime.timedelta(hours=1)
UTC = datetime.timezone.utc
FRIDAY = datetime.datetime(2026, 11, 27, 19, 0, tzinfo=LOS_ANGELES)   # a payout instant
NEXT_FRIDAY = datetime.datetime(2026, 12, 4, 19, 0, tzinfo=LOS_ANGELES)


def la(text):
    return datetime.datetime.fromisoformat(text).replace(tzinfo=LOS_ANGELES)


# --- releases ---------------------------------------------------------------------------------

def test_a_calls_earnings_are_released_once_the_hold_is_over_and_not_a_second_earlier():
    ended = la("2026-11-25 10:00")
    pending_by_call = {("call1", "m1"): 1399}
    assert releases_due(pending_by_call, {"call1": ended}, set(), HOLD_S, la("2026-11-26 09:59")) == []
    assert releases_due(pending_by_call, {"call1": ended}, set(), HOLD_S, la("2026-11-26 10:00")) == [
        Release("call1", "m1", 1399)]


def test_a_refund_request_or_dispute_or_a_call_still_running_keeps_the_earnings_held():
    late = la("2026-12-01 00:00")
    pending_by_call = {("asked", "m1"): 500, ("disputed", "m1"): 600, ("running", "m2"): 700, ("done", "m2"): 800}
    ended = {"asked": la("2026-11-20 10:00"), "disputed": la("2026-11-20 10:00"), "running": None,
             "done": la("2026-11-20 10:00")}
    due = releases_due(pending_by_call, ended, {"asked", "disputed"}, HOLD_S, late)
    assert due == [Release("done", "m2", 800)]


def test_an_open_dispute_is_a_freeze_without_its_resolution():
    assert payout_rules.open_dispute_calls({"c1": ["dispute:D1:freeze"], "c2": ["dispute:D2:freeze",
                                                                                 "dispute:D2:resolved"],
                                            "c3": ["dispute:D3:freeze", "dispute:D3:resolved",
                                                   "dispute:D4:freeze"]}) == {"c1", "c3"}


# --- planning a batch ---------------------------------------------------------------------------

def test_a_batch_pays_positive_available_balances_to_payout_emails_and_skips_members_without_one():
    items, skipped = plan_items({"m1": 1399, "m2": 500, "m3": 250, "m4": 0},
                                {"m1": "pay@example.com", "m2": "", "m3": "not an email", "m4": "x@example.com"})
    assert items == [{"member_id": "m1", "receiver": "pay@example.com", "amount_cents": 1399}]
    assert skipped == [{"member_id": "m2", "amount_cents": 500, "reason": "no_payout_email"},
                       {"member_id": "m3", "amount_cents": 250, "reason": "invalid_payout_email"}]


def test_beyond_paypals_item_limit_a_payout_goes_in_several_batches_by_member_id():
    amounts = {f"m{i}": 100 + i for i in range(5)}
    items, skipped = plan_items(amounts, {m: f"{m}@example.com" for m in amounts})
    assert [item["member_id"] for item in items] == [f"m{i}" for i in range(5)] and skipped == []
    parts = payout_rules.plan_parts(items, [], max_items=2)
    assert [(number, [i["member_id"] for i in chunk]) for number, chunk in parts] == [
        (1, ["m0", "m1"]), (2, ["m2", "m3"]), (3, ["m4"])]
    # Planned again after PayPal refused part 2 of three (1 and 3 went): part 2's id first, then 4.
    existing = [{"part": 1, "state": SENT}, {"part": 2, "state": REFUSED}, {"part": 3, "state": SENT}]
    assert [number for number, _ in payout_rules.plan_parts(items, existing, max_items=2)] == [2, 4, 5]
    # ... and with fewer batches than replannable parts, the extra ones are planned empty.
    existing = [{"part": 1, "state": REFUSED}, {"part": 2, "state": REFUSED}]
    assert payout_rules.plan_parts(items[:1], existing, max_items=2) == [(1, items[:1]), (2, [])]


def test_a_members_row_keeps_its_own_status_only_when_it_differs_from_most_of_the_batch():
    common, own = payout_rules.row_statuses({"m1": "SUCCESS", "m2": "UNCLAIMED", "m3": "SUCCESS"})
    assert (common, own) == ("SUCCESS", {"m1": None, "m2": "UNCLAIMED", "m3": None})
    batch = {"state": SENT, "batch_status": "SUCCESS", "items_status": common}
    row = {"batch_id": "B", "member_id": "m1", "instant": FRIDAY, "amount_cents": 916, "receiver": "a@example.com"}
    assert payout_rules.member_payout_view(dict(row, status=None), batch)["status"] == "SUCCESS"
    assert payout_rules.member_payout_view(dict(row, status="UNCLAIMED"), batch)["status"] == "UNCLAIMED"
    assert payout_rules.row_statuses({}) == (None, {})


@pytest.mark.parametrize("batch_status, item_status, outcome", [
    ("SUCCESS", "SUCCESS", PAID), ("SUCCESS", "UNCLAIMED", WAITING), ("SUCCESS", "ONHOLD", WAITING),
    ("PROCESSING", "PENDING", WAITING), ("SUCCESS", "RETURNED", BACK), ("DENIED", "FAILED", BACK),
    ("SUCCESS", "BLOCKED", BACK), ("SUCCESS", "REFUNDED", BACK), ("SUCCESS", "REVERSED", BACK),
    ("DENIED", "PENDING", BACK)])
def test_what_each_paypal_item_status_means_for_the_member(batch_status, item_status, outcome):
    assert item_outcome(batch_status, item_status) == outcome


# --- the calendar, for the scheduler ------------------------------------------------------------

def test_the_scheduler_sleeps_in_capped_steps_towards_the_instant_and_never_backwards():
    now = la("2026-11-27 10:00")
    assert wake_delay_s(now, FRIDAY) == payout_rules.MAX_SLEEP_S
    assert wake_delay_s(la("2026-11-27 18:59:30"), FRIDAY) == 30
    assert wake_delay_s(la("2026-11-27 19:00:01"), FRIDAY) == 0


def test_a_payout_timer_that_is_stale_early_or_late_does_the_right_thing():
    assert payout_rules.payout_wakeup(1, 2, FRIDAY, FRIDAY, FRIDAY + HOUR) == ("ignore", None)
    assert payout_rules.payout_wakeup(2, 2, FRIDAY, FRIDAY, FRIDAY - HOUR) == ("sleep", FRIDAY)
    assert payout_rules.payout_wakeup(2, 2, FRIDAY, FRIDAY, FRIDAY) == ("run", FRIDAY)
    # A retry still failing when the next Friday has come runs that Friday's payout instead.
    retry_at = NEXT_FRIDAY + HOUR
    assert payout_rules.payout_wakeup(3, 3, FRIDAY, retry_at, retry_at) == ("run", NEXT_FRIDAY)


def test_a_run_starts_its_lead_before_the_instant_so_the_money_has_left_by_7_pm_and_the_next_is_next_week():
    due = payout_rules.run_due_at(FRIDAY, Policy().payout_lead_s)
    assert due == la("2026-11-27 18:00")
    assert payout_rules.payout_wakeup(4, 4, FRIDAY, due, due - HOUR / 2) == ("sleep", FRIDAY)
    # At 18:00 the latest instant that passed is last week's: the run is for this Friday's.
    assert payout_rules.payout_wakeup(4, 4, FRIDAY, due, due) == ("run", FRIDAY)
    assert payout_rules.next_instant_after(FRIDAY) == NEXT_FRIDAY
    assert payout_rules.next_instant_after(due) == FRIDAY


def test_catch_up_finds_the_latest_payout_that_passed_even_across_a_moved_friday():
    assert latest_payout_at_or_before(la("2026-11-27 19:00")) == FRIDAY
    assert latest_payout_at_or_before(la("2026-11-27 18:59")) == la("2026-11-20 19:00")
    # Friday 2026-07-03 is Independence Day observed: that week pays Monday 2026-07-06.
    assert latest_payout_at_or_before(la("2026-07-05 12:00")) == la("2026-06-26 19:00")
    assert latest_payout_at_or_before(la("2026-07-10 12:00")) == la("2026-07-06 19:00")
    assert is_payout_instant(la("2026-07-06 19:00")) and not is_payout_instant(la("2026-07-03 19:00"))


@settings(max_examples=200, deadline=None)
@given(now=st.datetimes(min_value=datetime.datetime(2020, 1, 1), max_value=datetime.datetime(2045, 12, 31),
                        timezones=st.just(UTC)))
def test_the_latest_payout_has_come_and_the_next_has_not(now):
    latest = latest_payout_at_or_before(now)
    assert latest <= now < payout_calendar.next_payouts(latest, 1)[0] and is_payout_instant(latest)


def test_polling_backs_off_while_paypal_processes_then_waits_for_payees_slowly():
    assert [poll_delay_s(n, True) for n in range(4)] == [1, 2, 4, 8]
    assert poll_delay_s(30, True) == payout_rules.POLL_MAX_S
    assert poll_delay_s(0, False) == payout_rules.PAYEE_WAIT_POLL_S


# --- whole runs over in-memory ports, with crashes anywhere -------------------------------------

class Crash(Exception):
    """The process died right after this step: its effect happened, its caller never learned."""


class CrashPoint:
    """Dies right after the n-th call (from 0) of one port method, e.g. ("paypal.create_payout", 0)."""

    def __init__(self, where=None):
        self.method, self.calls_left = where or (None, 0)

    def passed(self, method):
        if method == self.method:
            if self.calls_left == 0:
                self.method = None
                raise Crash()
            self.calls_left -= 1


def crashing(target, crash_point, name):
    """The target (a port named `name`), any of whose calls may be the last before a crash."""
    class Proxy:
        def __getattr__(self, attribute_name):
            attribute = getattr(target, attribute_name)
            if isinstance(attribute, type) or not callable(attribute):
                return attribute

            def call(*args, **kwargs):
                result = attribute(*args, **kwargs)
                crash_point.passed(f"{name}.{attribute_name}")
                return result
            return call
    return Proxy()


# Where a run's process can die with an effect done and not yet followed up.
CRASHES = st.tuples(st.sampled_from(["store.save_plan", "store.update_payout", "store.book",
                                     "store.book_all", "store.claim", "paypal.create_payout", "paypal.payout_batch"]),
                    st.integers(0, 1))


class MemoryStore:
    """The run's store over the in-memory ledger model (what MongoPayoutStore does on MongoDB)."""

    def __init__(self):
        self.ledger = Ledger()
        self.payouts, self.ended, self.refunds, self.emails = {}, {}, {}, {}

    def payout(self, batch_id):
        return copy.deepcopy(self.payouts.get(batch_id))

    def payouts_in_state(self, state):
        return [copy.deepcopy(d) for d in sorted(self.payouts.values(), key=lambda d: d["instant"])
                if d["state"] == state]

    def payouts_of(self, instant):
        return sorted((copy.deepcopy(d) for d in self.payouts.values() if d["instant"] == instant),
                      key=payout_rules.part_number)

    def save_plan(self, documents, replaced):
        for document in documents:
            stored = self.payouts.get(document["_id"])
            if (stored is not None) != (document["_id"] in replaced) or \
                    (stored is not None and stored["state"] not in payout_rules.REPLANNABLE):
                return False
        self.payouts.update((document["_id"], copy.deepcopy(document)) for document in documents)
        return True

    def update_payout(self, batch_id, fields):
        self.payouts[batch_id].update(copy.deepcopy(fields))

    def claim(self, batch_id, flag):
        claimed = not self.payouts[batch_id].get(flag)
        self.payouts[batch_id][flag] = True
        return claimed

    def pending_by_call(self):
        totals = {}
        for transaction in self.ledger.transactions:
            for entry in transaction.entries:
                parsed = ledger.parse_member_account(entry.account)
                if transaction.call_id and parsed and parsed[1] == "pending":
                    key = (transaction.call_id, parsed[0])
                    totals[key] = totals.get(key, 0) + entry.amount_cents
        return {key: cents for key, cents in totals.items() if cents > 0}

    def call_end_times(self, call_ids):
        return {call_id: self.ended.get(call_id) for call_id in call_ids}

    def open_refund_calls(self, call_ids):
        return {call_id for call_id in call_ids if self.refunds.get(call_id) == "open"}

    def dispute_keys(self, call_ids):
        return {}

    def available_balances(self):
        return {account: cents for account, cents in self.ledger.balances().items() if account.endswith(":available")}

    def payout_emails(self, member_ids):
        return {m: self.emails[m] for m in member_ids if m in self.emails}

    def book(self, transaction, now):
        return self.ledger.apply(transaction)

    def booked(self, key):
        return self.ledger.get(key) is not None

    def book_all(self, transactions, now):
        outcome = {}
        for transaction in transactions:
            try:
                outcome[transaction.key] = "booked" if self.ledger.apply(transaction) else "repeat"
            except ledger.LedgerError:
                outcome[transaction.key] = "conflict"
        return outcome


class Refusal(Exception):
    pass


class ModelPayPal:
    """PayPal's Payouts as the client sees it: a sender_batch_id makes one batch, ever (a
    reused one answers the original batch); processing settles items by receiver."""

    Refused = Refusal
    OUTCOMES = {"returned": "RETURNED", "unclaimed": "UNCLAIMED", "failed": "FAILED", "blocked": "BLOCKED"}

    def __init__(self, max_items=payout_rules.MAX_BATCH_ITEMS):
        self.batches, self.by_sender = {}, {}
        self.max_items = max_items
        self.refuse_next = False   # the next new batch is refused (a 4xx: PayPal keeps nothing of it)

    def create_payout(self, sender_batch_id, items):
        if sender_batch_id in self.by_sender:
            return self.payout_batch(self.by_sender[sender_batch_id])
        if self.refuse_next:
            self.refuse_next = False
            raise Refusal("HTTP 422 UNPROCESSABLE_ENTITY: INSUFFICIENT_FUNDS")
        members = [item["member_id"] for item in items]
        assert len(members) == len(set(members)) and all(item["amount_cents"] > 0 for item in items)
        assert 0 < len(items) <= self.max_items
        batch_id = f"B{len(self.batches)}"
        self.batches[batch_id] = {"payout_batch_id": batch_id, "batch_status": "PENDING",
                                  "sender_batch_id": sender_batch_id, "items": [
                                      {"payout_item_id": f"{batch_id}I{n}", "transaction_status": "PENDING",
                                       "sender_item_id": item["member_id"], "receiver": item["receiver"],
                                       "amount_cents": item["amount_cents"]} for n, item in enumerate(items)]}
        self.by_sender[sender_batch_id] = batch_id
        return {"payout_batch_id": batch_id, "batch_status": "PENDING", "items": None}

    def payout_batch(self, batch_id):
        return copy.deepcopy(self.batches[batch_id])

    def process(self):
        for batch in self.batches.values():
            if batch["batch_status"] == "PENDING":
                for item in batch["items"]:
                    item["transaction_status"] = next((status for word, status in self.OUTCOMES.items()
                                                       if word in item["receiver"]), "SUCCESS")
                failed = all(i["transaction_status"] in ("FAILED", "BLOCKED") for i in batch["items"])
                batch["batch_status"] = "DENIED" if failed else "SUCCESS"

    def return_unclaimed(self):
        for batch in self.batches.values():
            for item in batch["items"]:
                if item["transaction_status"] == "UNCLAIMED":
                    item["transaction_status"] = "RETURNED"

    def delivered_cents(self, member_id):
        """What reached (or still may reach: unclaimed) the member: sent and not come back."""
        return sum(item["amount_cents"] for batch in self.batches.values() for item in batch["items"]
                   if item["sender_item_id"] == member_id
                   and item["transaction_status"] not in ("RETURNED", "FAILED", "BLOCKED"))


MEMBERS = ("m1", "m2", "m3")
EMAILS = ("pay@example.com", "", "returned@example.com", "unclaimed@example.com", "failed@example.com")
T0 = datetime.datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


class PayoutRuns(RuleBasedStateMachine):
    """Captures, tips, refund requests and time go by; payouts run at their instants, early and
    again, and crash after any step; PayPal processes. Whatever happens, no money is made or
    lost, nobody is paid more than they earned, and once a run completes the ledger says
    exactly what PayPal paid."""

    def __init__(self):
        super().__init__()
        # Two items per batch for three members: a payout often takes two batches.
        self.store, self.paypal, self.mail = MemoryStore(), ModelPayPal(max_items=2), []
        self.now = T0
        self.earned = dict.fromkeys(MEMBERS, 0)
        self.calls = 0
        self.store.emails.update(dict.fromkeys(MEMBERS, "pay@example.com"))

    @initialize(tips=st.lists(st.integers(200, 5_000), min_size=len(MEMBERS), max_size=len(MEMBERS)))
    def members_have_tips_to_be_paid(self, tips):
        for member, cents in zip(MEMBERS, tips):
            self.a_tip_arrives(member, cents)

    def payouts(self, crash_point):
        return PayoutRun(crashing(self.store, crash_point, "store"), crashing(self.paypal, crash_point, "paypal"),
                         lambda *mail: self.mail.append(mail), HOLD_S, "http://ik.test/account", max_items=2)

    @rule(member=st.sampled_from(MEMBERS), cents=st.integers(200, 50_000), ended_h=st.none() | st.integers(0, 60))
    def a_call_is_paid(self, member, cents, ended_h):
        self.calls += 1
        call_id = f"call{self.calls}"
        fee = fees.breakdown(cents).fee_cents
        self.store.ledger.apply(capture_transaction(call_id, member, "c1", f"CAP{self.calls}", cents, fee))
        self.store.ended[call_id] = None if ended_h is None else self.now - ended_h * HOUR
        self.earned[member] += cents - fee

    @rule(member=st.sampled_from(MEMBERS), cents=st.integers(200, 5_000))
    def a_tip_arrives(self, member, cents):
        self.calls += 1
        fee = fees.breakdown(cents).fee_cents
        self.store.ledger.apply(tip_transaction(f"call{self.calls}", member, "c1", f"TIP{self.calls}", cents, fee))
        self.earned[member] += cents - fee

    @precondition(lambda self: self.calls)
    @rule(data=st.data(), state=st.sampled_from(["open", "denied"]))
    def a_refund_request_is_asked_or_decided(self, data, state):
        self.store.refunds[f"call{data.draw(st.integers(1, self.calls))}"] = state

    @precondition(lambda self: self.calls)
    @rule(data=st.data())
    def a_running_call_ends(self, data):
        call_id = f"call{data.draw(st.integers(1, self.calls))}"
        if call_id in self.store.ended and self.store.ended[call_id] is None:
            self.store.ended[call_id] = self.now

    @rule(member=st.sampled_from(MEMBERS), email=st.sampled_from(EMAILS))
    def a_member_changes_their_payout_email(self, member, email):
        self.store.emails[member] = email

    @precondition(lambda self: self.now - T0 < datetime.timedelta(days=25))  # see the 29-day test below
    @rule(hours=st.integers(1, 80))
    def time_passes(self, hours):
        self.now += hours * HOUR

    def instant(self, early):
        return payout_calendar.next_payouts(self.now, 1)[0] if early else latest_payout_at_or_before(self.now)

    @rule(early=st.booleans())
    def a_payout_runs(self, early):
        self.payouts(CrashPoint()).run(self.instant(early), self.now)

    @rule(early=st.booleans(), crash=CRASHES)
    def a_payout_run_dies_midway(self, early, crash):
        try:
            self.payouts(CrashPoint(crash)).run(self.instant(early), self.now)
        except Crash:
            pass

    @rule()
    def paypal_refuses_the_next_batch(self):
        self.paypal.refuse_next = True

    @rule()
    def paypal_processes_its_batches(self):
        self.paypal.process()

    @rule()
    def unclaimed_items_run_out_of_time(self):
        self.paypal.return_unclaimed()

    @rule(crash=st.none() | CRASHES)
    def the_scheduler_follows_sent_batches(self, crash):
        try:
            self.payouts(CrashPoint(crash)).follow(self.now)
        except Crash:
            pass

    @rule()
    def a_run_completes_and_paypal_settles(self):
        """No crash this time: afterwards the ledger agrees with PayPal to the cent."""
        self.settle()

    def teardown(self):
        self.settle()   # however a story ended, one clean run puts everything right

    def settle(self):
        self.paypal.refuse_next = False
        payouts = self.payouts(CrashPoint())
        payouts.run(latest_payout_at_or_before(self.now), self.now)
        self.paypal.process()
        payouts.follow(self.now)
        assert not self.store.payouts_in_state(INTENT)
        for member in MEMBERS:
            assert self.store.ledger.balance(paid_out(member)) == self.paypal.delivered_cents(member)

    @invariant()
    def no_money_is_made_or_lost(self):
        balances = self.store.ledger.balances()
        assert sum(balances.values()) == 0
        for member in MEMBERS:
            buckets = [balances.get(ledger.member_account(member, b), 0) for b in ("pending", "available", "paid_out")]
            assert sum(buckets) == self.earned[member] and min(buckets) >= 0

    @invariant()
    def nobody_is_paid_more_than_they_earned_and_each_sender_batch_id_is_one_batch(self):
        for member in MEMBERS:
            assert self.paypal.delivered_cents(member) <= self.earned[member]
        assert len(self.paypal.by_sender) == len(self.paypal.batches)
        for sender_batch_id in self.paypal.by_sender:   # PayPal heard of it only after the intent was kept
            assert self.store.payouts[sender_batch_id]["state"] != EMPTY


TestPayoutRuns = PayoutRuns.TestCase
TestPayoutRuns.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)


@pytest.mark.parametrize("where", ["store.save_plan", "store.book_all", "store.update_payout",
                                   "store.claim", "paypal.create_payout", "paypal.payout_batch"])
def test_a_run_that_died_at_any_step_is_finished_by_running_it_again_and_pays_nobody_twice(where):
    store, paypal, mail = MemoryStore(), ModelPayPal(), []
    store.emails.update(m1="pay@example.com", m2="m2.returned@example.com")
    for n, member in enumerate(("m1", "m2")):
        store.ledger.apply(tip_transaction(f"call{n}", member, "c1", f"TIP{n}", 1000, 84))

    def payouts(crash_point):
        return PayoutRun(crashing(store, crash_point, "store"), crashing(paypal, crash_point, "paypal"),
                         lambda *m: mail.append(m), HOLD_S, "http://ik.test/account")
    with pytest.raises(Crash):
        payouts(CrashPoint((where, 0))).run(FRIDAY, FRIDAY)
    payouts(CrashPoint()).run(FRIDAY, FRIDAY + HOUR)
    paypal.process()
    payouts(CrashPoint()).follow(FRIDAY + HOUR)
    document = store.payout(payout_batch_id(FRIDAY))
    assert document["state"] == FINAL and len(paypal.batches) == 1
    assert [(i["member_id"], i["status"]) for i in document["items"]] == [("m1", "SUCCESS"), ("m2", "RETURNED")]
    assert (store.ledger.balance(paid_out("m1")), store.ledger.balance(available("m2"))) == (916, 916)
    assert store.ledger.balance(paid_out("m2")) == 0 and paypal.delivered_cents("m2") == 0
    # Two tips, two payout items, one returned item.
    assert payouts(CrashPoint()).run(FRIDAY, FRIDAY + 2 * HOUR).already_sent and len(store.ledger.transactions) == 5


def test_a_batch_never_confirmed_for_29_days_is_not_sent_again():
    store, paypal = MemoryStore(), ModelPayPal()
    store.ledger.apply(tip_transaction("call1", "m1", "c1", "TIP1", 1000, 84))
    store.emails["m1"] = "pay@example.com"
    payouts = PayoutRun(store, paypal, lambda *mail: None, HOLD_S, "http://ik.test/account")
    with pytest.raises(Crash):   # the intent is kept, then the process dies
        PayoutRun(store, crashing(paypal, CrashPoint(("paypal.create_payout", 0)), "paypal"), lambda *mail: None,
                  HOLD_S, "").run(FRIDAY, FRIDAY)
    paypal.batches.clear()   # ... before PayPal heard of the batch
    paypal.by_sender.clear()
    with pytest.raises(PayoutStuck):
        payouts.run(NEXT_FRIDAY, FRIDAY + datetime.timedelta(days=30))
    assert not paypal.batches and store.ledger.balance(available("m1")) == 916


def test_a_refused_batch_pays_nothing_and_is_planned_again_once_fixed():
    class RefusingPayPal(ModelPayPal):
        refuse = True

        def create_payout(self, sender_batch_id, items):
            if self.refuse:
                raise Refusal("HTTP 422 UNPROCESSABLE_ENTITY")
            return super().create_payout(sender_batch_id, items)
    store, paypal, mail = MemoryStore(), RefusingPayPal(), []
    store.ledger.apply(tip_transaction("call1", "m1", "c1", "TIP1", 1000, 84))
    store.emails.update(m1="pay@example.com", m2="")
    store.ledger.apply(tip_transaction("call2", "m2", "c1", "TIP2", 1000, 84))
    payouts = PayoutRun(store, paypal, lambda *m: mail.append(m), HOLD_S, "http://ik.test/account")
    report = payouts.run(FRIDAY, FRIDAY)
    assert report.state == REFUSED and "422" in report.error and store.ledger.balance(available("m1")) == 916
    paypal.refuse = False
    report = payouts.run(FRIDAY, FRIDAY + HOUR)
    assert report.state == SENT and not report.already_sent and store.ledger.balance(paid_out("m1")) == 916
    # m2 was told once that they have no payout email, not once per attempt.
    assert [m[0] for m in mail if "payout email" in m[1]] == ["m2"]


def test_a_payout_beyond_one_batch_goes_in_parts_and_a_refused_part_is_planned_again_without_paying_twice():
    store, paypal, mail = MemoryStore(), ModelPayPal(max_items=2), []
    members = ("m1", "m2", "m3", "m4", "m5")
    for n, member in enumerate(members):
        store.emails[member] = "pay@example.com"
        store.ledger.apply(tip_transaction(f"call{n}", member, "c1", f"TIP{n}", 1000, 84))

    def payouts(crash_point=None):
        return PayoutRun(store, crashing(paypal, crash_point or CrashPoint(), "paypal"), lambda *m: mail.append(m),
                         HOLD_S, "http://ik.test/account", max_items=2)
    # Part 1 refused (PayPal out of funds), part 2 taken by PayPal but the run dies before it
    # hears so; part 3 never sent.
    paypal.refuse_next = True
    with pytest.raises(Crash):
        payouts(CrashPoint(("paypal.create_payout", 0))).run(FRIDAY, FRIDAY)
    assert [(d["_id"], d["state"]) for d in store.payouts_of(FRIDAY)] == [
        (payout_batch_id(FRIDAY), REFUSED), (payout_batch_id(FRIDAY, 2), INTENT), (payout_batch_id(FRIDAY, 3), INTENT)]
    # Run again once the operator fixed it: parts 2 and 3 are sent (2 found already sent), part
    # 1's members are planned again under part 1's id; each member paid once.
    report = payouts().run(FRIDAY, FRIDAY + HOUR)
    assert [(p["batch_id"], p["state"], p["items"]) for p in report.parts] == [
        (payout_batch_id(FRIDAY), SENT, 2), (payout_batch_id(FRIDAY, 2), SENT, 2), (payout_batch_id(FRIDAY, 3), SENT, 1)]
    assert report.state == SENT and sorted(i["member_id"] for i in report.items) == list(members)
    paypal.process()
    payouts().follow(FRIDAY + HOUR)
    assert all(paypal.delivered_cents(member) == 916 == store.ledger.balance(paid_out(member)) for member in members)
    assert len(paypal.batches) == 3 and {d["state"] for d in store.payouts.values()} == {FINAL}
    assert sorted(m[0] for m in mail if "on its way" in m[1]) == list(members)


# --- runs against SecantusDB and the PayPal emulator --------------------------------------------

class Emulator:
    """A PayPal emulator process for runs driven from the test (no actor node)."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(tmp_path / "paypal.log", "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "interkanect.cli", "paypal-emulator", "--port",
                                         str(self.port), "--payout-processing-s", "0.3"],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        def answering():
            assert self.process.poll() is None, "the emulator exited on start"
            return self.answers()
        wait_for(answering, "the emulator answering", 30)

    def answers(self):
        try:
            return self.control("GET", "/emulator/health")["ok"]
        except OSError:
            return False

    def control(self, method, path, body=None):
        request = urllib.request.Request(self.url + path, method=method, data=None if body is None else
                                         json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.load(answer)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)
        self.log.close()


def the_only_batch_for(base_url, sender_batch_id):
    """PayPal's own word on which batch a sender_batch_id made: a second one is refused and
    points to the first."""
    status, answer = paypal_api(base_url, "POST", "/v1/payments/payouts", {
        "sender_batch_header": {"sender_batch_id": sender_batch_id},
        "items": [{"recipient_type": "EMAIL", "receiver": "probe@example.com",
                   "amount": {"currency": "USD", "value": "1.00"}}]})
    assert status == 400 and answer["details"][0]["field"] == "SENDER_BATCH_ID", answer
    return answer["details"][0]["link"][0]["href"].rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    running = Emulator(tmp_path_factory.mktemp("paypal"))
    yield running
    running.stop()


@pytest.fixture
def mongo_payouts(database_url, emulator):
    """A run over a fresh database and the emulator, with two members owed money (tips)."""
    import pymongo

    from actors.payouts import MongoPayoutStore
    from interkanect.paypal.payouts import PayPalPayouts
    db = pymongo.MongoClient(database_url, tz_aware=True)["p" + secrets.token_hex(4)]
    store = MongoPayoutStore(db)
    store.ensure_indexes()
    members = [str(db.members.insert_one({"email": f"{name}@example.com", "payout_email": f"{name}.pay@example.com"})
                   .inserted_id) for name in ("ada", "bob")]
    for n, (member, cents) in enumerate(zip(members, (1000, 2500))):
        store.book(tip_transaction(f"call{n}", member, "caller1", f"TIP{n}{secrets.token_hex(3)}", cents,
                                   fees.breakdown(cents).fee_cents), datetime.datetime.now(UTC))
    mail = []
    payouts = PayoutRun(store, PayPalPayouts(emulator.url, "emulator-client-id", "emulator-client-secret"),
                        lambda *m: mail.append(m), HOLD_S, "http://ik.test/account")
    yield payouts, db, members, mail
    db.client.drop_database(db.name)


def test_a_payout_answer_lost_on_the_way_back_is_one_batch_booked_once(mongo_payouts, emulator):
    payouts, db, (ada, bob), mail = mongo_payouts
    instant = la("2026-10-02 19:00")
    batch_id = payout_batch_id(instant)
    emulator.control("POST", "/emulator/faults", {"kind": "lost_response", "path": "/v1/payments/payouts",
                                                  "method": "POST"})
    report = payouts.run(instant, instant + HOUR)
    assert report.state in (SENT, FINAL) and report.paid_cents == net(1000) + net(2500)
    assert the_only_batch_for(emulator.url, batch_id) == report.paypal_batch_id
    assert db.ledger.count_documents({"kind": "payout"}) == 2   # one transaction per item
    assert db.ledger.find_one({"_id": f"payout:{batch_id}:{ada}"})["entries"] == [
        {"account": available(ada), "amount_cents": -916}, {"account": paid_out(ada), "amount_cents": 916}]
    assert db.ledger.find_one({"_id": f"payout:{batch_id}:{bob}"})["entries"] == [
        {"account": available(bob), "amount_cents": -net(2500)}, {"account": paid_out(bob), "amount_cents": net(2500)}]
    assert sorted(m[0] for m in mail if m[1] == "Your interKanect payout is on its way") == sorted([ada, bob])


def test_a_payout_in_several_batches_is_planned_in_one_write_and_each_member_paid_once(mongo_payouts, emulator):
    payouts, db, (ada, bob), mail = mongo_payouts
    payouts.max_items = 1
    instant = la("2026-08-28 19:00")
    report = payouts.run(instant, instant + HOUR)
    ids = [payout_batch_id(instant), payout_batch_id(instant, 2)]
    assert [part["batch_id"] for part in report.parts] == ids and report.paid_cents == net(1000) + net(2500)
    for batch_id, member in zip(ids, sorted([ada, bob])):
        assert the_only_batch_for(emulator.url, batch_id) == db.payouts.find_one({"_id": batch_id})["paypal_batch_id"]
        assert db.ledger.count_documents({"_id": f"payout:{batch_id}:{member}"}) == 1
        assert db.payout_items.find_one({"batch_id": batch_id})["member_id"] == member
    assert payouts.run(instant, instant + 2 * HOUR).already_sent and db.ledger.count_documents({"kind": "payout"}) == 2
    # A plan racing another one writes none of its parts: here part 2 was taken meanwhile.
    later = la("2026-09-04 19:00")
    taken = {"_id": payout_batch_id(later, 2), "instant": later, "part": 2, "state": INTENT, "items": []}
    db.payouts.insert_one(taken)
    parts = [{"_id": payout_batch_id(later), "instant": later, "part": 1, "state": EMPTY, "items": []},
             dict(taken, state=EMPTY)]
    assert payouts.store.save_plan(parts, set()) is False
    assert payouts.store.payouts_of(later) == [taken]


def test_each_member_reads_their_own_row_of_a_batch_and_batches_from_before_the_rows_get_them(mongo_payouts):
    payouts, db, (ada, bob), mail = mongo_payouts
    instant = la("2026-09-25 19:00")   # an instant of its own: the emulator remembers batches
    report = payouts.run(instant, instant + HOUR)
    rows = {row["member_id"]: row for row in db.payout_items.find({"batch_id": report.batch_id})}
    assert {member: row["amount_cents"] for member, row in rows.items()} == {ada: 916, bob: net(2500)}
    summary = db.payout_batches.find_one({"_id": report.batch_id})
    assert summary["state"] == report.state and summary["instant"] == instant
    view = payout_rules.member_payout_view(rows[ada], summary)
    assert view == payout_rules.payout_view(db.payouts.find_one({"_id": report.batch_id}), ada)
    # A batch written before the read model existed (only its payouts document): backfilled once.
    db.payout_items.delete_many({}), db.payout_batches.delete_many({})
    payouts.store.backfill_read_model()
    assert db.payout_items.count_documents({"batch_id": report.batch_id}) == 2
    assert payout_rules.member_payout_view(db.payout_items.find_one({"member_id": bob}), db.payout_batches.find_one(
        {"_id": report.batch_id})) == payout_rules.payout_view(db.payouts.find_one({"_id": report.batch_id}), bob)


def test_a_crash_after_paypal_took_the_batch_and_before_the_ledger_booked_it_pays_nobody_twice(
        mongo_payouts, emulator):
    payouts, db, (ada, bob), mail = mongo_payouts
    instant = la("2026-10-09 19:00")
    batch_id = payout_batch_id(instant)
    store = payouts.store

    class DiesBeforeBooking:
        def __getattr__(self, name):
            return getattr(store, name)

        def book_all(self, transactions, now):
            raise Crash()
    payouts.store = DiesBeforeBooking()
    with pytest.raises(Crash):
        payouts.run(instant, instant + HOUR)
    payouts.store = store
    first = db.payouts.find_one({"_id": batch_id})
    assert first["state"] == INTENT and db.ledger.count_documents({"kind": "payout"}) == 0
    # A tip arrives meanwhile; the next week's run first finishes the batch PayPal already has.
    store.book(tip_transaction("call9", ada, "caller1", f"TIP9{secrets.token_hex(3)}", 500, 500 - net(500)),
               datetime.datetime.now(UTC))
    following = la("2026-10-16 19:00")
    report = payouts.run(following, following + HOUR)
    sent = db.payouts.find_one({"_id": batch_id})
    assert sent["state"] in (SENT, FINAL) and the_only_batch_for(emulator.url, batch_id) == sent["paypal_batch_id"]
    assert report.state in (SENT, FINAL)
    assert report.items == [dict(report.items[0], member_id=ada, amount_cents=net(500))]
    paid = {member: sum(e["amount_cents"] for t in db.ledger.find({"kind": "payout"}) for e in t["entries"]
                        if e["account"] == paid_out(member)) for member in (ada, bob)}
    assert paid == {ada: net(1000) + net(500), bob: net(2500)}


def test_paypal_down_for_a_while_is_retried_with_the_same_batch_and_an_item_that_came_back_is_paid_again(
        mongo_payouts, emulator):
    payouts, db, (ada, bob), mail = mongo_payouts
    db.members.update_one({"_id": ObjectId(bob)}, {"$set": {"payout_email": "bob.returned@example.com"}})
    instant = la("2026-10-23 19:00")
    emulator.control("POST", "/emulator/faults", {"kind": "error", "path": "/v1/payments/payouts", "method": "POST",
                                                  "status": 503, "count": 2})
    report = payouts.run(instant, instant + HOUR)
    assert report.state in (SENT, FINAL)
    assert the_only_batch_for(emulator.url, payout_batch_id(instant)) == report.paypal_batch_id

    def settled():
        return payouts.follow(instant + HOUR)[2] is False
    wait_for(settled, "the emulator to settle the batch")
    returned = list(db.ledger.find({"kind": "payout_returned"}))
    assert len(returned) == 1 and returned[0]["entries"][1] == {"account": available(bob), "amount_cents": net(2500)}
    assert [m[1] for m in mail if m[0] == bob] == ["Your interKanect payout is on its way",
                                                   "Your interKanect payout came back"]
    payouts.follow(instant + HOUR)   # looked at again: nothing twice
    assert db.ledger.count_documents({"kind": "payout_returned"}) == 1
    # Back in available, the next payout takes it (to the corrected address).
    db.members.update_one({"_id": ObjectId(bob)}, {"$set": {"payout_email": "bob.pay@example.com"}})
    following = la("2026-10-30 19:00")
    assert payouts.run(following, following + HOUR).items[0]["amount_cents"] == net(2500)


def test_calls_are_released_in_one_write_and_a_release_that_cannot_be_booked_holds_up_nobody_else(
        mongo_payouts, caplog):
    payouts, db, (ada, bob), mail = mongo_payouts
    instant = la("2026-11-06 19:00")
    for n, (member, cents) in enumerate(((ada, 1500), (bob, 2000))):
        db.calls.insert_one({"_id": f"paid{n}", "ended_at": instant - 2 * datetime.timedelta(days=1)})
        payouts.store.book(capture_transaction(f"paid{n}", member, "caller1", f"CAP{n}{secrets.token_hex(3)}", cents,
                                               cents - net(cents)), instant)
    report = payouts.run(instant, instant + HOUR)
    assert sorted(report.released_calls) == ["paid0", "paid1"]
    assert amounts(report.items) == {ada: net(1000) + net(1500), bob: net(2500) + net(2000)}
    # A capture of paid0 completes late, after its release: an operator's case, logged; Bob is paid.
    payouts.store.book(capture_transaction("paid0", ada, "caller1", f"LATE{secrets.token_hex(3)}", 500,
                                           500 - net(500)), instant)
    payouts.store.book(tip_transaction("call7", bob, "caller1", f"TIP7{secrets.token_hex(3)}", 500, 500 - net(500)),
                       instant)
    following = la("2026-11-13 19:00")
    report = payouts.run(following, following + HOUR)
    assert report.released_calls == [] and amounts(report.items) == {bob: net(500)}
    assert "cannot release call paid0" in caplog.text


def amounts(items):
    return {item["member_id"]: item["amount_cents"] for item in items}


def test_a_scheduler_starting_after_a_missed_payout_catches_up_and_follows_the_batch_to_its_end(
        database_url, emulator):
    """The actor itself, on simpleSystemBase: its timers alone run the missed payout and poll it."""
    import pymongo
    from thespian.actors import ActorSystem

    from actors.payouts import PayoutScheduler, StartPayouts
    from interkanect import config
    db = pymongo.MongoClient(database_url, tz_aware=True)["p" + secrets.token_hex(4)]
    member = str(db.members.insert_one({"email": "eve@example.com", "payout_email": "eve.pay@example.com"}).inserted_id)
    db.ledger.insert_one(tip_transaction("call1", member, "caller1", f"TIP{secrets.token_hex(4)}", 1000, 84).document())
    missed = latest_payout_at_or_before(datetime.datetime.now(UTC))
    settings = config.Settings(mongodb_url=database_url, db_name=db.name, paypal_emulator_port=emulator.port)
    actors = ActorSystem("simpleSystemBase", transientUnique=True)
    try:
        actors.tell(actors.createActor(PayoutScheduler), StartPayouts(settings, None))

        def payout_state():
            actors.listen(0.1)   # simpleSystemBase runs actors and timers only while driven
            return (db.payouts.find_one({"_id": payout_batch_id(missed)}) or {}).get("state")
        wait_for(lambda: payout_state() == FINAL, "the missed payout to be sent and settled")
        assert db.ledger.find_one({"_id": f"payout:{payout_batch_id(missed)}:{member}"})["entries"][1] == {
            "account": paid_out(member), "amount_cents": 916}
        assert the_only_batch_for(emulator.url, payout_batch_id(missed)) == \
            db.payouts.find_one({"_id": payout_batch_id(missed)})["paypal_batch_id"]
    finally:
        actors.shutdown()
        db.client.drop_database(db.name)


# --- a paid call, through the whole system, to its payout ------------------------------------

@pytest.fixture(scope="module")
def payout_system(database_url, tmp_path_factory):
    """The whole system with no earnings hold, so a call just ended is payable."""
    running = start_system(database_url, tmp_path_factory.mktemp("system"), earnings_hold_s=0, refund_window_s=0)
    yield running
    running.finish()


async def paid_call(system, host, caller, price_cents):
    """A ten-minute call paid on PayPal, from ring to hang-up. Returns the call id."""
    return (await calls.paid_call(system, [price_cents], host=host, caller=caller, length_s=600)).id


def run_payout(system, instant):
    answer = system.cli("payouts", "run", "--at", instant.isoformat(), "--json")
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


def test_a_paid_call_is_paid_out_once_through_paypal_and_the_member_sees_it(payout_system):
    system = payout_system
    db = system.db

    async def calls():
        caller = await Member(system.url).sign_up("Caller")
        hosts = {name: await upgraded_host(system, name) for name in ("Ada", "Bo", "Cy", "Di")}
        ids = {"ada": await paid_call(system, hosts["Ada"], caller, 1500),
               "ada_asked": await paid_call(system, hosts["Ada"], caller, 2000)}
        for name, cents in (("Bo", 1000), ("Cy", 1200), ("Di", 800)):
            ids[name] = await paid_call(system, hosts[name], caller, cents)
        # Bo removed his payout email; Cy's and Di's addresses have no PayPal account.
        for name, email in (("Bo", ""), ("Cy", "cy.returned@example.com"), ("Di", "di.unclaimed@example.com")):
            assert (await hosts[name].request("PATCH", "/api/me", {"payout_email": email, "password": PASSWORD})).code == 200
        return hosts, ids
    hosts, call_ids = run(calls())
    ada, bo, cy, di = (hosts[name].id for name in ("Ada", "Bo", "Cy", "Di"))
    for call_id in call_ids.values():
        wait_for(lambda: db.calls.find_one({"_id": call_id, "ended_at": {"$ne": None}}), f"call {call_id} stored")
    # The caller asked for a refund of Ada's second call: its earnings stay held.
    db.refund_requests.insert_one({"call_id": call_ids["ada_asked"], "state": "open"})

    instant = payout_calendar.next_payouts(datetime.datetime.now(UTC), 1)[0]
    batch_id = payout_batch_id(instant)
    report = run_payout(system, instant)
    assert report["batch_id"] == batch_id and report["state"] == SENT and not report["already_sent"]
    assert {i["member_id"]: i["amount_cents"] for i in report["items"]} == {ada: net(1500), cy: net(1200),
                                                                             di: net(800)}
    assert report["skipped"] == [{"member_id": bo, "amount_cents": net(1000), "reason": "no_payout_email"}]
    assert call_ids["ada_asked"] not in report["released_calls"]

    # PayPal has exactly one batch for this payout instant, with those items.
    assert the_only_batch_for(system.settings.paypal_url, batch_id) == report["paypal_batch_id"]
    status, batch = paypal_api(system.settings.paypal_url, "GET", f"/v1/payments/payouts/{report['paypal_batch_id']}")
    assert status == 200 and batch["batch_header"]["sender_batch_header"]["sender_batch_id"] == batch_id
    assert sorted((i["payout_item"]["sender_item_id"], i["payout_item"]["amount"]["value"]) for i in batch["items"]) \
        == sorted([(ada, "13.99"), (cy, "11.09"), (di, "7.23")])
    booked = list(db.ledger.find({"_id": {"$in": [f"payout:{batch_id}:{member}" for member in (ada, cy, di)]}}))
    assert [t["kind"] for t in booked] == ["payout"] * 3 and all(len(t["entries"]) == 2 for t in booked)

    # Cy's item comes back (RETURNED): the scheduler follows the batch and books it back once.
    wait_for(lambda: db.ledger.find_one({"kind": "payout_returned", "entries.account": available(cy)}),
             "Cy's returned item to be booked back")
    wait_for(lambda: db.payouts.find_one({"_id": batch_id, "items": {"$elemMatch": {
        "member_id": di, "status": "UNCLAIMED"}}}), "Di's item to be reported unclaimed")

    async def earnings():
        views = {}
        for name in ("Ada", "Bo", "Cy", "Di"):
            answer = await hosts[name].request("GET", "/api/earnings")
            assert answer.code == 200
            views[name] = answer.json()
        return views
    views = run(earnings())
    assert {k: views["Ada"][k] for k in ("pending_cents", "available_cents", "paid_out_cents")} == {
        "pending_cents": net(2000), "available_cents": 0, "paid_out_cents": net(1500)}
    assert views["Ada"]["next_payout_at"] == payout_calendar.next_payouts(datetime.datetime.now(UTC), 1)[0].isoformat()
    assert [(p["batch_id"], p["amount_cents"], p["status"]) for p in views["Ada"]["payouts"]] == [
        (batch_id, net(1500), "SUCCESS")]
    assert (views["Bo"]["available_cents"], views["Bo"]["payouts"][0]["status"]) == (net(1000), "skipped")
    assert (views["Cy"]["available_cents"], views["Cy"]["paid_out_cents"]) == (net(1200), 0)
    assert views["Cy"]["payouts"][0]["returned"] is True
    assert (views["Di"]["available_cents"], views["Di"]["paid_out_cents"]) == (0, net(800))  # may still be claimed

    # The same command again pays nothing more.
    again = run_payout(system, instant)
    assert again["already_sent"] and again["paypal_batch_id"] == report["paypal_batch_id"]
    assert db.ledger.count_documents({"kind": "payout"}) == 3   # Ada's, Cy's and Di's items, once each
    assert the_only_batch_for(system.settings.paypal_url, batch_id) == report["paypal_batch_id"]

    # Di's 30 days run out: PayPal returns the money; the next look books it back, once.
    di_item = db.payouts.find_one({"_id": batch_id})["items"]
    di_item = next(i for i in di_item if i["member_id"] == di)["item_id"]
    paypal_control(system, "POST", f"/emulator/payouts-items/{di_item}/return")
    for _ in range(2):
        report = run_payout(system, instant)
    assert db.ledger.count_documents({"kind": "payout_returned"}) == 2
    assert db.ledger.find_one({"_id": f"payout-item:{di_item}:returned"})["entries"][1] == {
        "account": available(di), "amount_cents": net(800)}

    # What members were told.
    def mail_to(member):
        email = db.members.find_one({"_id": ObjectId(member)})["email"]
        return [m["subject"] for m in db.outbox.find({"to": email}).sort("created_at", 1)]
    assert wait_for(lambda: "Your interKanect payout is on its way" in mail_to(ada), "Ada's payout email")
    wait_for(lambda: "Add a PayPal payout email to get paid" in mail_to(bo), "Bo told to add a payout email")
    assert mail_to(bo).count("Add a PayPal payout email to get paid") == 1   # once, whatever the runs
    wait_for(lambda: "Your interKanect payout came back" in mail_to(cy), "Cy's returned-payout email")
    wait_for(lambda: "Your interKanect payout came back" in mail_to(di), "Di's returned-payout email")
    body = db.outbox.find_one({"to": db.members.find_one({"_id": ObjectId(ada)})["email"],
                               "subject": "Your interKanect payout is on its way"})["body"]
    assert "$13.99" in body


def test_an_operator_sees_a_payout_beyond_one_batch_sent_in_several_and_each_member_booked_once(
        database_url, tmp_path_factory):
    """Through the scheduler and the CLI, with batches of two items for five members."""
    system = start_system(database_url, tmp_path_factory.mktemp("parts"), paypal_payout_batch_items=2)
    try:
        db = system.db
        members = sorted(str(db.members.insert_one({"email": f"m{n}@example.com", "display_name": f"M{n}",
                                                    "payout_email": f"m{n}.pay@example.com"}).inserted_id)
                         for n in range(5))
        now = datetime.datetime.now(UTC)
        db.ledger.insert_many([dict(tip_transaction(f"call{n}", member, "caller1", f"TIP{n}", 1000, 84).document(),
                                    at=now) for n, member in enumerate(members)])
        instant = latest_payout_at_or_before(now)
        answer = system.cli("payouts", "run", "--at", instant.isoformat())
        assert answer.returncode == 0, answer.stderr
        ids = [payout_batch_id(instant, part) for part in (1, 2, 3)]
        assert f"{ids[0]} (" in answer.stdout and "sent, 5 members, $45.80" in answer.stdout, answer.stdout
        for batch_id, paid in zip(ids, ("2 members, $18.32", "2 members, $18.32", "1 members, $9.16")):
            assert f"batch {batch_id}: sent, {paid}" in answer.stdout, answer.stdout
        for batch_id, part in zip(ids, (members[:2], members[2:4], members[4:])):
            assert the_only_batch_for(system.settings.paypal_url, batch_id)
            assert sorted(t["_id"] for t in db.ledger.find({"kind": "payout", "_id": {"$regex": f"^payout:{batch_id}:"}})) \
                == [f"payout:{batch_id}:{member}" for member in part]
        again = system.cli("payouts", "run", "--at", instant.isoformat(), "--json")
        assert json.loads(again.stdout)["already_sent"] and db.ledger.count_documents({"kind": "payout"}) == 5
    finally:
        system.stop()   # not finish(): the tips were written straight to the ledger, PayPal never had them


def paypal_control(system, method, path):
    request = urllib.request.Request(system.settings.paypal_url + path, method=method, data=b"{}",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.load(answer)


def test_an_operator_gets_a_clear_error_for_a_moment_that_is_no_payout_instant(payout_system):
    answer = payout_system.cli("payouts", "run", "--at", "2026-11-27T10:00:00-08:00")
    assert answer.returncode != 0 and "is not a payout instant" in answer.stderr
    assert "2026-11-27T19:00:00-08:00" in answer.stderr


def test_earnings_need_a_logged_in_member(payout_system):
    async def scenario():
        answer = await Member(payout_system.url).request("GET", "/api/earnings")
        assert answer.code == 401 and answer.error_code == "not_logged_in"
    run(scenario())
