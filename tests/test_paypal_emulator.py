"""The PayPal emulator, driven the way the gateway's PayPal adapter will drive PayPal: orders and
refunds through PayPal's own SDK (paypal-server-sdk, its configuration pointed at the
emulator), payouts, webhook verification and the control API over plain HTTP, the payer's
approval page by form posts, and signed webhooks received by a real HTTP server."""
import asyncio
import base64
import http.server
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

import pytest
import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from paypalserversdk.configuration import Configuration, Server
from paypalserversdk.exceptions.error_exception import ErrorException
from paypalserversdk.http.auth.o_auth_2 import ClientCredentialsAuthCredentials
from paypalserversdk.models.amount_with_breakdown import AmountWithBreakdown
from paypalserversdk.models.checkout_payment_intent import CheckoutPaymentIntent
from paypalserversdk.models.money import Money
from paypalserversdk.models.order_request import OrderRequest
from paypalserversdk.models.payment_source import PaymentSource
from paypalserversdk.models.paypal_wallet import PaypalWallet
from paypalserversdk.models.paypal_wallet_experience_context import PaypalWalletExperienceContext
from paypalserversdk.models.purchase_unit_request import PurchaseUnitRequest
from paypalserversdk.models.refund_request import RefundRequest
from paypalserversdk.paypal_serversdk_client import PaypalServersdkClient

from interkanect import processes
from paypal_emulator.money import AmountError, fee_cents, parse_cents
from paypal_emulator.webhooks import retry_delays_s
from tests.kit.paypal import press
from tests.kit.system import ROOT, free_port
from tests.kit.waiting import eventually, wait_for

CLIENT_ID, CLIENT_SECRET = "test-client", "test-secret"
WEBHOOK_ID = "TESTWEBHOOK42"
# Compresses PayPal's webhook backoff (1 min doubling to 4 h) to 6 ms doubling to 1.4 s.
TIME_SCALE = 0.0001
WAIT_S = 10


# --- pure rules -------------------------------------------------------------------------------

# 3.49% of $10.00 is 34.9 cents -> 35, plus 49; of $12.34 is 43.07 -> 43; of $21.50 is 75.04 -> 75.
@pytest.mark.parametrize("cents, fee", [(1000, 84), (1234, 92), (200, 56), (2150, 124), (100000, 3539)])
def test_fee_is_3_49_percent_rounded_half_up_plus_49_cents(cents, fee):
    assert fee_cents(cents) == fee


def test_fee_half_cent_rounds_up():
    half = next(c for c in range(1, 100000) if c * 349 % 10000 == 5000)  # the percentage ends in exactly .5
    assert fee_cents(half) == (half * 349 + 5000) // 10000 + 49 == (half * 349 // 10000) + 1 + 49


@pytest.mark.parametrize("value, issue", [("10.001", "DECIMAL_PRECISION"), ("0.00", "CANNOT_BE_ZERO_OR_NEGATIVE"),
                                          ("-1.00", "CANNOT_BE_ZERO_OR_NEGATIVE"), ("ten", "INVALID_PARAMETER_SYNTAX"),
                                          ("", "INVALID_PARAMETER_SYNTAX"), (10, "INVALID_PARAMETER_SYNTAX")])
def test_amounts_paypal_refuses(value, issue):
    with pytest.raises(AmountError) as refused:
        parse_cents(value)
    assert refused.value.issue == issue
    assert parse_cents("10") == 1000 and parse_cents("0.5") == 50


def test_webhook_retries_span_about_three_days():
    delays = retry_delays_s(25)
    assert len(delays) == 25 and delays[:3] == [60, 120, 240] and max(delays) == 4 * 3600
    assert 2.9 * 86400 < sum(delays) < 3.1 * 86400


# --- a webhook receiver ---------------------------------------------------------------------

class Receiver:
    """An HTTP server that records every webhook delivery (raw body and headers) and can refuse
    some with a status, as a gateway that is down would."""

    def __init__(self):
        self.received = []
        self.refusals = []  # [predicate(event), remaining, status]
        self.changed = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.record(dict(self.headers), raw)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/paypal/webhook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def record(self, headers, raw):
        event = json.loads(raw)
        with self.changed:
            status = 200
            for refusal in self.refusals:
                if refusal[1] > 0 and refusal[0](event):
                    refusal[1] -= 1
                    status = refusal[2]
                    break
            self.received.append({"headers": {k.upper(): v for k, v in headers.items()}, "raw": raw, "event": event,
                                  "status": status})
            self.changed.notify_all()
        return status

    def refuse(self, predicate, times, status=503):
        with self.changed:
            self.refusals.append([predicate, times, status])

    def wait_for(self, predicate, count=1, timeout_s=WAIT_S):
        """The first `count` deliveries whose event matches, waiting for them with a bound."""
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while True:
                found = [r for r in self.received if predicate(r["event"])]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"only {len(found)} of {count} expected webhooks within {timeout_s} s; "
                                         f"got {[r['event']['event_type'] for r in self.received]}")
                self.changed.wait(remaining)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def about(resource_id, event_type=None):
    """Matches events whose resource is (or refers to) `resource_id`."""
    def matches(event):
        if event_type and event["event_type"] != event_type:
            return False
        return resource_id in json.dumps(event["resource"])
    return matches


