"""The payments adapter: the one actor that talks to PayPal (in its own process, since the
SDK blocks) and writes the ledger for what PayPal confirmed.

A call session asks for an order when the caller agrees to paid terms, and for a capture
once the payer has approved (we learn that from PayPal's return to our site or from its
webhook, whichever comes first: both reach the session, and the capture's request id makes
the second one return the first capture). A completed capture is written to the ledger,
keyed by the capture id, before the session is told, so a repeat books nothing twice.

What happens to a capture after that, the order document records (`capture_state`); the
decisions are in rules/capture_rules.py. A booked call payment's stored call decides (its
session stores a change before acting on it): the capture among its payments, it is used; the
call over without it (approval racing the payment window, a capture that cleared after the
call ended), it goes back to the caller in full (late capture). A pending one is followed here
until it clears or is denied, whether or not the call is still there to hear of it.

Mail: each booking inserts, in the same database transaction, the mails it sends (the caller's
receipt, the member's earnings notice; a late capture's refund notice), keyed by the ledger
key, so a capture confirmed twice or retried mails once. A call payment's mails are held until
the call is known to use it (a late capture sends only the refund notice). Sent mails are
marked; a crash between sending and marking sends that one mail again at the next start.
"""
import dataclasses
import datetime
import logging
import random
import smtplib
import time

import pymongo
from pymongo.errors import ConnectionFailure, PyMongoError
from thespian.actors import Actor, WakeupMessage

from actors import ledger_store
from rules import capture_rules as rules, fees, ledger, receipts
from rules.capture_rules import BOOKED, DECLINED, PENDING, REFUND_REFUSED, REFUNDED, REFUNDING, USED
from actors.adapters import Configured, say_where_running
from actors.capture_pool import CapturePool
from actors.messages import (CaptureOrder, CreateOrder, OrderCreated, PaymentCaptured, PaymentFailed,
                             RefundLateCapture, TipCaptured, TipFailed, ToCall)
from interkanect.paypal import PayPalError, cents_to_value
from interkanect.paypal.payments import PayPal
from interkanect import logs, mail
from interkanect.db import object_id

log = logging.getLogger(__name__)

# Mail states.
HELD, READY, SENT, CANCELLED, UNDELIVERABLE = "held", "ready", "sent", "cancelled", "undeliverable"

# PayPal unreachable for a late refund after every retry: asked again after this.
REFUND_RETRY_S = 60.0
# A database write is retried this long (a restart, a primary stepping down) before the
# message is handed back to Thespian (one more delivery, then the sender is told).
DB_RETRY_S = 120.0
# One attempt waits this long for the database before it counts as failed (and is retried).
DB_SELECTION_TIMEOUT_S = 5.0
# Mail server down: the ready mails are tried again after this.
MAIL_RETRY_S = 30.0
# Captures at PayPal at once, each on a thread of its own (the SDK blocks): a burst of approvals
# (40 webhooks at once in scripts/bench_money.py) no longer waits one HTTP round trip per capture
# in a row; a few cover a 2-core machine, and PayPal sees no more connections than this.
CAPTURES_AT_ONCE = 4
# While captures are at PayPal, their answers are collected this often (a thread cannot wake a
# Thespian actor: the actor looks).
CAPTURE_POLL_S = 0.002


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def transient(error):
    """A database error worth retrying: no connection, or one the server labels retryable."""
    return isinstance(error, ConnectionFailure) or (
        isinstance(error, PyMongoError) and any(error.has_error_label(label) for label in (
            "TransientTransactionError", "RetryableWriteError", "UnknownTransactionCommitResult")))


def mail_row(key, role, member_id, subject, body, capture_id, state):
    return {"_id": f"{key}:{role}", "member_id": member_id, "subject": subject, "body": body,
            "capture_id": capture_id, "state": state}


