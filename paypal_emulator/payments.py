"""Payments v2: captured payments and their refunds (/v2/payments/captures/{id},
/v2/payments/captures/{id}/refund, /v2/payments/refunds/{id}). Shapes follow
payments_payment_v2.json; the rules take `now` and return (resource, created, events)."""
import dataclasses
import datetime

from paypal_emulator import ids
from paypal_emulator.errors import PAYMENTS_API, PayPalError, detail, invalid, not_found, unprocessable
from paypal_emulator.events import Event, dollars, timestamp
from paypal_emulator.idempotency import REFUNDS_KEY_TTL_S
from paypal_emulator.links import link
from paypal_emulator.money import CURRENCY, AmountError, fee_cents, format_cents, money, parse_cents

# PayPal refuses refunds on captures older than 180 days (REFUND_TIME_LIMIT_EXCEEDED).
REFUND_TIME_LIMIT = datetime.timedelta(days=180)
SETTLED = ("COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED")
CAPTURE_EVENTS = {"COMPLETED": "PAYMENT.CAPTURE.COMPLETED", "PENDING": "PAYMENT.CAPTURE.PENDING",
                  "DECLINED": "PAYMENT.CAPTURE.DECLINED"}
# A refund's status and what announces it: a completed refund is the capture's REFUNDED event;
# the others have the refund's own events.
REFUND_EVENTS = {"COMPLETED": "PAYMENT.CAPTURE.REFUNDED", "PENDING": "PAYMENT.REFUND.PENDING",
                 "FAILED": "PAYMENT.REFUND.FAILED", "CANCELLED": "PAYMENT.REFUND.CANCELLED"}
REFUND_VERDICTS = {"complete": "COMPLETED", "fail": "FAILED", "cancel": "CANCELLED"}


@dataclasses.dataclass
class Capture:
    id: str
    order_id: str
    amount_cents: int
    status: str
    create_time: datetime.datetime
    update_time: datetime.datetime
    custom_id: str = None
    invoice_id: str = None
    # Why a capture is PENDING (capture_status_details.reason), e.g. PENDING_REVIEW.
    status_reason: str = None
    refunded_cents: int = 0
    refund_ids: list = dataclasses.field(default_factory=list)
    dispute_ids: list = dataclasses.field(default_factory=list)
    # Captures are in the order's currency (USD); a capture_mismatch fault can make one another.
    currency: str = CURRENCY

    @property
    def fee_cents(self):
        return fee_cents(self.amount_cents)

    @property
    def refundable_cents(self):
        return self.amount_cents - self.refunded_cents


@dataclasses.dataclass
class Refund:
    id: str
    capture_id: str
    amount_cents: int
    total_refunded_cents: int
    create_time: datetime.datetime
    invoice_id: str = None
    custom_id: str = None
    note_to_payer: str = None
    status: str = "COMPLETED"
    update_time: datetime.datetime = None
    currency: str = CURRENCY


def _optional(body, **fields):
    body.update({name: value for name, value in fields.items() if value is not None})
    return body


