"""The money ledger alone: each money event of a call as a member and a caller would see it in
their balances, repeats that must not count twice, and random sequences of events that must
never create or lose a cent."""
import dataclasses

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from rules import fees
from rules.ledger import (PAYPAL_FEES, Entry, Ledger, LedgerError, Transaction, available, balances,
                           caller, capture_transaction, dispute_freeze_transaction, dispute_lost_transaction,
                           dispute_won_transaction, frozen, held_at_paypal_cents, paid_out, payout_amounts,
                           payout_returned_transaction, payout_transaction, pending, refund_transaction,
                           release_transaction, tip_transaction)

MEMBER, CALLER, CALL = "6a1", "6c2", "5f0c0ffee0ddba11c0ffee01"


def paid_call(ledger, call_id=CALL, capture_id="3C679366HH908993F", amount_cents=1000):
    """A $10.00 call payment captured, fee by the formula (84 cents): the member earns 916."""
    payment = fees.breakdown(amount_cents)
    ledger.apply(capture_transaction(call_id, MEMBER, CALLER, capture_id, amount_cents, payment.fee_cents))
    return payment


def release(ledger, call_id=CALL):
    ledger.apply(release_transaction(call_id, MEMBER, ledger.call_balance(call_id, pending(MEMBER))))


def member_view(ledger):
    all_ = ledger.balances()
    return {bucket: all_.get(f"member:{MEMBER}:{bucket}", 0) for bucket in ("pending", "available", "frozen",
                                                                            "paid_out")}


# --- a call's money, step by step ---------------------------------------------------------------

def test_a_payment_is_held_then_released_then_paid_out():
    ledger = Ledger()
    paid_call(ledger)
    assert member_view(ledger) == {"pending": 916, "available": 0, "frozen": 0, "paid_out": 0}
    assert ledger.balance(PAYPAL_FEES) == 84 and ledger.balance(caller(CALLER)) == -1000
    assert held_at_paypal_cents(ledger.balances()) == 916
    release(ledger)
    assert member_view(ledger) == {"pending": 0, "available": 916, "frozen": 0, "paid_out": 0}
    ledger.apply(payout_transaction("interkanect-payout-2026-11-27", payout_amounts(ledger.balances())))
    assert member_view(ledger) == {"pending": 0, "available": 0, "frozen": 0, "paid_out": 916}
    assert held_at_paypal_cents(ledger.balances()) == 0


def test_a_tip_is_available_at_once():
    ledger = Ledger()
    tip = fees.breakdown(500)
    ledger.apply(tip_transaction(CALL, MEMBER, CALLER, "TIP1", 500, tip.fee_cents))
    assert member_view(ledger)["available"] == tip.net_cents == 434
    assert ledger.call_balance(CALL, pending(MEMBER)) == 0   # nothing of it waits for a refund decision


def test_an_approved_refund_returns_each_payment_minus_its_fee_and_not_the_tip():
    ledger = Ledger()
    first = paid_call(ledger, capture_id="CAP1", amount_cents=1000)
    extension = paid_call(ledger, capture_id="CAP2", amount_cents=2500)
    ledger.apply(tip_transaction(CALL, MEMBER, CALLER, "TIP1", 500, fees.paypal_fee_cents(500)))
    for refund_id, payment in (("R1", first), ("R2", extension)):
        ledger.apply(refund_transaction(CALL, MEMBER, CALLER, refund_id, payment.net_cents,
                                        ledger.call_balance(CALL, pending(MEMBER))))
    assert member_view(ledger) == {"pending": 0, "available": 434, "frozen": 0, "paid_out": 0}
    # The caller is out of pocket by the two fees and the tip; PayPal keeps every fee.
    assert ledger.balance(caller(CALLER)) == -(first.fee_cents + extension.fee_cents + 500)
    assert ledger.balance(PAYPAL_FEES) == first.fee_cents + extension.fee_cents + 66


