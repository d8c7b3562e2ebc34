"""Orders v2 (/v2/checkout/orders): create, show, payer approval, capture. Shapes follow
checkout_orders_v2.json; the rules take `now` and return (order, created, events)."""
import dataclasses
import datetime
import hashlib

from paypal_emulator import ids
from paypal_emulator.errors import PayPalError, detail, invalid, not_found, unprocessable
from paypal_emulator.events import Event, timestamp
from paypal_emulator.idempotency import ORDERS_KEY_TTL_S
from paypal_emulator.links import link
from paypal_emulator.money import CURRENCY, AmountError, money, parse_cents

MAX_PURCHASE_UNITS = 10  # checkout_orders_v2.json: purchase_units maxItems
MAX_ID_LENGTH = 127  # custom_id, invoice_id, description


@dataclasses.dataclass
class PurchaseUnit:
    reference_id: str
    amount_cents: int
    custom_id: str = None
    invoice_id: str = None
    description: str = None
    capture_id: str = None


@dataclasses.dataclass
class Order:
    id: str
    status: str
    purchase_units: list
    create_time: datetime.datetime
    update_time: datetime.datetime
    return_url: str = None
    cancel_url: str = None
    brand_name: str = None
    # Created with payment_source.paypal (the current way): PayPal answers PAYER_ACTION_REQUIRED
    # and a payer-action link instead of CREATED and an approve link.
    paypal_source: bool = False
    payer: dict = None

    @property
    def amount_cents(self):
        return sum(unit.amount_cents for unit in self.purchase_units)


def payer_for(email):
    """The payer a sandbox buyer account would be: a stable payer id per email."""
    digest = hashlib.sha256(email.lower().encode()).hexdigest().upper()
    payer_id = "".join(c for c in digest if c.isalnum())[:13]
    return {"name": {"given_name": "Test", "surname": "Buyer"}, "email_address": email, "payer_id": payer_id,
            "address": {"country_code": "US"}}


class Orders:
    def __init__(self, urls, payments, request_ids, merchant):
        self.urls = urls
        self.payments = payments
        self.request_ids = request_ids
        self.merchant = merchant
        self.orders = {}

    def get(self, order_id):
        if order_id not in self.orders:
            raise not_found(order_id)
        return self.orders[order_id]

    def create(self, body, request_id, now):
        key = ("orders.create", request_id)
        known = request_id and self.request_ids.lookup(key, now)
        if known:
            return self.orders[known], False
        order = parse_order_request(body, now)
        self.orders[order.id] = order
        if request_id:
            self.request_ids.remember(key, order.id, now, ORDERS_KEY_TTL_S)
        return order, True

    def approve(self, order_id, payer_email, now):
        """The payer clicked Approve on the checkout page."""
        order = self.get(order_id)
        if order.status == "APPROVED":
            return order, []
        if order.status not in ("CREATED", "PAYER_ACTION_REQUIRED"):
            raise ValueError(f'Cannot approve order {order_id} in status "{order.status}"')
        order.status, order.payer, order.update_time = "APPROVED", payer_for(payer_email), now
        return order, [Event("CHECKOUT.ORDER.APPROVED", "checkout-order", "An order has been approved by buyer",
                             self.to_json(order))]

    def capture(self, order_id, request_id, now, take_outcome=lambda: "COMPLETED", take_mismatch=lambda: None):
        """POST /v2/checkout/orders/{id}/capture. `take_outcome()` says what the payer's funding
        does (a fault switch, consumed only by a capture that happens): COMPLETED, PENDING,
        DECLINED, or INSTRUMENT_DECLINED (refused, nothing captured). `take_mismatch()` may say
        the capture is for another (amount_cents, currency) than the order (a fault switch)."""
        order = self.get(order_id)
        key = ("orders.capture", order_id, request_id)
        if request_id and self.request_ids.lookup(key, now):
            return order, False, []
        if order.status == "COMPLETED":
            raise unprocessable("ORDER_ALREADY_CAPTURED")
        if order.status != "APPROVED":
            raise unprocessable("ORDER_NOT_APPROVED")
        outcome = take_outcome()
        if outcome == "INSTRUMENT_DECLINED":
            # The payer may pick another funding source: PayPal points back to the approval page.
            raise unprocessable("INSTRUMENT_DECLINED", links=[link(self.urls.approve(order.id), "redirect")])
        events = []
        for unit in order.purchase_units:
            amount_cents, currency = take_mismatch() or (None, None)
            capture = self.payments.new_capture(order.id, amount_cents or unit.amount_cents, outcome, now,
                                                unit.custom_id, unit.invoice_id, currency or CURRENCY)
            unit.capture_id = capture.id
            events.append(self.payments.capture_event(capture))
        order.status, order.update_time = "COMPLETED", now
        if request_id:
            self.request_ids.remember(key, order.id, now, ORDERS_KEY_TTL_S)
        return order, True, events

    def to_json(self, order, full=True):
        """The order resource; `full=False` is PayPal's default minimal answer to create
        (id, status, links) that `Prefer: return=representation` replaces with the whole."""
        body = {"id": order.id}
        if full:
            body["intent"] = "CAPTURE"
        body["status"] = order.status
        if order.paypal_source or order.payer:
            body["payment_source"] = {"paypal": self._paypal_source(order)}
        if full:
            body["purchase_units"] = [self._unit_json(unit) for unit in order.purchase_units]
            if order.payer:
                body["payer"] = order.payer
            body["create_time"] = timestamp(order.create_time)
            body["update_time"] = timestamp(order.update_time)
        body["links"] = self._links(order)
        return body

    def _paypal_source(self, order):
        if not order.payer:
            return {}
        return {"email_address": order.payer["email_address"], "account_id": order.payer["payer_id"],
                "account_status": "VERIFIED", "name": order.payer["name"], "address": order.payer["address"]}

    def _unit_json(self, unit):
        body = {"reference_id": unit.reference_id, "amount": money(unit.amount_cents), "payee": dict(self.merchant)}
        for name in ("description", "custom_id", "invoice_id"):
            if getattr(unit, name) is not None:
                body[name] = getattr(unit, name)
        if unit.capture_id:
            capture = self.payments.captures[unit.capture_id]
            body["payments"] = {"captures": [self.payments.capture_json(capture, in_order=True)]}
            if capture.refund_ids:
                body["payments"]["refunds"] = [self.payments.refund_json(self.payments.refunds[refund_id])
                                               for refund_id in capture.refund_ids]
        return body

    def _links(self, order):
        found = [link(self.urls.order(order.id), "self")]
        if order.status == "CREATED":
            found.append(link(self.urls.approve(order.id), "approve"))
        if order.status == "PAYER_ACTION_REQUIRED":
            found.append(link(self.urls.approve(order.id), "payer-action"))
        if order.status in ("CREATED", "APPROVED"):
            found += [link(self.urls.order(order.id), "update", "PATCH"),
                      link(self.urls.order(order.id) + "/capture", "capture", "POST")]
        return found