class Payments:
    def __init__(self, urls, request_ids, merchant):
        self.urls = urls
        self.request_ids = request_ids
        self.merchant = merchant  # {"email_address", "merchant_id"}
        self.captures = {}
        self.refunds = {}

    def capture(self, capture_id):
        if capture_id not in self.captures:
            raise not_found(capture_id, "capture_id", PAYMENTS_API)
        return self.captures[capture_id]

    def refund(self, refund_id):
        if refund_id not in self.refunds:
            raise not_found(refund_id, "refund_id", PAYMENTS_API)
        return self.refunds[refund_id]

    def new_capture(self, order_id, amount_cents, status, now, custom_id=None, invoice_id=None, currency=CURRENCY):
        capture = Capture(ids.capture_id(), order_id, amount_cents, status, now, now, custom_id, invoice_id,
                          status_reason="PENDING_REVIEW" if status == "PENDING" else None, currency=currency)
        self.captures[capture.id] = capture
        return capture

    def capture_event(self, capture):
        event_type = CAPTURE_EVENTS[capture.status]
        verb = {"COMPLETED": "completed", "PENDING": "pending", "DECLINED": "declined"}[capture.status]
        return Event(event_type, "capture", f"Payment {verb} for {dollars(format_cents(capture.amount_cents))}",
                     self.capture_json(capture))

    def settle(self, capture_id, complete, now):
        """A PENDING capture clears (PAYMENT.CAPTURE.COMPLETED) or is denied (PAYMENT.CAPTURE.DENIED)."""
        capture = self.capture(capture_id)
        if capture.status != "PENDING":
            raise ValueError(f'Cannot settle capture {capture_id} in status "{capture.status}"')
        capture.status = "COMPLETED" if complete else "DECLINED"
        capture.status_reason, capture.update_time = None, now
        if complete:
            return capture, [self.capture_event(capture)]
        return capture, [Event("PAYMENT.CAPTURE.DENIED", "capture",
                               f"Payment denied for {dollars(format_cents(capture.amount_cents))}",
                               self.capture_json(capture))]

    def refund_capture(self, capture_id, body, request_id, now, take_outcome=lambda: "COMPLETED"):
        """POST /v2/payments/captures/{id}/refund: an empty body refunds what is left.
        `take_outcome()`, asked once the refund is going to be made, says what PayPal makes of
        it (a fault's choice): COMPLETED, PENDING (the amount is held from the capture until it
        completes, fails or is cancelled) or FAILED (nothing moved)."""
        capture = self.capture(capture_id)
        key = ("captures.refund", capture_id, request_id)
        known = request_id and self.request_ids.lookup(key, now)
        if known:
            return self.refunds[known], False, []
        amount_cents = self._refund_amount(capture, body or {})
        self._check_refundable(capture, amount_cents, now)
        status = take_outcome()
        if status != "FAILED":
            self._move(capture, amount_cents, now)
        body = body or {}
        refund = Refund(ids.refund_id(), capture.id, amount_cents, capture.refunded_cents, now,
                        body.get("invoice_id"), body.get("custom_id"), body.get("note_to_payer"), status, now,
                        capture.currency)
        self.refunds[refund.id] = refund
        capture.refund_ids.append(refund.id)
        if request_id:
            self.request_ids.remember(key, refund.id, now, REFUNDS_KEY_TTL_S)
        return refund, True, [self.refund_event(refund)]

    def settle_refund(self, refund_id, verdict, now):
        """A PENDING refund completes, fails or is cancelled (`verdict` complete, fail, cancel);
        one that does not complete gives its amount back to the capture."""
        refund = self.refund(refund_id)
        if refund.status != "PENDING":
            raise ValueError(f'Cannot settle refund {refund_id} in status "{refund.status}"')
        refund.status, refund.update_time = REFUND_VERDICTS[verdict], now
        if refund.status != "COMPLETED":
            self._move(self.capture(refund.capture_id), -refund.amount_cents, now)
        return refund, [self.refund_event(refund)]

    @staticmethod
    def _move(capture, refunded_cents, now):
        capture.refunded_cents += refunded_cents
        capture.status = ("COMPLETED" if capture.refunded_cents == 0 else
                          "REFUNDED" if capture.refundable_cents == 0 else "PARTIALLY_REFUNDED")
        capture.update_time = now

    def refund_event(self, refund):
        verb = {"COMPLETED": "was refunded", "PENDING": "refund is pending", "FAILED": "refund failed",
                "CANCELLED": "refund was cancelled"}[refund.status]
        return Event(REFUND_EVENTS[refund.status], "refund",
                     f"A {dollars(format_cents(refund.amount_cents))} capture payment {verb}", self.refund_json(refund))

    def _refund_amount(self, capture, body):
        if not isinstance(body, dict):
            raise invalid("MALFORMED_REQUEST_JSON", api=PAYMENTS_API)
        amount = body.get("amount")
        if amount is None:
            return capture.refundable_cents
        if not isinstance(amount, dict) or "value" not in amount:
            raise invalid("MISSING_REQUIRED_PARAMETER", "/amount/value", api=PAYMENTS_API)
        if "currency_code" not in amount:
            raise invalid("MISSING_REQUIRED_PARAMETER", "/amount/currency_code", api=PAYMENTS_API)
        if amount["currency_code"] != capture.currency:
            raise unprocessable("REFUND_CAPTURE_CURRENCY_MISMATCH", "/amount/currency_code",
                                str(amount["currency_code"]), api=PAYMENTS_API)
        try:
            return parse_cents(amount["value"])
        except AmountError as error:
            raise PayPalError(error.status, [detail(error.issue, "/amount/value", str(amount["value"]))],
                              PAYMENTS_API) from None

    def _check_refundable(self, capture, amount_cents, now):
        if capture.status == "PENDING":
            raise unprocessable("PENDING_CAPTURE", api=PAYMENTS_API)
        if capture.status not in SETTLED:
            raise unprocessable("REFUND_NOT_ALLOWED", api=PAYMENTS_API)
        if capture.refundable_cents == 0:
            raise unprocessable("CAPTURE_FULLY_REFUNDED", api=PAYMENTS_API)
        if now - capture.create_time > REFUND_TIME_LIMIT:
            raise unprocessable("REFUND_TIME_LIMIT_EXCEEDED", api=PAYMENTS_API)
        if amount_cents > capture.refundable_cents:
            raise unprocessable("REFUND_AMOUNT_EXCEEDED", "/amount/value", format_cents(amount_cents),
                                api=PAYMENTS_API)
        if capture.dispute_ids and amount_cents < capture.refundable_cents:
            raise unprocessable("TRANSACTION_DISPUTED", api=PAYMENTS_API)

    def capture_json(self, capture, in_order=False):
        """A capture as GET /v2/payments/captures/{id} shows it; inside an order (in_order)
        PayPal leaves out the payee and the related ids."""
        body = {"id": capture.id, "status": capture.status}
        if capture.status_reason:
            body["status_details"] = {"reason": capture.status_reason}
        body["amount"] = money(capture.amount_cents, capture.currency)
        body["final_capture"] = True
        body["seller_protection"] = {"status": "ELIGIBLE",
                                     "dispute_categories": ["ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"]}
        if capture.status in SETTLED:  # PayPal: "not available for transactions that are in pending state"
            body["seller_receivable_breakdown"] = {
                "gross_amount": money(capture.amount_cents, capture.currency),
                "paypal_fee": money(capture.fee_cents, capture.currency),
                "net_amount": money(capture.amount_cents - capture.fee_cents, capture.currency)}
        _optional(body, custom_id=capture.custom_id, invoice_id=capture.invoice_id)
        body["links"] = [link(self.urls.capture(capture.id), "self"),
                         link(self.urls.capture(capture.id) + "/refund", "refund", "POST"),
                         link(self.urls.order(capture.order_id), "up")]
        body["create_time"] = timestamp(capture.create_time)
        body["update_time"] = timestamp(capture.update_time)
        if not in_order:
            body["supplementary_data"] = {"related_ids": {"order_id": capture.order_id}}
            body["payee"] = dict(self.merchant)
        return body

    def refund_json(self, refund):
        currency = refund.currency
        body = {"id": refund.id, "amount": money(refund.amount_cents, currency),
                # U.S. merchants get no fee back on a refund, so the whole refund is debited.
                "seller_payable_breakdown": {"gross_amount": money(refund.amount_cents, currency),
                                             "paypal_fee": money(0, currency),
                                             "net_amount": money(refund.amount_cents, currency),
                                             "total_refunded_amount": money(refund.total_refunded_cents, currency)}}
        _optional(body, invoice_id=refund.invoice_id, custom_id=refund.custom_id, note_to_payer=refund.note_to_payer)
        body["status"] = refund.status
        if refund.status == "PENDING":  # PayPal's one documented reason: the payer paid by eCheck
            body["status_details"] = {"reason": "ECHECK"}
        body.update({"create_time": timestamp(refund.create_time),
                     "update_time": timestamp(refund.update_time or refund.create_time),
                     "links": [link(self.urls.refund(refund.id), "self"),
                               link(self.urls.capture(refund.capture_id), "up")]})
        return body
