"""Subscriptions v1 and the catalog products they sell: products (/v1/catalogs/products),
billing plans (/v1/billing/plans), subscriptions (/v1/billing/subscriptions), the payer's
consent page, and the billing of each cycle (a sale per payment, PAYMENT.SALE.COMPLETED).
Shapes follow billing_subscriptions_v1.json and catalogs_products_v1.json; the rules take
`now` and return (resource, created) or events, like orders.py.

Billing: a subscription is billed at approval (unless its start_time is later) and then at
each next_billing_time; after the last cycle of a finite plan it EXPIRES when its last paid
period ends. A cancelled subscription is never billed again and keeps no next_billing_time.
"""
import dataclasses
import datetime
import html
import secrets
import string

from paypal_emulator.approval import DEFAULT_PAYER_EMAIL, PAGE
from paypal_emulator.errors import PayPalError, detail, invalid
from paypal_emulator.events import Event, dollars, timestamp
from paypal_emulator.links import link
from paypal_emulator.money import CURRENCY, AmountError, fee_cents, format_cents, money, parse_cents
from paypal_emulator.orders import payer_for

SUBSCRIPTIONS_API = "subscriptions/v1"
SALES_API = "payments/v1"   # a subscription's sale and its refund are PayPal's v1 payments
PRODUCTS_API = "catalog-products/v1"
# billing_subscriptions_v1.json: "The server stores keys for 72 hours."
SUBSCRIPTIONS_KEY_TTL_S = 72 * 3600
# PayPal bills by calendar; the emulator uses fixed lengths so that a test can shorten a day.
INTERVAL_DAYS = {"DAY": 1, "WEEK": 7, "MONTH": 30, "YEAR": 365}
# billing_cycle.frequency.interval_count maxima per unit (PayPal: at most one year).
MAX_INTERVAL_COUNT = {"DAY": 365, "WEEK": 52, "MONTH": 12, "YEAR": 1}
PRODUCT_TYPES = ("PHYSICAL", "DIGITAL", "SERVICE")
PLAN_STATUSES = ("CREATED", "INACTIVE", "ACTIVE")
PLANS_PAGE_SIZE = (1, 20, 10)  # min, max, default
CANCEL_REASON_MAX = 128
ISSUES = {
    "MISSING_REQUEST_BODY": "Request body is missing.",
    "INVALID_STRING_MIN_LENGTH": "The value of a field is too short.",
    "INVALID_STRING_MAX_LENGTH": "The value of a field is too long.",
    "INVALID_INTEGER_MIN_VALUE": "The integer value of a field is too small.",
    "INVALID_INTEGER_MAX_VALUE": "The integer value of a field is too large.",
    "DUPLICATE_RESOURCE_IDENTIFIER": "Identifier must be unique.",
    "PLAN_STATUS_INVALID": "Invalid plan status for subscription creation; plan status should be active.",
    "SUBSCRIPTION_STATUS_INVALID": "Invalid subscription status for cancel action; subscription status should be "
                                   "active or suspended.",
    "MISSING_REGULAR_BILLING_CYCLE": "Plan should have at least one regular billing cycle.",
    "MULTIPLE_REGULAR_BILLING_CYCLES_NOT_SUPPORTED": "Only one regular billing cycle is allowed.",
    "MORE_THAN_TWO_TRIAL_BILLING_CYCLE_NOT_SUPPORTED": "Only two trial billing cycles are allowed.",
    "INVALID_BILLING_CYCLE_SEQUENCE": "Billing cycle sequence should start with `1` and be consecutive.",
    "INVALID_TRIAL_BILLING_TOTAL_CYCLES": "Total cycles for trial billing must be greater than '0'.",
    "CURRENCY_MISMATCH": "All currency codes in the request should be of similar value.",
}
_ALNUM = string.ascii_uppercase + string.digits


def _alnum(length):
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


# PayPal's shapes: PROD-XXCD1234QWER65782, P-5ML4271244454362WXNWU5NQ, I-BW452GLLEP1G, BA-…
def product_id():
    return "PROD-" + _alnum(17)


def plan_id():
    return "P-" + _alnum(24)


def subscription_id():
    return "I-" + _alnum(12)


def sale_id():
    return _alnum(17)


def _error(status, issue, field=None, value=None, api=SUBSCRIPTIONS_API):
    found = detail(issue, field, value, description=ISSUES.get(issue))
    return PayPalError(status, [found], api)


