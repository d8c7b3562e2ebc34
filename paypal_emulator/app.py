"""One emulator process: its Tornado application (PayPal's REST paths, the payer's checkout
page, the certificate URL, and the /emulator control API), its state, start and stop."""
import asyncio
import base64
import binascii
import collections
import datetime
import fnmatch
import json
import logging
import signal

import tornado.httpserver
import tornado.web

from paypal_emulator import approval, balance, ids
from paypal_emulator.delivery import WebhookSender
from paypal_emulator.disputes import Disputes
from paypal_emulator.events import Event, timestamp
from paypal_emulator.errors import (ORDERS_API, PAYMENTS_API, PayoutsError, PayPalError, authentication_failure,
                                    internal, invalid, unprocessable)
from paypal_emulator.faults import FaultError, Faults
from paypal_emulator.idempotency import RequestIds
from paypal_emulator.links import Urls
from paypal_emulator.money import AmountError, parse_cents
from paypal_emulator.orders import Orders
from paypal_emulator.payments import Payments
from paypal_emulator.payouts import Payouts
from paypal_emulator.subscriptions import PRODUCTS_API, SALES_API, SUBSCRIPTIONS_API, Subscriptions, consent_page
from paypal_emulator.webhooks import AUTH_ALGO, SigningKey, envelope, serialize, verify

log = logging.getLogger(__name__)
# How many API requests GET /emulator/requests keeps.
REQUEST_LOG_SIZE = 10_000
access_log = logging.getLogger("tornado.access")

ID = r"([^/]+)"
# The scopes PayPal grants a REST app with payments, payouts and webhooks enabled.
TOKEN_SCOPES = " ".join([
    "https://uri.paypal.com/services/payments/payment", "https://uri.paypal.com/services/payments/refund",
    "https://uri.paypal.com/services/payments/payouts", "https://uri.paypal.com/payments/payouts",
    "https://uri.paypal.com/services/applications/webhooks", "https://uri.paypal.com/services/disputes/read-seller",
    "openid"])
APP_ID = "APP-80W284485P519543T"


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


class Tokens:
    """Client-credentials access tokens issued by this instance, until they expire."""

    def __init__(self, ttl_s):
        self.ttl = datetime.timedelta(seconds=ttl_s)
        self._expires_at = {}

    def issue(self, now):
        if len(self._expires_at) > 10000:  # a client that never reuses tokens: forget the dead ones
            self._expires_at = {token: at for token, at in self._expires_at.items() if at > now}
        token = ids.access_token()
        self._expires_at[token] = now + self.ttl
        return token

    def valid(self, authorization, now):
        scheme, _, token = (authorization or "").partition(" ")
        expires_at = self._expires_at.get(token.strip()) if scheme.lower() == "bearer" else None
        return expires_at is not None and now < expires_at