def parse_order_request(body, now):
    """The order a create request asks for, or the PayPalError PayPal would answer."""
    if not isinstance(body, dict):
        raise invalid("MALFORMED_REQUEST_JSON")
    intent = body.get("intent")
    if intent is None:
        raise invalid("MISSING_REQUIRED_PARAMETER", "/intent")
    if intent not in ("CAPTURE", "AUTHORIZE"):
        raise invalid("INVALID_PARAMETER_VALUE", "/intent", str(intent))
    if intent == "AUTHORIZE":
        raise PayPalError(422, [detail("UNSUPPORTED_INTENT", "/intent", intent,
                                       description="The emulator supports intent=CAPTURE only.")])
    units = body.get("purchase_units")
    if units is None:
        raise invalid("MISSING_REQUIRED_PARAMETER", "/purchase_units")
    if not isinstance(units, list):
        raise invalid("INVALID_PARAMETER_SYNTAX", "/purchase_units")
    if not units:
        raise invalid("INVALID_ARRAY_MIN_ITEMS", "/purchase_units")
    if len(units) > MAX_PURCHASE_UNITS:
        raise invalid("INVALID_ARRAY_MAX_ITEMS", "/purchase_units")
    parsed = [_parse_unit(unit, index) for index, unit in enumerate(units)]
    if len(parsed) > 1:
        if any(not isinstance(unit, dict) or "reference_id" not in unit for unit in units):
            raise unprocessable("REFERENCE_ID_REQUIRED", "/purchase_units")
        if len({unit.reference_id for unit in parsed}) < len(parsed):
            raise unprocessable("DUPLICATE_REFERENCE_ID", "/purchase_units")
    source = body.get("payment_source")
    paypal = source.get("paypal") if isinstance(source, dict) else None
    context = (paypal.get("experience_context") if isinstance(paypal, dict) else None) \
        or body.get("application_context") or {}
    if not isinstance(context, dict):
        raise invalid("INVALID_PARAMETER_SYNTAX", "/application_context")
    return Order(ids.order_id(), "PAYER_ACTION_REQUIRED" if paypal is not None else "CREATED", parsed, now, now,
                 return_url=context.get("return_url"), cancel_url=context.get("cancel_url"),
                 brand_name=context.get("brand_name"), paypal_source=paypal is not None)


def _parse_unit(unit, index):
    where = f"/purchase_units/{index}"
    if not isinstance(unit, dict):
        raise invalid("INVALID_PARAMETER_SYNTAX", where)
    amount = unit.get("amount")
    if amount is None:
        raise invalid("MISSING_REQUIRED_PARAMETER", f"{where}/amount")
    if not isinstance(amount, dict):
        raise invalid("INVALID_PARAMETER_SYNTAX", f"{where}/amount")
    for name in ("currency_code", "value"):
        if name not in amount:
            raise invalid("MISSING_REQUIRED_PARAMETER", f"{where}/amount/{name}")
    if amount["currency_code"] != CURRENCY:
        raise unprocessable("INVALID_CURRENCY_CODE", f"{where}/amount/currency_code", str(amount["currency_code"]))
    try:
        cents = parse_cents(amount["value"])
    except AmountError as error:
        raise PayPalError(error.status, [detail(error.issue, f"{where}/amount/value", str(amount["value"]))]) from None
    for name in ("reference_id", "custom_id", "invoice_id", "description"):
        value = unit.get(name)
        if value is not None and (not isinstance(value, str) or not 1 <= len(value) <= (
                256 if name == "reference_id" else MAX_ID_LENGTH)):
            raise invalid("INVALID_STRING_LENGTH", f"{where}/{name}")
    return PurchaseUnit(unit.get("reference_id") or "default", cents, unit.get("custom_id"), unit.get("invoice_id"),
                        unit.get("description"))