def _not_found(resource_id, api=SUBSCRIPTIONS_API):
    return PayPalError(404, [detail("INVALID_RESOURCE_ID", "id", resource_id, location="path")], api)


@dataclasses.dataclass
class Product:
    id: str
    name: str
    type: str
    create_time: datetime.datetime
    description: str = None
    category: str = None
    image_url: str = None
    home_url: str = None


@dataclasses.dataclass(frozen=True)
class BillingCycle:
    tenure_type: str        # TRIAL or REGULAR
    sequence: int
    total_cycles: int       # 0: forever (REGULAR only)
    interval_unit: str
    interval_count: int
    price_cents: int        # 0: a free trial (no pricing_scheme)

    @property
    def days(self):
        return INTERVAL_DAYS[self.interval_unit] * self.interval_count


@dataclasses.dataclass
class Plan:
    id: str
    product_id: str
    name: str
    status: str
    billing_cycles: tuple
    payment_preferences: dict
    create_time: datetime.datetime
    update_time: datetime.datetime
    description: str = None

    @property
    def setup_fee_cents(self):
        fee = self.payment_preferences.get("setup_fee")
        return parse_cents(fee["value"]) if fee else 0


@dataclasses.dataclass
class Sale:
    id: str
    subscription_id: str
    amount_cents: int
    create_time: datetime.datetime
    custom: str = None
    currency: str = CURRENCY
    refunded_cents: int = 0

    @property
    def fee_cents(self):
        return fee_cents(self.amount_cents)


@dataclasses.dataclass
class SaleRefund:
    id: str
    sale_id: str
    amount_cents: int
    currency: str
    create_time: datetime.datetime


@dataclasses.dataclass
class Subscription:
    id: str
    plan_id: str
    status: str
    ba_token: str
    token: str
    create_time: datetime.datetime
    update_time: datetime.datetime
    status_update_time: datetime.datetime
    start_time: datetime.datetime
    custom_id: str = None
    return_url: str = None
    cancel_url: str = None
    brand_name: str = None
    status_change_note: str = None
    subscriber: dict = None
    cycles_completed: dict = dataclasses.field(default_factory=dict)  # sequence -> cycles billed
    next_billing_time: datetime.datetime = None
    final_payment_time: datetime.datetime = None
    last_payment: tuple = None  # (cents, time)
    sale_ids: list = dataclasses.field(default_factory=list)


