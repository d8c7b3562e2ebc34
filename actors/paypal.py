"""PayPal Orders v2 through PayPal's SDK (paypal-server-sdk), pointed at PayPal or at the
local emulator by base URL. Blocking: used only inside the payments actor's own process.

Every POST carries a PayPal-Request-Id derived from what it is for (the call and round),
so a retry after a 5xx, a timeout or a lost answer returns the first result instead of
making a second order or a second capture.
"""
import logging
import random
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
from paypalserversdk.paypal_serversdk_client import PaypalServersdkClient

log = logging.getLogger(__name__)

ATTEMPTS = 5
BACKOFF_S = 0.5
TIMEOUT_S = 15


class PayPalError(Exception):
    """PayPal said no for good (e.g. INSTRUMENT_DECLINED, ORDER_NOT_APPROVED)."""

    def __init__(self, name, issue, message):
        super().__init__(message)
        self.name = name
        self.issue = issue


class _BaseUrlConfiguration(Configuration):
    """The SDK has no base-URL argument; its base URI comes from get_base_uri()."""

    def __init__(self, base_url, **options):
        self.base_url = base_url.rstrip("/")
        super().__init__(**options)

    def get_base_uri(self, server=Server.DEFAULT):
        return self.base_url


def cents_to_value(cents):
    return f"{cents // 100}.{cents % 100:02d}"


def value_to_cents(value):
    whole, _, fraction = value.partition(".")
    return int(whole) * 100 + int((fraction + "00")[:2])


class PayPal:
    def __init__(self, base_url, client_id, client_secret):
        credentials = ClientCredentialsAuthCredentials(o_auth_client_id=client_id, o_auth_client_secret=client_secret)
        environment = Environment.PRODUCTION if "api-m.paypal.com" in base_url else Environment.SANDBOX
        self.sdk = PaypalServersdkClient(config=_BaseUrlConfiguration(
            base_url, timeout=TIMEOUT_S, environment=environment, client_credentials_auth_credentials=credentials))

    def _call(self, what, function):
        """Retry transient failures (5xx, timeouts, lost answers) with backoff and jitter; the
        request id makes each retry safe. A 4xx is PayPal's final word."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return function().body
            except ErrorException as error:
                if error.response_code < 500:
                    details = getattr(error, "details", None) or []
                    issue = getattr(details[0], "issue", "") if details else ""
                    raise PayPalError(getattr(error, "name", "") or "", issue, str(error)) from None
                failure = error
            except Exception as error:  # connection reset, timeout: the answer may be lost
                failure = error
            log.warning("PayPal %s failed (attempt %d): %s", what, attempt, failure)
            time.sleep(BACKOFF_S * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
        raise failure

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
        capture = order.purchase_units[0].payments.captures[0]
        breakdown = getattr(capture, "seller_receivable_breakdown", None)
        fee = getattr(breakdown, "paypal_fee", None) if breakdown else None
        return {"status": capture.status, "capture_id": capture.id,
                "amount_cents": value_to_cents(capture.amount.value),
                "fee_cents": value_to_cents(fee.value) if fee is not None else None}
