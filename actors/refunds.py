"""The refunds actor: the adapter that carries out refund decisions through PayPal's capture
refund API and books them in the ledger (a thin shell over `refund_rules.Settlement`), and
applies PayPal's refund and dispute webhooks once a gateway has recorded them
(actors/money_events.py): the one writer of refunds and disputes to the ledger.

An actor, like the payout scheduler, because PayPal's SDK blocks: its calls then block this
actor's own process only, never the gateway's loop or a member's mailbox. One per convention,
by global name: the directory creates and starts it, a gateway reaches it by the same name.
Operators' decisions are stored by the gateway before it tells this actor (`SettleRefund`), so
nothing depends on the message arriving: on start and every `Policy.refund_retry_s` (a cheap
query when nothing is left), the actor settles every decided request whose money has not all
moved (and is due) or whose decision mail has not gone, and every recorded money event due.
"""
import dataclasses
import datetime
import logging

import pymongo
from thespian.actors import Actor, WakeupMessage

from actors import convention, disputes, leadership, ledger_store, money_events, subscription_sales
from rules import refund_rules
from actors.adapters import say_where_running
from actors.messages import MailerMoved, SendMail
from interkanect import logs

log = logging.getLogger(__name__)

REFUNDS_NAME = "interkanect-refunds"


@dataclasses.dataclass
class StartRefunds:
    """Directory → refunds actor, once: the settings and where member mail goes."""
    settings: object
    mailer: object
    token: int = None   # the leader's lease (actors/leadership.py): checked before every money write


@dataclasses.dataclass
class SettleRefund:
    """Gateway → refunds actor: this request was just decided; move its money now."""
    req_id: int
    refund_id: str


@dataclasses.dataclass
class MoneyEvent:
    """Gateway → refunds actor: PayPal's event `event_id` is recorded in webhook_events, due."""
    event_id: str


@dataclasses.dataclass
class RefundSettled:
    """Refunds actor → gateway: the request's view state now, or why it could not be settled."""
    req_id: int
    state: str = None
    error: str = None


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