class Subscriptions:
    """Products, plans and subscriptions of one emulator. `day_s` is how long a billing DAY
    lasts here (86400; a test makes a month pass in seconds with a small one)."""

    def __init__(self, urls, request_ids, day_s=86400.0):
        self.urls = urls
        self.request_ids = request_ids
        self.day_s = day_s
        self.products = {}
        self.plans = {}
        self.subscriptions = {}
        self.sales = {}
        self.sale_refunds = {}
        # The emulator's sale_mismatch fault: (amount_cents, currency) for the next sale, or None.
        self.take_sale_mismatch = lambda: None

    # Lookups ---------------------------------------------------------------------------

    def product(self, product_id_):
        if product_id_ not in self.products:
            raise _not_found(product_id_, PRODUCTS_API)
        return self.products[product_id_]

    def plan(self, plan_id_):
        if plan_id_ not in self.plans:
            raise _not_found(plan_id_)
        return self.plans[plan_id_]

    def get(self, subscription_id_):
        if subscription_id_ not in self.subscriptions:
            raise _not_found(subscription_id_)
        return self.subscriptions[subscription_id_]

    def by_ba_token(self, ba_token):
        return next((s for s in self.subscriptions.values() if s.ba_token == ba_token), None)

    def _idempotent(self, kind, request_id, now, table, make):
        key = (kind, request_id)
        known = request_id and self.request_ids.lookup(key, now)
        if known:
            return table[known], False
        made = make()
        table[made.id] = made
        if request_id:
            self.request_ids.remember(key, made.id, now, SUBSCRIPTIONS_KEY_TTL_S)
        return made, True

    # Products and plans ----------------------------------------------------------------

    def create_product(self, body, request_id, now):
        return self._idempotent("products.create", request_id, now, self.products,
                                lambda: self._parse_product(body, now))

    def _parse_product(self, body, now):
        if not isinstance(body, dict):
            raise invalid("MALFORMED_REQUEST_JSON", api=PRODUCTS_API)
        for name in ("name", "type"):
            if name not in body:
                raise _error(400, "MISSING_REQUIRED_PARAMETER", f"/{name}", api=PRODUCTS_API)
        _text(body, "name", 1, 127, PRODUCTS_API, required=True)
        if body["type"] not in PRODUCT_TYPES:
            raise _error(400, "INVALID_PARAMETER_VALUE", "/type", str(body["type"]), PRODUCTS_API)
        chosen = _text(body, "id", 6, 50, PRODUCTS_API)
        if chosen and chosen.startswith("PROD-"):
            raise PayPalError(400, [detail("INVALID_PARAMETER_SYNTAX", "/id", chosen, description=(
                "Input identifier must not use system prefix(PROD-)."))], PRODUCTS_API)
        if chosen in self.products:
            raise _error(422, "DUPLICATE_RESOURCE_IDENTIFIER", "/id", chosen, PRODUCTS_API)
        return Product(chosen or product_id(), body["name"], body["type"], now,
                       _text(body, "description", 1, 256, PRODUCTS_API), body.get("category"),
                       _text(body, "image_url", 1, 2000, PRODUCTS_API), _text(body, "home_url", 1, 2000, PRODUCTS_API))

    def create_plan(self, body, request_id, now):
        return self._idempotent("plans.create", request_id, now, self.plans, lambda: self._parse_plan(body, now))

    def _parse_plan(self, body, now):
        if not isinstance(body, dict):
            raise invalid("MALFORMED_REQUEST_JSON", api=SUBSCRIPTIONS_API)
        for name in ("product_id", "name", "billing_cycles", "payment_preferences"):
            if name not in body:
                raise _error(400, "MISSING_REQUIRED_PARAMETER", f"/{name}")
        product = _text(body, "product_id", 6, 50, SUBSCRIPTIONS_API, required=True)
        if product not in self.products:
            raise _error(400, "INVALID_PARAMETER_VALUE", "/product_id", product)
        _text(body, "name", 1, 127, SUBSCRIPTIONS_API, required=True)
        status = body.get("status", "ACTIVE")
        if status not in ("CREATED", "ACTIVE"):
            raise _error(400, "INVALID_PARAMETER_VALUE", "/status", str(status))
        preferences = body["payment_preferences"]
        if not isinstance(preferences, dict):
            raise _error(400, "INVALID_PARAMETER_SYNTAX", "/payment_preferences")
        if preferences.get("setup_fee") is not None:
            _money(preferences["setup_fee"], "/payment_preferences/setup_fee", allow_zero=True)
        return Plan(plan_id(), product, body["name"], status, _parse_cycles(body["billing_cycles"]), dict(preferences),
                    now, now, _text(body, "description", 1, 127, SUBSCRIPTIONS_API))

    def list_plans(self, product_id_=None, plan_ids=None, page_size=None, page=None):
        """(plans on the page, total): newest first, as PayPal lists them."""
        low, high, default = PLANS_PAGE_SIZE
        page_size = _int_param(page_size, "page_size", low, high, default)
        page = _int_param(page, "page", 1, 100000, 1)
        found = [plan for plan in self.plans.values()
                 if (product_id_ is None or plan.product_id == product_id_)
                 and (plan_ids is None or plan.id in plan_ids)]
        found.sort(key=lambda plan: plan.create_time, reverse=True)
        return found[(page - 1) * page_size:page * page_size], len(found)

    # Subscriptions ---------------------------------------------------------------------

    def create(self, body, request_id, now):
        return self._idempotent("subscriptions.create", request_id, now, self.subscriptions,
                                lambda: self._parse_subscription(body, now))

    def _parse_subscription(self, body, now):
        if body is None:
            raise _error(400, "MISSING_REQUEST_BODY")
        if not isinstance(body, dict):
            raise invalid("MALFORMED_REQUEST_JSON", api=SUBSCRIPTIONS_API)
        if "plan_id" not in body:
            raise _error(400, "MISSING_REQUIRED_PARAMETER", "/plan_id")
        wanted = _text(body, "plan_id", 26, 26, SUBSCRIPTIONS_API, required=True, issue="INVALID_PARAMETER_VALUE")
        if wanted not in self.plans:
            raise _error(400, "INVALID_PARAMETER_VALUE", "/plan_id", wanted)
        if self.plans[wanted].status != "ACTIVE":
            raise _error(422, "PLAN_STATUS_INVALID", "/plan_id", wanted)
        start = now
        if body.get("start_time") is not None:
            start = _time(body["start_time"], "/start_time")
            if start < now - datetime.timedelta(days=1):  # PayPal: "a valid future date and time"
                raise PayPalError(400, [detail("INVALID_PARAMETER_VALUE", "/start_time", body["start_time"],
                                               description="Start time must be a valid future date and time.")],
                                  SUBSCRIPTIONS_API)
        context = body.get("application_context") or {}
        if not isinstance(context, dict):
            raise _error(400, "INVALID_PARAMETER_SYNTAX", "/application_context")
        for name in ("return_url", "cancel_url"):
            _text(context, name, 10, 4000, SUBSCRIPTIONS_API, where="/application_context")
        return Subscription(subscription_id(), wanted, "APPROVAL_PENDING", "BA-" + _alnum(17), "EC-" + _alnum(17),
                            now, now, now, start, custom_id=_text(body, "custom_id", 1, 127, SUBSCRIPTIONS_API),
                            return_url=context.get("return_url"), cancel_url=context.get("cancel_url"),
                            brand_name=context.get("brand_name"))

    def approve(self, subscription_id_, payer_email, now):
        """The payer consented on the approval page: ACTIVE, and the first cycle billed unless
        the subscription starts later."""
        subscription = self.get(subscription_id_)
        if subscription.status in ("APPROVED", "ACTIVE"):
            return []
        if subscription.status != "APPROVAL_PENDING":
            raise ValueError(f'Cannot approve subscription {subscription.id} in status "{subscription.status}"')
        payer = payer_for(payer_email)
        subscription.subscriber = {"name": payer["name"], "email_address": payer_email, "payer_id": payer["payer_id"]}
        self._status(subscription, "ACTIVE", now)
        if subscription.start_time <= now:
            subscription.start_time = now
        subscription.next_billing_time = subscription.start_time
        payments = []
        setup_fee = self.plans[subscription.plan_id].setup_fee_cents
        if setup_fee:
            payments.append(self._sale(subscription, setup_fee, now))
        if subscription.next_billing_time <= now:
            payments += self.bill_due(subscription.id, now)
        # Built after the first payment, so the event carries the next billing time as PayPal's do.
        return [Event("BILLING.SUBSCRIPTION.ACTIVATED", "subscription", "Subscription activated",
                      self.to_json(subscription))] + payments

    def bill_due(self, subscription_id_, now):
        """The next billing time has come: the current cycle is billed (a sale), or, when the
        plan has no cycle left, the subscription EXPIRES."""
        subscription = self.get(subscription_id_)
        if subscription.status != "ACTIVE":
            raise ValueError(f'Cannot bill subscription {subscription.id} in status "{subscription.status}"')
        cycle = self._current_cycle(subscription)
        if cycle is None:
            subscription.next_billing_time = None
            self._status(subscription, "EXPIRED", now)
            return [Event("BILLING.SUBSCRIPTION.EXPIRED", "subscription", "Subscription expired",
                          self.to_json(subscription))]
        done = subscription.cycles_completed
        done[cycle.sequence] = done.get(cycle.sequence, 0) + 1
        period_start = subscription.next_billing_time or now
        subscription.next_billing_time = period_start + datetime.timedelta(seconds=cycle.days * self.day_s)
        if self._current_cycle(subscription) is None:
            subscription.final_payment_time = now
        subscription.update_time = now
        return [self._sale(subscription, cycle.price_cents, now)] if cycle.price_cents else []

    def advance(self, subscription_id_, to, now):
        """Control API: `next_cycle` bills the next cycle now (time jumps to it); `end` runs
        the subscription out: its remaining cycles are billed, then it EXPIRES (an endless
        plan expires at once: the emulator's shortcut for "the day it ends")."""
        subscription = self.get(subscription_id_)
        if subscription.status != "ACTIVE":
            raise ValueError(f'subscription {subscription.id} is {subscription.status}: only an ACTIVE one advances')
        if to == "next_cycle":
            return self.bill_due(subscription.id, now)
        events = []
        while subscription.status == "ACTIVE":
            cycle = self._current_cycle(subscription)
            if cycle is not None and cycle.total_cycles == 0:
                subscription.next_billing_time = None
                self._status(subscription, "EXPIRED", now)
                events.append(Event("BILLING.SUBSCRIPTION.EXPIRED", "subscription", "Subscription expired",
                                    self.to_json(subscription)))
            else:
                events += self.bill_due(subscription.id, now)
        return events

    def cancel(self, subscription_id_, body, now):
        subscription = self.get(subscription_id_)
        if not isinstance(body, dict):
            raise _error(400, "MISSING_REQUIRED_PARAMETER", "/reason")
        if "reason" not in body:
            raise _error(400, "MISSING_REQUIRED_PARAMETER", "/reason")
        reason = _text(body, "reason", 1, CANCEL_REASON_MAX, SUBSCRIPTIONS_API, required=True)
        if subscription.status not in ("ACTIVE", "SUSPENDED"):
            raise _error(422, "SUBSCRIPTION_STATUS_INVALID")
        subscription.status_change_note = reason
        subscription.next_billing_time = None
        self._status(subscription, "CANCELLED", now)
        return [Event("BILLING.SUBSCRIPTION.CANCELLED", "subscription", "Subscription cancelled",
                      self.to_json(subscription))]

    def _status(self, subscription, status, now):
        subscription.status, subscription.status_update_time, subscription.update_time = status, now, now

    def _current_cycle(self, subscription):
        """The first cycle (in sequence) with billings left, else None."""
        for cycle in self.plans[subscription.plan_id].billing_cycles:
            if cycle.total_cycles == 0 or subscription.cycles_completed.get(cycle.sequence, 0) < cycle.total_cycles:
                return cycle
        return None

    def _sale(self, subscription, cents, now):
        mismatch = self.take_sale_mismatch()  # a plan changed behind the merchant's back
        currency = CURRENCY
        if mismatch:
            cents, currency = mismatch[0] or cents, mismatch[1] or CURRENCY
        sale = Sale(sale_id(), subscription.id, cents, now, subscription.custom_id, currency)
        self.sales[sale.id] = sale
        subscription.sale_ids.append(sale.id)
        subscription.last_payment = (cents, now)
        return Event("PAYMENT.SALE.COMPLETED", "sale", f"Payment completed for {dollars(format_cents(cents))}",
                     self.sale_json(sale), "1.0")

    # Shapes ----------------------------------------------------------------------------

    def product_json(self, product):
        body = {"id": product.id, "name": product.name, "type": product.type}
        for name in ("description", "category", "image_url", "home_url"):
            if getattr(product, name) is not None:
                body[name] = getattr(product, name)
        body.update(create_time=timestamp(product.create_time), update_time=timestamp(product.create_time),
                    links=[link(self.urls.base + f"/v1/catalogs/products/{product.id}", "self"),
                           link(self.urls.base + f"/v1/catalogs/products/{product.id}", "edit", "PATCH")])
        return body

    def plan_json(self, plan, full=True):
        href = self.urls.base + f"/v1/billing/plans/{plan.id}"
        body = {"id": plan.id, "product_id": plan.product_id, "name": plan.name, "status": plan.status}
        if plan.description:
            body["description"] = plan.description
        body["usage_type"] = "LICENSED"
        if full:
            body["billing_cycles"] = [_cycle_json(cycle) for cycle in plan.billing_cycles]
            body["payment_preferences"] = {"service_type": "PREPAID", "auto_bill_outstanding": True,
                                           "setup_fee_failure_action": "CONTINUE", "payment_failure_threshold": 0,
                                           **plan.payment_preferences}
            body["quantity_supported"] = False
        body["create_time"] = timestamp(plan.create_time)
        if full:
            body["update_time"] = timestamp(plan.update_time)
        body["links"] = [link(href, "self"), link(href, "edit", "PATCH")]
        if plan.status == "ACTIVE":
            body["links"].append(link(href + "/deactivate", "self", "POST"))
        return body

    def to_json(self, subscription, full=True):
        href = self.urls.base + f"/v1/billing/subscriptions/{subscription.id}"
        body = {"id": subscription.id, "status": subscription.status,
                "status_update_time": timestamp(subscription.status_update_time)}
        if full:
            if subscription.status_change_note:
                body["status_change_note"] = subscription.status_change_note
            body.update(plan_id=subscription.plan_id, start_time=timestamp(subscription.start_time), quantity="1")
            if subscription.custom_id:
                body["custom_id"] = subscription.custom_id
            if subscription.subscriber:
                body["subscriber"] = subscription.subscriber
            if subscription.status != "APPROVAL_PENDING":
                body["billing_info"] = self._billing_info(subscription)
            body.update(create_time=timestamp(subscription.create_time),
                        update_time=timestamp(subscription.update_time), plan_overridden=False)
        links = [link(href, "self"), link(href, "edit", "PATCH")]
        if subscription.status == "APPROVAL_PENDING":
            links.insert(0, link(self.approve_url(subscription), "approve"))
        if subscription.status == "ACTIVE":
            links += [link(href + "/cancel", "cancel", "POST"), link(href + "/suspend", "suspend", "POST"),
                      link(href + "/capture", "capture", "POST")]
        body["links"] = links
        return body

    def _billing_info(self, subscription):
        executions = []
        for cycle in self.plans[subscription.plan_id].billing_cycles:
            done = subscription.cycles_completed.get(cycle.sequence, 0)
            executions.append({"tenure_type": cycle.tenure_type, "sequence": cycle.sequence, "cycles_completed": done,
                               "cycles_remaining": max(cycle.total_cycles - done, 0),
                               "total_cycles": cycle.total_cycles, "current_pricing_scheme_version": 1})
        info = {"outstanding_balance": money(0), "cycle_executions": executions, "failed_payments_count": 0}
        if subscription.last_payment:
            cents, at = subscription.last_payment
            info["last_payment"] = {"amount": money(cents), "time": timestamp(at)}
        if subscription.next_billing_time and subscription.status == "ACTIVE":
            info["next_billing_time"] = timestamp(subscription.next_billing_time)
        if subscription.final_payment_time:
            info["final_payment_time"] = timestamp(subscription.final_payment_time)
        return info

    def sale_json(self, sale):
        """The v1 sale of a subscription payment, as PAYMENT.SALE.COMPLETED carries it."""
        href = self.urls.base + f"/v1/payments/sale/{sale.id}"
        body = {"id": sale.id, "state": "completed",
                "amount": {"total": format_cents(sale.amount_cents), "currency": sale.currency,
                           "details": {"subtotal": format_cents(sale.amount_cents)}},
                "payment_mode": "INSTANT_TRANSFER", "protection_eligibility": "ELIGIBLE",
                "protection_eligibility_type": "ITEM_NOT_RECEIVED_ELIGIBLE,UNAUTHORIZED_PAYMENT_ELIGIBLE",
                "transaction_fee": {"value": format_cents(sale.fee_cents), "currency": sale.currency},
                "billing_agreement_id": sale.subscription_id,
                "create_time": timestamp(sale.create_time), "update_time": timestamp(sale.create_time),
                "links": [link(href, "self"), link(href + "/refund", "refund", "POST")]}
        if sale.custom:
            body["custom"] = sale.custom
        return body

    # Sale refunds (POST /v1/payments/sale/{id}/refund) -------------------------------------

    def refund_sale(self, sale_id_, body, request_id, now):
        """(refund, created, events): all that is left of the sale, or `amount.total` of it;
        the same request id answers the same refund. PayPal keeps its fee."""
        if sale_id_ not in self.sales:
            raise PayPalError(404, [detail("INVALID_RESOURCE_ID", "sale_id", sale_id_, location="path")], SALES_API)
        sale = self.sales[sale_id_]
        known = request_id and self.request_ids.lookup(("sales.refund", request_id), now)
        if known:
            return self.sale_refunds[known], False, []
        left = sale.amount_cents - sale.refunded_cents
        if left <= 0:
            raise PayPalError(400, [], SALES_API, name="TRANSACTION_ALREADY_REFUNDED",
                              message="Requested transaction has already been fully refunded.")
        cents = left
        total = ((body or {}).get("amount") or {}).get("total")
        if total is not None:
            try:
                cents = parse_cents(total)
            except AmountError:
                raise invalid("INVALID_PARAMETER_VALUE", "amount.total", str(total), SALES_API) from None
            if not 0 < cents <= left:
                raise PayPalError(400, [], SALES_API, name="REFUND_EXCEEDED_TRANSACTION_AMOUNT",
                                  message="Refund amount exceeded transaction amount.")
        refund = SaleRefund("R" + secrets.token_hex(8).upper(), sale.id, cents, sale.currency, now)
        sale.refunded_cents += cents
        self.sale_refunds[refund.id] = refund
        if request_id:
            self.request_ids.remember(("sales.refund", request_id), refund.id, now, SUBSCRIPTIONS_KEY_TTL_S)
        event = Event("PAYMENT.SALE.REFUNDED", "refund", f"A {dollars(format_cents(cents))} sale refund was made",
                      self.sale_refund_json(refund), "1.0")
        return refund, True, [event]

    def sale_refund_json(self, refund):
        href = self.urls.base + f"/v1/payments/refund/{refund.id}"
        sale_href = self.urls.base + f"/v1/payments/sale/{refund.sale_id}"
        return {"id": refund.id, "state": "completed", "sale_id": refund.sale_id,
                "amount": {"total": format_cents(refund.amount_cents), "currency": refund.currency},
                "create_time": timestamp(refund.create_time), "update_time": timestamp(refund.create_time),
                "links": [link(href, "self"), link(sale_href, "sale")]}

    def approve_url(self, subscription):
        return f"{self.urls.base}/webapps/billing/subscriptions?ba_token={subscription.ba_token}"


