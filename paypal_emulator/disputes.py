"""Customer disputes, opened from the control API (PayPal's buyers open them; the merchant
only hears CUSTOMER.DISPUTE.* webhooks). Shapes follow customer_disputes_v1.json."""
import dataclasses
import datetime

from paypal_emulator import ids
from paypal_emulator.events import Event, timestamp
from paypal_emulator.money import format_cents, money

REASONS = ("MERCHANDISE_OR_SERVICE_NOT_RECEIVED", "MERCHANDISE_OR_SERVICE_NOT_AS_DESCRIBED", "UNAUTHORISED",
           "CREDIT_NOT_PROCESSED", "DUPLICATE_TRANSACTION", "INCORRECT_AMOUNT", "PAYMENT_BY_OTHER_MEANS",
           "CANCELED_RECURRING_BILLING", "PROBLEM_WITH_REMITTANCE", "OTHER")
OUTCOMES = ("RESOLVED_BUYER_FAVOUR", "RESOLVED_SELLER_FAVOUR", "RESOLVED_WITH_PAYOUT", "CANCELED_BY_BUYER",
            "ACCEPTED", "DENIED", "NONE")
# A seller has 10 days to answer an inquiry before PayPal decides.
SELLER_RESPONSE_WINDOW = datetime.timedelta(days=10)


@dataclasses.dataclass
class Dispute:
    id: str
    capture_id: str
    reason: str
    amount_cents: int
    create_time: datetime.datetime
    update_time: datetime.datetime
    status: str = "OPEN"
    outcome: str = None
    fee_cents: int = 0          # PayPal's dispute fee, charged when the buyer wins


# Outcomes where the buyer got the money from the merchant: PayPal charges its dispute fee.
BUYER_WON = ("RESOLVED_BUYER_FAVOUR", "ACCEPTED")


class Disputes:
    def __init__(self, urls, payments, dispute_fee_cents=0):
        self.urls = urls
        self.payments = payments
        self.dispute_fee_cents = dispute_fee_cents
        self.disputes = {}

    def open(self, capture_id, reason, amount_cents, now):
        capture = self.payments.capture(capture_id)
        if reason not in REASONS:
            raise ValueError(f"reason must be one of {', '.join(REASONS)}")
        amount_cents = capture.amount_cents if amount_cents is None else amount_cents
        if not 0 < amount_cents <= capture.amount_cents:
            raise ValueError(f"a dispute on capture {capture_id} is for 0.01 to {format_cents(capture.amount_cents)}")
        dispute = Dispute(ids.dispute_id(), capture_id, reason, amount_cents, now, now)
        self.disputes[dispute.id] = dispute
        capture.dispute_ids.append(dispute.id)
        return dispute, [Event("CUSTOMER.DISPUTE.CREATED", "dispute",
                               f"A new dispute opened with Case # {dispute.id}", self.to_json(dispute), "1.0")]

    def resolve(self, dispute_id, outcome, now):
        dispute = self.disputes.get(dispute_id)
        if dispute is None:
            raise KeyError(dispute_id)
        if dispute.status == "RESOLVED":
            raise ValueError(f'Cannot resolve dispute {dispute_id} in status "RESOLVED"')
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
        dispute.status, dispute.outcome, dispute.update_time = "RESOLVED", outcome, now
        if outcome in BUYER_WON:
            dispute.fee_cents = self.dispute_fee_cents
        return dispute, [Event("CUSTOMER.DISPUTE.RESOLVED", "dispute",
                               f"A dispute was resolved with case # {dispute.id}", self.to_json(dispute), "1.0")]

    def to_json(self, dispute):
        capture = self.payments.captures[dispute.capture_id]
        body = {"dispute_id": dispute.id, "create_time": timestamp(dispute.create_time),
                "update_time": timestamp(dispute.update_time),
                "disputed_transactions": [{"seller_transaction_id": capture.id,
                                           "create_time": timestamp(capture.create_time),
                                           "transaction_status": capture.status,
                                           "gross_amount": money(capture.amount_cents),
                                           **({"custom": capture.custom_id} if capture.custom_id else {}),
                                           "seller": {"merchant_id": self.payments.merchant["merchant_id"]}}],
                "reason": dispute.reason, "status": dispute.status, "dispute_amount": money(dispute.amount_cents),
                "dispute_life_cycle_stage": "INQUIRY", "dispute_channel": "INTERNAL",
                "seller_response_due_date": timestamp(dispute.create_time + SELLER_RESPONSE_WINDOW),
                "links": [{"href": self.urls.dispute(dispute.id), "rel": "self", "method": "GET"}]}
        if dispute.outcome:
            body["dispute_outcome"] = {"outcome_code": dispute.outcome}
            if dispute.outcome == "RESOLVED_BUYER_FAVOUR":
                body["dispute_outcome"]["amount_refunded"] = money(dispute.amount_cents)
            if dispute.outcome in BUYER_WON:
                # What moved on the merchant's account (the Disputes API's money_movements).
                moved = [(dispute.amount_cents, "DISPUTE_SETTLEMENT"), (dispute.fee_cents, "DISPUTE_FEE")]
                body["money_movements"] = [
                    {"affected_party": "SELLER", "amount": money(cents), "initiated_time": timestamp(dispute.update_time),
                     "type": "DEBIT", "reason": reason} for cents, reason in moved if cents]
        return body
