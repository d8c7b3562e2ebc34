"""PayPal disputes, free of I/O: what a CUSTOMER.DISPUTE.* event says, and the ledger
transactions it makes (the builders are in ledger.py).

Decisions:
- Any CUSTOMER.DISPUTE.* event of an unresolved dispute freezes the disputed capture's
  earnings (`dispute:<id>:freeze`); the first one booked stands, so duplicates and UPDATED
  events change nothing. The freeze is the disputed amount, at most what the member earned on
  that capture (its amount minus PayPal's fee): the rest of a lost dispute is taken from
  available when PayPal reverses it.
- CUSTOMER.DISPUTE.RESOLVED (or any event with status RESOLVED) books the outcome once
  (`dispute:<id>:resolved`). Lost for the member when the caller got the money from the merchant
  (RESOLVED_BUYER_FAVOUR, ACCEPTED): `amount_refunded` (else the disputed amount) goes back to
  the caller. Every other outcome (seller favour, cancelled by the buyer, denied, none, and
  RESOLVED_WITH_PAYOUT, where PayPal pays the buyer itself) unfreezes the money exactly.
- A resolution that arrives before its creation (PayPal promises no order) books the freeze
  first, from the resolution's own fields; the creation arriving later is then a repeat.
- PayPal's dispute fee (a `money_movements` debit of the seller with reason DISPUTE_FEE or
  CHARGEBACK_FEE, on the resolved dispute) is booked once as the platform's cost
  (`dispute:<id>:fee`): the member loses the disputed amount, never PayPal's fee on it.
- A dispute names one capture here (the first disputed transaction that is ours); PayPal's
  multi-transaction disputes are not used by our one-capture orders.
"""
import dataclasses

from rules import fees, ledger
from rules.terms import Refused

RESOLVED = "RESOLVED"
LOST_OUTCOMES = frozenset({"RESOLVED_BUYER_FAVOUR", "ACCEPTED"})
FEE_REASONS = frozenset({"DISPUTE_FEE", "CHARGEBACK_FEE"})
EVENT_PREFIX = "CUSTOMER.DISPUTE."


@dataclasses.dataclass(frozen=True)
class Dispute:
    dispute_id: str
    capture_ids: tuple          # the disputed transactions, in PayPal's order
    amount_cents: int
    resolved: bool
    outcome: str = None
    refunded_cents: int = None  # what the buyer got back, when PayPal says
    fee_cents: int = 0          # PayPal's dispute (or chargeback) fee, taken from the merchant


def _cents(money):
    try:
        return fees.parse_dollars(str((money or {}).get("value")))
    except Refused:
        return None


def parse(event):
    """The dispute a CUSTOMER.DISPUTE.* event is about, or None (another event, or one without
    the fields we act on)."""
    if not str(event.get("event_type", "")).startswith(EVENT_PREFIX):
        return None
    resource = event.get("resource") or {}
    dispute_id = resource.get("dispute_id")
    captures = tuple(t.get("seller_transaction_id") for t in resource.get("disputed_transactions") or ()
                     if isinstance(t, dict) and t.get("seller_transaction_id"))
    amount_cents = _cents(resource.get("dispute_amount"))
    if not isinstance(dispute_id, str) or not dispute_id or ":" in dispute_id or not captures or not amount_cents:
        return None
    outcome = resource.get("dispute_outcome") or {}
    resolved = event["event_type"] == EVENT_PREFIX + "RESOLVED" or resource.get("status") == RESOLVED
    fee_cents = sum(_cents(movement.get("amount")) or 0 for movement in resource.get("money_movements") or ()
                    if isinstance(movement, dict) and movement.get("reason") in FEE_REASONS
                    and movement.get("affected_party") == "SELLER" and movement.get("type") == "DEBIT")
    return Dispute(dispute_id, captures, amount_cents, resolved, outcome.get("outcome_code"),
                   _cents(outcome.get("amount_refunded")) if outcome.get("amount_refunded") else None, fee_cents)


def freeze_transaction(dispute, payment, call_pending_cents):
    """`payment` is the disputed capture as booked (refund_rules.payment_of)."""
    earned_cents = payment["amount_cents"] - payment["fee_cents"]
    return ledger.dispute_freeze_transaction(payment["call_id"], payment["host_id"], dispute.dispute_id,
                                             min(dispute.amount_cents, earned_cents), call_pending_cents)


def frozen_cents(freeze):
    return sum(e.amount_cents for e in freeze.entries if e.amount_cents > 0
               and (ledger.parse_member_account(e.account) or (None, None))[1] == "frozen")


def fee_transaction(dispute):
    """PayPal's fee on the resolved dispute, or None when it charged none."""
    return ledger.dispute_fee_transaction(dispute.dispute_id, dispute.fee_cents) if dispute.fee_cents else None


def resolution_transaction(dispute, freeze, payment):
    if dispute.outcome in LOST_OUTCOMES:
        return ledger.dispute_lost_transaction(payment["call_id"], payment["host_id"], payment["caller_id"],
                                               dispute.dispute_id, dispute.refunded_cents or dispute.amount_cents,
                                               frozen_cents(freeze), capture_id=payment["capture_id"])
    return ledger.dispute_won_transaction(freeze, dispute.dispute_id)