# Parsing ----------------------------------------------------------------------------------

def _text(body, name, low, high, api, required=False, where="", issue=None):
    value = body.get(name)
    if value is None:
        if required:
            raise _error(400, "MISSING_REQUIRED_PARAMETER", f"{where}/{name}", api=api)
        return None
    if not isinstance(value, str):
        raise _error(400, "INVALID_PARAMETER_SYNTAX", f"{where}/{name}", api=api)
    if len(value) < low:
        raise _error(400, issue or "INVALID_STRING_MIN_LENGTH", f"{where}/{name}", value, api)
    if len(value) > high:
        raise _error(400, issue or "INVALID_STRING_MAX_LENGTH", f"{where}/{name}", api=api)
    return value


def _time(value, field):
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise _error(400, "INVALID_PARAMETER_SYNTAX", field, str(value))
    return parsed


def _money(value, field, allow_zero=False):
    if not isinstance(value, dict) or "currency_code" not in value or "value" not in value:
        raise _error(400, "MISSING_REQUIRED_PARAMETER", f"{field}/value" if isinstance(value, dict) else field)
    if value["currency_code"] != CURRENCY:
        raise _error(422, "CURRENCY_MISMATCH", f"{field}/currency_code", str(value["currency_code"]))
    if allow_zero and value["value"] in ("0", "0.0", "0.00"):
        return 0
    try:
        return parse_cents(value["value"])
    except AmountError as error:
        raise PayPalError(error.status, [detail(error.issue, f"{field}/value", str(value["value"]))],
                          SUBSCRIPTIONS_API) from None


