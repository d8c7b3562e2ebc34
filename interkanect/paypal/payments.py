"""Payments through PayPal's SDK (paypal-server-sdk): Orders v2 (an order for agreed terms, its
capture, the order read back) and Payments v2 (a capture read back, refunds and their state),
pointed at PayPal or at the local emulator by base URL. Blocking, and it loads the SDK: used only
inside the payments adapter's and the refunds actor's own processes.

Every POST carries a PayPal-Request-Id derived from what it is for (the call and round, the
refund request), so a retry after a 5xx, a timeout or a lost answer returns the first result
instead of making a second order, capture or refund.
"""
import logging
import time

from paypalserversdk.configuration import Configuration, Environment, Server
from paypalserversdk.exceptions.error_exception import ErrorException
from paypalserversdk.http.auth.o_auth_2 import ClientCredentialsAuthCredentials
from paypalserversdk.models.amount_with_breakdown import AmountWithBreakdown
from paypalserversdk.models.checkout_payment_intent import CheckoutPaymentIntent
from paypalserversdk.models.order_request import OrderRequest
from paypalserversdk.models.payment_source import PaymentSource
from paypalserversdk.models.paypal_wallet import PaypalWallet
from paypalserversdk.models.paypal_wallet_experience_context import PaypalWalletExperienceContext
from paypalserversdk.models.purchase_unit_request import PurchaseUnitRequest
from paypalserversdk.models.money import Money
from paypalserversdk.models.refund_request import RefundRequest
from paypalserversdk.paypal_serversdk_client import PaypalServersdkClient

from interkanect.paypal.errors import PayPalError, PayPalUnavailable
from interkanect.paypal.money import cents_to_value, value_to_cents
from interkanect.paypal.rest import ATTEMPTS, BACKOFF_S, TIMEOUT_S, retry_delay_s, transient

log = logging.getLogger(__name__)


class _BaseUrlConfiguration(Configuration):
    """The SDK has no base-URL argument; its base URI comes from get_base_uri()."""

    def __init__(self, base_url, **options):
        self.base_url = base_url.rstrip("/")
        super().__init__(**options)

    def get_base_uri(self, server=Server.DEFAULT):
        return self.base_url


def _capture_view(capture):
    """A capture as the payments adapter uses it: {"status", "capture_id", "amount_cents",
    "currency", "fee_cents" (None when PayPal reports none, as for a PENDING capture)}."""
    breakdown = getattr(capture, "seller_receivable_breakdown", None)
    fee = getattr(breakdown, "paypal_fee", None) if breakdown else None
    return {"status": capture.status, "capture_id": capture.id, "amount_cents": value_to_cents(capture.amount.value),
            "currency": capture.amount.currency_code, "fee_cents": value_to_cents(fee.value) if fee is not None else None}