def test_a_refund_after_the_payout_leaves_a_debt_recovered_from_later_earnings():
    ledger = Ledger()
    paid_call(ledger)
    release(ledger)
    ledger.apply(payout_transaction("B1", payout_amounts(ledger.balances())))
    ledger.apply(refund_transaction(CALL, MEMBER, CALLER, "R1", 916, ledger.call_balance(CALL, pending(MEMBER))))
    assert member_view(ledger) == {"pending": 0, "available": -916, "frozen": 0, "paid_out": 916}
    assert payout_amounts(ledger.balances()) == {}           # a debt is not asked back, just not paid
    paid_call(ledger, call_id="CALL2", capture_id="CAP2", amount_cents=2000)   # net 1881
    release(ledger, "CALL2")
    assert payout_amounts(ledger.balances()) == {MEMBER: 1881 - 916}
    ledger.apply(payout_transaction("B2", payout_amounts(ledger.balances())))
    assert member_view(ledger) == {"pending": 0, "available": 0, "frozen": 0, "paid_out": 916 + 965}
    assert sum(ledger.balances().values()) == 0
    # The platform fronted the refund: PayPal holds nothing for the member, everything balanced.
    assert held_at_paypal_cents(ledger.balances()) == 0


def test_a_payout_item_that_comes_back_is_available_again_once():
    ledger = Ledger()
    paid_call(ledger)
    release(ledger)
    ledger.apply(payout_transaction("B1", {MEMBER: 916}))
    assert ledger.apply(payout_returned_transaction("ITEM1", MEMBER, 916))        # UNCLAIMED, cancelled
    assert not ledger.apply(payout_returned_transaction("ITEM1", MEMBER, 916))    # then RETURNED: same item
    assert member_view(ledger) == {"pending": 0, "available": 916, "frozen": 0, "paid_out": 0}


def test_a_dispute_freezes_the_call_and_a_win_puts_the_money_back_where_it_was():
    ledger = Ledger()
    paid_call(ledger)
    freeze = dispute_freeze_transaction(CALL, MEMBER, "PP-D-1", 916, ledger.call_balance(CALL, pending(MEMBER)))
    ledger.apply(freeze)
    assert member_view(ledger) == {"pending": 0, "available": 0, "frozen": 916, "paid_out": 0}
    ledger.apply(dispute_won_transaction(freeze, "PP-D-1"))
    assert member_view(ledger) == {"pending": 916, "available": 0, "frozen": 0, "paid_out": 0}


def test_a_dispute_after_release_freezes_from_available_and_a_loss_costs_the_gross_and_the_fee():
    ledger = Ledger()
    paid_call(ledger)
    release(ledger)
    ledger.apply(dispute_freeze_transaction(CALL, MEMBER, "PP-D-1", 916, ledger.call_balance(CALL, pending(MEMBER))))
    assert member_view(ledger) == {"pending": 0, "available": 0, "frozen": 916, "paid_out": 0}
    ledger.apply(dispute_lost_transaction(CALL, MEMBER, CALLER, "PP-D-1", reversed_cents=1000, frozen_cents=916,
                                          dispute_fee_cents=2000))
    assert member_view(ledger) == {"pending": 0, "available": -84 - 2000, "frozen": 0, "paid_out": 0}
    assert ledger.balance(caller(CALLER)) == 0
    # Won and lost are one resolution: the second one is refused.
    with pytest.raises(LedgerError):
        ledger.apply(dispute_won_transaction(ledger.get("dispute:PP-D-1:freeze"), "PP-D-1"))


# --- repeats -------------------------------------------------------------------------------------

def test_the_same_capture_told_twice_counts_once():
    ledger = Ledger()
    by_response = capture_transaction(CALL, MEMBER, CALLER, "CAP1", 1000, 84)
    by_webhook = capture_transaction(CALL, MEMBER, CALLER, "CAP1", 1000, 84)
    assert ledger.apply(by_response) is True
    before = ledger.balances()
    assert ledger.apply(by_webhook) is False
    assert ledger.balances() == before and len(ledger.transactions) == 1


def test_the_same_key_with_other_entries_is_refused():
    ledger = Ledger([capture_transaction(CALL, MEMBER, CALLER, "CAP1", 1000, 84)])
    with pytest.raises(LedgerError) as refused:
        ledger.apply(capture_transaction(CALL, MEMBER, CALLER, "CAP1", 1000, 83))
    assert refused.value.code == "key_reused"
    assert ledger.balance(PAYPAL_FEES) == 84



def test_a_late_capture_goes_back_to_the_caller_whole_and_the_platform_pays_the_fee():
    from rules.ledger import PLATFORM_COSTS, late_capture_refund_transaction
    ledger = Ledger()
    payment = paid_call(ledger, capture_id="LATE1", amount_cents=1500)      # fee 101, net 1399
    returned = late_capture_refund_transaction(CALL, MEMBER, CALLER, "LATE1", 1500, payment.fee_cents)
    assert ledger.apply(returned) is True
    assert ledger.apply(late_capture_refund_transaction(CALL, MEMBER, CALLER, "LATE1", 1500, 101)) is False
    totals = ledger.balances()
    assert totals[caller(CALLER)] == 0                                      # paid 15.00, got 15.00 back
    assert member_view(ledger) == {"pending": 0, "available": 0, "frozen": 0, "paid_out": 0}
    assert totals[PAYPAL_FEES] == 101 and totals[PLATFORM_COSTS] == -101     # PayPal kept it; we paid it
    assert held_at_paypal_cents(totals) == 0 and sum(totals.values()) == 0
    assert returned.key == "capture:LATE1:late-refund" and returned.call_id == CALL