class RefundsActor(Actor):
    # One per convention, on the leader: a lookup by global name through another node's admin
    # (a gateway beside it, the CLI) is passed to the leader, never answered by a second one.
    actorSystemCapabilityCheck = staticmethod(convention.runs_directory)

    def __init__(self):
        super().__init__()
        self.settlement = None
        self.events = None      # money_events.MongoMoneyEvents
        self.sales = None       # subscription_sales.Sales
        self.paypal = None
        self.mailer = None
        self.retry_s = None
        self.sweep_token = 0    # wakeupAfter cannot be cancelled: only the latest timer counts
        self.sweep_at = None

    def receiveMessage(self, message, sender):
        if isinstance(message, StartRefunds):
            self.start(message)
        elif isinstance(message, SettleRefund):
            self.send(sender, self.settle_asked(message))
        elif isinstance(message, MoneyEvent):
            if self.events is not None:   # else the start's sweep applies it
                self.apply_event(message.event_id)
        elif isinstance(message, MailerMoved):
            self.mailer = message.mailer
        elif isinstance(message, WakeupMessage) and message.payload == ("sweep", self.sweep_token):
            self.sweep_at = None
            self.sweep()

    def start(self, message):
        from interkanect.paypal.payments import PayPal  # the SDK loads only in this actor's process
        from interkanect.paypal.subscriptions import SaleRefunds
        s = message.settings
        logs.straight_to_stderr(s.log_level, log)
        db = pymongo.MongoClient(s.database_url, tz_aware=True, serverSelectionTimeoutMS=5000)[s.db_name]
        self.mailer, self.retry_s = message.mailer, s.policy.refund_retry_s
        fence = leadership.Fence(db, message.token)
        self.paypal = PayPal(s.paypal_url, s.paypal_client_id_in_use, s.paypal_client_secret_in_use)
        self.settlement = refund_rules.Settlement(
            MongoRefundStore(db, fence), self.paypal, self.notify, self.retry_s, s.policy.refund_poll_s,
            s.policy.refund_attempts_max)
        self.events = money_events.MongoMoneyEvents(db, fence)
        try:
            say_where_running(db, self)
        except Exception:
            log.exception("cannot say where the refunds actor runs")
        refunds = SaleRefunds(s.paypal_url, s.paypal_client_id_in_use, s.paypal_client_secret_in_use,
                              backoff_s=s.paypal_backoff_s)
        self.sales = subscription_sales.Sales(db, refunds.refund_sale, self.tell_operators, fence)
        try:
            self.events.ensure_indexes()
        except Exception:
            log.exception("cannot create the money events' index; they are read without it")
        self.sweep()  # decisions a previous node stored and did not finish

    def settle_asked(self, message):
        if self.settlement is None:
            return RefundSettled(message.req_id, error="the refunds actor is not configured yet")
        try:
            outcome = self.settlement.settle(message.refund_id, _now())
        except Exception as error:
            log.exception("settling refund request %s failed; the sweep tries again", message.refund_id)
            self.arm_sweep(_now() + datetime.timedelta(seconds=self.retry_s))
            return RefundSettled(message.req_id, error=f"{type(error).__name__}: {error}")
        if outcome.retry_at is not None:
            self.arm_sweep(outcome.retry_at)
        return RefundSettled(message.req_id, state=outcome.state)

    def settle_now(self, request_id):
        """Settle one request at once, reading its PENDING refunds from PayPal (a webhook said one changed)."""
        outcome = self.settlement.settle(request_id, _now(), read_now=True)
        if outcome.retry_at is not None:
            self.arm_sweep(outcome.retry_at)

    def apply_event(self, event_id, event=None):
        """Apply one recorded money event (actors/money_events.py); one that must wait is tried
        again at its retry time, one that failed otherwise on the next sweep."""
        try:
            event = event or self.events.event(event_id)
            if event is None:
                return   # applied already (a repeat delivery's message), or not a money event
            now = _now()
            try:
                money_events.apply(self.events.db, self.paypal, event, self.settle_now, self.events.fence, self.sales)
            except money_events.Waiting as waiting:
                retry_at = money_events.retry_at(event, now, self.retry_s)
                self.events.later(event, retry_at, str(waiting))
                self.arm_sweep(retry_at)
                return
            self.events.applied(event, now)
        except Exception:
            log.exception("applying PayPal event %s failed; the sweep tries again", event_id)

    def sweep(self):
        now = _now()
        try:
            for event in self.events.due(now):
                self.apply_event(event["id"], event)
        except Exception:
            log.exception("cannot read the money events due; the next sweep tries again")
        try:
            undone = self.settlement.store.undone()
        except Exception:
            log.exception("cannot read undone refund requests; trying again in %g s", self.retry_s)
            self.arm_sweep(now + datetime.timedelta(seconds=self.retry_s))
            return
        for request_id in undone:
            try:
                outcome = self.settlement.settle(request_id, now)
            except Exception:
                log.exception("settling refund request %s failed; trying again in %g s", request_id, self.retry_s)
                self.arm_sweep(now + datetime.timedelta(seconds=self.retry_s))
                continue
            if outcome.retry_at is not None:
                self.arm_sweep(outcome.retry_at)
        self.remind_overdue(now)
        # Always again: a gateway may have stored a decision and died before telling us.
        self.arm_sweep(now + datetime.timedelta(seconds=self.retry_s))

    def remind_overdue(self, now):
        """Once a day (UTC), mail every operator the requests past their review deadline."""
        store = self.settlement.store
        try:
            late = store.overdue(now)
            if late and store.claim_reminder(f"overdue:{now:%Y-%m-%d}", now):
                self.tell_operators(*refund_rules.overdue_mail(late, now))
        except Exception:
            log.exception("could not remind operators of overdue refund requests; the next sweep tries again")

    def arm_sweep(self, due_at):
        """One live sweep timer, at the earliest time anything is due."""
        if self.sweep_at is not None and self.sweep_at <= due_at:
            return
        self.sweep_token += 1
        self.sweep_at = due_at
        delay_s = max(0.0, (due_at - _now()).total_seconds())
        self.wakeupAfter(datetime.timedelta(seconds=delay_s), payload=("sweep", self.sweep_token))

    def notify(self, member_id, subject, body):
        self.send(self.mailer, SendMail(member_id, subject, body))

    def tell_operators(self, subject, body):
        for operator_id in self.settlement.store.operators():
            self.notify(operator_id, subject, body)