class ControlError(Exception):
    """A refused control-API request: {"error": {"code", "message"}}, like the gateway's."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Emulator:
    """One PayPal: its accounts' state, fault switches, signing key and webhook sender."""

    def __init__(self, settings, clock=utc_now):
        self.settings = settings
        self.clock = clock
        self.urls = Urls(settings.base_url)
        request_ids = RequestIds()
        merchant = {"email_address": settings.merchant_email, "merchant_id": settings.merchant_id}
        self.payments = Payments(self.urls, request_ids, merchant)
        self.orders = Orders(self.urls, self.payments, request_ids, merchant)
        self.payouts = Payouts(self.urls, request_ids, settings.payout_item_fee_cents, settings.payout_rules)
        self.disputes = Disputes(self.urls, self.payments, settings.dispute_fee_cents)
        self.subscriptions = Subscriptions(self.urls, request_ids)
        self._billing_timers = {}  # subscription id -> the timer of its next billing
        self.faults = Faults()
        self.subscriptions.take_sale_mismatch = self._take_sale_mismatch
        # Every API request as it came in (newest last): what a test checks retries against.
        self.requests = collections.deque(maxlen=REQUEST_LOG_SIZE)
        self.tokens = Tokens(settings.token_ttl_s)
        self.signing_key = SigningKey.generate(clock())
        self.webhooks = None  # needs the running loop: made in start()
        self.server = None
        self._timers = []

    def application(self):
        a = {"emulator": self}
        routes = [
            (r"/v1/oauth2/token", TokenHandler, a),
            (r"/v2/checkout/orders", CreateOrderHandler, a),
            (r"/v2/checkout/orders/" + ID, OrderHandler, a),
            (r"/v2/checkout/orders/" + ID + "/capture", CaptureOrderHandler, a),
            (r"/v2/payments/captures/" + ID, CaptureHandler, a),
            (r"/v2/payments/captures/" + ID + "/refund", RefundCaptureHandler, a),
            (r"/v2/payments/refunds/" + ID, RefundHandler, a),
            (r"/v1/payments/payouts", CreatePayoutHandler, a),
            (r"/v1/payments/payouts/" + ID, PayoutBatchHandler, a),
            (r"/v1/payments/payouts-item/" + ID, PayoutItemHandler, a),
            (r"/v1/reporting/balances", BalancesHandler, a),
            (r"/v1/notifications/verify-webhook-signature", VerifySignatureHandler, a),
            (r"/v1/notifications/webhooks-events/" + ID, WebhookEventHandler, a),
            (r"/v1/notifications/webhooks-events/" + ID + "/resend", ResendEventHandler, a),
            (r"/v1/notifications/certs/" + ID, CertificateHandler, a),
            (r"/checkoutnow", CheckoutPageHandler, a),
            (r"/v1/catalogs/products", CreateProductHandler, a),
            (r"/v1/catalogs/products/" + ID, ProductHandler, a),
            (r"/v1/billing/plans", PlansHandler, a),
            (r"/v1/billing/plans/" + ID, PlanHandler, a),
            (r"/v1/billing/subscriptions", CreateSubscriptionHandler, a),
            (r"/v1/billing/subscriptions/" + ID, SubscriptionHandler, a),
            (r"/v1/billing/subscriptions/" + ID + "/cancel", CancelSubscriptionHandler, a),
            (r"/v1/payments/sale/" + ID + "/refund", RefundSaleHandler, a),
            (r"/webapps/billing/subscriptions", SubscriptionConsentHandler, a),
            (r"/emulator/subscriptions/" + ID + "/advance", AdvanceSubscriptionHandler, a),
            (r"/emulator/billing-clock", BillingClockHandler, a),
            (r"/emulator/health", HealthHandler, a),
            (r"/emulator/requests", RequestLogHandler, a),
            (r"/emulator/faults", FaultsHandler, a),
            (r"/emulator/faults/" + ID, FaultHandler, a),
            (r"/emulator/webhook", WebhookConfigHandler, a),
            (r"/emulator/webhooks", DeliveriesHandler, a),
            (r"/emulator/webhooks/sign", SignHandler, a),
            (r"/emulator/captures/" + ID + "/(complete|deny)", SettleCaptureHandler, a),
            (r"/emulator/refunds/" + ID + "/(complete|fail|cancel)", SettleRefundHandler, a),
            (r"/emulator/disputes", DisputesHandler, a),
            (r"/emulator/disputes/" + ID + "/resolve", ResolveDisputeHandler, a),
            (r"/emulator/payouts-items/" + ID + "/return", ReturnPayoutItemHandler, a),
        ]
        return tornado.web.Application(routes, log_function=log_request, default_handler_class=NotFoundHandler,
                                       default_handler_args=a)

    async def start(self, sockets=None):
        self.webhooks = WebhookSender(self.settings, self.signing_key, self.urls, self.faults, self.clock)
        self.server = tornado.httpserver.HTTPServer(self.application())
        if sockets is None:
            self.server.listen(self.settings.port, self.settings.host)
        else:
            self.server.add_sockets(sockets)

    async def stop(self):
        for timer in self._timers + list(self._billing_timers.values()):
            timer.cancel()
        if self.server:
            self.server.stop()
            await self.server.close_all_connections()
        if self.webhooks:
            await self.webhooks.stop()

    @property
    def cert_url(self):
        return self.urls.cert(self.signing_key.cert_id)

    def _take_sale_mismatch(self):
        fault = self.faults.take("sale_mismatch")
        return (fault.amount_cents, fault.currency) if fault else None

    def emit(self, events):
        now = self.clock()
        for event in events:
            self.webhooks.send(envelope(event, ids.event_id(), now, self.urls))

    def settle_refund_later(self, refund_id, verdict, delay_s):
        def settle():
            try:
                _, events = self.payments.settle_refund(refund_id, verdict, self.clock())
            except ValueError:  # settled by the control API meanwhile
                return
            self.emit(events)
        self._timers.append(asyncio.get_running_loop().call_later(delay_s, settle))

    def schedule_payout(self, batch_id):
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(self.settings.payout_processing_s, self._process_payout, batch_id))

    def _process_payout(self, batch_id):
        def forced_outcome():
            fault = self.faults.take("payout_item_outcome")
            return fault.outcome if fault else None
        self.emit(self.payouts.process(batch_id, self.clock(), forced_outcome))

    def watch_billing(self, subscription_id):
        """(Re)arm the timer that bills an ACTIVE subscription at its next billing time."""
        timer = self._billing_timers.pop(subscription_id, None)
        if timer:
            timer.cancel()
        subscription = self.subscriptions.get(subscription_id)
        if subscription.status == "ACTIVE" and subscription.next_billing_time:
            delay_s = max(0.0, (subscription.next_billing_time - self.clock()).total_seconds())
            self._billing_timers[subscription_id] = asyncio.get_running_loop().call_later(
                delay_s, self._bill, subscription_id)

    def _bill(self, subscription_id):
        self._billing_timers.pop(subscription_id, None)
        try:
            events = self.subscriptions.bill_due(subscription_id, self.clock())
        except ValueError:  # cancelled meanwhile
            return
        self.emit(events)
        self.watch_billing(subscription_id)

    def verification_status(self, request):
        """POST /v1/notifications/verify-webhook-signature: the CRC is taken over the bytes that
        were sent for this event id when the event matches them, else over its compact JSON."""
        if (request["webhook_id"] != self.webhooks.webhook_id or request["cert_url"] != self.cert_url
                or request["auth_algo"] != AUTH_ALGO or not isinstance(request["webhook_event"], dict)):
            return "FAILURE"
        event = request["webhook_event"]
        raw = self.webhooks.bodies.get(event.get("id"))
        if raw is None or json.loads(raw) != event:
            raw = serialize(event)
        ok = verify(self.signing_key.cert_pem, request["transmission_id"], request["transmission_time"],
                    request["webhook_id"], raw, request["transmission_sig"])
        return "SUCCESS" if ok else "FAILURE"


