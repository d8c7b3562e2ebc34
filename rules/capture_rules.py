"""A capture's life as the payments adapter (actors/payments.py) follows it, free of I/O: what
PayPal's answer to a capture request means, what a booked call payment becomes, and what a
late capture's refund does next. The adapter keeps the capture's state on its order document
(`capture_state`) and acts on these answers; every step is safe to repeat, because the ledger
books a capture once by its id and PayPal answers a repeated request id with the first answer.

States of a capture on its order (none: not captured yet, or the capture was never answered):
- pending: PayPal has not cleared it (an eCheck); read again until it clears or is denied.
- booked: a call payment in the ledger whose call has not yet said it uses it.
- used: among its call's payments (a tip is used at once): the host's.
- refunding: the call ended without it (a late capture): going back to the caller in full.
- refunded: given back, booked. refund_refused: PayPal would not, or failed too often: an
  operator's. declined: PayPal refused the payer's money; nothing was taken.
"""

PENDING, BOOKED, USED = "pending", "booked", "used"
REFUNDING, REFUNDED, REFUND_REFUSED, DECLINED = "refunding", "refunded", "refund_refused", "declined"

# A capture's states at PayPal that mean the payer's money came (a refund since does not undo
# that: a repeated capture request answers the capture's latest state).
MONEY_IN = frozenset({"COMPLETED", "REFUNDED", "PARTIALLY_REFUNDED"})
# PayPal's word that the payer's money will not come: the call ends.
FINAL_REFUSALS = frozenset({"INSTRUMENT_DECLINED", "PAYER_ACTION_REQUIRED"})
# PayPal's word that the order was captured already (by a request whose answer we lost, under a
# request id PayPal no longer remembers): the capture is read from the order.
ALREADY_CAPTURED = "ORDER_ALREADY_CAPTURED"

# What a refused capture request means.
FIND = "find"          # captured already: read the order's capture and act on it as the answer
FAIL = "fail"          # the payer's money will not come: the call hears why
WAIT = "wait"          # not possible yet (e.g. ORDER_NOT_APPROVED): the payer's approval asks again


def after_refusal(issue, name):
    """FIND, FAIL or WAIT for PayPal's refusal of a capture (its issue and error name)."""
    if ALREADY_CAPTURED in (issue, name):
        return FIND
    if issue in FINAL_REFUSALS or name in FINAL_REFUSALS:
        return FAIL
    return WAIT


# What a capture's state at PayPal means.
MISMATCH = "mismatch"  # money came, but not the order's amount or currency: all of it goes back
BOOK = "book"          # money came: booked once (then its call settles it)
FOLLOW = "follow"      # PENDING: read again until PayPal clears or denies it
DECLINE = "decline"    # DECLINED or FAILED: nothing was taken; the call hears it
LEAVE = "leave"        # a state PayPal may add: logged, left as it is


def after_capture(status, mismatched):
    """What to do with a capture PayPal reports in `status`; `mismatched`: its amount or
    currency is not the order's (only asked when money came)."""
    if status in MONEY_IN:
        return MISMATCH if mismatched else BOOK
    if status == "PENDING":
        return FOLLOW
    if status in ("DECLINED", "FAILED"):
        return DECLINE
    return LEAVE


# What a booked call payment becomes.

def settling(capture_state):
    """A call payment whose fate its call decides: booked, or on its way back."""
    return capture_state in (BOOKED, REFUNDING)


def payment_fate(capture_id, call):
    """For a settling capture: USED when the stored call lists it among its payments;
    REFUNDING (give it back) when the call is over or gone without it; WAIT when the call has
    not decided yet."""
    if call is not None and any(payment.get("capture_id") == capture_id for payment in call.get("payments", [])):
        return USED
    if call is None or call.get("state") == "ended":
        return REFUNDING
    return WAIT


# What a late capture's refund does next, from PayPal's status for it.
POLL = "poll"          # PENDING: nothing moved yet; read it again later
AGAIN = "again"        # FAILED or CANCELLED: nothing moved; ask a new refund (a new request id)
OPERATOR = "operator"  # failed or cancelled as often as the policy allows: an operator's


def after_late_refund(status, failed_before, attempts_max):
    """BOOK when COMPLETED; for FAILED or CANCELLED, AGAIN while fewer than `attempts_max`
    refunds (this one counted) came to nothing, else OPERATOR; POLL otherwise."""
    if status == "COMPLETED":
        return BOOK
    if status in ("FAILED", "CANCELLED"):
        return OPERATOR if failed_before + 1 >= attempts_max else AGAIN
    return POLL


def late_refund_request_id(capture_id, failed_before):
    """PayPal-Request-Id of a late capture's refund: a new one after each that came to nothing
    (the same id would answer the failed refund again)."""
    return f"late-refund-{capture_id}" + (f"-retry{failed_before}" if failed_before else "")