class MongoRefundStore:
    """The settlement's reads and writes (pymongo, blocking). Plan items are addressed by index:
    the plan is fixed when the request is approved."""

    def __init__(self, db, fence=None):
        self.db = db
        self.fence = fence or leadership.Fence(db, None)   # checked before each money write

    def request(self, request_id):
        return self.db.refund_requests.find_one({"_id": request_id})

    def undone(self):
        """Decided requests whose money or mail is still to go (one waiting for an operator
        only once they asked again)."""
        found = self.db.refund_requests.find({"decision": {"$ne": None}, "$or": [
            {"state": refund_rules.OPEN, "plan": {"$elemMatch": {"booked": {"$ne": True}, "escalated": {"$ne": True},
                                                                 "elsewhere": {"$ne": True}}}},
            {"plan": {"$elemMatch": {"escalated": True, "operators_told": False}}},
            {"mailed_at": None}]},
            {"_id": 1}).sort("decided_at", 1)
        return [document["_id"] for document in found]

    def _set(self, request_id, fields):
        self.fence.check()
        self.db.refund_requests.update_one({"_id": request_id}, {"$set": fields})

    def refund_started(self, request_id, index, refund_id, status):
        self._set(request_id, {f"plan.{index}.refund_id": refund_id, f"plan.{index}.refund_status": status,
                               f"plan.{index}.error": None, f"plan.{index}.retry_at": None})

    def refund_pending(self, request_id, index, status, poll_at):
        self._set(request_id, {f"plan.{index}.refund_status": status, f"plan.{index}.retry_at": poll_at})

    def refund_not_done(self, request_id, index, failure, next_request_id, escalated):
        log.warning("refund %s of request %s (capture %d) is %s%s", failure["refund_id"] or "asked", request_id, index,
                    failure["status"], "; operators are told" if escalated else "; asking PayPal again")
        self.db.refund_requests.update_one({"_id": request_id}, {
            "$push": {f"plan.{index}.failed_refunds": failure},
            "$set": {f"plan.{index}.refund_id": None, f"plan.{index}.refund_status": None,
                     f"plan.{index}.request_id": next_request_id, f"plan.{index}.retry_at": None,
                     f"plan.{index}.attempts": 0, f"plan.{index}.escalated": escalated,
                     f"plan.{index}.operators_told": not escalated,
                     f"plan.{index}.error": f"PayPal's refund {failure['refund_id']} is {failure['status']}"
                     if failure["refund_id"] else f"PayPal {failure['status']}"}})

    def operators_told(self, request_id, index):
        self._set(request_id, {f"plan.{index}.operators_told": True})

    def refund_replanned(self, request_id, index, fields, change_cents):
        """A capture's refund planned again (less was left): its item and the request's total."""
        log.warning("refund of request %s, capture %d planned again: %s", request_id, index, fields["error"])
        self.fence.check()
        self.db.refund_requests.update_one({"_id": request_id}, {
            "$set": {f"plan.{index}.{name}": value for name, value in fields.items()},
            "$inc": {"refund_cents": change_cents}})

    def call_transactions(self, call_id):
        return list(self.db.ledger.find({"call_id": call_id}))

    def refund_elsewhere(self, request_id, index, error):
        self._set(request_id, {f"plan.{index}.elsewhere": True, f"plan.{index}.error": error})

    def overdue(self, now):
        return list(self.db.refund_requests.find({"state": refund_rules.OPEN, "decision": None,
                                                  "deadline": {"$lt": now}}).sort("deadline", 1))

    def claim_reminder(self, key, now):
        """True for the one sweep that sends this reminder (at most once)."""
        try:
            self.db.refund_reminders.insert_one({"_id": key, "at": now})
            return True
        except pymongo.errors.DuplicateKeyError:
            return False

    def operators(self):
        return [str(member["_id"]) for member in self.db.members.find({"operator": True}, {"_id": 1})]

    def refund_failed(self, request_id, index, attempts, retry_at, error):
        log.warning("refund of request %s, capture %d not done (attempt %d): %s", request_id, index, attempts, error)
        self._set(request_id, {f"plan.{index}.attempts": attempts, f"plan.{index}.retry_at": retry_at,
                               f"plan.{index}.error": error})

    def refund_booked(self, request_id, index):
        self._set(request_id, {f"plan.{index}.booked": True})

    def finish(self, request_id, now):
        self.db.refund_requests.update_one({"_id": request_id, "state": refund_rules.OPEN,
                                            "decision": refund_rules.APPROVE},
                                           {"$set": {"state": refund_rules.REFUNDED, "refunded_at": now}})

    def claim_mail(self, request_id, now):
        """True for the one settlement that mails the decision (at most once)."""
        return self.db.refund_requests.update_one({"_id": request_id, "mailed_at": None},
                                                  {"$set": {"mailed_at": now}}).modified_count == 1

    def call_pending_cents(self, call_id, member_id):
        return disputes.call_pending_cents(self.db, call_id, member_id)

    def book(self, transaction, now):
        """False when the key is booked already: a refund is booked once, whatever split between
        pending and available its first booking took."""
        try:
            return ledger_store.book(self.db, transaction, now, fence=self.fence)
        except ledger_store.KeyReused:
            # PayPal's PAYMENT.CAPTURE.REFUNDED can beat the storing of this refund's id, and it
            # is then booked as an outside refund, split from the call's pending as it
            # found it: the same money under the same key, so that booking stands.
            return False