class PayPal:
    def __init__(self, base_url, client_id, client_secret, timeout_s=TIMEOUT_S, backoff_s=BACKOFF_S,
                 attempts=ATTEMPTS):
        self.attempts = attempts
        self.backoff_s = backoff_s
        credentials = ClientCredentialsAuthCredentials(o_auth_client_id=client_id, o_auth_client_secret=client_secret)
        environment = Environment.PRODUCTION if "api-m.paypal.com" in base_url else Environment.SANDBOX
        self.sdk = PaypalServersdkClient(config=_BaseUrlConfiguration(
            base_url, timeout=timeout_s, environment=environment, client_credentials_auth_credentials=credentials))

    def _call(self, what, function):
        """Retry transient failures (5xx, timeouts, lost answers) with backoff and jitter; the
        request id makes each retry safe. A 4xx is PayPal's final word."""
        for attempt in range(1, self.attempts + 1):
            try:
                return function().body
            except ErrorException as error:
                if not transient(error.response_code):
                    details = getattr(error, "details", None) or []
                    issue = getattr(details[0], "issue", "") if details else ""
                    raise PayPalError(getattr(error, "name", "") or "", issue, str(error), error.response_code,
                                      details) from None
                failure = error
            except Exception as error:  # connection reset, timeout: the answer may be lost
                failure = error
            log.warning("PayPal %s failed (attempt %d): %s", what, attempt, failure)
            if attempt < self.attempts:
                time.sleep(retry_delay_s(attempt, self.backoff_s))
        raise PayPalUnavailable(f"PayPal {what}: {failure}")

    def create_order(self, amount_cents, request_id, custom_id, return_url, cancel_url):
        """(order id, the URL where the payer approves)."""
        unit = PurchaseUnitRequest(reference_id=custom_id, custom_id=custom_id,
                                   amount=AmountWithBreakdown(currency_code="USD", value=cents_to_value(amount_cents)))
        body = OrderRequest(intent=CheckoutPaymentIntent.CAPTURE, purchase_units=[unit], payment_source=PaymentSource(
            paypal=PaypalWallet(experience_context=PaypalWalletExperienceContext(return_url=return_url,
                                                                                  cancel_url=cancel_url))))
        order = self._call("create order", lambda: self.sdk.orders.create_order(
            {"body": body, "paypal_request_id": request_id, "prefer": "return=representation"}))
        approve = next(link.href for link in order.links if link.rel in ("payer-action", "approve"))
        return order.id, approve

    def capture(self, order_id, request_id):
        """{"status", "capture_id", "amount_cents", "fee_cents" (None when PayPal reports none)}."""
        order = self._call("capture", lambda: self.sdk.orders.capture_order(
            {"id": order_id, "paypal_request_id": request_id, "prefer": "return=representation"}))
        return _capture_view(order.purchase_units[0].payments.captures[0])

    def get_capture(self, capture_id):
        """A capture's current state, as capture() reports it (plus its order id): how a PENDING
        capture is followed until it clears or is denied."""
        capture = self._call("read capture", lambda: self.sdk.payments.get_captured_payment({"capture_id": capture_id}))
        related = getattr(getattr(capture, "supplementary_data", None), "related_ids", None)
        return dict(_capture_view(capture), order_id=getattr(related, "order_id", None))

    def refund_capture(self, capture_id, request_id, amount_cents=None, note_to_payer=None):
        """Refund a capture, in full (amount_cents None) or in part: {"refund_id", "status",
        "amount_cents"}. The request id makes a retry (or a second ask) return the first refund."""
        body = RefundRequest(**{k: v for k, v in (
            ("amount", Money(currency_code="USD", value=cents_to_value(amount_cents)) if amount_cents else None),
            ("note_to_payer", note_to_payer)) if v is not None})
        refund = self._call("refund", lambda: self.sdk.payments.refund_captured_payment(
            {"capture_id": capture_id, "body": body, "paypal_request_id": request_id,
             "prefer": "return=representation"}))
        amount = getattr(refund, "amount", None)
        return {"refund_id": refund.id, "status": refund.status,
                "amount_cents": value_to_cents(amount.value) if amount is not None else amount_cents}

    def get_refund(self, refund_id):
        """A refund's current state, as refund_capture() reports it: how a PENDING refund is
        followed until it completes, fails or is cancelled."""
        refund = self._call("read refund", lambda: self.sdk.payments.get_refund({"refund_id": refund_id}))
        amount = getattr(refund, "amount", None)
        return {"refund_id": refund.id, "status": refund.status,
                "amount_cents": value_to_cents(amount.value) if amount is not None else None}

    def order_capture(self, order_id):
        """The capture an order holds, as capture() reports it, or None when it has none: what a
        capture whose answer was lost (or ORDER_ALREADY_CAPTURED) really did."""
        order = self._call("read order", lambda: self.sdk.orders.get_order({"id": order_id}))
        payments = getattr(order.purchase_units[0], "payments", None) if order.purchase_units else None
        captures = getattr(payments, "captures", None) or []
        if not captures:
            return None
        return _capture_view(captures[0])