@pytest.mark.parametrize("amount, fee", [(0, 0), (1000, 1001), (1000, -1), (1000, 8.4), (True, 0)])
def test_a_late_capture_refund_refuses_amounts_that_make_no_sense(amount, fee):
    from rules.ledger import late_capture_refund_transaction
    with pytest.raises(LedgerError):
        late_capture_refund_transaction(CALL, MEMBER, CALLER, "LATE1", amount, fee)

# --- what a transaction may be -----------------------------------------------------------------

@pytest.mark.parametrize("entries, code", [
    ((Entry("a", 5), Entry("b", -4)), "unbalanced"),
    ((), "empty_transaction"),
    ((Entry("a", 0),), "invalid_amount"),
    ((Entry("a", 0.5), Entry("b", -0.5)), "invalid_amount"),
    ((Entry("a", True), Entry("b", -1)), "invalid_amount"),
])
def test_a_transaction_that_would_create_or_lose_money_is_refused(entries, code):
    with pytest.raises(LedgerError) as refused:
        Transaction("k", "refund", entries)
    assert refused.value.code == code


@pytest.mark.parametrize("build", [
    lambda: capture_transaction(CALL, MEMBER, CALLER, "CAP1", 1000, 1001),
    lambda: capture_transaction(CALL, MEMBER, CALLER, "CAP1", 0, 0),
    lambda: capture_transaction(CALL, "member:x", CALLER, "CAP1", 1000, 84),
    lambda: payout_transaction("B1", {MEMBER: -5}),
    lambda: refund_transaction(CALL, MEMBER, CALLER, "R1", 10.0, 0),
    lambda: dispute_lost_transaction(CALL, MEMBER, CALLER, "D1", 1000, -1),
])
def test_builders_refuse_amounts_and_ids_that_make_no_sense(build):
    with pytest.raises(LedgerError):
        build()


def test_entries_cannot_be_edited_and_survive_storage_unchanged():
    transaction = capture_transaction(CALL, MEMBER, CALLER, "CAP1", 1000, 84)
    with pytest.raises(dataclasses.FrozenInstanceError):
        transaction.entries[0].amount_cents = 1
    assert Transaction.from_document(transaction.document()) == transaction
    assert transaction.document()["_id"] == "capture:CAP1"


def test_balances_sum_entries():
    entries = [Entry("a", 5), Entry("b", -5), Entry("a", -2), Entry("c", 2)]
    assert balances(entries) == {"a": 3, "b": -5, "c": 2}


# --- random sequences of money events -------------------------------------------------------------

MEMBERS, CALLERS = ("m1", "m2", "m3"), ("c1", "c2")
AMOUNTS = st.integers(min_value=fees.DEFAULT_MIN_PAYMENT_CENTS, max_value=500_000)