class PaymentsActor(Actor):
    def __init__(self):
        super().__init__()
        self.settings = None
        self.paypal = None
        self.client = None
        self.db = None
        self.callers = {}        # order id → the call waiting on its PENDING capture (this process only)
        self.scheduled = set()   # wakeups armed and not yet fired: (kind, order id)
        self.captures = None     # CapturePool: captures asked of PayPal off this thread
        self.at_paypal = {}      # order id → [(CaptureOrder, call)]: the first at PayPal, the rest after it
        self.asked_again = set()  # (order id, purpose) whose answer failed once to be acted on

    def receiveMessage(self, message, sender):
        if isinstance(message, Configured):
            self.configure(message.settings)
        elif isinstance(message, CreateOrder):
            self.create(message, sender)
        elif isinstance(message, CaptureOrder):
            self.capture(message, sender)
        elif isinstance(message, RefundLateCapture):
            self.settle(message.order_id)
        elif isinstance(message, WakeupMessage):
            self.woken(message.payload)

    def configure(self, settings):
        s = self.settings = settings
        logs.straight_to_stderr(s.log_level, log)
        self.paypal = PayPal(s.paypal_url, s.paypal_client_id_in_use, s.paypal_client_secret_in_use,
                             timeout_s=s.paypal_timeout_s, backoff_s=s.paypal_backoff_s)
        self.captures = CapturePool(lambda: PayPal(
            s.paypal_url, s.paypal_client_id_in_use, s.paypal_client_secret_in_use, timeout_s=s.paypal_timeout_s,
            backoff_s=s.paypal_backoff_s), CAPTURES_AT_ONCE)
        self.client = pymongo.MongoClient(s.database_url, tz_aware=True,
                                          serverSelectionTimeoutMS=int(DB_SELECTION_TIMEOUT_S * 1000))
        self.db = self.client[s.db_name]
        self.retrying("say where the payments adapter runs", lambda: say_where_running(self.db, self))
        self.resume()

    def resume(self):
        """After a (re)start: carry on with every capture still on its way, find out what PayPal
        did with every capture asked whose answer never came (a process killed mid-capture),
        send unsent mail."""
        self.retrying("index orders", lambda: self.db.orders.create_index("capture_state", sparse=True))
        self.retrying("index unanswered", lambda: self.db.orders.create_index("capture_unanswered", sparse=True))
        self.retrying("index mails", lambda: self.db.money_mails.create_index("state"))
        for order in self.db.orders.find({"capture_state": {"$in": [PENDING, BOOKED, REFUNDING]}}, {"capture_state": 1}):
            if order["capture_state"] == PENDING:
                self.later("follow", order["_id"], self.settings.policy.capture_follow_s)
            else:
                self.settle(order["_id"])
        # The mark outlives the answer (writing it off at each of the capture's outcomes would
        # cost every capture a write): those with an outcome are cleared here, the rest read.
        self.retrying("clear answered marks", lambda: self.db.orders.update_many(
            {"capture_unanswered": True,
             "$or": [{"capture_state": {"$exists": True}}, {"capture_id": {"$exists": True}}]},
            {"$unset": {"capture_unanswered": ""}}))
        for order in list(self.db.orders.find({"capture_unanswered": True}, {"_id": 1})):
            self.find_capture(order["_id"], None)
        self.deliver()

    # Wakeups ----------------------------------------------------------------------------

    def later(self, kind, order_id, delay_s):
        if (kind, order_id) not in self.scheduled:
            self.scheduled.add((kind, order_id))
            self.wakeupAfter(delay_s, payload=(kind, order_id, delay_s))

    def woken(self, payload):
        kind, order_id, delay_s = payload
        self.scheduled.discard((kind, order_id))
        if kind == "captures":
            self.collect_captures()
        elif kind == "settle":
            self.settle(order_id)
        elif kind == "follow":
            self.follow(order_id, delay_s)
        elif kind == "find":
            self.find_capture(order_id, self.callers.pop(order_id, None),
                              min(delay_s * 2, self.settings.policy.capture_follow_max_s))
        elif kind == "mail":
            self.deliver()

    # Orders ---------------------------------------------------------------------------

    @staticmethod
    def purpose(request):
        """What an order pays for, as PayPal request ids and references name it."""
        return f"{request.call_id}-tip-{request.tip}" if request.tip else f"{request.call_id}-{request.round}"

    def reply(self, call, request, message):
        """Answer the call that asked: its shard hosts it (or it is a process), so say which call."""
        self.send(call, ToCall(request.host_id, request.call_id, message))

    def failed(self, request, reason):
        return TipFailed(request.tip, reason) if request.tip else PaymentFailed(request.round, reason)

    def create(self, request, call):
        base = self.settings.url
        purpose = self.purpose(request)
        try:
            order_id, approve_url = self.paypal.create_order(
                request.amount_cents, request_id=f"order-{purpose}", custom_id=purpose,
                return_url=f"{base}paypal/return", cancel_url=f"{base}call/{request.call_id}?paypal=cancelled")
        except Exception as error:  # PayPal down after every retry, or a refusal
            log.error("no order for %s: %s", purpose, error)
            self.reply(call, request, self.failed(request, "paypal_unavailable"))
            return
        # Our return page and the webhook find the call from the order.
        document = {"_id": order_id, "call_id": request.call_id, "round": request.round, "tip": request.tip,
                    "host_id": request.host_id, "caller_id": request.caller_id,
                    "amount_cents": request.amount_cents, "terms": request.terms, "created_at": utc_now()}
        self.retrying(f"store order {order_id}", lambda: self.db.orders.update_one(
            {"_id": order_id}, {"$setOnInsert": document}, upsert=True))
        self.reply(call, request, OrderCreated(request.round, order_id, approve_url, request.tip))

    # Captures -------------------------------------------------------------------------

    def capture(self, request, call):
        """Ask PayPal on a thread of the pool; the answer is acted on here once collected. A second
        request for an order already at PayPal (its webhook and the payer's return) waits for the
        first, then asks with the same request id: PayPal answers it with the first capture."""
        waiting = self.at_paypal.setdefault(request.order_id, [])
        waiting.append((request, call))
        if len(waiting) == 1:
            # Stored before PayPal hears of it: if this process dies before the answer is acted
            # on, the next one reads the order at PayPal (resume), whether or not a call is left.
            self.retrying(f"mark {request.order_id} asked", lambda: self.db.orders.update_one(
                {"_id": request.order_id, "capture_state": {"$exists": False}, "capture_unanswered": {"$ne": True}},
                {"$set": {"capture_unanswered": True}}))
            self.ask_capture(request)

    def ask_capture(self, request):
        order_id, request_id = request.order_id, f"capture-{self.purpose(request)}"
        self.captures.submit(order_id, lambda paypal: paypal.capture(order_id, request_id=request_id))
        self.later("captures", None, CAPTURE_POLL_S)

    def collect_captures(self):
        """Act on each capture PayPal has answered; look again shortly while any is still out. An
        answer whose handling fails (the database away past DB_RETRY_S) is asked for once more,
        as Thespian delivers a failed message once more, then left to the logs."""
        for order_id, captured, error in self.captures.finished():
            waiting = self.at_paypal[order_id]
            request, call = waiting.pop(0)
            if waiting:
                self.ask_capture(waiting[0][0])
            else:
                del self.at_paypal[order_id]
            again = (order_id, self.purpose(request))
            try:
                self.capture_answered(request, call, captured, error)
                self.asked_again.discard(again)
            except Exception:
                if again in self.asked_again:
                    self.asked_again.discard(again)
                    log.exception("capture of order %s not acted on, twice: left as it is", order_id)
                else:
                    self.asked_again.add(again)
                    log.exception("capture of order %s not acted on: asking again", order_id)
                    self.capture(request, call)
        if self.at_paypal:
            self.later("captures", None, CAPTURE_POLL_S)

    def capture_answered(self, request, call, captured, error):
        """What PayPal's answer to a capture (or `error`, the call's failure) means for the call."""
        if isinstance(error, PayPalError):
            next_step = rules.after_refusal(error.issue, error.name)
            if next_step == rules.FIND:
                self.find_capture(request.order_id, call)
            elif next_step == rules.FAIL:
                self.reply(call, request, self.failed(request, error.issue.lower() or "declined"))
            else:
                log.info("capture of %s not possible yet: %s", request.order_id, error.issue)
        elif error is not None:
            # No answer after every retry: PayPal may have captured. The order says; nobody else
            # may ask again (the call's window may close first), so this actor finds out.
            log.error("capture of order %s failed after retries (%s): reading the order", request.order_id, error)
            self.find_capture(request.order_id, call)
        else:
            self.captured(request, captured, call)

    def find_capture(self, order_id, call, delay_s=None):
        """Read what PayPal holds for an order whose capture answer we do not have, and act on
        it as on a capture's answer (booked once by its capture id; a call over without it
        refunds it in full as a late capture). PayPal unreachable: read again later."""
        delay_s = delay_s or self.settings.policy.capture_follow_s
        order = self.find_order(order_id)
        if order is None or order.get("capture_id"):
            return  # not ours, or its capture is known by now (the webhook, a retry)
        request = CaptureOrder(order["call_id"], order["round"], order["host_id"], order["caller_id"], order_id,
                               order.get("tip", 0))
        try:
            captured = self.paypal.order_capture(order_id)
        except Exception as error:
            log.warning("cannot read order %s for its capture (again in %gs): %s", order_id, delay_s, error)
            if call is not None:
                self.callers[order_id] = call
            self.later("find", order_id, delay_s)
            return
        if captured is None:
            log.info("order %s holds no capture: nothing was taken", order_id)
            self.retrying(f"unmark {order_id}", lambda: self.db.orders.update_one(
                {"_id": order_id}, {"$unset": {"capture_unanswered": ""}}))
            return
        log.info("order %s was captured (%s, %s) though its answer was lost", order_id, captured["capture_id"],
                 captured["status"])
        self.captured(request, captured, call)

    def captured(self, request, captured, call):
        """Act on a capture's state as PayPal reports it (from the capture or a later read)."""
        order_id, status = request.order_id, captured["status"]
        order = self.find_order(order_id) if status in rules.MONEY_IN else None   # read once, for both
        next_step = rules.after_capture(status, status in rules.MONEY_IN and self.mismatched(order, captured))
        if next_step == rules.MISMATCH:
            self.refund_mismatch(request, captured, call)
        elif next_step == rules.BOOK:
            payment = self.book(request, captured, order)
            if call is not None:
                self.reply(call, request, TipCaptured(request.tip, payment) if request.tip
                           else PaymentCaptured(request.round, payment))
            if request.tip:
                self.deliver()   # a tip's mails go at once; a call payment's are held until settled
            elif call is None:
                self.settle(order_id)
            else:
                # The call being told now decides first: it stores the payment as used, or (over
                # already) sends RefundLateCapture; the stored call is read once it has.
                self.later("settle", order_id, self.settings.policy.capture_settle_check_s)
        elif next_step == rules.FOLLOW:
            # Money not in hand: PAYMENT.CAPTURE.COMPLETED brings a live call back here; this
            # follows it anyway, since the call may be over by then.
            self.retrying(f"mark {order_id} pending", lambda: self.db.orders.update_one(
                {"_id": order_id, "capture_state": {"$exists": False}},
                {"$set": {"capture_state": PENDING, "capture_id": captured["capture_id"]}}))
            if call is not None:
                self.callers[order_id] = call
            self.later("follow", order_id, self.settings.policy.capture_follow_s)
        elif next_step == rules.DECLINE:  # refused at once, or a pending one denied
            self.retrying(f"mark {order_id} declined", lambda: self.db.orders.update_one(
                {"_id": order_id, "capture_state": {"$in": [None, PENDING]}},
                {"$set": {"capture_state": DECLINED, "capture_id": captured["capture_id"]}}))
            if call is not None:
                self.reply(call, request, self.failed(request, "declined"))
        else:
            log.warning("capture %s of order %s is %s: left as it is", captured["capture_id"], order_id, status)

    # A capture that does not match its order -----------------------------------------

    @staticmethod
    def mismatched(order, captured):
        """PayPal took another currency or amount than the order we made for the agreed terms
        (an order changed behind our back, or a bug): never booked as the call's payment."""
        return (captured.get("currency") or "USD") != "USD" or (
            order is not None and captured["amount_cents"] != order["amount_cents"])

    def refund_mismatch(self, request, captured, call):
        """Give it all back, tell the call it failed and every operator why. A USD capture is
        booked as a call payment and refunded as a late capture (the ledger follows PayPal's
        balance: the platform bears the fee); another currency never touches the USD ledger."""
        order = self.find_order(request.order_id)
        capture_id, currency = captured["capture_id"], captured.get("currency") or "USD"
        words = f"{currency} {cents_to_value(captured['amount_cents'])}"
        mismatch = {"captured_cents": captured["amount_cents"], "currency": currency,
                    "expected_cents": order["amount_cents"]}
        log.error("capture %s of order %s is %s, not the order's %d cents: refunding it in full", capture_id,
                  request.order_id, words, order["amount_cents"])
        self.retrying(f"mark {request.order_id} mismatched", lambda: self.db.orders.update_one(
            {"_id": request.order_id}, {"$set": {"mismatch": mismatch}}))
        if call is not None:
            self.reply(call, request, self.failed(request, "amount_mismatch"))
        alert = receipts.mismatch_alert(request.call_id, request.order_id, capture_id, words, order["amount_cents"])
        if currency == "USD":
            self.book(dataclasses.replace(request, tip=0), captured)   # held: it is never the host's
            self.refund_late(self.find_order(request.order_id))
        else:
            self.refund_foreign(order, captured, words)
        self.tell_operators(f"mismatch:{capture_id}", alert, capture_id)

    def tell_operators(self, key, alert, capture_id):
        """Mail every operator `alert` (subject, body), once per key whatever is repeated."""
        operators = self.retrying("read the operators", lambda: [
            str(m["_id"]) for m in self.db.members.find({"operator": True}, {"_id": 1})])
        rows = [dict(mail_row(key, f"operator-{member_id}", member_id, *alert, capture_id, READY), created_at=utc_now())
                for member_id in operators]
        if rows:
            try:
                self.retrying("store the operators' alerts", lambda: self.db.money_mails.insert_many(rows, ordered=False))
            except pymongo.errors.BulkWriteError:
                pass  # told already (the same case reported twice)
        self.deliver()

    def refund_foreign(self, order, captured, words):
        """A capture in another currency: refunded whole at PayPal, nothing booked (the ledger is
        in dollars and this money never was the platform's)."""
        capture_id = captured["capture_id"]
        try:
            refund = self.paypal.refund_capture(capture_id, request_id=f"mismatch-refund-{capture_id}",
                                                note_to_payer="Not the agreed price or currency: refunded in full.")
        except Exception as error:
            log.error("capture %s (%s) could not be refunded: %s; an operator must refund it", capture_id, words, error)
            state = REFUND_REFUSED
            refund = {"refund_id": None}
        else:
            state = REFUNDED
        self.retrying(f"mark {order['_id']} {state}", lambda: self.db.orders.update_one({"_id": order["_id"]}, {
            "$set": {"capture_state": state, "capture_id": capture_id, "refund_id": refund["refund_id"]}}))

    def follow(self, order_id, delay_s):
        """Read a PENDING capture from PayPal: cleared, it is booked (and settled); denied, the
        call hears it; still pending, read again later."""
        order = self.find_order(order_id)
        if order is None or order.get("capture_state") != PENDING:
            return  # the call's capture request found it cleared first
        try:
            captured = self.paypal.get_capture(order["capture_id"])
        except Exception as error:
            log.warning("cannot read pending capture %s: %s", order["capture_id"], error)
            captured = {"status": "PENDING"}
        if captured["status"] == "PENDING":
            self.later("follow", order_id, min(delay_s * 2, self.settings.policy.capture_follow_max_s))
            return
        request = CaptureOrder(order["call_id"], order["round"], order["host_id"], order["caller_id"], order_id,
                               order.get("tip", 0))
        self.captured(request, captured, self.callers.pop(order_id, None))

    def names(self, *member_ids):
        found = self.retrying("read names", lambda: {
            str(m["_id"]): m.get("display_name") or "an interKanect member" for m in self.db.members.find(
                {"_id": {"$in": [object_id(i) for i in member_ids]}}, {"display_name": 1})})
        return [found.get(i, "an interKanect member") for i in member_ids]

    def book(self, request, captured, order=None):
        """Write the capture to the ledger with its mails; the payment as the call logs it."""
        split = fees.breakdown(captured["amount_cents"], captured["fee_cents"])
        capture_id = captured["capture_id"]
        builder = ledger.tip_transaction if request.tip else ledger.capture_transaction
        transaction = builder(request.call_id, request.host_id, request.caller_id, capture_id,
                              split.amount_cents, split.fee_cents)
        order = (self.find_order(request.order_id) if order is None else order) or {}
        host_name, caller_name = self.names(request.host_id, request.caller_id)
        policy, now = self.settings.policy, utc_now()
        if request.tip:
            receipt = receipts.tip_receipt(host_name, request.call_id, capture_id, split.amount_cents, now)
        else:
            refund_window_s = getattr(policy, "refund_window_s", policy.earnings_hold_s)
            receipt = receipts.payment_receipt(host_name, request.call_id, order.get("terms"), capture_id,
                                               split.amount_cents, now, refund_window_s)
        notice = receipts.earnings_notice(caller_name, request.call_id, capture_id, split.amount_cents,
                                          split.fee_cents, request.tip, policy.earnings_hold_s)
        # A tip is the host's whatever happens to the call; a call payment waits for its call.
        state = READY if request.tip else HELD
        mails = [mail_row(transaction.key, "receipt", request.caller_id, *receipt, capture_id, state),
                 mail_row(transaction.key, "earnings", request.host_id, *notice, capture_id, state)]
        self.write(transaction, mails, order_update=(request.order_id, {
            "capture_state": USED if request.tip else BOOKED, "capture_id": capture_id,
            "captured_cents": split.amount_cents, "fee_cents": split.fee_cents}))
        return {"capture_id": capture_id, "amount_cents": split.amount_cents, "fee_cents": split.fee_cents,
                "order_id": request.order_id}

    # A call payment's fate -------------------------------------------------------------

    def settle(self, order_id):
        """Is this booked call payment used by its call? The stored call says: among its
        payments, yes (its mails go); the call over without it, it goes back to the caller;
        otherwise the call has not decided yet: ask again shortly."""
        order = self.find_order(order_id)
        if order is None or not rules.settling(order.get("capture_state")):
            return
        call = self.retrying(f"read call {order['call_id']}", lambda: self.db.calls.find_one(
            {"_id": order["call_id"]}, {"state": 1, "payments": 1}))
        fate = rules.payment_fate(order["capture_id"], call)
        if fate == USED:
            self.retrying(f"release mails of {order['capture_id']}", lambda: self.db.money_mails.update_many(
                {"capture_id": order["capture_id"], "state": HELD}, {"$set": {"state": READY}}))
            self.retrying(f"mark {order_id} used", lambda: self.db.orders.update_one(
                {"_id": order_id, "capture_state": BOOKED}, {"$set": {"capture_state": USED}}))
            self.deliver()
        elif fate == REFUNDING:
            self.refund_late(order)
        else:
            self.later("settle", order_id, self.settings.policy.capture_settle_check_s)

    def refund_late(self, order):
        """Give a capture the call never used back to the caller, all of it, once, as PayPal's
        refunds go: COMPLETED books it (keyed by the capture); PENDING is read again later;
        FAILED or CANCELLED is asked again as a new refund (a new request id) up to
        Policy.refund_attempts_max refunds, then left to an operator (refund_refused)."""
        order_id, capture_id = order["_id"], order["capture_id"]
        policy = self.settings.policy
        self.retrying(f"mark {order_id} refunding", lambda: self.db.orders.update_one(
            {"_id": order_id, "capture_state": BOOKED}, {"$set": {"capture_state": REFUNDING}}))
        failed = order.get("failed_refunds", [])
        try:
            if order.get("refund_id"):  # asked already: PENDING (or its answer stored before booking)
                refund = self.paypal.get_refund(order["refund_id"])
            else:
                refund = self.paypal.refund_capture(
                    capture_id, request_id=rules.late_refund_request_id(capture_id, len(failed)),
                    note_to_payer="The call was over before your payment completed: refunded in full.")
                self.retrying(f"store refund of {order_id}", lambda: self.db.orders.update_one(
                    {"_id": order_id}, {"$set": {"refund_id": refund["refund_id"]}}))
        except PayPalError as refusal:  # e.g. CAPTURE_FULLY_REFUNDED by hand: an operator looks
            log.error("late capture %s of call %s cannot be refunded: %s", capture_id, order["call_id"], refusal)
            self.retrying(f"mark {order_id} refused", lambda: self.db.orders.update_one(
                {"_id": order_id}, {"$set": {"capture_state": REFUND_REFUSED, "refund_refusal": refusal.issue}}))
            self.tell_operators(f"late-refund-refused:{capture_id}", receipts.late_refund_stuck_alert(
                order["call_id"], capture_id, order.get("captured_cents"), f"PayPal refused it ({refusal.issue or refusal})"),
                capture_id)
            return
        except Exception as error:
            log.warning("late capture %s: PayPal refund failed for now: %s", capture_id, error)
            self.later("settle", order_id, REFUND_RETRY_S)
            return
        status = refund["status"]
        next_step = rules.after_late_refund(status, len(failed), policy.refund_attempts_max)
        if next_step in (rules.AGAIN, rules.OPERATOR):
            failed = failed + [{"refund_id": refund["refund_id"], "status": status}]
            stuck = next_step == rules.OPERATOR
            log.warning("late capture %s: PayPal's refund %s is %s%s", capture_id, refund["refund_id"], status,
                        "; left to an operator" if stuck else "; asking again")
            update = {"failed_refunds": failed, "refund_id": None}
            if stuck:
                update.update(capture_state=REFUND_REFUSED, refund_refusal=f"REFUND_{status}")
            self.retrying(f"mark {order_id} refund {status}", lambda: self.db.orders.update_one(
                {"_id": order_id}, {"$set": update}))
            if stuck:
                self.tell_operators(f"late-refund-refused:{capture_id}", receipts.late_refund_stuck_alert(
                    order["call_id"], capture_id, order.get("captured_cents"),
                    f"PayPal's refunds came to nothing {len(failed)} times (the last {status})"), capture_id)
            else:
                self.refund_late(dict(order, **update))
            return
        if next_step == rules.POLL:
            self.later("settle", order_id, policy.refund_poll_s)
            return
        transaction = ledger.late_capture_refund_transaction(order["call_id"], order["host_id"], order["caller_id"],
                                                             capture_id, order["captured_cents"], order["fee_cents"])
        (host_name,) = self.names(order["host_id"])
        if order.get("mismatch"):
            notice = receipts.mismatch_refund(host_name, order["call_id"], capture_id,
                                              f"USD {cents_to_value(order['captured_cents'])}", order["amount_cents"],
                                              refund["refund_id"])
        else:
            notice = receipts.late_capture_refund(host_name, order["call_id"], capture_id, order["captured_cents"],
                                                  refund["refund_id"])
        self.write(transaction, [mail_row(transaction.key, "refund", order["caller_id"], *notice, capture_id, READY)],
                   cancel_held_of=capture_id,
                   order_update=(order_id, {"capture_state": REFUNDED, "refund_id": refund["refund_id"]}))
        log.info("late capture %s of call %s refunded in full (%s)", capture_id, order["call_id"], refund["refund_id"])
        self.deliver()

    # The database ----------------------------------------------------------------------

    def write(self, transaction, mails=(), cancel_held_of=None, order_update=None):
        """One ledger transaction, the mails it sends and the order's new state, in one database
        transaction: all or nothing. False when the key was booked already (nothing written)."""
        now = utc_now()

        def body(session):
            try:
                if not ledger_store.book(self.db, transaction, now, session=session):
                    return False  # booked already (a retried capture, the webhook first)
            except ledger_store.KeyReused as reused:
                # PayPal's capture is a fact: the first booking of it stands, and an operator
                # reads why another one was refused (the actor carries on with the next message).
                log.error("%s; kept as it was", reused)
                return False
            if cancel_held_of:
                self.db.money_mails.update_many({"capture_id": cancel_held_of, "state": HELD},
                                                {"$set": {"state": CANCELLED}}, session=session)
            if mails:
                self.db.money_mails.insert_many([dict(row, created_at=now) for row in mails], session=session)
            if order_update:
                self.db.orders.update_one({"_id": order_update[0]}, {"$set": order_update[1]}, session=session)
            return True

        def attempt():
            with self.client.start_session() as session:
                return session.with_transaction(body)
        return self.retrying(f"book {transaction.key}", attempt)

    def find_order(self, order_id, projection=None):
        return self.retrying(f"read order {order_id}", lambda: self.db.orders.find_one({"_id": order_id}, projection))

    def retrying(self, what, function):
        """Run a database operation, retrying transient failures (the server restarting or
        briefly unreachable) with backoff and jitter for up to DB_RETRY_S."""
        give_up_at, delay_s = time.monotonic() + DB_RETRY_S, 0.2
        while True:
            try:
                return function()
            except PyMongoError as error:
                if not transient(error) or time.monotonic() > give_up_at:
                    raise
                log.warning("database unavailable to %s (retrying): %s", what, error)
            time.sleep(delay_s * random.uniform(0.5, 1.5))
            delay_s = min(delay_s * 2, 5.0)

    # Mail ------------------------------------------------------------------------------

    def deliver(self):
        """Send every ready money mail, oldest first; a mail server down is tried again later."""
        try:
            rows = list(self.db.money_mails.find({"state": READY}).sort("created_at", 1))
            for row in rows:
                member = self.db.members.find_one({"_id": object_id(row["member_id"])}, {"email": 1})
                if member is None:
                    log.warning("no member %s for mail %s", row["member_id"], row["_id"])
                    self.db.money_mails.update_one({"_id": row["_id"]}, {"$set": {"state": UNDELIVERABLE}})
                    continue
                mail.send_now(self.settings, self.db, member["email"], row["subject"], row["body"])
                self.db.money_mails.update_one({"_id": row["_id"]}, {"$set": {"state": SENT, "sent_at": utc_now()}})
        except (OSError, smtplib.SMTPException, PyMongoError) as error:
            log.warning("money mail not sent for now (again in %ss): %s", MAIL_RETRY_S, error)
            self.later("mail", None, MAIL_RETRY_S)
