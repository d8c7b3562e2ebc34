"""PayPal disputes as the gateway's webhook handler applies them: freeze the disputed call's
earnings, then book the outcome (rules in actors/dispute_rules.py). No PayPal call is needed,
so this runs on the loop with the async driver; a database failure raises, the webhook answers
5xx and PayPal delivers again. Every write is keyed by the dispute, so a duplicate, a replay or
a reordering books nothing twice."""
import datetime
import logging

from actors import dispute_rules, ledger, ledger_store, refund_rules
from gateway.booked_captures import booked_capture

log = logging.getLogger(__name__)


async def apply(db, paypal, event):
    """Act on a CUSTOMER.DISPUTE.* event; False when it is not one we act on. `paypal` reads a
    capture the ledger does not hold: a dispute of one of ours not booked yet answers 5xx
    (gateway/booked_captures.py), so it freezes the call's earnings once the capture is in."""
    dispute = dispute_rules.parse(event)
    if dispute is None:
        if str(event.get("event_type", "")).startswith(dispute_rules.EVENT_PREFIX):
            log.warning("dispute event %s without a dispute id, amount or transaction: ignored", event.get("id"))
        return False
    captured = None
    for capture_id in dispute.capture_ids:
        captured = await booked_capture(db, paypal, capture_id)
        if captured is not None:
            break
    if captured is None:
        log.warning("dispute %s names no capture of ours (%s): ignored", dispute.dispute_id,
                    ", ".join(dispute.capture_ids))
        return False
    payment = refund_rules.payment_of(captured)
    pending_cents = await call_pending_cents(db, payment["call_id"], payment["host_id"])
    freeze = await book(db, dispute_rules.freeze_transaction(dispute, payment, pending_cents))
    if dispute.resolved:
        await book(db, dispute_rules.resolution_transaction(dispute, freeze, payment))
        if dispute_rules.fee_transaction(dispute) is not None:
            await book(db, dispute_rules.fee_transaction(dispute))
    return True


async def call_pending_cents(db, call_id, member_id):
    account = ledger.pending(member_id)
    rows = await (await db.ledger.aggregate([
        {"$match": {"call_id": call_id, "entries.account": account}}, {"$unwind": "$entries"},
        {"$match": {"entries.account": account}},
        {"$group": {"_id": None, "cents": {"$sum": "$entries.amount_cents"}}}])).to_list()
    return rows[0]["cents"] if rows else 0


async def book(db, transaction):
    """The transaction as booked under its key: this one, or the one booked first."""
    try:
        await ledger_store.book_async(db, transaction, datetime.datetime.now(datetime.timezone.utc))
    except ledger_store.KeyReused as reused:
        # Each delivery computes its freeze from the call's pending as it finds it, so two may
        # split pending/available differently (and a resolution follows its freeze): the first
        # stands, and what follows is booked against it.
        return reused.stored
    return transaction