def _int_param(value, name, low, high, default):
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _error(400, "INVALID_PARAMETER_SYNTAX", name, value) from None
    if number < low:
        raise _error(400, "INVALID_INTEGER_MIN_VALUE", name, value)
    if number > high:
        raise _error(400, "INVALID_INTEGER_MAX_VALUE", name, value)
    return number


def _parse_cycles(cycles):
    if not isinstance(cycles, list):
        raise _error(400, "INVALID_PARAMETER_SYNTAX", "/billing_cycles")
    if not 1 <= len(cycles) <= 12:
        raise _error(400, "INVALID_PARAMETER_VALUE", "/billing_cycles")
    parsed = [_parse_cycle(cycle, index) for index, cycle in enumerate(cycles)]
    parsed.sort(key=lambda cycle: cycle.sequence)
    regular = [cycle for cycle in parsed if cycle.tenure_type == "REGULAR"]
    if not regular:
        raise _error(422, "MISSING_REGULAR_BILLING_CYCLE", "/billing_cycles")
    if len(regular) > 1:
        raise _error(422, "MULTIPLE_REGULAR_BILLING_CYCLES_NOT_SUPPORTED", "/billing_cycles")
    if len(parsed) - 1 > 2:
        raise _error(422, "MORE_THAN_TWO_TRIAL_BILLING_CYCLE_NOT_SUPPORTED", "/billing_cycles")
    if [cycle.sequence for cycle in parsed] != list(range(1, len(parsed) + 1)) or parsed[-1] is not regular[0]:
        raise _error(422, "INVALID_BILLING_CYCLE_SEQUENCE", "/billing_cycles")
    return tuple(parsed)


