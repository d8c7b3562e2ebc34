"""PayPal's word on money it moved for our captures, refunds and disputes, applied by the
refunds actor: the one writer of that money to the ledger, on the leader, behind its lease.

The gateway verifies a webhook, records it in `webhook_events` (`money: "due"` when it is one
of MONEY_EVENTS) and tells the refunds actor (`MoneyEvent`); PayPal has its 200 once the event
is stored. The actor applies it: a refund of one of our refund requests settles that request
(which reads the refund at PayPal), a dispute freezes the call's earnings and books its outcome
(actors/disputes.py), any other refund of our captures was made on PayPal's dashboard and is
booked as such (actors/external_refunds.py), and a subscription's paid cycle is booked as the
platform's revenue (actors/subscription_sales.py). An event about a capture not booked yet waits
(`retry_at`, backing off as a refund's retries do) and is applied once it can be: nothing
depends on PayPal delivering it again. The actor applies every due event at its start and on
each sweep too, so a message lost with a gateway, or a leader that died, loses nothing."""
import datetime
import logging

import pymongo

from actors import disputes, external_refunds, subscription_sales
from rules import dispute_rules, refund_rules
from actors.booked_captures import NotYet
from interkanect.paypal import PayPalError, PayPalUnavailable

log = logging.getLogger(__name__)

DUE, APPLIED = "due", "applied"
# PayPal's events about a refund: completed (the capture's), or the refund's own.
REFUND_EVENTS = ("PAYMENT.CAPTURE.REFUNDED", "PAYMENT.REFUND.PENDING", "PAYMENT.REFUND.FAILED",
                 "PAYMENT.REFUND.CANCELLED")
# Due events read per sweep; the rest wait for the next one (oldest first).
SWEEP_LIMIT = 200


def is_money_event(event):
    """True for an event the refunds actor applies (a refund's, a dispute's, a subscription sale's)."""
    kind = str(event.get("event_type", ""))
    return isinstance(event.get("id"), str) and (kind in REFUND_EVENTS or kind.startswith(dispute_rules.EVENT_PREFIX)
                                                 or subscription_sales.is_sale(event))


def record(event, now):
    """The `webhook_events` fields a first delivery of `event` stores ($setOnInsert)."""
    fields = {"event_type": event.get("event_type"), "received_at": now, "resource": event.get("resource")}
    if is_money_event(event):
        fields.update(money=DUE, tries=0, retry_at=None)
    return fields


class Waiting(Exception):
    """The event cannot be applied yet (its capture not booked, PayPal unreachable): try later."""


def apply(db, paypal, event, settle_request, fence=None, sales=None):
    """Apply one recorded event. `settle_request(request_id)` settles a refund request of ours
    the event is about; `sales` (subscription_sales.Sales) books a subscription's paid cycle.
    Raises Waiting when it must be applied again later; a database failure or a lost lease
    raises as it is."""
    try:
        if subscription_sales.is_sale(event):
            sales.apply(event["resource"])
            return
        request_id = refund_request_of(db, event)
        if request_id is not None:
            settle_request(request_id)
            return
        disputes.apply(db, paypal, event, fence)
        external_refunds.apply(db, paypal, event, fence)
    except (NotYet, PayPalUnavailable) as later:
        raise Waiting(str(later)) from None
    except PayPalError as error:   # PayPal refused to say whose capture it is: ask again later
        raise Waiting(f"PayPal: {error}") from None


def refund_request_of(db, event):
    """The refund request whose plan holds the refund this event is about, if any: one of ours,
    which the request's settlement reads from PayPal and books."""
    if event.get("event_type") not in REFUND_EVENTS:
        return None
    refund_id = (event.get("resource") or {}).get("id")
    if not isinstance(refund_id, str) or not refund_id:
        return None
    document = db.refund_requests.find_one({"plan.refund_id": refund_id}, {"_id": 1})
    return document and document["_id"]


class MongoMoneyEvents:
    """The recorded events still due (pymongo, blocking)."""

    def __init__(self, db, fence):
        self.db = db
        self.fence = fence

    def ensure_indexes(self):
        self.db.webhook_events.create_index([("money", pymongo.ASCENDING), ("received_at", pymongo.ASCENDING)])

    def event(self, event_id):
        """The recorded event if it is still due, in PayPal's shape."""
        document = self.db.webhook_events.find_one({"_id": event_id, "money": DUE})
        return document and as_event(document)

    def due(self, now):
        """Due events whose time has come, oldest first."""
        found = self.db.webhook_events.find({"money": DUE, "$or": [{"retry_at": None}, {"retry_at": {"$lte": now}}]})
        return [as_event(document) for document in found.sort("received_at", 1).limit(SWEEP_LIMIT)]

    def applied(self, event, now):
        self.fence.check()
        self.db.webhook_events.update_one({"_id": event["id"]}, {"$set": {"money": APPLIED, "applied_at": now,
                                                                           "retry_at": None, "waiting": None}})

    def later(self, event, retry_at, why):
        log.info("PayPal event %s (%s) waits until %s: %s", event["id"], event["event_type"], retry_at, why)
        self.db.webhook_events.update_one({"_id": event["id"]}, {"$set": {"retry_at": retry_at, "waiting": why},
                                                                 "$inc": {"tries": 1}})


def as_event(document):
    return {"id": document["_id"], "event_type": document.get("event_type"), "resource": document.get("resource") or {},
            "tries": document.get("tries", 0)}


def retry_at(event, now, base_s):
    """When a waiting event is tried again: refund_rules' backoff, from `base_s` up to a day."""
    return now + datetime.timedelta(seconds=refund_rules.retry_delay_s(event["tries"] + 1, base_s))
