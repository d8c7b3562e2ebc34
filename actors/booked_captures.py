"""The booked capture a refund or dispute event is about, for the code that books what PayPal
did to it (actors/disputes.py, actors/external_refunds.py), run by the refunds actor.

PayPal may tell of a refund or a dispute before the capture itself is in our ledger: its
capture answer was lost and the payments adapter is still reading the order, or the event
simply overtook it. Dropped, the ledger would never learn of the money; so a capture the ledger
does not hold is read at PayPal, and if its order is one of ours whose capture is not booked
yet, the event waits (actors/money_events.py) and is applied again later."""
import logging

from interkanect.paypal import PayPalError

log = logging.getLogger(__name__)

# rules/capture_rules.py's order states of a capture that may still be booked. None: no
# answer acted on yet.
NOT_BOOKED_YET = (None, "pending")


class NotYet(Exception):
    """An event that cannot be applied yet: it waits and is applied again later."""


class CaptureNotBookedYet(NotYet):
    pass


def booked_capture(db, paypal, capture_id):
    """The capture's ledger transaction (a document), or None when it is not ours. Raises
    CaptureNotBookedYet for a capture of one of our orders that is not booked yet, and
    PayPalUnavailable (or PayPalError) when PayPal cannot say whose it is: both wait."""
    if not capture_id or ":" in capture_id:
        return None
    captured = db.ledger.find_one({"_id": f"capture:{capture_id}"})
    if captured is not None:
        return captured
    try:
        order_id = paypal.get_capture(capture_id)["order_id"]
    except PayPalError as error:
        if error.status != 404:
            raise
        order_id = None    # a capture PayPal does not know
    order = db.orders.find_one({"_id": order_id}, {"capture_state": 1}) if order_id else None
    if order is None:
        return None
    if order.get("capture_state") in NOT_BOOKED_YET:
        raise CaptureNotBookedYet(f"capture {capture_id} of order {order_id} is not booked yet")
    # Ours but never booked in dollars (a capture in another currency, refunded whole): nothing
    # of the ledger's to change.
    log.info("capture %s of order %s is %s and not in the ledger: nothing to book", capture_id, order_id,
             order.get("capture_state"))
    return None