# --- the emulator and its clients ------------------------------------------------------------

class EmulatorConfiguration(Configuration):
    """paypal-server-sdk has no base-URL argument: its base URI comes from get_base_uri()."""

    def __init__(self, base_url, **options):
        self.base_url = base_url
        super().__init__(**options)

    def get_base_uri(self, server=Server.DEFAULT):
        return self.base_url


class RunningEmulator:
    def __init__(self, url):
        self.url = url
        self._token = None

    def token(self):
        if self._token is None:
            status, body = self.call("POST", "/v1/oauth2/token", form={"grant_type": "client_credentials"},
                                     auth=(CLIENT_ID, CLIENT_SECRET))
            assert status == 200, body
            self._token = body["access_token"]
        return self._token

    def call(self, method, path, body=None, headers=None, form=None, auth=None, token=None, timeout_s=5):
        """Plain HTTP: (status, JSON body) for any answer."""
        headers = dict(headers or {})
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as answer:
                text = answer.read()
                return answer.status, json.loads(text) if text else None
        except urllib.error.HTTPError as error:
            text = error.read()
            return error.code, json.loads(text) if text else None

    def api(self, method, path, body=None, headers=None, **options):
        return self.call(method, path, body, headers, token=self.token(), **options)

    def control(self, method, path, body=None):
        return self.call(method, "/emulator" + path, body)

    def fault(self, **spec):
        status, body = self.control("POST", "/faults", spec)
        assert status == 201, body
        return body


@pytest.fixture(scope="module")
def receiver():
    running = Receiver()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def emulator(receiver, tmp_path_factory):
    """`interkanect paypal-emulator` as its own process on an unused port."""
    yield from running_emulator(tmp_path_factory, "--webhook-url", receiver.url, "--webhook-id", WEBHOOK_ID,
                                "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET,
                                "--time-scale", str(TIME_SCALE), "--payout-processing-s", "0.05")