class MoneyEvents(RuleBasedStateMachine):
    """Captures, tips, releases, refunds, payouts, returned items and disputes in any order the
    product allows, each sometimes told twice. The tallies are kept from the events, not from
    the entries, so the invariants check the ledger against an independent account."""

    @initialize()
    def start(self):
        self.ledger = Ledger()
        self.calls = {}            # call_id -> dict(member, caller, captures, released, dispute)
        self.items = []            # [item_id, member, cents, returned]
        self.tally = dict(gross=0, fees=0, refunds=0, payouts=0, returns=0, reversals=0)
        self.paid_by = {c: 0 for c in CALLERS}        # what each caller is out of pocket
        self.paid_to = {m: 0 for m in MEMBERS}        # what reached each member's PayPal account
        self.serial = 0
        self.seen = ()

    def next_id(self, prefix):
        self.serial += 1
        return f"{prefix}{self.serial}"

    def apply(self, transaction):
        assert sum(e.amount_cents for e in transaction.entries) == 0
        assert self.ledger.apply(transaction) is True

    def call_pending(self, call_id):
        return self.ledger.call_balance(call_id, pending(self.calls[call_id]["member"]))

    def capture(self, build, call_id, amount_cents, reported_fee):
        call = self.calls[call_id]
        payment = fees.breakdown(amount_cents, reported_fee)
        capture_id = self.next_id("CAP")
        self.apply(build(call_id, call["member"], call["caller"], capture_id, amount_cents, payment.fee_cents))
        self.tally["gross"] += amount_cents
        self.tally["fees"] += payment.fee_cents
        self.paid_by[call["caller"]] += amount_cents
        return capture_id, payment

    @rule(member=st.sampled_from(MEMBERS), payer=st.sampled_from(CALLERS), amount=AMOUNTS,
          reported=st.none() | st.integers(min_value=0, max_value=200))
    def call_paid(self, member, payer, amount, reported):
        call_id = self.next_id("CALL")
        self.calls[call_id] = dict(member=member, caller=payer, captures={}, released=False, dispute=None)
        capture_id, payment = self.capture(capture_transaction, call_id, amount, reported)
        self.calls[call_id]["captures"][capture_id] = dict(net=payment.net_cents, refunded=False)

    @precondition(lambda self: self.calls)
    @rule(data=st.data(), amount=AMOUNTS, tip=st.booleans())
    def extension_or_tip(self, data, amount, tip):
        call_id = data.draw(st.sampled_from(sorted(self.calls)))
        if tip:
            self.capture(tip_transaction, call_id, amount, None)
        elif not self.calls[call_id]["released"]:
            capture_id, payment = self.capture(capture_transaction, call_id, amount, None)
            self.calls[call_id]["captures"][capture_id] = dict(net=payment.net_cents, refunded=False)

    @precondition(lambda self: self.calls)
    @rule(data=st.data())
    def hold_over(self, data):
        call_id = data.draw(st.sampled_from(sorted(self.calls)))
        call = self.calls[call_id]
        if call["released"] or call["dispute"] or self.call_pending(call_id) <= 0:
            return
        self.apply(release_transaction(call_id, call["member"], self.call_pending(call_id)))
        call["released"] = True

    @precondition(lambda self: self.calls)
    @rule(data=st.data())
    def refund_approved(self, data):
        call_id = data.draw(st.sampled_from(sorted(self.calls)))
        call = self.calls[call_id]
        for capture in call["captures"].values():
            if not capture["refunded"] and capture["net"] > 0:
                self.apply(refund_transaction(call_id, call["member"], call["caller"], self.next_id("R"),
                                              capture["net"], self.call_pending(call_id)))
                capture["refunded"] = True
                self.tally["refunds"] += capture["net"]
                self.paid_by[call["caller"]] -= capture["net"]

    @rule()
    def payout(self):
        amounts = payout_amounts(self.ledger.balances())
        if not amounts:
            return
        self.apply(payout_transaction(self.next_id("BATCH"), amounts))
        for member_id, cents in amounts.items():
            assert self.ledger.balance(available(member_id)) == 0
            self.items.append([self.next_id("ITEM"), member_id, cents, False])
            self.tally["payouts"] += cents
            self.paid_to[member_id] += cents

    @precondition(lambda self: any(not item[3] for item in self.items))
    @rule(data=st.data())
    def payout_item_returned(self, data):
        item = data.draw(st.sampled_from([item for item in self.items if not item[3]]))
        item_id, member_id, cents, _ = item
        self.apply(payout_returned_transaction(item_id, member_id, cents))
        item[3] = True
        self.tally["returns"] += cents
        self.paid_to[member_id] -= cents

    @precondition(lambda self: any(call["dispute"] is None for call in self.calls.values()))
    @rule(data=st.data(), cents=st.integers(min_value=1, max_value=500_000))
    def dispute_opened(self, data, cents):
        call_id = data.draw(st.sampled_from(sorted(c for c, call in self.calls.items() if call["dispute"] is None)))
        call = self.calls[call_id]
        dispute_id = self.next_id("PP-D-")
        self.apply(dispute_freeze_transaction(call_id, call["member"], dispute_id, cents, self.call_pending(call_id)))
        call["dispute"] = dict(id=dispute_id, frozen=cents, open=True)

    @precondition(lambda self: any(call["dispute"] and call["dispute"]["open"] for call in self.calls.values()))
    @rule(data=st.data(), won=st.booleans(), reversed_cents=AMOUNTS, fee_cents=st.sampled_from([0, 2000]))
    def dispute_resolved(self, data, won, reversed_cents, fee_cents):
        call_id = data.draw(st.sampled_from(sorted(c for c, call in self.calls.items()
                                                   if call["dispute"] and call["dispute"]["open"])))
        call, dispute = self.calls[call_id], self.calls[call_id]["dispute"]
        if won:
            self.apply(dispute_won_transaction(self.ledger.get(f"dispute:{dispute['id']}:freeze"), dispute["id"]))
        else:
            self.apply(dispute_lost_transaction(call_id, call["member"], call["caller"], dispute["id"], reversed_cents,
                                                dispute["frozen"], fee_cents))
            self.tally["reversals"] += reversed_cents
            self.tally["fees"] += fee_cents
            self.paid_by[call["caller"]] -= reversed_cents
        dispute["open"] = False

    @precondition(lambda self: self.ledger.transactions)
    @rule(data=st.data())
    def told_again(self, data):
        """A webhook redelivered, a response retried: the same money event once more."""
        transaction = data.draw(st.sampled_from(self.ledger.transactions))
        before = self.ledger.transactions
        assert self.ledger.apply(Transaction.from_document(transaction.document())) is False
        assert self.ledger.transactions == before

    # Invariants ----------------------------------------------------------------------------

    @invariant()
    def no_money_is_created_or_lost(self):
        all_ = self.ledger.balances()
        assert sum(all_.values()) == 0
        t = self.tally
        assert held_at_paypal_cents(all_) == (t["gross"] - t["fees"] - t["refunds"] - t["payouts"] + t["returns"]
                                              - t["reversals"])
        assert all_.get(PAYPAL_FEES, 0) == t["fees"]
        assert all(all_.get(caller(c), 0) == -self.paid_by[c] for c in CALLERS)
        assert all(all_.get(paid_out(m), 0) == self.paid_to[m] for m in MEMBERS)

    @invariant()
    def every_balance_is_the_sum_of_its_entries(self):
        entries = self.ledger.entries()
        for account, cents in self.ledger.balances().items():
            assert cents == sum(e.amount_cents for e in entries if e.account == account)
        for transaction in self.ledger.transactions:
            assert sum(e.amount_cents for e in transaction.entries) == 0

    @invariant()
    def held_money_is_never_negative_and_frozen_only_while_disputed(self):
        all_ = self.ledger.balances()
        for member_id in MEMBERS:
            assert all_.get(pending(member_id), 0) >= 0
            # Frozen is exactly what open disputes hold: a resolved one leaves nothing behind.
            assert all_.get(frozen(member_id), 0) == sum(
                call["dispute"]["frozen"] for call in self.calls.values()
                if call["member"] == member_id and call["dispute"] and call["dispute"]["open"])
        for call_id in self.calls:
            assert self.call_pending(call_id) >= 0

    @invariant()
    def nothing_written_is_ever_changed(self):
        now = self.ledger.transactions
        assert now[:len(self.seen)] == self.seen
        self.seen = now