def log_request(handler):
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    access_log.log(level, "%d %s %s (%s) %.2fms", status, handler.request.method, handler.request.path,
                   handler.request.remote_ip, 1000.0 * handler.request.request_time())


class BaseHandler(tornado.web.RequestHandler):
    def initialize(self, emulator):
        self.emulator = emulator

    def now(self):
        return self.emulator.clock()

    def send_json(self, body, status=200):
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


class ApiHandler(BaseHandler):
    """PayPal's REST API: bearer token, fault switches, PayPal error bodies, Paypal-Debug-Id."""

    api = ORDERS_API
    requires_token = True

    async def prepare(self):
        self.response_lost = False
        self.answer_delay_s = 0.0
        self.debug_id = ids.debug_id()
        self.set_header("Paypal-Debug-Id", self.debug_id)
        self.emulator.requests.append({"method": self.request.method, "path": self.request.path,
                                       "paypal_request_id": self.request.headers.get("PayPal-Request-Id"),
                                       "at": timestamp(self.now())})
        if self.requires_token and not self.emulator.tokens.valid(self.request.headers.get("Authorization"),
                                                                  self.now()):
            raise authentication_failure()
        await self._apply_faults()

    async def _apply_faults(self):
        faults, method, path = self.emulator.faults, self.request.method, self.request.path
        fault = faults.take("error", method, path)
        if fault:
            raise internal(fault.status, self.api)
        fault = faults.take("refusal", method, path)
        if fault:
            raise unprocessable(fault.issue, api=self.api)
        fault = faults.take("timeout", method, path)
        if fault and fault.commit:
            self.answer_delay_s = fault.delay_s  # done at once, answered late
        elif fault:
            await asyncio.sleep(fault.delay_s)
            log.info("fault: %s %s hung %.1fs and is dropped untouched", method, path, fault.delay_s)
            self.detach().close()
            return
        if faults.take("lost_response", method, path):
            self.response_lost = True

    @property
    def request_id(self):
        return self.request.headers.get("PayPal-Request-Id") or None

    @property
    def wants_representation(self):
        return "return=representation" in self.request.headers.get("Prefer", "")

    def json_body(self, allow_empty=False):
        if allow_empty and not self.request.body.strip():
            return None
        try:
            return json.loads(self.request.body)
        except (ValueError, RecursionError):
            raise invalid("MALFORMED_REQUEST_JSON", api=self.api) from None

    async def respond(self, body, status=200):
        """Answer, unless a fault says the answer is late (timeout) or lost (lost_response):
        either way the operation is already done, and a retry with the same PayPal-Request-Id
        gets its result."""
        if self.answer_delay_s:
            log.info("fault: %s %s is done; its answer waits %.1fs", self.request.method, self.request.path,
                     self.answer_delay_s)
            await asyncio.sleep(self.answer_delay_s)
        if self.response_lost:
            log.info("fault: %s %s answered %d but the response is lost", self.request.method, self.request.path,
                     status)
            self.detach().close()
            return
        self.send_json(body, status)

    def _handle_request_exception(self, error):
        if isinstance(error, (PayPalError, PayoutsError)):
            log.info("%s %s refused: %s", self.request.method, self.request.path, error)
            # Not awaited: Tornado does not finish a request after its error handler, respond() does.
            asyncio.ensure_future(self.respond(error.body(self.debug_id), error.status))
            return
        super()._handle_request_exception(error)

    def write_error(self, status_code, **kwargs):
        status = status_code if status_code in (400, 404, 405, 415) else 500
        name, message = {400: ("INVALID_REQUEST", "Request is not well-formed, syntactically incorrect, or violates "
                                                  "schema."),
                         404: ("RESOURCE_NOT_FOUND", "The specified resource does not exist."),
                         405: ("METHOD_NOT_SUPPORTED", "The server does not implement the requested HTTP method."),
                         415: ("UNSUPPORTED_MEDIA_TYPE", "The server does not support the request payload's media "
                                                         "type."),
                         500: ("INTERNAL_SERVER_ERROR", "An internal server error occurred.")}[status]
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"name": name, "message": message, "debug_id": getattr(self, "debug_id", "")}))


