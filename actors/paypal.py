"""PayPal Orders v2 through PayPal's SDK (paypal-server-sdk), pointed at PayPal or at the
local emulator by base URL. Blocking: used only inside the payments actor's own process.

Every POST carries a PayPal-Request-Id derived from what it is for (the call and round),
so a retry after a 5xx, a timeout or a lost answer returns the first result instead of
making a second order or a second capture.

Payouts, which the SDK lacks, go over PayPal's REST API directly (`PayPalPayouts`, at the end),
used only by the payout scheduler's process.
"""
import base64
import http.client
import json
import logging
import random
import time
import urllib.error
import urllib.parse
import urllib.request

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


def _capture_view(capture):
    """A capture as the payments adapter uses it: {"status", "capture_id", "amount_cents",
    "currency", "fee_cents" (None when PayPal reports none, as for a PENDING capture)}."""
    breakdown = getattr(capture, "seller_receivable_breakdown", None)
    fee = getattr(breakdown, "paypal_fee", None) if breakdown else None
    return {"status": capture.status, "capture_id": capture.id, "amount_cents": value_to_cents(capture.amount.value),
            "currency": capture.amount.currency_code, "fee_cents": value_to_cents(fee.value) if fee is not None else None}


class PayPal:
    def __init__(self, base_url, client_id, client_secret, timeout_s=TIMEOUT_S, backoff_s=BACKOFF_S):
        self.backoff_s = backoff_s
        credentials = ClientCredentialsAuthCredentials(o_auth_client_id=client_id, o_auth_client_secret=client_secret)
        environment = Environment.PRODUCTION if "api-m.paypal.com" in base_url else Environment.SANDBOX
        self.sdk = PaypalServersdkClient(config=_BaseUrlConfiguration(
            base_url, timeout=timeout_s, environment=environment, client_credentials_auth_credentials=credentials))

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
            time.sleep(self.backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
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


# Payouts, over PayPal's REST API (paypal-server-sdk has no Payouts) ----------------------------

# PayPal's largest page of a batch's items.
PAYOUT_PAGE_SIZE = 1000
# A cached token is renewed this long before PayPal says it expires.
TOKEN_RENEW_MARGIN_S = 60


class PayPalUnavailable(Exception):
    """No usable answer from PayPal after every retry: whether it acted is unknown."""


class PayPalPayouts:
    """POST /v1/payments/payouts and GET /v1/payments/payouts/{id}, with a client-credentials
    token cached until shortly before it expires. Blocking: used only by the payout scheduler.

    A POST is retried with the same sender_batch_id after a 5xx, a timeout or a lost answer:
    PayPal refuses a second batch with it (for 30 days) and names the first one, which is then
    read and returned as the batch, "already sent"."""

    Refused = PayPalError

    def __init__(self, base_url, client_id, client_secret, timeout_s=TIMEOUT_S, backoff_s=BACKOFF_S):
        self.backoff_s = backoff_s
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self._token, self._token_expires_at = None, 0.0

    def create_payout(self, sender_batch_id, items):
        """Items are {member_id, receiver, amount_cents}. Returns {payout_batch_id, batch_status,
        items}: `items` is None for a new batch, the batch's items when PayPal had it already."""
        body = {"sender_batch_header": {"sender_batch_id": sender_batch_id,
                                        "email_subject": "You have a payout from interKanect",
                                        "email_message": "Your interKanect earnings have been paid out."},
                "items": [{"recipient_type": "EMAIL", "receiver": item["receiver"], "sender_item_id": item["member_id"],
                           "amount": {"currency": "USD", "value": cents_to_value(item["amount_cents"])},
                           "note": "interKanect earnings"} for item in items]}
        try:
            answer = self._call("create payout", "POST", "/v1/payments/payouts", body)
        except PayPalError as refusal:
            if not _reused_sender_batch_id(refusal):
                raise
            original = _original_batch_id(refusal)
            if original is None:  # PayPal has the batch but did not say which: not a refusal
                raise PayPalUnavailable(f"payout {sender_batch_id} was sent before; PayPal did not name the batch")
            log.info("payout %s was sent before (PayPal batch %s): reading it", sender_batch_id, original)
            try:
                return self.payout_batch(original)
            except PayPalError as error:  # the batch exists: a failed read must not pass for a refusal
                raise PayPalUnavailable(f"cannot read payout batch {original}: {error}") from error
        header = answer["batch_header"]
        return {"payout_batch_id": header["payout_batch_id"], "batch_status": header["batch_status"], "items": None}

    def payout_batch(self, payout_batch_id):
        """{payout_batch_id, batch_status, sender_batch_id, items: [{payout_item_id,
        transaction_status, sender_item_id, receiver, amount_cents}]}, every page read."""
        items, page, pages = [], 1, 1
        while page <= pages:
            answer = self._call("read payout batch", "GET",
                                f"/v1/payments/payouts/{urllib.parse.quote(payout_batch_id)}"
                                f"?page={page}&page_size={PAYOUT_PAGE_SIZE}&total_required=true")
            items += [_payout_item(item) for item in answer.get("items", [])]
            pages, page = answer.get("total_pages") or 1, page + 1
        header = answer["batch_header"]
        return {"payout_batch_id": header["payout_batch_id"], "batch_status": header["batch_status"],
                "sender_batch_id": header.get("sender_batch_header", {}).get("sender_batch_id"), "items": items}

    def balance_cents(self):
        """The merchant account's total USD balance (GET /v1/reporting/balances): what
        `interkanect ledger reconcile` compares the ledger with."""
        answer = self._call("read balance", "GET", "/v1/reporting/balances?currency_code=USD")
        for entry in answer.get("balances", []):
            if entry.get("currency") == "USD":
                value = entry["total_balance"]["value"]
                return -value_to_cents(value[1:]) if value.startswith("-") else value_to_cents(value)
        return 0

    # HTTP ---------------------------------------------------------------------------------

    def _call(self, what, method, path, body=None):
        """Retry transient failures (5xx, 429, timeouts, lost answers) with backoff and jitter; a
        POST is safe to repeat by its sender_batch_id. An expired token is renewed once. Any
        other 4xx is PayPal's final word (PayPalError); no usable answer at all, PayPalUnavailable."""
        renewed = False
        for attempt in range(1, ATTEMPTS + 1):
            try:
                status, answer = self._request(method, path, body, self._access_token())
            except (OSError, ValueError, http.client.HTTPException, PayPalUnavailable) as error:
                # refused, reset, timed out, an answer cut short, or no token for now
                failure = error
            else:
                if status < 300:
                    return answer
                if status == 401 and not renewed:
                    self._token, renewed = None, True
                    continue
                if status < 500 and status != 429:
                    raise _refusal(status, answer)
                failure = f"HTTP {status} {(answer or {}).get('name', '')}"
            log.warning("PayPal %s failed (attempt %d): %s", what, attempt, failure)
            if attempt < ATTEMPTS:
                time.sleep(self.backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
        raise PayPalUnavailable(f"PayPal {what}: {failure}")

    def _access_token(self):
        if self._token and time.monotonic() < self._token_expires_at:
            return self._token
        request = urllib.request.Request(f"{self.base_url}/v1/oauth2/token", data=b"grant_type=client_credentials",
                                         method="POST", headers={
                                             "Authorization": f"Basic {self._basic}", "Accept": "application/json",
                                             "Content-Type": "application/x-www-form-urlencoded"})
        status, answer = self._open(request)
        if status >= 500 or status == 429:
            raise PayPalUnavailable(f"no PayPal token for now (HTTP {status})")
        if status != 200:
            raise PayPalError((answer or {}).get("error", ""), "", f"no PayPal token (HTTP {status}): "
                              f"{(answer or {}).get('error_description', '')}")
        self._token = answer["access_token"]
        self._token_expires_at = time.monotonic() + max(0, answer.get("expires_in", 0) - TOKEN_RENEW_MARGIN_S)
        return self._token

    def _request(self, method, path, body, token):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        return self._open(urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers))

    def _open(self, request):
        """(status, JSON body or None); a 4xx/5xx answer is returned, not raised."""
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                return answer.status, _json(answer.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, _json(error.read())


def _json(raw):
    return json.loads(raw) if raw.strip() else None


def _refusal(status, answer):
    answer = answer or {}
    details = answer.get("details") or []
    refusal = PayPalError(answer.get("name", ""), (details[0].get("issue", "") if details else ""),
                          f"HTTP {status} {answer.get('name', '')}: {answer.get('message', '')}")
    refusal.details = details
    return refusal


def _is_reused_sender_batch_id(detail):
    return (detail.get("field", "").upper().endswith("SENDER_BATCH_ID")
            or "sender_batch_id already exists" in detail.get("issue", "").lower())


def _reused_sender_batch_id(refusal):
    return any(map(_is_reused_sender_batch_id, getattr(refusal, "details", None) or []))


def _original_batch_id(refusal):
    """The first batch's id named by PayPal's refusal of a reused sender_batch_id, else None."""
    for detail in getattr(refusal, "details", None) or []:
        if _is_reused_sender_batch_id(detail):
            for link in detail.get("link") or detail.get("links") or []:
                href = link.get("href", "")
                if "/v1/payments/payouts/" in href:
                    return urllib.parse.urlsplit(href).path.rstrip("/").rsplit("/", 1)[-1]
    return None


def _payout_item(item):
    detail = item.get("payout_item", {})
    return {"payout_item_id": item["payout_item_id"], "transaction_status": item.get("transaction_status", "PENDING"),
            "sender_item_id": detail.get("sender_item_id"), "receiver": detail.get("receiver"),
            "amount_cents": value_to_cents(detail["amount"]["value"]),
            "fee_cents": value_to_cents((item.get("payout_item_fee") or {}).get("value") or "0")}