def _parse_cycle(cycle, index):
    where = f"/billing_cycles/{index}"
    if not isinstance(cycle, dict):
        raise _error(400, "INVALID_PARAMETER_SYNTAX", where)
    for name in ("frequency", "tenure_type", "sequence"):
        if name not in cycle:
            raise _error(400, "MISSING_REQUIRED_PARAMETER", f"{where}/{name}")
    tenure = cycle["tenure_type"]
    if tenure not in ("REGULAR", "TRIAL"):
        raise _error(400, "INVALID_PARAMETER_VALUE", f"{where}/tenure_type", str(tenure))
    sequence = _int_field(cycle, "sequence", 1, 99, where)
    total = _int_field(cycle, "total_cycles", 0, 999, where, default=1)
    if tenure == "TRIAL" and total == 0:
        raise _error(422, "INVALID_TRIAL_BILLING_TOTAL_CYCLES", f"{where}/total_cycles")
    frequency = cycle["frequency"]
    if not isinstance(frequency, dict) or "interval_unit" not in frequency:
        raise _error(400, "MISSING_REQUIRED_PARAMETER", f"{where}/frequency/interval_unit")
    unit = frequency["interval_unit"]
    if unit not in INTERVAL_DAYS:
        raise _error(400, "INVALID_PARAMETER_VALUE", f"{where}/frequency/interval_unit", str(unit))
    count = _int_field(frequency, "interval_count", 1, MAX_INTERVAL_COUNT[unit], f"{where}/frequency", default=1)
    scheme = cycle.get("pricing_scheme")
    price = 0
    if scheme is not None:
        if not isinstance(scheme, dict) or "fixed_price" not in scheme:
            raise _error(400, "MISSING_REQUIRED_PARAMETER", f"{where}/pricing_scheme/fixed_price")
        price = _money(scheme["fixed_price"], f"{where}/pricing_scheme/fixed_price", allow_zero=tenure == "TRIAL")
    elif tenure == "REGULAR":
        raise _error(400, "MISSING_REQUIRED_PARAMETER", f"{where}/pricing_scheme")
    return BillingCycle(tenure, sequence, total, unit, count, price)