class NotFoundHandler(ApiHandler):
    requires_token = False

    def prepare(self):
        self.debug_id = ids.debug_id()
        raise tornado.web.HTTPError(404)


class TokenHandler(ApiHandler):
    """POST /v1/oauth2/token: client credentials in HTTP basic auth; OAuth 2 error bodies."""

    requires_token = False

    async def post(self):
        settings = self.emulator.settings
        if self._credentials() != (settings.client_id, settings.client_secret):
            self.set_header("WWW-Authenticate", 'Basic realm="PayPal"')
            self.send_json({"error": "invalid_client", "error_description": "Client Authentication failed"}, 401)
            return
        grant_type = self.get_body_argument("grant_type", None)
        if grant_type != "client_credentials":
            self.send_json({"error": "unsupported_grant_type",
                            "error_description": "Grant Type is NULL" if grant_type is None
                            else f"unsupported grant_type {grant_type}"}, 400)
            return
        now = self.now()
        await self.respond({"scope": TOKEN_SCOPES, "access_token": self.emulator.tokens.issue(now),
                            "token_type": "Bearer", "app_id": APP_ID, "expires_in": int(settings.token_ttl_s),
                            "nonce": f"{now.strftime('%Y-%m-%dT%H:%M:%SZ')}{ids.debug_id()}"})

    def _credentials(self):
        scheme, _, encoded = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            client_id, _, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return client_id, secret


class CreateOrderHandler(ApiHandler):
    async def post(self):
        order, created = self.emulator.orders.create(self.json_body(), self.request_id, self.now())
        await self.respond(self.emulator.orders.to_json(order, full=self.wants_representation),
                           201 if created else 200)


class OrderHandler(ApiHandler):
    async def get(self, order_id):
        await self.respond(self.emulator.orders.to_json(self.emulator.orders.get(order_id)))


class CaptureOrderHandler(ApiHandler):
    async def post(self, order_id):
        self.json_body(allow_empty=True)  # a payment_source may come; the payer's approval decides

        def take_outcome():
            fault = self.emulator.faults.take("capture_outcome")
            return fault.outcome if fault else "COMPLETED"

        def take_mismatch():
            fault = self.emulator.faults.take("capture_mismatch")
            return (fault.amount_cents, fault.currency) if fault else None
        orders = self.emulator.orders
        order, created, events = orders.capture(order_id, self.request_id, self.now(), take_outcome, take_mismatch)
        self.emulator.emit(events)
        await self.respond(orders.to_json(order), 201 if created else 200)


class CaptureHandler(ApiHandler):
    api = PAYMENTS_API

    async def get(self, capture_id):
        payments = self.emulator.payments
        await self.respond(payments.capture_json(payments.capture(capture_id)))


class RefundCaptureHandler(ApiHandler):
    api = PAYMENTS_API

    async def post(self, capture_id):
        payments = self.emulator.payments
        taken = []

        def take_outcome():  # asked only for a refund about to be made: a refusal spends no fault
            fault = self.emulator.faults.take("refund_outcome")
            taken.append(fault)
            return fault.outcome.split("_")[0] if fault else "COMPLETED"
        refund, created, events = payments.refund_capture(capture_id, self.json_body(allow_empty=True),
                                                          self.request_id, self.now(), take_outcome)
        fault = taken[0] if taken else None
        if fault is not None and fault.outcome in ("PENDING_COMPLETED", "PENDING_FAILED"):
            self.emulator.settle_refund_later(refund.id, "complete" if fault.outcome == "PENDING_COMPLETED" else "fail",
                                              fault.settle_s)
        self.emulator.emit(events)
        body = payments.refund_json(refund)
        if not self.wants_representation:
            body = {"id": body["id"], "status": body["status"], "links": body["links"]}
        await self.respond(body, 201 if created else 200)


class RefundHandler(ApiHandler):
    api = PAYMENTS_API

    async def get(self, refund_id):
        payments = self.emulator.payments
        await self.respond(payments.refund_json(payments.refund(refund_id)))


class BalancesHandler(ApiHandler):
    """GET /v1/reporting/balances: the merchant's balance, from what this emulator did."""

    async def get(self):
        e = self.emulator
        cents = balance.balance_cents(e.payments, e.payouts, e.subscriptions, e.disputes)
        await self.respond(balance.balances_json(cents, e.settings.merchant_id, self.now()))


