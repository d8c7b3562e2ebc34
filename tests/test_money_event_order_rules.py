"""PayPal's money events for a call in any order, any of them more than once (issue 12): a
capture booked twice, refunds made on PayPal's dashboard, our own refunds settling, disputes
opened, updated and resolved either way with a fee, and the payout run releasing and paying the
call's earnings. The refunds actor's own code applies each event (actors/money_events.py, with
actors/disputes.py and actors/external_refunds.py, over an in-memory database),
our refunds go through refund_rules.Settlement and the payout run's release through its rules;
every write goes through ledger_store. A model of PayPal decides what really happened, so the
ledger can be held to it: it may lag behind PayPal, never run ahead of it."""
import datetime

import pytest
from hypothesis import event, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from pymongo.errors import DuplicateKeyError

from actors import external_refunds, ledger_store, money_events
from rules import dispute_rules, fees, ledger, payout_rules, refund_rules
from rules.ledger import Ledger, Transaction
from rules.refund_rules import Settlement
from interkanect.paypal import PayPalError
from tests.test_refund_rules import MemoryStore

UTC = datetime.timezone.utc
ENDED = datetime.datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
HOLD_S = 24 * 3600
HOST = "host"
REFUNDED = external_refunds.EVENT_TYPE
CAPTURED = "PAYMENT.CAPTURE.COMPLETED"
DISPUTE = "CUSTOMER.DISPUTE."
# PayPal's dispute fee, when it charges one (the emulator's is $15.00).
DISPUTE_FEES_CENTS = (0, 1500, 2000)
AMOUNTS = st.integers(min_value=fees.DEFAULT_MIN_PAYMENT_CENTS, max_value=30_000)


def value(cents):
    return f"{cents // 100}.{cents % 100:02d}"


def money(cents):
    return {"currency_code": "USD", "value": value(cents)}


# The database the handlers use, in memory -----------------------------------------------------

class LedgerCollection:
    """The `ledger` collection as ledger_store and the handlers use it: a unique _id, the
    stored documents read back, and the call-pending aggregation. Keeps every insert refused
    with other content than the stored one (`conflicts`): none may be booked silently."""

    def __init__(self, book):
        self.book = book
        self.conflicts = []

    def _insert(self, document):
        transaction = Transaction.from_document(document)
        stored = self.book.get(transaction.key)
        if stored is not None:
            if stored != transaction:
                self.conflicts.append((stored, transaction))
            raise DuplicateKeyError(f"E11000 duplicate key {transaction.key}")
        self.book.apply(transaction)

    def _find_one(self, query):
        stored = self.book.get(query["_id"])
        return None if stored is None else stored.document()

    def _pending(self, pipeline):
        # The one aggregation asked of it: a call's sum on one account (actors/disputes.py).
        match = pipeline[0]["$match"]
        call_id, account = match["call_id"], match["entries.account"]
        touched = any(t.call_id == call_id and any(e.account == account for e in t.entries)
                      for t in self.book.transactions)
        return [{"_id": None, "cents": self.book.call_balance(call_id, account)}] if touched else []


class SyncLedger:
    def __init__(self, collection):
        self.collection = collection

    def insert_one(self, document, session=None):
        self.collection._insert(document)

    def find_one(self, query, projection=None):
        return self.collection._find_one(query)

    def aggregate(self, pipeline):
        return self.collection._pending(pipeline)


class Orders:
    """Our orders as the handlers read them: each capture's order is ours (found by its id, its
    capture not acted on yet when the ledger lacks it); no late captures here, so no order is
    being refunded whole by the platform (none found by capture id)."""

    def __init__(self, paypal):
        self.paypal = paypal

    def find_one(self, query, projection=None):
        ours = query.get("_id") in {c["order"] for c in self.paypal.captures.values()}
        return {"_id": query["_id"]} if ours else None


class RefundRequests:
    """Our refund requests as money_events reads them: the one whose plan holds a refund id."""

    def __init__(self, store):
        self.store = store

    def find_one(self, query, projection=None):
        refund_id = query["plan.refund_id"]
        for request_id, document in self.store.documents.items():
            if any(item.get("refund_id") == refund_id for item in document.get("plan", ())):
                return {"_id": request_id}
        return None


