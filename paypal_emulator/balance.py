"""The merchant's PayPal balance (GET /v1/reporting/balances), computed from what this
emulator did: what captures and subscription sales brought in net of PayPal's fee, less
completed refunds, payout items that left (with their fee once delivered) and disputes the
payer won. Pure: it reads the stores' records, in integer cents."""
from paypal_emulator.events import timestamp
from paypal_emulator.money import CURRENCY, format_cents

MONEY_IN = ("COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED")
# Payout item statuses whose money came back to the sender (or never left).
PAYOUT_BACK = ("FAILED", "RETURNED", "BLOCKED", "REFUNDED", "REVERSED", "CANCELED", "DENIED")
# Dispute outcomes in the payer's favour: PayPal took the disputed amount back from the merchant.
DISPUTE_LOST = ("RESOLVED_BUYER_FAVOUR", "ACCEPTED")


def balance_cents(payments, payouts, subscriptions, disputes):
    """The USD balance (money in another currency sits in a balance of its own)."""
    captured = sum(c.amount_cents - c.fee_cents for c in payments.captures.values()
                   if c.status in MONEY_IN and c.currency == CURRENCY)
    refunded = sum(r.amount_cents for r in payments.refunds.values()
                   if r.status == "COMPLETED" and r.currency == CURRENCY)
    paid_out = sum(i.amount_cents + (i.fee_cents if i.status == "SUCCESS" else 0)
                   for i in payouts.items.values() if i.status not in PAYOUT_BACK)
    sold = sum(s.amount_cents - s.fee_cents for s in subscriptions.sales.values() if s.currency == CURRENCY)
    sold -= sum(r.amount_cents for r in subscriptions.sale_refunds.values() if r.currency == CURRENCY)
    lost = sum(d.amount_cents + d.fee_cents for d in disputes.disputes.values() if d.outcome in DISPUTE_LOST)
    return captured - refunded - paid_out + sold - lost


def balances_json(cents, merchant_id, now):
    """PayPal's answer shape: one primary USD balance (nothing is withheld here)."""
    value = {"currency_code": CURRENCY, "value": format_cents(cents)}
    return {"balances": [{"currency": CURRENCY, "primary": True, "total_balance": value,
                          "available_balance": value,
                          "withheld_balance": {"currency_code": CURRENCY, "value": "0.00"}}],
            "account_id": merchant_id, "as_of_time": timestamp(now), "last_refresh_time": timestamp(now)}