class CreatePayoutHandler(ApiHandler):
    async def post(self):
        try:
            body = json.loads(self.request.body)
        except (ValueError, RecursionError):
            body = None
        payouts = self.emulator.payouts
        batch, created = payouts.create(body, self.request_id, self.now())
        if created:
            self.emulator.schedule_payout(batch.id)
        await self.respond(payouts.created_json(batch), 201)


class PayoutBatchHandler(ApiHandler):
    async def get(self, batch_id):
        payouts = self.emulator.payouts
        await self.respond(payouts.batch_json(payouts.batch(batch_id)))


class PayoutItemHandler(ApiHandler):
    async def get(self, item_id):
        payouts = self.emulator.payouts
        await self.respond(payouts.item_json(payouts.item(item_id)))


VERIFY_FIELDS = ("auth_algo", "cert_url", "transmission_id", "transmission_sig", "transmission_time", "webhook_id",
                 "webhook_event")


class VerifySignatureHandler(ApiHandler):
    async def post(self):
        body = self.json_body()
        if not isinstance(body, dict):
            raise invalid("MALFORMED_REQUEST_JSON")
        for name in VERIFY_FIELDS:
            if name not in body:
                raise invalid("MISSING_REQUIRED_PARAMETER", f"/{name}")
        await self.respond({"verification_status": self.emulator.verification_status(body)})


class WebhookEventHandler(ApiHandler):
    """GET /v1/notifications/webhooks-events/{id}: the `self` link of every event."""

    async def get(self, event_id):
        raw = self.emulator.webhooks.bodies.get(event_id)
        if raw is None:
            raise PayPalError(404, name="INVALID_RESOURCE_ID", message="Resource id is invalid.")
        await self.respond(json.loads(raw))


class ResendEventHandler(ApiHandler):
    """POST /v1/notifications/webhooks-events/{id}/resend: the same event, delivered again."""

    async def post(self, event_id):
        if event_id not in self.emulator.webhooks.bodies:
            raise PayPalError(404, name="INVALID_RESOURCE_ID", message="Resource id is invalid.")
        self.emulator.webhooks.resend(event_id)
        await self.respond(json.loads(self.emulator.webhooks.bodies[event_id]), 202)


class CertificateHandler(BaseHandler):
    """The PAYPAL-CERT-URL target: the signing key's certificate, PEM, no auth."""

    def get(self, cert_id):
        # Logged like an API request: a test counts how often a receiver fetches it.
        self.emulator.requests.append({"method": "GET", "path": self.request.path, "paypal_request_id": None,
                                       "at": timestamp(self.now())})
        if cert_id != self.emulator.signing_key.cert_id:
            raise tornado.web.HTTPError(404)
        self.set_header("Content-Type", "application/x-pem-file")
        self.finish(self.emulator.signing_key.cert_pem)


class CheckoutPageHandler(BaseHandler):
    """The payer's approval page; its form posts back here."""

    def get(self):
        order = self._order(self.get_query_argument("token", ""))
        if order.status not in ("CREATED", "PAYER_ACTION_REQUIRED", "APPROVED"):
            self._page(422, approval.message_page("Not payable", f"This order is {order.status.lower()}."))
            return
        self._page(200, approval.checkout_page(order, self.emulator.settings.merchant_email))

    def post(self):
        order = self._order(self.get_body_argument("token", "") or self.get_query_argument("token", ""))
        action = self.get_body_argument("action", "")
        if action == "cancel":
            self._leave(order.cancel_url, "Payment cancelled", "You cancelled; nothing was paid.", token=order.id)
            return
        if action != "approve":
            self._page(400, approval.message_page("Bad request", "Choose Approve or Cancel."))
            return
        payer_email = self.get_body_argument("payer_email", "") or approval.DEFAULT_PAYER_EMAIL
        try:
            order, events = self.emulator.orders.approve(order.id, payer_email, self.now())
        except ValueError:
            self._page(422, approval.message_page("Not payable", f"This order is {order.status.lower()}."))
            return
        self.emulator.emit(events)
        self._leave(order.return_url, "Payment approved", "You approved the payment; you can close this window.",
                    token=order.id, PayerID=order.payer["payer_id"])

    def _order(self, token):
        order = self.emulator.orders.orders.get(token)
        if order is None:
            self._page(404, approval.message_page("Not found", "There is no order with this token."))
            raise tornado.web.Finish()
        return order

    def _leave(self, url, title, message, **params):
        if url:
            self.redirect(approval.with_query(url, **params))
        else:
            self._page(200, approval.message_page(title, message))

    def _page(self, status, page):
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(page)


class CreateProductHandler(ApiHandler):
    api = PRODUCTS_API

    async def post(self):
        subscriptions = self.emulator.subscriptions
        product, created = subscriptions.create_product(self.json_body(), self.request_id, self.now())
        await self.respond(subscriptions.product_json(product), 201 if created else 200)