def running_emulator(tmp_path_factory, *options):
    """`interkanect paypal-emulator OPTIONS` on an unused port, until the generator is closed."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("emulator") / "emulator.log", "ab")
    children = processes.Supervisor()
    process = children.start("PayPal emulator", [sys.executable, "-m", "interkanect.cli", "paypal-emulator",
                                                 "--port", str(port), *options], cwd=ROOT, stdout=log, stderr=log)
    running = RunningEmulator(f"http://127.0.0.1:{port}")
    try:
        processes.wait_until(lambda: _up(running), 30, "the PayPal emulator", process=process)
        yield running
    finally:
        children.stop_all()


def _up(running):
    try:
        return running.control("GET", "/health")[1]["ok"]
    except OSError:
        return False


@pytest.fixture(autouse=True)
def no_faults_left(request):
    yield
    if "emulator" in request.fixturenames:
        request.getfixturevalue("emulator").control("DELETE", "/faults")


@pytest.fixture(scope="module")
def sdk(emulator):
    return PaypalServersdkClient(config=EmulatorConfiguration(
        emulator.url, timeout=5, client_credentials_auth_credentials=ClientCredentialsAuthCredentials(
            o_auth_client_id=CLIENT_ID, o_auth_client_secret=CLIENT_SECRET)))


def create_order(sdk, value="10.00", request_id=None, custom_id="call-1", return_url=None, representation=True):
    """An order the way the adapter makes one; with a return_url, the current way (payment_source.paypal)."""
    amount = AmountWithBreakdown(currency_code="USD", value=value)
    body = OrderRequest(intent=CheckoutPaymentIntent.CAPTURE, purchase_units=[
        PurchaseUnitRequest(reference_id="call-1-round-1", custom_id=custom_id, amount=amount)])
    if return_url:
        body.payment_source = PaymentSource(paypal=PaypalWallet(experience_context=PaypalWalletExperienceContext(
            return_url=return_url, cancel_url=return_url + "?cancel=1")))
    options = {"body": body}
    if request_id:
        options["paypal_request_id"] = request_id
    if representation:
        options["prefer"] = "return=representation"
    return sdk.orders.create_order(options)


def payer_chooses(order_links, choice, payer_email="caller@example.com"):
    """Open the order's approval link, fill its form and press Approve or Cancel, as a payer's
    browser does. Returns (status, Location header or page text)."""
    approve = next(link.href for link in order_links if link.rel in ("approve", "payer-action"))
    with urllib.request.urlopen(approve, timeout=5) as page:
        assert page.headers["Content-Type"].startswith("text/html")
    return press(approve, choice, payer_email=payer_email)


def approved_order(sdk, value="10.00", **options):
    order = create_order(sdk, value, **options).body
    status, _ = payer_chooses(order.links, "approve")
    assert status in (200, 302)
    return order


def capture(sdk, order_id, request_id=None):
    options = {"id": order_id}
    if request_id:
        options["paypal_request_id"] = request_id
    return sdk.orders.capture_order(options)


def captured(sdk, value="10.00"):
    order = approved_order(sdk, value)
    return order, capture(sdk, order.id).body.purchase_units[0].payments.captures[0]


# --- auth -----------------------------------------------------------------------------------

def test_wrong_client_credentials_get_invalid_client_and_calls_need_a_token(emulator):
    status, body = emulator.call("POST", "/v1/oauth2/token", form={"grant_type": "client_credentials"},
                                 auth=(CLIENT_ID, "wrong"))
    assert (status, body) == (401, {"error": "invalid_client", "error_description": "Client Authentication failed"})
    status, body = emulator.call("GET", "/v2/checkout/orders/5O190127TN364715T")
    assert status == 401 and body["name"] == "AUTHENTICATION_FAILURE" and body["debug_id"]
    status, body = emulator.call("GET", "/v1/payments/payouts/X", token="not-a-token")
    assert status == 401
    status, body = emulator.call("POST", "/v1/oauth2/token", form={"grant_type": "client_credentials"},
                                 auth=(CLIENT_ID, CLIENT_SECRET))
    assert status == 200 and body["token_type"] == "Bearer" and body["expires_in"] == 32400


# --- orders ---------------------------------------------------------------------------------

def test_create_approve_capture_reports_paypal_fee_and_webhooks(sdk, emulator, receiver):
    created = create_order(sdk, "10.00", return_url="http://127.0.0.1:9/paid", representation=False)
    assert created.status_code == 201
    order = created.body
    assert order.status == "PAYER_ACTION_REQUIRED" and {"self", "payer-action"} <= {link.rel for link in order.links}

    status, location = payer_chooses(order.links, "approve", payer_email="caller@example.com")
    assert status == 302
    assert location.startswith("http://127.0.0.1:9/paid?token=" + order.id + "&PayerID=")
    approved = sdk.orders.get_order({"id": order.id}).body
    assert approved.status == "APPROVED" and approved.payer.email_address == "caller@example.com"
    event = receiver.wait_for(about(order.id, "CHECKOUT.ORDER.APPROVED"))[0]["event"]
    assert event["resource_type"] == "checkout-order" and event["resource"]["status"] == "APPROVED"

    answer = capture(sdk, order.id)
    assert answer.status_code == 201 and answer.body.status == "COMPLETED"
    unit = answer.body.purchase_units[0]
    assert unit.reference_id == "call-1-round-1" and unit.custom_id == "call-1"
    payment = unit.payments.captures[0]
    assert payment.status == "COMPLETED" and payment.amount.value == "10.00" and payment.custom_id == "call-1"
    breakdown = payment.seller_receivable_breakdown
    assert (breakdown.gross_amount.value, breakdown.paypal_fee.value, breakdown.net_amount.value) == \
        ("10.00", "0.84", "9.16")
    assert {"self", "refund", "up"} <= {link.rel for link in payment.links}

    completed = receiver.wait_for(about(payment.id, "PAYMENT.CAPTURE.COMPLETED"))[0]["event"]
    assert completed["resource"]["supplementary_data"]["related_ids"]["order_id"] == order.id
    assert set(completed) == {"id", "event_version", "create_time", "resource_type", "resource_version", "event_type",
                              "summary", "resource", "links"}
    shown = sdk.payments.get_captured_payment({"capture_id": payment.id}).body
    assert shown.status == "COMPLETED" and shown.seller_receivable_breakdown.paypal_fee.value == "0.84"


def test_payer_cancels_on_the_approval_page(sdk):
    order = create_order(sdk, "5.00", return_url="http://127.0.0.1:9/back").body
    status, location = payer_chooses(order.links, "cancel")
    assert status == 302 and location == f"http://127.0.0.1:9/back?cancel=1&token={order.id}"
    assert sdk.orders.get_order({"id": order.id}).body.status == "PAYER_ACTION_REQUIRED"


def test_same_request_id_creates_and_captures_once(sdk, emulator):
    first = create_order(sdk, "12.34", request_id="order-7")
    again = create_order(sdk, "12.34", request_id="order-7")
    assert first.status_code == 201 and again.status_code == 200 and again.body.id == first.body.id
    payer_chooses(first.body.links, "approve")

    captured_once = capture(sdk, first.body.id, request_id="capture-7")
    replayed = capture(sdk, first.body.id, request_id="capture-7")
    assert captured_once.status_code == 201 and replayed.status_code == 200
    assert [c.id for c in replayed.body.purchase_units[0].payments.captures] == \
        [captured_once.body.purchase_units[0].payments.captures[0].id]
    # The create request id now returns the order in its latest state.
    assert create_order(sdk, "12.34", request_id="order-7").body.status == "COMPLETED"
    with pytest.raises(ErrorException) as refused:
        capture(sdk, first.body.id, request_id="capture-8")
    assert refused.value.response_code == 422 and refused.value.details[0].issue == "ORDER_ALREADY_CAPTURED"


def test_capture_before_approval_is_order_not_approved(sdk):
    order = create_order(sdk).body
    with pytest.raises(ErrorException) as refused:
        capture(sdk, order.id)
    error = refused.value
    assert (error.response_code, error.name, error.details[0].issue) == \
        (422, "UNPROCESSABLE_ENTITY", "ORDER_NOT_APPROVED")
    assert error.debug_id and error.links[0].rel == "information_link"
    body = json.loads(error.response.text)
    assert set(body) == {"name", "message", "debug_id", "details", "links"}
    assert set(body["details"][0]) == {"issue", "description"}


def test_bad_orders_get_paypals_validation_errors(emulator):
    status, body = emulator.api("POST", "/v2/checkout/orders", {"intent": "CAPTURE", "purchase_units": [
        {"amount": {"currency_code": "USD", "value": "10.001"}}]})
    assert status == 422 and body["details"][0]["issue"] == "DECIMAL_PRECISION"
    assert body["details"][0]["field"] == "/purchase_units/0/amount/value"
    status, body = emulator.api("POST", "/v2/checkout/orders", {"intent": "CAPTURE"})
    assert (status, body["name"], body["details"][0]["issue"]) == \
        (400, "INVALID_REQUEST", "MISSING_REQUIRED_PARAMETER")
    status, body = emulator.api("GET", "/v2/checkout/orders/NOSUCHORDER")
    assert (status, body["name"], body["details"][0]["issue"]) == (404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID")


# --- refunds --------------------------------------------------------------------------------

def test_refunds_partial_full_exceeded_and_idempotent(sdk, receiver):
    _, payment = captured(sdk, "10.00")

    def refund(value=None, request_id=None):
        options = {"capture_id": payment.id, "prefer": "return=representation"}
        if value:
            options["body"] = RefundRequest(amount=Money(currency_code="USD", value=value))
        if request_id:
            options["paypal_request_id"] = request_id
        return sdk.payments.refund_captured_payment(options)

    partial = refund("3.00", request_id="refund-1")
    assert partial.status_code == 201 and partial.body.status == "COMPLETED" and partial.body.amount.value == "3.00"
    assert refund("3.00", request_id="refund-1").body.id == partial.body.id  # same id: not refunded twice
    assert sdk.payments.get_captured_payment({"capture_id": payment.id}).body.status == "PARTIALLY_REFUNDED"
    with pytest.raises(ErrorException) as refused:
        refund("7.01")
    assert refused.value.details[0].issue == "REFUND_AMOUNT_EXCEEDED"

    full = refund()  # empty body: whatever is left
    assert full.body.amount.value == "7.00"
    assert full.body.seller_payable_breakdown.total_refunded_amount.value == "10.00"
    with pytest.raises(ErrorException) as refused:
        refund()
    assert refused.value.response_code == 422 and refused.value.details[0].issue == "CAPTURE_FULLY_REFUNDED"
    assert sdk.payments.get_refund({"refund_id": partial.body.id}).body.amount.value == "3.00"
    assert sdk.payments.get_captured_payment({"capture_id": payment.id}).body.status == "REFUNDED"
    refunds = receiver.wait_for(about(payment.id, "PAYMENT.CAPTURE.REFUNDED"), count=2)
    assert sorted(r["event"]["resource"]["amount"]["value"] for r in refunds) == ["3.00", "7.00"]


def test_refund_answers_minimal_by_default(sdk):
    _, payment = captured(sdk, "4.00")
    answer = sdk.payments.refund_captured_payment({"capture_id": payment.id})
    assert answer.status_code == 201
    assert set(json.loads(answer.text)) == {"id", "status", "links"}


# --- payouts --------------------------------------------------------------------------------

def payout_request(sender_batch_id, *receivers):
    return {"sender_batch_header": {"sender_batch_id": sender_batch_id, "email_subject": "Your earnings"},
            "items": [{"recipient_type": "EMAIL", "amount": {"value": "25.00", "currency": "USD"}, "receiver": receiver,
                       "sender_item_id": f"{sender_batch_id}-{n}"} for n, receiver in enumerate(receivers)]}


def test_payout_batch_items_and_duplicate_sender_batch_id(emulator, receiver):
    receivers = ("paid@example.com", "unclaimed@example.com", "returned@example.com", "failed@example.com",
                 "blocked@example.com")
    status, created = emulator.api("POST", "/v1/payments/payouts", payout_request("2026-03-06", *receivers))
    assert status == 201 and created["batch_header"]["batch_status"] == "PENDING"
    batch_id = created["batch_header"]["payout_batch_id"]
    receiver.wait_for(about(batch_id, "PAYMENT.PAYOUTSBATCH.SUCCESS"))

    status, batch = emulator.api("GET", f"/v1/payments/payouts/{batch_id}")
    assert status == 200 and batch["batch_header"]["batch_status"] == "SUCCESS"
    assert batch["batch_header"]["amount"] == {"currency": "USD", "value": "125.00"}
    outcomes = {item["payout_item"]["receiver"]: item["transaction_status"] for item in batch["items"]}
    assert outcomes == dict(zip(receivers, ["SUCCESS", "UNCLAIMED", "RETURNED", "FAILED", "BLOCKED"]))
    unclaimed = next(item for item in batch["items"] if item["transaction_status"] == "UNCLAIMED")
    status, item = emulator.api("GET", f"/v1/payments/payouts-item/{unclaimed['payout_item_id']}")
    assert status == 200 and item["sender_batch_id"] == "2026-03-06"
    assert item["errors"]["name"] == "RECEIVER_UNREGISTERED"
    item_events = receiver.wait_for(lambda e: e["event_type"].startswith("PAYMENT.PAYOUTS-ITEM.")
                                    and e["resource"]["payout_batch_id"] == batch_id, count=5)
    assert {r["event"]["event_type"] for r in item_events} == {
        "PAYMENT.PAYOUTS-ITEM.SUCCEEDED", "PAYMENT.PAYOUTS-ITEM.UNCLAIMED", "PAYMENT.PAYOUTS-ITEM.RETURNED",
        "PAYMENT.PAYOUTS-ITEM.FAILED", "PAYMENT.PAYOUTS-ITEM.BLOCKED"}

    # A retry of the same batch (say after a 5xx) is refused and names the original batch.
    status, refused = emulator.api("POST", "/v1/payments/payouts", payout_request("2026-03-06", "paid@example.com"))
    assert status == 400 and refused["name"] == "USER_BUSINESS_ERROR"
    duplicate = refused["details"][0]
    assert duplicate["issue"] == "Batch with given sender_batch_id already exists"
    assert duplicate["link"][0]["href"] == f"{emulator.url}/v1/payments/payouts/{batch_id}"

    # Thirty days later the unclaimed money comes back.
    status, returned = emulator.control("POST", f"/payouts-items/{unclaimed['payout_item_id']}/return")
    assert status == 200 and returned["transaction_status"] == "RETURNED"
    receiver.wait_for(about(unclaimed["payout_item_id"], "PAYMENT.PAYOUTS-ITEM.RETURNED"))


def test_payout_validation_and_forced_item_outcome(emulator, receiver):
    status, body = emulator.api("POST", "/v1/payments/payouts", {"sender_batch_header": {"sender_batch_id": "v"},
                                                                 "items": []})
    assert status == 400 and body["name"] == "VALIDATION_ERROR" and body["details"][0]["field"] == "items"
    emulator.fault(kind="payout_item_outcome", outcome="FAILED")
    status, created = emulator.api("POST", "/v1/payments/payouts", payout_request("forced-1", "paid@example.com"))
    batch_id = created["batch_header"]["payout_batch_id"]
    denied = receiver.wait_for(about(batch_id, "PAYMENT.PAYOUTSBATCH.DENIED"))[0]["event"]
    assert denied["resource"]["batch_header"]["batch_status"] == "DENIED"
    status, batch = emulator.api("GET", f"/v1/payments/payouts/{batch_id}")
    assert batch["items"][0]["transaction_status"] == "FAILED"


# --- webhooks -------------------------------------------------------------------------------

def verifies(cert_pem, headers, raw, webhook_id):
    """PayPal's offline check, done with `cryptography` alone."""
    message = "|".join([headers["PAYPAL-TRANSMISSION-ID"], headers["PAYPAL-TRANSMISSION-TIME"], webhook_id,
                        str(zlib.crc32(raw) & 0xFFFFFFFF)]).encode()
    try:
        x509.load_pem_x509_certificate(cert_pem).public_key().verify(
            base64.b64decode(headers["PAYPAL-TRANSMISSION-SIG"]), message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def test_webhook_signature_verifies_offline_and_online(sdk, emulator, receiver):
    order = approved_order(sdk)
    delivery = receiver.wait_for(about(order.id, "CHECKOUT.ORDER.APPROVED"))[0]
    headers, raw = delivery["headers"], delivery["raw"]
    assert headers["PAYPAL-AUTH-ALGO"] == "SHA256withRSA"
    assert headers["PAYPAL-CERT-URL"].startswith(emulator.url + "/v1/notifications/certs/CERT-")
    with urllib.request.urlopen(headers["PAYPAL-CERT-URL"], timeout=5) as answer:
        cert_pem = answer.read()

    assert verifies(cert_pem, headers, raw, WEBHOOK_ID)
    assert not verifies(cert_pem, headers, json.dumps(json.loads(raw)).encode(), WEBHOOK_ID)  # re-serialised
    assert not verifies(cert_pem, headers, raw, "OTHERWEBHOOK")

    def online(**changes):
        request = {"auth_algo": headers["PAYPAL-AUTH-ALGO"], "cert_url": headers["PAYPAL-CERT-URL"],
                   "transmission_id": headers["PAYPAL-TRANSMISSION-ID"],
                   "transmission_sig": headers["PAYPAL-TRANSMISSION-SIG"],
                   "transmission_time": headers["PAYPAL-TRANSMISSION-TIME"], "webhook_id": WEBHOOK_ID,
                   "webhook_event": json.loads(raw), **changes}
        status, body = emulator.api("POST", "/v1/notifications/verify-webhook-signature", request)
        assert status == 200
        return body["verification_status"]

    tampered = json.loads(raw)
    tampered["resource"]["status"] = "COMPLETED"
    assert online() == "SUCCESS"
    assert online(webhook_id="OTHERWEBHOOK") == "FAILURE"
    assert online(webhook_event=tampered) == "FAILURE"


def settled_delivery(emulator, event_id):
    """The emulator's record of a delivery once it has heard the final answer (bounded wait)."""
    def delivery():
        return next(d for d in emulator.control("GET", "/webhooks")[1]["deliveries"] if d["event_id"] == event_id)
    return wait_for(delivery, f"delivery {event_id} settled", WAIT_S, until=lambda found: found["status"] != "PENDING",
                    poll_s=0.01)


def test_webhook_retried_with_backoff_until_a_2xx(sdk, emulator, receiver):
    _, payment = captured(sdk, "6.00")
    receiver.refuse(about(payment.id, "CUSTOMER.DISPUTE.CREATED"), times=3, status=503)
    status, dispute = emulator.control("POST", "/disputes", {"capture_id": payment.id})
    assert status == 201 and dispute["status"] == "OPEN"
    tries = receiver.wait_for(about(payment.id, "CUSTOMER.DISPUTE.CREATED"), count=4)
    assert [t["status"] for t in tries] == [503, 503, 503, 200]
    assert len({t["event"]["id"] for t in tries}) == 1  # the same event, transmitted again
    assert len({t["headers"]["PAYPAL-TRANSMISSION-ID"] for t in tries}) == 4
    assert tries[0]["event"]["resource"]["dispute_id"] == dispute["dispute_id"]
    mine = settled_delivery(emulator, tries[0]["event"]["id"])
    assert mine["status"] == "SUCCESS" and [a["status_code"] for a in mine["attempts"]] == [503, 503, 503, 200]
    # An open dispute holds the capture: no partial refund while it runs.
    with pytest.raises(ErrorException) as refused:
        sdk.payments.refund_captured_payment({"capture_id": payment.id, "body": RefundRequest(
            amount=Money(currency_code="USD", value="1.00"))})
    assert refused.value.details[0].issue == "TRANSACTION_DISPUTED"


def test_resend_replays_the_same_bytes_and_sign_forges_a_stale_delivery(sdk, emulator, receiver):
    order = approved_order(sdk)
    first = receiver.wait_for(about(order.id, "CHECKOUT.ORDER.APPROVED"))[0]
    status, _ = emulator.api("POST", f"/v1/notifications/webhooks-events/{first['event']['id']}/resend")
    assert status == 202
    again = receiver.wait_for(about(order.id, "CHECKOUT.ORDER.APPROVED"), count=2)[1]
    assert again["raw"] == first["raw"]
    assert again["headers"]["PAYPAL-TRANSMISSION-ID"] != first["headers"]["PAYPAL-TRANSMISSION-ID"]

    status, signed = emulator.control("POST", "/webhooks/sign", {"body": first["raw"].decode(),
                                                                 "transmission_time": "2020-01-01T00:00:00Z"})
    with urllib.request.urlopen(signed["headers"]["PAYPAL-CERT-URL"], timeout=5) as answer:
        assert verifies(answer.read(), signed["headers"], first["raw"], WEBHOOK_ID)
    assert signed["headers"]["PAYPAL-TRANSMISSION-TIME"] == "2020-01-01T00:00:00Z"


def test_delivery_gives_up_after_its_retries(receiver):
    """In process, with 2 retries instead of PayPal's 25."""
    from paypal_emulator import Emulator, EmulatorSettings
    from paypal_emulator.events import Event

    async def scenario():
        emulator = Emulator(EmulatorSettings(port=free_port(), webhook_url=receiver.url, time_scale=TIME_SCALE,
                                             webhook_max_retries=2))
        await emulator.start()
        try:
            emulator.emit([Event("CUSTOMER.DISPUTE.UPDATED", "dispute", "never accepted", {"dispute_id": "PP-D-1"})])
            delivery = emulator.webhooks.deliveries[-1]
            return await eventually(lambda: delivery, "the delivery given up", WAIT_S,
                                    until=lambda found: found.status != "PENDING", poll_s=0.01)
        finally:
            await emulator.stop()

    receiver.refuse(lambda event: event["resource"] == {"dispute_id": "PP-D-1"}, times=100, status=500)
    delivery = asyncio.run(scenario())
    assert delivery.status == "FAILURE" and [a["status_code"] for a in delivery.attempts] == [500, 500, 500]


# --- faults ---------------------------------------------------------------------------------

def test_fault_next_requests_answer_500(sdk, emulator):
    emulator.fault(kind="error", path="/v2/checkout/orders", method="POST", count=2)
    for _ in range(2):
        with pytest.raises(ErrorException) as failed:
            create_order(sdk, request_id="after-500")
        assert failed.value.response_code == 500 and failed.value.name == "INTERNAL_SERVER_ERROR"
    answer = create_order(sdk, request_id="after-500")
    assert answer.status_code == 201  # nothing was made by the failed attempts


def test_fault_timeout_after_commit_then_the_retry_reads_the_capture(sdk, emulator):
    order = approved_order(sdk)
    emulator.fault(kind="timeout", path="/v2/checkout/orders/*/capture", delay_s=2.0)
    with pytest.raises(OSError):  # the client's timeout: it cannot know whether PayPal captured
        emulator.api("POST", f"/v2/checkout/orders/{order.id}/capture", {}, {"PayPal-Request-Id": "slow-1"},
                     timeout_s=0.3)
    retried = capture(sdk, order.id, request_id="slow-1")
    assert retried.status_code == 200 and retried.body.status == "COMPLETED"  # it had captured
    assert len(retried.body.purchase_units[0].payments.captures) == 1


def test_fault_timeout_without_commit_changes_nothing(emulator):
    emulator.fault(kind="timeout", path="/v2/checkout/orders", method="POST", delay_s=0.1, commit=False)
    with pytest.raises(OSError):  # the connection closes without an answer
        emulator.api("POST", "/v2/checkout/orders", {"intent": "CAPTURE", "purchase_units": [
            {"amount": {"currency_code": "USD", "value": "1.00"}}]}, {"PayPal-Request-Id": "dropped-1"})
    status, _ = emulator.api("POST", "/v2/checkout/orders", {"intent": "CAPTURE", "purchase_units": [
        {"amount": {"currency_code": "USD", "value": "1.00"}}]}, {"PayPal-Request-Id": "dropped-1"})
    assert status == 201


def test_fault_lost_response_after_commit(sdk, emulator, receiver):
    order = approved_order(sdk)
    emulator.fault(kind="lost_response", path="/v2/checkout/orders/*/capture")
    with pytest.raises(requests.exceptions.ConnectionError):
        capture(sdk, order.id, request_id="lost-1")
    retried = capture(sdk, order.id, request_id="lost-1")
    assert retried.status_code == 200  # it had happened: the retry reads the result
    payment = retried.body.purchase_units[0].payments.captures[0]
    receiver.wait_for(about(payment.id, "PAYMENT.CAPTURE.COMPLETED"))
    status, log = emulator.control("GET", "/webhooks?event_type=PAYMENT.CAPTURE.COMPLETED")
    assert len([d for d in log["deliveries"] if d["resource_id"] == payment.id]) == 1  # one capture, one event


def test_fault_capture_pending_then_completed(sdk, emulator, receiver):
    order = approved_order(sdk, "8.00")
    emulator.fault(kind="capture_outcome", outcome="PENDING")
    answer = capture(sdk, order.id)
    assert answer.body.status == "COMPLETED"  # the order is; the money is not
    payment = answer.body.purchase_units[0].payments.captures[0]
    assert payment.status == "PENDING" and payment.status_details.reason == "PENDING_REVIEW"
    assert getattr(payment, "seller_receivable_breakdown", None) is None
    receiver.wait_for(about(payment.id, "PAYMENT.CAPTURE.PENDING"))
    with pytest.raises(ErrorException) as refused:
        sdk.payments.refund_captured_payment({"capture_id": payment.id})
    assert refused.value.details[0].issue == "PENDING_CAPTURE"
    status, cleared = emulator.control("POST", f"/captures/{payment.id}/complete")
    assert status == 200 and cleared["seller_receivable_breakdown"]["net_amount"]["value"] == "7.23"
    receiver.wait_for(about(payment.id, "PAYMENT.CAPTURE.COMPLETED"))


def test_fault_capture_declined_and_instrument_declined(sdk, emulator, receiver):
    order = approved_order(sdk)
    emulator.fault(kind="capture_outcome", outcome="INSTRUMENT_DECLINED")
    with pytest.raises(ErrorException) as refused:
        capture(sdk, order.id)
    assert refused.value.details[0].issue == "INSTRUMENT_DECLINED"
    assert "redirect" in {link.rel for link in refused.value.links}
    assert sdk.orders.get_order({"id": order.id}).body.status == "APPROVED"  # the payer may try again

    emulator.fault(kind="capture_outcome", outcome="DECLINED")
    payment = capture(sdk, order.id).body.purchase_units[0].payments.captures[0]
    assert payment.status == "DECLINED"
    receiver.wait_for(about(payment.id, "PAYMENT.CAPTURE.DECLINED"))


def test_fault_refund_pending_then_completed_failed_or_cancelled(sdk, emulator, receiver):
    _, payment = captured(sdk, "10.00")

    def refund(value, request_id):
        return sdk.payments.refund_captured_payment({"capture_id": payment.id, "paypal_request_id": request_id,
                                                     "prefer": "return=representation", "body": RefundRequest(
                                                         amount=Money(currency_code="USD", value=value))}).body

    def capture_status():
        status, body = emulator.api("GET", f"/v2/payments/captures/{payment.id}")
        return body["status"]

    emulator.fault(kind="refund_outcome", outcome="PENDING")
    held = refund("4.00", "pending-1")
    assert held.status == "PENDING" and held.status_details.reason == "ECHECK"
    receiver.wait_for(about(held.id, "PAYMENT.REFUND.PENDING"))
    assert capture_status() == "PARTIALLY_REFUNDED"           # held from the capture while pending
    assert refund("4.00", "pending-1").id == held.id            # the same request id: the same refund
    status, done = emulator.control("POST", f"/refunds/{held.id}/complete")
    assert status == 200 and done["status"] == "COMPLETED"
    receiver.wait_for(about(held.id, "PAYMENT.CAPTURE.REFUNDED"))
    status, again = emulator.control("POST", f"/refunds/{held.id}/fail")
    assert status == 409 and again["error"]["code"] == "wrong_state"

    emulator.fault(kind="refund_outcome", outcome="PENDING")
    cancelled = refund("6.00", "pending-2")
    assert emulator.control("POST", f"/refunds/{cancelled.id}/cancel")[1]["status"] == "CANCELLED"
    receiver.wait_for(about(cancelled.id, "PAYMENT.REFUND.CANCELLED"))
    assert capture_status() == "PARTIALLY_REFUNDED"           # the $6.00 came back to the capture

    emulator.fault(kind="refund_outcome", outcome="FAILED")
    failed = refund("6.00", "failed-1")
    assert failed.status == "FAILED"
    receiver.wait_for(about(failed.id, "PAYMENT.REFUND.FAILED"))
    assert sdk.payments.get_refund({"refund_id": failed.id}).body.status == "FAILED"
    assert refund("6.00", "failed-1").id == failed.id           # PayPal returns the failed refund again

    emulator.fault(kind="refund_outcome", outcome="PENDING_FAILED", settle_s=0.1)
    late = refund("6.00", "failed-2")
    receiver.wait_for(about(late.id, "PAYMENT.REFUND.FAILED"))
    assert sdk.payments.get_refund({"refund_id": late.id}).body.status == "FAILED"
    emulator.fault(kind="refund_outcome", outcome="PENDING_COMPLETED", settle_s=0.1)
    last = refund("6.00", "completed-1")
    receiver.wait_for(about(last.id, "PAYMENT.CAPTURE.REFUNDED"))
    assert capture_status() == "REFUNDED"
    # A refused refund spends no fault: the next refund is COMPLETED as usual.
    emulator.fault(kind="refund_outcome", outcome="FAILED")
    with pytest.raises(ErrorException) as refused:
        refund("1.00", "too-much")
    assert refused.value.details[0].issue == "CAPTURE_FULLY_REFUNDED"
    assert emulator.control("GET", "/faults")[1]["faults"][0]["kind"] == "refund_outcome"
    emulator.control("DELETE", "/faults")
    status, body = emulator.control("POST", "/faults", {"kind": "refund_outcome", "outcome": "LATER"})
    assert status == 400 and "outcome" in body["error"]["message"]


def test_fault_refusal_answers_paypals_422_with_the_issue_and_does_nothing(sdk, emulator):
    _, payment = captured(sdk)
    path = f"/v2/payments/captures/{payment.id}/refund"
    shown = emulator.fault(kind="refusal", path="/v2/payments/captures/*/refund", method="POST",
                           issue="PERMISSION_DENIED")
    assert shown["issue"] == "PERMISSION_DENIED" and shown["path"] == "/v2/payments/captures/*/refund"
    status, body = emulator.api("POST", path, {})
    assert status == 422 and body["name"] == "UNPROCESSABLE_ENTITY"
    assert body["details"][0]["issue"] == "PERMISSION_DENIED"
    status, refund = emulator.api("POST", path, {})   # the fault is spent; nothing was refunded before
    assert status == 201 and refund["status"] == "COMPLETED"
    for spec in ({"kind": "refusal", "path": path}, {"kind": "refusal", "path": path, "issue": "not a word"}):
        status, body = emulator.control("POST", "/faults", spec)
        assert status == 400 and "issue" in body["error"]["message"]


def test_fault_webhooks_duplicated(sdk, emulator, receiver):
    emulator.fault(kind="webhook_duplicate")
    order = approved_order(sdk)
    copies = receiver.wait_for(about(order.id, "CHECKOUT.ORDER.APPROVED"), count=2)
    assert copies[0]["event"]["id"] == copies[1]["event"]["id"]
    assert copies[0]["headers"]["PAYPAL-TRANSMISSION-ID"] != copies[1]["headers"]["PAYPAL-TRANSMISSION-ID"]


def test_fault_webhooks_out_of_order(emulator, receiver):
    emulator.fault(kind="webhook_out_of_order", count=3)
    status, created = emulator.api("POST", "/v1/payments/payouts", payout_request("reordered", "paid@example.com"))
    batch_id = created["batch_header"]["payout_batch_id"]
    events = receiver.wait_for(lambda e: batch_id in json.dumps(e["resource"]), count=3)
    assert [r["event"]["event_type"] for r in events] == [
        "PAYMENT.PAYOUTSBATCH.SUCCESS", "PAYMENT.PAYOUTS-ITEM.SUCCEEDED", "PAYMENT.PAYOUTSBATCH.PROCESSING"]


def test_control_api_refuses_bad_input(emulator):
    status, body = emulator.control("POST", "/faults", {"kind": "capture_outcome", "outcome": "MAYBE"})
    assert status == 400 and body["error"]["code"] == "invalid_fault" and "outcome" in body["error"]["message"]
    status, body = emulator.control("POST", "/faults", {"kind": "error"})
    assert status == 400 and "path" in body["error"]["message"]
    for spec, words in (({}, "amount, currency or both"), ({"currency": "euro"}, "three-letter"),
                        ({"amount": "1.001"}, "dollar value")):
        status, body = emulator.control("POST", "/faults", dict(spec, kind="capture_mismatch"))
        assert status == 400 and words in body["error"]["message"]
    status, body = emulator.control("PUT", "/webhook", {"url": "ftp://example.com/hook"})
    assert status == 400 and body["error"]["code"] == "invalid_url"
    status, body = emulator.control("POST", "/disputes", {"capture_id": "NOSUCHCAPTURE"})
    assert status == 404
    assert emulator.control("GET", "/faults") == (200, {"faults": []})


# --- the command ----------------------------------------------------------------------------

def test_command_refuses_a_taken_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "interkanect.cli", "paypal-emulator", "--port", str(port)],
                                cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 (PayPal emulator) is already in use" in result.stderr