class SyncDb:
    def __init__(self, collection, paypal):
        self.ledger, self.orders = SyncLedger(collection), Orders(paypal)


# PayPal, as the truth the ledger is held to ----------------------------------------------------

class PayPalRefusal(Exception):
    def __init__(self, issue):
        super().__init__(issue)
        self.issue = issue


class PayPal:
    """Captures, their refunds and disputes as PayPal keeps them, and every webhook it sent
    (`outbox`, in the order sent). It refuses what PayPal refuses: more than is left of a
    capture, a refund while a dispute is open."""

    def __init__(self):
        self.captures = {}         # capture_id -> dict(call_id, caller, kind, amount, fee, refunds, dispute)
        self.outbox = []
        self.by_request_id = {}
        self.serial = 0

    def next_id(self, prefix):
        self.serial += 1
        return f"{prefix}{self.serial}"

    def captured(self, capture_id, call_id, caller_id, kind, amount_cents):
        fee_cents = fees.breakdown(amount_cents).fee_cents
        self.captures[capture_id] = dict(call_id=call_id, caller=caller_id, kind=kind, amount=amount_cents,
                                         fee=fee_cents, refunds={}, dispute=None, order=f"ORDER-{capture_id}")
        self.send(CAPTURED, {"id": capture_id, "status": "COMPLETED", "amount": money(amount_cents)})

    def send(self, event_type, resource):
        self.outbox.append({"id": self.next_id("WH-"), "event_type": event_type, "resource": resource})

    def left_cents(self, capture_id):
        capture = self.captures[capture_id]
        dispute = capture["dispute"]
        reversed_cents = dispute["reversed"] if dispute else 0
        return capture["amount"] - sum(capture["refunds"].values()) - reversed_cents

    def disputed(self, capture_id):
        dispute = self.captures[capture_id]["dispute"]
        return dispute is not None and dispute["status"] != "RESOLVED"

    def refundable(self, capture_id):
        return self.left_cents(capture_id) > 0 and not self.disputed(capture_id)

    def disputable(self, capture_id):
        """One dispute per capture here, on what is left of it."""
        return self.left_cents(capture_id) > 0 and self.captures[capture_id]["dispute"] is None

    def refund(self, capture_id, cents, refund_id=None):
        if self.disputed(capture_id):
            raise PayPalRefusal("TRANSACTION_DISPUTED")
        left = self.left_cents(capture_id)
        if left == 0:
            raise PayPalRefusal(refund_rules.FULLY_REFUNDED)
        if cents > left:
            raise PayPalRefusal("REFUND_AMOUNT_EXCEEDED")
        refund_id = refund_id or self.next_id("REF")
        self.captures[capture_id]["refunds"][refund_id] = cents
        self.send(REFUNDED, {"id": refund_id, "status": "COMPLETED", "amount": money(cents), "links": [
            {"rel": "up", "href": f"https://api-m.paypal.com/v2/payments/captures/{capture_id}"}]})
        return refund_id

    # Settlement's PayPal port: a request id PayPal saw answers its first refund.
    def refund_capture(self, capture_id, request_id, amount_cents, note_to_payer):
        if request_id not in self.by_request_id:
            self.by_request_id[request_id] = self.refund(capture_id, amount_cents)
        return {"refund_id": self.by_request_id[request_id], "status": refund_rules.REFUND_COMPLETED}

    def get_refund(self, refund_id):
        return {"refund_id": refund_id, "status": refund_rules.REFUND_COMPLETED}

    # The refunds actor's capture reader (interkanect/paypal/payments.py get_capture).
    def get_capture(self, capture_id):
        if capture_id not in self.captures:
            raise PayPalError("RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "no such capture", 404)
        return {"capture_id": capture_id, "order_id": self.captures[capture_id]["order"]}

    def open_dispute(self, capture_id, amount_cents):
        self.captures[capture_id]["dispute"] = dict(id=self.next_id("PP-D-"), amount=amount_cents, status="OPEN",
                                                    outcome=None, refunded=None, fee=0, reversed=0)
        self.send(DISPUTE + "CREATED", self.dispute_resource(capture_id))

    def resolve_dispute(self, capture_id, outcome, refunded_cents=None, fee_cents=0):
        """`refunded_cents`: what PayPal says the buyer got back of a dispute they won (None: the
        disputed amount, unsaid)."""
        dispute = self.captures[capture_id]["dispute"]
        lost = outcome in dispute_rules.LOST_OUTCOMES
        refunded_cents = refunded_cents if lost else None
        dispute.update(status="RESOLVED", outcome=outcome, refunded=refunded_cents, fee=fee_cents,
                       reversed=(refunded_cents or dispute["amount"]) if lost else 0)
        self.send(DISPUTE + "RESOLVED", self.dispute_resource(capture_id))

    def dispute_resource(self, capture_id):
        capture = self.captures[capture_id]
        dispute = capture["dispute"]
        resource = {"dispute_id": dispute["id"], "status": dispute["status"],
                    "dispute_amount": money(dispute["amount"]),
                    "disputed_transactions": [{"seller_transaction_id": capture_id}]}
        if dispute["status"] == "RESOLVED":
            resource["dispute_outcome"] = {"outcome_code": dispute["outcome"]}
            if dispute["refunded"] is not None:
                resource["dispute_outcome"]["amount_refunded"] = money(dispute["refunded"])
            if dispute["fee"]:
                resource["money_movements"] = [{"affected_party": "SELLER", "type": "DEBIT",
                                                "reason": "DISPUTE_FEE", "amount": money(dispute["fee"])}]
        return resource

    def back_to_caller_cents(self, call_id):
        """What PayPal gave the caller of this call back: refunds and lost disputes."""
        return sum(sum(c["refunds"].values()) + (c["dispute"]["reversed"] if c["dispute"] else 0)
                   for c in self.captures.values() if c["call_id"] == call_id)

    def fees_cents(self):
        return sum(c["fee"] + (c["dispute"]["fee"] if c["dispute"] and c["dispute"]["status"] == "RESOLVED" else 0)
                   for c in self.captures.values())


# The platform's side ------------------------------------------------------------------------

class Crash(Exception):
    pass


class RefundStore(MemoryStore):
    """Settlement's store (tests/test_refund_rules.py's) over the shared ledger, booking as the
    refunds actor does: through ledger_store, a refund under a used key standing as booked."""

    def __init__(self, db, book):
        self.documents, self.ledger, self.mailed = {}, book, []
        self.db = db
        self.die_after_paypal = False

    def refund_started(self, request_id, index, refund_id, status):
        if self.die_after_paypal:   # PayPal refunded; its refund id was never stored
            self.die_after_paypal = False
            raise Crash()
        super().refund_started(request_id, index, refund_id, status)

    def book(self, transaction, now):
        try:
            return ledger_store.book(self.db, transaction, now)
        except ledger_store.KeyReused:
            return False   # actors/refunds.py: booked first as an outside refund


class MoneyEventOrder(RuleBasedStateMachine):
    """One or two paid calls of one host (each with its own caller, maybe a tip), PayPal doing
    what it may to their captures, and its webhooks delivered in any order, any of them again."""

    @initialize(calls=st.lists(st.tuples(AMOUNTS, st.none() | AMOUNTS), min_size=1, max_size=2))
    def paid_calls(self, calls):
        self.book = Ledger()
        self.collection = LedgerCollection(self.book)
        self.paypal = PayPal()
        self.sync_db = SyncDb(self.collection, self.paypal)
        self.store = RefundStore(self.sync_db, self.book)
        self.sync_db.refund_requests = RefundRequests(self.store)
        self.settlement = Settlement(self.store, self.paypal, lambda *mail: None, retry_s=60)
        self.now = ENDED + datetime.timedelta(seconds=HOLD_S)
        self.calls = {}
        self.acknowledged = set()
        self.asked_again = set()   # events that waited because their capture was not booked yet
        self.lowest_available = 0
        for n, (amount_cents, tip_cents) in enumerate(calls, 1):
            call_id = f"call{n}"
            self.calls[call_id] = dict(caller=f"caller{n}", request=None)
            self.paypal.captured(f"CAP{n}", call_id, f"caller{n}", ledger.CALL_PAYMENT, amount_cents)
            if tip_cents is not None:
                self.paypal.captured(f"TIP{n}", call_id, f"caller{n}", ledger.TIP, tip_cents)

    # What PayPal does ---------------------------------------------------------------------------

    def captures(self, test):
        return sorted(capture_id for capture_id in self.paypal.captures if test(capture_id))

    @precondition(lambda self: self.captures(self.paypal.refundable))
    @rule(data=st.data(), whole=st.booleans())
    def refund_on_paypals_dashboard(self, data, whole):
        capture_id = data.draw(st.sampled_from(self.captures(self.paypal.refundable)))
        left = self.paypal.left_cents(capture_id)
        self.paypal.refund(capture_id, left if whole else data.draw(st.integers(1, left)), self.paypal.next_id("DASH"))

    @precondition(lambda self: self.captures(self.paypal.disputable))
    @rule(data=st.data())
    def dispute_opened(self, data):
        capture_id = data.draw(st.sampled_from(self.captures(self.paypal.disputable)))
        self.paypal.open_dispute(capture_id, data.draw(st.integers(1, self.paypal.left_cents(capture_id))))

    @precondition(lambda self: self.captures(self.paypal.disputed))
    @rule(data=st.data())
    def dispute_updated(self, data):
        capture_id = data.draw(st.sampled_from(self.captures(self.paypal.disputed)))
        self.paypal.captures[capture_id]["dispute"]["status"] = "WAITING_FOR_SELLER_RESPONSE"
        self.paypal.send(DISPUTE + "UPDATED", self.paypal.dispute_resource(capture_id))

    @precondition(lambda self: self.captures(self.paypal.disputed))
    @rule(data=st.data(), outcome=st.sampled_from(["RESOLVED_BUYER_FAVOUR", "ACCEPTED", "RESOLVED_SELLER_FAVOUR",
                                                   "CANCELED_BY_BUYER", "RESOLVED_WITH_PAYOUT"]),
          says_refunded=st.booleans(), fee_cents=st.sampled_from(DISPUTE_FEES_CENTS))
    def dispute_resolved(self, data, outcome, says_refunded, fee_cents):
        capture_id = data.draw(st.sampled_from(self.captures(self.paypal.disputed)))
        amount = self.paypal.captures[capture_id]["dispute"]["amount"]
        refunded = data.draw(st.integers(1, amount)) if says_refunded else None
        self.paypal.resolve_dispute(capture_id, outcome, refunded, fee_cents)

    # What the platform does ----------------------------------------------------------------------

    def call_transactions(self, call_id):
        return [t for t in self.book.transactions if t.call_id == call_id]

    @precondition(lambda self: any(call["request"] is None for call in self.calls.values()))
    @rule(data=st.data())
    def refund_approved(self, data):
        self.approve(data.draw(st.sampled_from(sorted(c for c, call in self.calls.items() if call["request"] is None))))

    def approve(self, call_id):
        """The caller asks, an operator approves: the plan is read from the ledger now."""
        payments = refund_rules.call_payments(self.call_transactions(call_id))
        if not any(refund_rules.refund_cents(payment) > 0 for payment in payments):
            return   # nothing_to_refund: no request can be made
        call = self.calls[call_id]
        request_id = f"r-{call_id}"
        document = refund_rules.new_request(request_id, {
            "_id": call_id, "host_id": HOST, "caller_id": call["caller"], "host_name": "Ada", "caller_name": "Bo"},
            "no show", payments, ENDED, 7)
        document.update(refund_rules.decision_fields("approve", "", None, payments, request_id, ENDED))
        self.store.documents[request_id] = document
        call["request"] = request_id

    @precondition(lambda self: any(call["request"] for call in self.calls.values()))
    @rule(data=st.data(), dies=st.booleans())
    def refund_settled(self, data, dies):
        """The refunds actor's sweep; `dies` right after PayPal refunded, before its id was
        stored (the webhook for it then looks like an outside refund)."""
        request_id = data.draw(st.sampled_from(sorted(c["request"] for c in self.calls.values() if c["request"])))
        self.settle(request_id, dies=dies)

    def settle(self, request_id, dies=False, read_now=False):
        self.store.die_after_paypal = dies
        self.now += datetime.timedelta(days=1)   # whatever waits for a retry is due
        try:
            self.settlement.settle(request_id, self.now, read_now)
        except Crash:
            pass
        self.store.die_after_paypal = False

    @rule()
    def payout_run(self):
        """Release what is due (payout_rules), then pay each positive available balance."""
        pending = {(call_id, HOST): self.book.call_balance(call_id, ledger.pending(HOST)) for call_id in self.calls}
        open_requests = {call_id for call_id, call in self.calls.items() if call["request"]
                         and self.store.documents[call["request"]]["state"] == refund_rules.OPEN}
        dispute_keys = {call_id: [t.key for t in self.call_transactions(call_id) if t.kind in (
            ledger.DISPUTE_FREEZE, ledger.DISPUTE_WON, ledger.DISPUTE_LOST)] for call_id in self.calls}
        held = open_requests | payout_rules.open_dispute_calls(dispute_keys)
        due = payout_rules.releases_due(pending, {call_id: ENDED for call_id in self.calls}, held, HOLD_S, self.now)
        for release in due:
            try:
                ledger_store.book(self.sync_db, ledger.release_transaction(release.call_id, release.member_id,
                                                                           release.amount_cents), self.now)
            except ledger_store.KeyReused:
                pass   # payout_rules: "cannot release call": the conflict is kept and checked below
        for member_id, cents in ledger.payout_amounts(self.book.balances()).items():
            ledger_store.book(self.sync_db, ledger.payout_item_transaction(self.paypal.next_id("batch"), member_id,
                                                                           cents), self.now)

    # Deliveries ----------------------------------------------------------------------------------

    @precondition(lambda self: self.paypal.outbox)
    @rule(data=st.data())
    def webhook_delivered(self, data):
        """Any event PayPal sent, whether delivered before or not."""
        self.deliver(data.draw(st.sampled_from(self.paypal.outbox)))

    def deliver(self, event):
        """What the refunds actor does with a recorded event: True when applied, False when it
        waits to be applied again (actors/money_events.py)."""
        try:
            money_events.apply(self.sync_db, self.paypal, event,
                               lambda request_id: self.settle(request_id, read_now=True))
        except money_events.Waiting:
            self.asked_again.add(event["id"])
            return False
        if event["event_type"] == CAPTURED:
            self.capture_booked(event["resource"]["id"])
        self.acknowledged.add(event["id"])
        return True

    def capture_booked(self, capture_id):
        """The payments actor books a capture from its response or its webhook, the same transaction."""
        capture = self.paypal.captures[capture_id]
        builder = ledger.tip_transaction if capture["kind"] == ledger.TIP else ledger.capture_transaction
        try:
            ledger_store.book(self.sync_db, builder(capture["call_id"], HOST, capture["caller"], capture_id,
                                                    capture["amount"], capture["fee"]), self.now)
        except ledger_store.KeyReused:
            pass   # actors/payments.py keeps the first booking; the conflict is checked below

    # Invariants ----------------------------------------------------------------------------------

    @invariant()
    def each_key_is_booked_once_and_a_refused_repeat_moves_the_same_money(self):
        keys = [t.key for t in self.book.transactions]
        assert len(keys) == len(set(keys))
        for stored, refused in self.collection.conflicts:
            # Only these are computed from the call's pending as found, so two computations may
            # split the member's side differently; everything else is the same each time.
            assert stored.kind in (ledger.REFUND, ledger.DISPUTE_FREEZE), (stored, refused)
            assert (stored.kind, stored.call_id, stored.capture_id) == (refused.kind, refused.call_id,
                                                                         refused.capture_id)
            assert outside_member(stored) == outside_member(refused)

    @invariant()
    def a_resolution_settles_the_freeze_that_was_booked(self):
        """Won, the booked freeze is reversed exactly; lost, its frozen money is what goes."""
        for resolution in self.book.transactions:
            if resolution.kind not in (ledger.DISPUTE_WON, ledger.DISPUTE_LOST):
                continue
            freeze = self.book.get(resolution.key.replace(":resolved", ":freeze"))
            assert freeze is not None
            if resolution.kind == ledger.DISPUTE_WON:
                assert sorted((e.account, -e.amount_cents) for e in freeze.entries) == sorted(
                    (e.account, e.amount_cents) for e in resolution.entries)
            else:
                assert -sum(e.amount_cents for e in resolution.entries
                            if e.account == ledger.frozen(HOST)) == dispute_rules.frozen_cents(freeze)

    @invariant()
    def every_balance_is_the_sum_of_its_entries_and_the_books_balance(self):
        entries = self.book.entries()
        balances = self.book.balances()
        for account, cents in balances.items():
            assert cents == sum(e.amount_cents for e in entries if e.account == account)
        assert all(sum(e.amount_cents for e in t.entries) == 0 for t in self.book.transactions)
        assert sum(balances.values()) == 0

    @invariant()
    def pending_frozen_and_paid_out_never_go_negative(self):
        balances = self.book.balances()
        # Available may: a refund or a lost dispute after the money was paid out is a debt.
        self.lowest_available = min(self.lowest_available, balances.get(ledger.available(HOST), 0))
        for bucket in ("pending", "frozen", "paid_out"):
            assert balances.get(ledger.member_account(HOST, bucket), 0) >= 0, bucket
        for call_id in self.calls:
            assert self.book.call_balance(call_id, ledger.pending(HOST)) >= 0
        # Frozen is what the disputes open in the ledger hold, nothing more.
        resolved = {t.key.rsplit(":", 1)[0] for t in self.book.transactions
                    if t.kind in (ledger.DISPUTE_WON, ledger.DISPUTE_LOST)}
        assert balances.get(ledger.frozen(HOST), 0) == sum(
            dispute_rules.frozen_cents(t) for t in self.book.transactions
            if t.kind == ledger.DISPUTE_FREEZE and t.key.rsplit(":", 1)[0] not in resolved)

    @invariant()
    def the_ledger_gives_back_no_more_than_paypal_did_nor_than_was_paid(self):
        for call_id, call in self.calls.items():
            back = back_to_caller(self.call_transactions(call_id), call["caller"])
            assert back <= self.paypal.back_to_caller_cents(call_id)
            assert back <= sum(c["amount"] for c in self.paypal.captures.values() if c["call_id"] == call_id)
        assert self.book.balance(ledger.PAYPAL_FEES) <= self.paypal.fees_cents()

    def teardown(self):
        """PayPal delivers again what was not answered 200 (its captures among them) and the
        refunds actor finishes: the ledger then says exactly what PayPal did."""
        if not hasattr(self, "paypal"):
            return
        for _ in range(3):   # the captures, what waited for them; the sweep's refunds send webhooks of their own
            for event in list(self.paypal.outbox):
                if event["id"] not in self.acknowledged:
                    self.deliver(event)
            for call in self.calls.values():
                if call["request"]:
                    self.settle(call["request"])
        assert {event["id"] for event in self.paypal.outbox} <= self.acknowledged
        for call_id, call in self.calls.items():   # every approved refund is done, or an operator's
            disputed = any(self.paypal.disputed(capture_id) for capture_id, capture in self.paypal.captures.items()
                           if capture["call_id"] == call_id)   # PayPal refuses refunds until it is resolved
            if call["request"] and not disputed:
                document = self.store.documents[call["request"]]
                assert document["state"] == refund_rules.REFUNDED or any(
                    item.get("escalated") for item in document["plan"]), document
        for call_id, call in self.calls.items():
            back = back_to_caller(self.call_transactions(call_id), call["caller"])
            assert back == self.paypal.back_to_caller_cents(call_id), call_id
        assert self.book.balance(ledger.PAYPAL_FEES) == self.paypal.fees_cents()
        self.statistics()

    def statistics(self):
        """What the run went through (--hypothesis-show-statistics)."""
        kinds = {t.kind for t in self.book.transactions}
        for kind in sorted(kinds):
            event(f"booked a {kind}")
        for stored, _ in self.collection.conflicts:
            event(f"a {stored.kind} computed twice, the first stands")
        if self.asked_again:
            event("an event told before its capture was booked, applied again")
        if self.lowest_available < 0:
            event("available went negative")
        items = [item for call in self.calls.values() if call["request"]
                 for item in self.store.documents[call["request"]]["plan"]]
        if any(item.get("replanned_after") is not None for item in items):
            event("a refund planned again: less was left at PayPal")
        if any(item.get("elsewhere") for item in items):
            event("a refund's capture given back elsewhere in full")


def outside_member(transaction):
    """A transaction's entries on accounts other than the member's, and the member's total."""
    member_cents, others = 0, {}
    for entry in transaction.entries:
        if ledger.parse_member_account(entry.account):
            member_cents += entry.amount_cents
        else:
            others[entry.account] = others.get(entry.account, 0) + entry.amount_cents
    return member_cents, others


def back_to_caller(transactions, caller_id):
    """What the caller got back of this call: refunds and disputes lost, net (a lost dispute
    whose reversal is less than its freeze gives the difference back to the member)."""
    return sum(e.amount_cents for t in transactions if t.kind not in (ledger.CALL_PAYMENT, ledger.TIP)
               for e in t.entries if e.account == ledger.caller(caller_id))


TestMoneyEventOrder = MoneyEventOrder.TestCase
TestMoneyEventOrder.settings = settings(max_examples=500, stateful_step_count=50, deadline=None)


# --- orders spelled out ---------------------------------------------------------------------------

def paid_call(amount_cents=1500):
    machine = MoneyEventOrder()
    machine.paid_calls([(amount_cents, None)])
    return machine, machine.paypal.outbox[0]


def caller_back(machine):
    return back_to_caller(machine.call_transactions("call1"), "caller1")


def test_a_lost_dispute_told_backwards_and_twice_after_a_dashboard_refund_books_what_paypal_did_once():
    machine, captured = paid_call(1500)
    machine.paypal.refund("CAP1", 300, "DASH1")
    machine.paypal.open_dispute("CAP1", 1200)
    machine.paypal.resolve_dispute("CAP1", "RESOLVED_BUYER_FAVOUR", fee_cents=2000)
    machine.deliver(captured)
    for event in reversed(machine.paypal.outbox[1:] * 2):   # resolution, creation, refund; then again
        machine.deliver(event)
    assert sorted(t.kind for t in machine.book.transactions) == [
        "call_payment", "dispute_fee", "dispute_freeze", "dispute_lost", "refund"]
    assert caller_back(machine) == 1500 == machine.paypal.back_to_caller_cents("call1")
    # 13.99 earned: 3.00 refunded from pending, 10.99 frozen and lost, 1.01 more owed from available.
    balances = machine.book.balances()
    assert [balances.get(f"member:host:{b}", 0) for b in ("pending", "available", "frozen")] == [0, -101, 0]
    assert balances[ledger.PLATFORM_COSTS] == -2000   # PayPal's dispute fee is the platform's, not the host's


@pytest.mark.parametrize("what", ["dashboard refund", "lost dispute"])
def test_an_event_told_before_its_capture_is_booked_waits_and_is_booked_once_it_is(what):
    machine, captured = paid_call(1500)
    if what == "dashboard refund":
        machine.paypal.refund("CAP1", 500, "DASH1")
    else:
        machine.paypal.open_dispute("CAP1", 1500)
        machine.paypal.resolve_dispute("CAP1", "RESOLVED_BUYER_FAVOUR")
    later = machine.paypal.outbox[1:]
    # PayPal's later events first (the capture's delivery failed): each waits, nothing booked.
    assert [machine.deliver(event) for event in later] == [False] * len(later)
    assert not machine.book.transactions
    assert machine.deliver(captured)
    assert [machine.deliver(event) for event in later] == [True] * len(later)   # the actor's retries
    assert caller_back(machine) == machine.paypal.back_to_caller_cents("call1") > 0


def test_our_refund_for_more_than_a_dashboard_refund_left_is_planned_again_once_that_refund_is_booked():
    machine, captured = paid_call(1500)
    machine.deliver(captured)
    machine.approve("call1")                                 # 13.99 back to the caller (PayPal keeps 1.01)
    request_id = machine.calls["call1"]["request"]
    machine.paypal.refund("CAP1", 500, "DASH1")              # meanwhile $5.00 on PayPal's dashboard: 10.00 left
    machine.settle(request_id)
    (item,) = machine.store.documents[request_id]["plan"]
    assert item["error"].startswith(refund_rules.AMOUNT_EXCEEDED) and item["retry_at"] is not None
    dashboard = machine.paypal.outbox[-1]
    assert machine.deliver(dashboard)                        # its webhook books it
    machine.settle(request_id)
    document = machine.store.documents[request_id]
    (item,) = document["plan"]
    assert document["state"] == refund_rules.REFUNDED and document["refund_cents"] == 899 == item["refund_cents"]
    assert item["request_id"] == f"refund-{request_id}-CAP1-after500"
    assert caller_back(machine) == 1399 == machine.paypal.back_to_caller_cents("call1")