class ProductHandler(ApiHandler):
    api = PRODUCTS_API

    async def get(self, product_id):
        subscriptions = self.emulator.subscriptions
        await self.respond(subscriptions.product_json(subscriptions.product(product_id)))


class PlansHandler(ApiHandler):
    """POST creates a plan (minimal answer unless Prefer: return=representation); GET lists."""

    api = SUBSCRIPTIONS_API

    async def post(self):
        subscriptions = self.emulator.subscriptions
        plan, created = subscriptions.create_plan(self.json_body(), self.request_id, self.now())
        await self.respond(subscriptions.plan_json(plan, full=self.wants_representation), 201 if created else 200)

    async def get(self):
        subscriptions, argument = self.emulator.subscriptions, self.get_query_argument
        plan_ids = argument("plan_ids", None)
        plans, total = subscriptions.list_plans(argument("product_id", None),
                                                plan_ids.split(",") if plan_ids else None,
                                                argument("page_size", None), argument("page", None))
        body = {"plans": [subscriptions.plan_json(plan, full=False) for plan in plans]}
        if argument("total_required", "false") == "true":
            size = int(argument("page_size", None) or 10)
            body.update(total_items=total, total_pages=-(-total // size))
        body["links"] = [{"href": self.request.full_url(), "rel": "self", "method": "GET"}]
        await self.respond(body)


class PlanHandler(ApiHandler):
    api = SUBSCRIPTIONS_API

    async def get(self, plan_id):
        subscriptions = self.emulator.subscriptions
        await self.respond(subscriptions.plan_json(subscriptions.plan(plan_id)))


class CreateSubscriptionHandler(ApiHandler):
    api = SUBSCRIPTIONS_API

    async def post(self):
        subscriptions = self.emulator.subscriptions
        subscription, created = subscriptions.create(self.json_body(allow_empty=True), self.request_id, self.now())
        if created:
            self.emulator.emit([Event("BILLING.SUBSCRIPTION.CREATED", "subscription", "Subscription created",
                                      subscriptions.to_json(subscription))])
        await self.respond(subscriptions.to_json(subscription, full=self.wants_representation),
                           201 if created else 200)


class RefundSaleHandler(ApiHandler):
    """POST /v1/payments/sale/{id}/refund: a subscription payment given back (PayPal's v1)."""

    api = SALES_API

    async def post(self, sale_id):
        subscriptions = self.emulator.subscriptions
        refund, created, events = subscriptions.refund_sale(sale_id, self.json_body(allow_empty=True),
                                                            self.request_id, self.now())
        self.emulator.emit(events)
        await self.respond(subscriptions.sale_refund_json(refund), 201 if created else 200)


class SubscriptionHandler(ApiHandler):
    api = SUBSCRIPTIONS_API

    async def get(self, subscription_id):
        subscriptions = self.emulator.subscriptions
        await self.respond(subscriptions.to_json(subscriptions.get(subscription_id)))


class CancelSubscriptionHandler(ApiHandler):
    """POST …/cancel {"reason"}: CANCELLED, 204 with no body."""

    api = SUBSCRIPTIONS_API

    async def post(self, subscription_id):
        subscriptions = self.emulator.subscriptions
        subscriptions.get(subscription_id)  # 404 before a body complaint, as PayPal checks the path first
        events = subscriptions.cancel(subscription_id, self.json_body(allow_empty=True), self.now())
        self.emulator.watch_billing(subscription_id)
        self.emulator.emit(events)
        if self.answer_delay_s:  # faults, as respond() does for answers with a body
            await asyncio.sleep(self.answer_delay_s)
        if self.response_lost:
            self.detach().close()
            return
        self.set_status(204)
        self.finish()


class SubscriptionConsentHandler(CheckoutPageHandler):
    """The payer's consent page behind a subscription's approve link. Approve: ACTIVE, the
    first cycle billed, and the browser sent to return_url with subscription_id, ba_token and
    token added; cancel: back to cancel_url, the subscription still APPROVAL_PENDING."""

    def get(self):
        subscription = self._subscription(self.get_query_argument("ba_token", ""))
        if subscription.status != "APPROVAL_PENDING":
            self._page(422, approval.message_page("Not available", f"This subscription is "
                                                                   f"{subscription.status.lower()}."))
            return
        subscriptions = self.emulator.subscriptions
        self._page(200, consent_page(subscription, subscriptions.plans[subscription.plan_id],
                                     self.emulator.settings.merchant_email))

    def post(self):
        subscription = self._subscription(self.get_body_argument("ba_token", ""))
        action = self.get_body_argument("action", "")
        back = dict(subscription_id=subscription.id, ba_token=subscription.ba_token, token=subscription.token)
        if action == "cancel":
            self._leave(subscription.cancel_url, "Subscription cancelled", "You cancelled; nothing was paid.",
                        ba_token=subscription.ba_token, token=subscription.token)
            return
        if action != "approve":
            self._page(400, approval.message_page("Bad request", "Choose Agree & Subscribe or Cancel."))
            return
        payer_email = self.get_body_argument("payer_email", "") or approval.DEFAULT_PAYER_EMAIL
        try:
            events = self.emulator.subscriptions.approve(subscription.id, payer_email, self.now())
        except ValueError:
            self._page(422, approval.message_page("Not available", f"This subscription is "
                                                                   f"{subscription.status.lower()}."))
            return
        self.emulator.emit(events)
        self.emulator.watch_billing(subscription.id)
        self._leave(subscription.return_url, "Subscribed", "You subscribed; you can close this window.", **back)

    def _subscription(self, ba_token):
        subscription = self.emulator.subscriptions.by_ba_token(ba_token)
        if subscription is None:
            self._page(404, approval.message_page("Not found", "There is no subscription with this token."))
            raise tornado.web.Finish()
        return subscription


class ControlHandler(BaseHandler):
    """The /emulator control API: plain JSON, errors as {"error": {"code", "message"}}."""

    def json_body(self):
        try:
            body = json.loads(self.request.body or b"{}")
        except (ValueError, RecursionError):
            raise ControlError(400, "invalid_json", "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ControlError(400, "invalid_body", "send a JSON object")
        return body

    def _handle_request_exception(self, error):
        if isinstance(error, ControlError):
            self.send_json({"error": {"code": error.code, "message": error.message}}, error.status)
            return
        if isinstance(error, (PayPalError, PayoutsError)):
            self.send_json({"error": {"code": "not_found" if error.status == 404 else "refused",
                                      "message": str(error)}}, error.status)
            return
        super()._handle_request_exception(error)


class HealthHandler(ControlHandler):
    def get(self):
        self.send_json({"ok": True, "webhook_url": self.emulator.webhooks.url})


class FaultsHandler(ControlHandler):
    def get(self):
        self.send_json({"faults": [fault.to_json() for fault in self.emulator.faults.armed()]})

    def post(self):
        try:
            fault = self.emulator.faults.add(self.json_body())
        except FaultError as error:
            raise ControlError(400, "invalid_fault", str(error)) from None
        log.info("fault armed: %s", fault.to_json())
        self.send_json(fault.to_json(), 201)

    def delete(self):
        self.emulator.faults.clear()
        self.set_status(204)


class FaultHandler(ControlHandler):
    def delete(self, fault_id):
        if not self.emulator.faults.remove(fault_id):
            raise ControlError(404, "not_found", f"no armed fault {fault_id}")
        self.set_status(204)


class WebhookConfigHandler(ControlHandler):
    def get(self):
        webhooks = self.emulator.webhooks
        self.send_json({"url": webhooks.url, "webhook_id": webhooks.webhook_id, "cert_url": self.emulator.cert_url})

    def put(self):
        body, webhooks = self.json_body(), self.emulator.webhooks
        if "url" in body:
            url = body["url"]
            if not isinstance(url, str) or (url and not url.startswith(("http://", "https://"))):
                raise ControlError(400, "invalid_url", "url is an http(s) URL, or empty to send nothing")
            webhooks.url = body["url"]
        if "webhook_id" in body:
            if not isinstance(body["webhook_id"], str) or not body["webhook_id"].isalnum():
                raise ControlError(400, "invalid_webhook_id", "webhook_id must be alphanumeric, as PayPal's are")
            webhooks.webhook_id = body["webhook_id"]
        self.get()


class DeliveriesHandler(ControlHandler):
    """Every delivery and its attempts, oldest first; ?event_type= narrows."""

    def get(self):
        event_type = self.get_query_argument("event_type", None)
        self.send_json({"deliveries": [delivery.to_json() for delivery in self.emulator.webhooks.deliveries
                                       if event_type in (None, delivery.event_type)]})


class RequestLogHandler(ControlHandler):
    """The API requests received, oldest first (the last REQUEST_LOG_SIZE); ?path= narrows to a glob."""

    def get(self):
        pattern = self.get_query_argument("path", None)
        self.send_json({"requests": [entry for entry in self.emulator.requests
                                     if pattern is None or fnmatch.fnmatchcase(entry["path"], pattern)]})


class SignHandler(ControlHandler):
    """PayPal's headers for any body, transmission time and webhook id, signed with this
    emulator's key: what a test needs to forge a stale or replayed delivery that is correctly
    signed (a receiver must refuse those on their time or event id, not on the signature)."""

    def post(self):
        body = self.json_body()
        raw, webhooks = body.get("body"), self.emulator.webhooks
        if not isinstance(raw, str):
            raise ControlError(400, "invalid_body", "body is the raw webhook body, as a string")
        transmission_time = body.get("transmission_time") or timestamp(self.now())
        headers = self.emulator.signing_key.headers(body.get("transmission_id") or ids.transmission_id(),
                                                    transmission_time, body.get("webhook_id") or webhooks.webhook_id,
                                                    raw.encode(), self.emulator.cert_url)
        self.send_json({"headers": headers})


class SettleCaptureHandler(ControlHandler):
    """A PENDING capture clears (complete) or is denied (deny)."""

    def post(self, capture_id, verdict):
        try:
            capture, events = self.emulator.payments.settle(capture_id, verdict == "complete", self.now())
        except ValueError as error:
            raise ControlError(409, "wrong_state", str(error)) from None
        self.emulator.emit(events)
        self.send_json(self.emulator.payments.capture_json(capture))


class SettleRefundHandler(ControlHandler):
    """A PENDING refund completes, fails or is cancelled."""

    def post(self, refund_id, verdict):
        payments = self.emulator.payments
        try:
            refund, events = payments.settle_refund(refund_id, verdict, self.now())
        except ValueError as error:
            raise ControlError(409, "wrong_state", str(error)) from None
        self.emulator.emit(events)
        self.send_json(payments.refund_json(refund))


class DisputesHandler(ControlHandler):
    """A buyer opens a dispute on a capture (CUSTOMER.DISPUTE.CREATED)."""

    def post(self):
        body = self.json_body()
        amount_cents = None
        if body.get("amount") is not None:
            try:
                amount_cents = parse_cents(str(body["amount"]))
            except AmountError:
                raise ControlError(400, "invalid_amount", "amount is a dollar value such as \"10.00\"") from None
        try:
            dispute, events = self.emulator.disputes.open(str(body.get("capture_id", "")),
                                                          body.get("reason", "MERCHANDISE_OR_SERVICE_NOT_RECEIVED"),
                                                          amount_cents, self.now())
        except ValueError as error:
            raise ControlError(400, "invalid_dispute", str(error)) from None
        self.emulator.emit(events)
        self.send_json(self.emulator.disputes.to_json(dispute), 201)


class ResolveDisputeHandler(ControlHandler):
    def post(self, dispute_id):
        try:
            dispute, events = self.emulator.disputes.resolve(
                dispute_id, self.json_body().get("outcome", "RESOLVED_SELLER_FAVOUR"), self.now())
        except KeyError:
            raise ControlError(404, "not_found", f"no dispute {dispute_id}") from None
        except ValueError as error:
            raise ControlError(409, "wrong_state", str(error)) from None
        self.emulator.emit(events)
        self.send_json(self.emulator.disputes.to_json(dispute))


class ReturnPayoutItemHandler(ControlHandler):
    """An UNCLAIMED payout item's 30 days are over: it is RETURNED to the sender."""

    def post(self, item_id):
        payouts = self.emulator.payouts
        try:
            events = payouts.return_unclaimed(item_id, self.now())
        except ValueError as error:
            raise ControlError(409, "wrong_state", str(error)) from None
        self.emulator.emit(events)
        self.send_json(payouts.item_json(payouts.item(item_id)))


class AdvanceSubscriptionHandler(ControlHandler):
    """{"to": "next_cycle"}: the next billing time comes now; {"to": "end"}: the subscription
    runs out (remaining cycles billed, then EXPIRED)."""

    def post(self, subscription_id):
        to = self.json_body().get("to", "next_cycle")
        if to not in ("next_cycle", "end"):
            raise ControlError(400, "invalid_to", 'to is "next_cycle" or "end"')
        subscriptions = self.emulator.subscriptions
        try:
            events = subscriptions.advance(subscription_id, to, self.now())
        except ValueError as error:
            raise ControlError(409, "wrong_state", str(error)) from None
        self.emulator.emit(events)
        self.emulator.watch_billing(subscription_id)
        self.send_json(subscriptions.to_json(subscriptions.get(subscription_id)))


class BillingClockHandler(ControlHandler):
    """How long a billing DAY lasts in this emulator ({"day_s": 86400}); a small one makes a
    monthly plan renew (and a cancelled one run out) in seconds. Applies from the next billing."""

    def get(self):
        self.send_json({"day_s": self.emulator.subscriptions.day_s})

    def put(self):
        day_s = self.json_body().get("day_s")
        if isinstance(day_s, bool) or not isinstance(day_s, (int, float)) or not 0.001 <= day_s <= 86400:
            raise ControlError(400, "invalid_day_s", "day_s is a number of seconds from 0.001 to 86400")
        self.emulator.subscriptions.day_s = float(day_s)
        self.get()


async def run(settings):
    """Run one emulator until SIGINT or SIGTERM."""
    emulator = Emulator(settings)
    await emulator.start()
    log.info("PayPal emulator listening on %s (webhooks to %s, webhook id %s)", settings.base_url,
             settings.webhook_url or "nowhere", settings.webhook_id)
    print(f"PayPal emulator at {settings.base_url}  client id {settings.client_id}  "
          f"webhook id {settings.webhook_id}  (Ctrl-C stops it)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await emulator.stop()