def _int_field(body, name, low, high, where, default=None):
    value = body.get(name, default)
    if value is None:
        raise _error(400, "MISSING_REQUIRED_PARAMETER", f"{where}/{name}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _error(400, "INVALID_PARAMETER_SYNTAX", f"{where}/{name}")
    if value < low:
        raise _error(400, "INVALID_INTEGER_MIN_VALUE", f"{where}/{name}", str(value))
    if value > high:
        raise _error(400, "INVALID_INTEGER_MAX_VALUE", f"{where}/{name}", str(value))
    return value


def _cycle_json(cycle):
    body = {"frequency": {"interval_unit": cycle.interval_unit, "interval_count": cycle.interval_count},
            "tenure_type": cycle.tenure_type, "sequence": cycle.sequence, "total_cycles": cycle.total_cycles}
    if cycle.price_cents or cycle.tenure_type == "REGULAR":
        body["pricing_scheme"] = {"version": 1, "fixed_price": money(cycle.price_cents)}
    return body


def consent_page(subscription, plan, merchant_name):
    """The payer's consent form behind the subscription's approve link (PayPal's
    www.paypal.com/webapps/billing/subscriptions?ba_token=…)."""
    regular = plan.billing_cycles[-1]
    every = regular.interval_unit.lower() if regular.interval_count == 1 else \
        f"{regular.interval_count} {regular.interval_unit.lower()}s"
    token = html.escape(subscription.ba_token)
    content = f"""<p class="emulator-note">PayPal emulator: no real account is charged.</p>
<p>Subscribe to <strong id="plan">{html.escape(plan.name)}</strong> from
<strong id="payee">{html.escape(subscription.brand_name or merchant_name)}</strong>:
<strong id="amount">${format_cents(regular.price_cents)} USD</strong> every <span id="interval">{every}</span></p>
<form method="post" action="/webapps/billing/subscriptions">
<input type="hidden" name="ba_token" value="{token}">
<label>Pay as <input type="email" name="payer_email" value="{DEFAULT_PAYER_EMAIL}"></label>
<p><button type="submit" name="action" value="approve" id="approve">Agree &amp; Subscribe</button>
<button type="submit" name="action" value="cancel" id="cancel">Cancel</button></p>
</form>"""
    return PAGE.format(title="Subscribe with PayPal", content=content)
