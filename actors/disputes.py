"""PayPal disputes as the refunds actor applies their webhooks (actors/money_events.py): freeze
the disputed call's earnings, then book the outcome (rules in rules/dispute_rules.py). A
database failure raises and the event is applied again later. Every write is keyed by the
dispute, so a duplicate, a replay or a reordering books nothing twice."""
import datetime
import logging

from actors import ledger_store
from rules import dispute_rules, ledger, refund_rules
from actors.booked_captures import booked_capture

log = logging.getLogger(__name__)


def apply(db, paypal, event, fence=None):
    """Act on a CUSTOMER.DISPUTE.* event; False when it is not one we act on. `paypal` reads a
    capture the ledger does not hold: a dispute of one of ours not booked yet waits
    (actors/booked_captures.py), so it freezes the call's earnings once the capture is in.
    `fence`: the refunds actor's lease, checked before each booking."""
    dispute = dispute_rules.parse(event)
    if dispute is None:
        if str(event.get("event_type", "")).startswith(dispute_rules.EVENT_PREFIX):
            log.warning("dispute event %s without a dispute id, amount or transaction: ignored", event.get("id"))
        return False
    captured = None
    for capture_id in dispute.capture_ids:
        captured = booked_capture(db, paypal, capture_id)
        if captured is not None:
            break
    if captured is None:
        log.warning("dispute %s names no capture of ours (%s): ignored", dispute.dispute_id,
                    ", ".join(dispute.capture_ids))
        return False
    payment = refund_rules.payment_of(captured)
    pending_cents = call_pending_cents(db, payment["call_id"], payment["host_id"])
    freeze = book(db, dispute_rules.freeze_transaction(dispute, payment, pending_cents), fence)
    if dispute.resolved:
        book(db, dispute_rules.resolution_transaction(dispute, freeze, payment), fence)
        if dispute_rules.fee_transaction(dispute) is not None:
            book(db, dispute_rules.fee_transaction(dispute), fence)
    return True


def call_pending_cents(db, call_id, member_id):
    account = ledger.pending(member_id)
    rows = list(db.ledger.aggregate([
        {"$match": {"call_id": call_id, "entries.account": account}}, {"$unwind": "$entries"},
        {"$match": {"entries.account": account}},
        {"$group": {"_id": None, "cents": {"$sum": "$entries.amount_cents"}}}]))
    return rows[0]["cents"] if rows else 0


def book(db, transaction, fence=None):
    """The transaction as booked under its key: this one, or the one booked first."""
    try:
        ledger_store.book(db, transaction, datetime.datetime.now(datetime.timezone.utc), fence=fence)
    except ledger_store.KeyReused as reused:
        # Each delivery computes its freeze from the call's pending as it finds it, so two may
        # split pending/available differently (and a resolution follows its freeze): the first
        # stands, and what follows is booked against it.
        return reused.stored
    return transaction