TestMoneyEvents = MoneyEvents.TestCase
TestMoneyEvents.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)


# --- a member's upgrade subscription ---------------------------------------------------------------

def test_a_subscription_payment_is_platform_revenue_and_never_a_members_earnings():
    from rules.ledger import PLATFORM_REVENUE, subscriber, subscription_transaction
    ledger = Ledger()
    paid_call(ledger)                                                       # the member also earns as a host
    before = member_view(ledger)
    cycle = subscription_transaction(MEMBER, "80021663DE681814L", 999, 84)  # $9.99, fee 0.35 + 0.49
    assert ledger.apply(cycle) is True
    assert ledger.apply(subscription_transaction(MEMBER, "80021663DE681814L", 999, 84)) is False  # webhook again
    totals = ledger.balances()
    assert totals[subscriber(MEMBER)] == -999 and totals[PLATFORM_REVENUE] == 915
    assert member_view(ledger) == before and payout_amounts(totals) == {}  # nothing of it is held or paid out
    assert held_at_paypal_cents(totals) == 916 and sum(totals.values()) == 0
    assert cycle.key == "sale:80021663DE681814L" and cycle.kind == "subscription" and cycle.call_id is None


@pytest.mark.parametrize("amount, fee, sale", [(0, 0, "S1"), (999, 1000, "S1"), (999, -1, "S1"), (9.99, 0, "S1"),
                                               (999, 84, ""), (999, 84, "a:b")])
def test_a_subscription_payment_refuses_amounts_and_ids_that_make_no_sense(amount, fee, sale):
    from rules.ledger import subscription_transaction
    with pytest.raises(LedgerError):
        subscription_transaction(MEMBER, sale, amount, fee)
