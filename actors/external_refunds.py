"""Refunds PayPal reports by webhook (PAYMENT.CAPTURE.REFUNDED, sent for every refund, ours
included), booked when the ledger does not have them yet: a refund made outside the platform
(an operator on PayPal's dashboard) would otherwise leave the ledger and PayPal disagreeing.

The event's resource is the refund; its capture is the `up` link. The ledger key is the
platform's own, `refund:<refund id>`: a refund the refunds actor made (or will book in a
moment), a duplicate or a replayed delivery finds it and books nothing more; two deliveries
racing insert one (the unique _id). Run by the refunds actor (actors/money_events.py); a
database failure raises and the event is applied again later; so is a refund of one of our
captures that is not booked yet (actors/booked_captures.py)."""
import datetime
import logging

from actors import disputes, ledger_store
from rules import fees, ledger, refund_rules
from actors.booked_captures import NotYet, booked_capture
from rules.terms import Refused

log = logging.getLogger(__name__)

EVENT_TYPE = "PAYMENT.CAPTURE.REFUNDED"
# A refund in these states moved no money.
NOT_DONE = {"FAILED", "CANCELLED"}
# actors/payments.py's order states of a late capture's whole refund (not imported: that
# module is the payments adapter's, with all its imports).
LATE_REFUND_STATES = ("refunding", "refunded")


class RefundNotSettledYet(NotYet):
    """The platform is refunding this capture itself right now: the event waits."""


def capture_id_of(refund):
    """The refunded capture: PayPal's `up` link (…/v2/payments/captures/<id>), else
    supplementary_data.related_ids.capture_id when present."""
    for link in refund.get("links") or []:
        if link.get("rel") == "up" and "/captures/" in str(link.get("href", "")):
            return link["href"].rstrip("/").rsplit("/", 1)[1] or None
    related = (refund.get("supplementary_data") or {}).get("related_ids") or {}
    return related.get("capture_id")


def apply(db, paypal, event, fence=None):
    """Book an external refund; False when there is nothing (more) to book. `paypal` reads a
    capture the ledger does not hold (actors/booked_captures.py); `fence`: the refunds actor's
    lease, checked before the booking."""
    if event.get("event_type") != EVENT_TYPE:
        return False
    refund = event.get("resource") or {}
    refund_id, capture_id = refund.get("id"), capture_id_of(refund)
    amount = refund.get("amount") or {}
    if (not isinstance(refund_id, str) or not refund_id or ":" in refund_id or not capture_id or ":" in capture_id
            or amount.get("currency_code", "USD") != "USD" or refund.get("status") in NOT_DONE):
        log.warning("refund event %s without a usable refund id, capture, USD amount or status: ignored",
                    event.get("id"))
        return False
    if db.ledger.find_one({"_id": f"refund:{refund_id}"}, {"_id": 1}) is not None:
        return False  # ours, or this refund seen before
    # A late capture the platform refunds whole is booked under the capture, not the refund id.
    if db.ledger.find_one({"_id": f"capture:{capture_id}:late-refund"}, {"_id": 1}) is not None:
        return False
    captured = booked_capture(db, paypal, capture_id)
    if captured is None or captured.get("kind") not in (ledger.CALL_PAYMENT, ledger.TIP):
        log.warning("refund %s of capture %s that is not ours: ignored", refund_id, capture_id)
        return False
    order = db.orders.find_one({"capture_id": capture_id}, {"capture_state": 1})
    if order is not None and order.get("capture_state") in LATE_REFUND_STATES:
        # Its late-capture refund is under way (booked as REFUNDED or will be): only once it is
        # booked can we tell ours from one made by hand, so PayPal asks again later.
        raise RefundNotSettledYet(f"capture {capture_id} is being refunded by the platform")
    try:
        cents = fees.parse_dollars(str(amount.get("value")))
    except Refused:
        log.warning("refund %s of capture %s has no readable amount: ignored", refund_id, capture_id)
        return False
    if cents <= 0:
        return False
    payment = refund_rules.payment_of(captured)
    # A tip's net went straight to available: no pending to take from.
    pending_cents = (disputes.call_pending_cents(db, payment["call_id"], payment["host_id"])
                     if payment["kind"] == ledger.CALL_PAYMENT else 0)
    # The caller got `amount` back and PayPal took it from the platform's balance (no fee back
    # on a refund): the member's earnings pay it, available going negative if need be.
    transaction = ledger.refund_transaction(payment["call_id"], payment["host_id"], payment["caller_id"],
                                            refund_id, cents, pending_cents, capture_id)
    try:
        booked = ledger_store.book(db, transaction, datetime.datetime.now(datetime.timezone.utc), fence=fence)
    except ledger_store.KeyReused:
        # The refunds actor booked this refund (ours after all) between our read and our write,
        # split from the call's pending as it found it: that booking stands.
        return False
    if booked:
        log.info("refund %s of capture %s made outside the platform: %d cents booked", refund_id, capture_id, cents)
    return booked
