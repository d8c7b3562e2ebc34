"""The emulator's Subscriptions v1, driven as a merchant drives PayPal's: plans and subscriptions
through PayPal's own SDK (paypal-server-sdk pointed at the emulator), catalog products (which the
SDK lacks) and the control API over plain HTTP, the payer's consent page by form posts, and
the signed webhooks received by a real HTTP server."""
import datetime
import urllib.parse
import urllib.request

import pytest
from paypalserversdk.exceptions.subscription_error_exception import SubscriptionErrorException
from paypalserversdk.models.cancel_subscription_request import CancelSubscriptionRequest
from paypalserversdk.models.create_subscription_request import CreateSubscriptionRequest
from paypalserversdk.models.frequency import Frequency
from paypalserversdk.models.money import Money
from paypalserversdk.models.payment_preferences import PaymentPreferences
from paypalserversdk.models.plan_request import PlanRequest
from paypalserversdk.models.subscription_billing_cycle import SubscriptionBillingCycle
from paypalserversdk.models.subscription_pricing_scheme import SubscriptionPricingScheme
from paypalserversdk.models.subscription_application_context import SubscriptionApplicationContext

from tests.kit.paypal import press
from tests.test_paypal_emulator import (  # noqa: F401 (fixtures)
    WEBHOOK_ID, about, emulator, receiver, sdk, verifies)

RETURN_URL = "https://interkanect.example/paypal/subscription-return"
CANCEL_URL = "https://interkanect.example/account?upgrade=cancelled"


def paypal_time(value):
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def new_product(emulator, **fields):
    status, product = emulator.api("POST", "/v1/catalogs/products",
                                   dict({"name": "interKanect Upgraded", "type": "SERVICE"}, **fields))
    assert status == 201, product
    return product


def new_plan(sdk, product_id, price="9.99", total_cycles=0, unit="MONTH", status=None):
    body = PlanRequest(product_id=product_id, name="Upgraded membership", status=status or "ACTIVE", billing_cycles=[
        SubscriptionBillingCycle(frequency=Frequency(interval_unit=unit, interval_count=1), tenure_type="REGULAR",
                                 sequence=1, total_cycles=total_cycles, pricing_scheme=SubscriptionPricingScheme(
                                     fixed_price=Money(currency_code="USD", value=price)))],
        payment_preferences=PaymentPreferences(auto_bill_outstanding=True, payment_failure_threshold=1))
    return sdk.subscriptions.create_billing_plan({"body": body, "prefer": "return=representation"}).body


def new_subscription(sdk, plan_id, request_id=None, custom_id="member-1"):
    options = {"body": CreateSubscriptionRequest(
        plan_id=plan_id, custom_id=custom_id, application_context=SubscriptionApplicationContext(
            return_url=RETURN_URL, cancel_url=CANCEL_URL, user_action="SUBSCRIBE_NOW"))}
    if request_id:
        options["paypal_request_id"] = request_id
    return sdk.subscriptions.create_subscription(options).body


def payer_consents(approve_url, choice, payer_email="member@example.com"):
    """Open the approve link, press Agree & Subscribe or Cancel: (status, Location or page)."""
    return press(approve_url, choice, payer_email=payer_email)


def approve_link(subscription):
    return next(link.href for link in subscription.links if link.rel == "approve")


@pytest.fixture(scope="module")
def plan(sdk, emulator):
    return new_plan(sdk, new_product(emulator)["id"])


def active_subscription(sdk, plan_id, **options):
    subscription = new_subscription(sdk, plan_id, **options)
    status, location = payer_consents(approve_link(subscription), "approve")
    assert status == 302, location
    return subscription, location


def test_a_subscription_is_approved_activated_and_its_first_cycle_paid(sdk, emulator, receiver, plan):
    assert plan.id.startswith("P-") and plan.status == "ACTIVE" and plan.product_id.startswith("PROD-")
    first = new_subscription(sdk, plan.id, request_id="upgrade-1")
    again = new_subscription(sdk, plan.id, request_id="upgrade-1")
    assert first.id == again.id and first.id.startswith("I-") and first.status == "APPROVAL_PENDING"
    assert "/webapps/billing/subscriptions?ba_token=BA-" in approve_link(first)

    status, location = payer_consents(approve_link(first), "approve")
    assert status == 302
    back = urllib.parse.urlsplit(location)
    query = dict(urllib.parse.parse_qsl(back.query))
    assert location.startswith(RETURN_URL) and query["subscription_id"] == first.id
    assert query["ba_token"].startswith("BA-") and query["token"]

    shown = sdk.subscriptions.get_subscription({"id": first.id}).body
    assert shown.status == "ACTIVE" and shown.custom_id == "member-1"
    assert shown.subscriber.email_address == "member@example.com"
    info = shown.billing_info
    assert info.last_payment.amount.value == "9.99"
    assert paypal_time(info.next_billing_time) - paypal_time(info.last_payment.time) == datetime.timedelta(days=30)
    assert info.cycle_executions[0].cycles_completed == 1

    activated = receiver.wait_for(about(first.id, "BILLING.SUBSCRIPTION.ACTIVATED"))[0]
    assert activated["event"]["resource"]["status"] == "ACTIVE"
    with urllib.request.urlopen(activated["headers"]["PAYPAL-CERT-URL"], timeout=5) as answer:
        assert verifies(answer.read(), activated["headers"], activated["raw"], WEBHOOK_ID)
    sale = receiver.wait_for(about(first.id, "PAYMENT.SALE.COMPLETED"))[0]["event"]
    assert sale["resource_type"] == "sale" and sale["resource"]["billing_agreement_id"] == first.id
    assert sale["resource"]["amount"] == {"total": "9.99", "currency": "USD", "details": {"subtotal": "9.99"}}
    # 3.49% of 9.99 is 34.87 cents -> 35, plus 49.
    assert sale["resource"]["transaction_fee"] == {"value": "0.84", "currency": "USD"}
    assert sale["resource"]["state"] == "completed" and sale["resource"]["custom"] == "member-1"
    assert receiver.wait_for(about(first.id, "BILLING.SUBSCRIPTION.CREATED"))


def test_the_payer_can_leave_the_consent_page_without_subscribing(sdk, plan):
    subscription = new_subscription(sdk, plan.id)
    status, location = payer_consents(approve_link(subscription), "cancel")
    assert status == 302 and location.startswith(CANCEL_URL) and "ba_token=BA-" in location
    assert sdk.subscriptions.get_subscription({"id": subscription.id}).body.status == "APPROVAL_PENDING"


def test_each_cycle_is_a_sale_and_a_finite_plan_expires_after_its_last(sdk, emulator, receiver):
    plan = new_plan(sdk, new_product(emulator)["id"], price="5.00", total_cycles=2, unit="WEEK")
    subscription, _ = active_subscription(sdk, plan.id)
    before = sdk.subscriptions.get_subscription({"id": subscription.id}).body.billing_info.next_billing_time

    status, shown = emulator.control("POST", f"/subscriptions/{subscription.id}/advance", {"to": "next_cycle"})
    assert status == 200 and shown["status"] == "ACTIVE"
    assert shown["billing_info"]["cycle_executions"][0]["cycles_completed"] == 2
    assert shown["billing_info"]["cycle_executions"][0]["cycles_remaining"] == 0
    assert "final_payment_time" in shown["billing_info"]
    # The second week runs from where the first ended.
    assert paypal_time(shown["billing_info"]["next_billing_time"]) - paypal_time(before) == datetime.timedelta(days=7)
    assert len(receiver.wait_for(about(subscription.id, "PAYMENT.SALE.COMPLETED"), count=2)) == 2

    status, shown = emulator.control("POST", f"/subscriptions/{subscription.id}/advance", {"to": "next_cycle"})
    assert status == 200 and shown["status"] == "EXPIRED" and "next_billing_time" not in shown["billing_info"]
    assert receiver.wait_for(about(subscription.id, "BILLING.SUBSCRIPTION.EXPIRED"))
    status, body = emulator.control("POST", f"/subscriptions/{subscription.id}/advance", {"to": "next_cycle"})
    assert status == 409 and body["error"]["code"] == "wrong_state"


def test_advance_to_the_end_bills_what_is_left_then_expires(sdk, emulator, receiver):
    plan = new_plan(sdk, new_product(emulator)["id"], price="3.00", total_cycles=3, unit="DAY")
    subscription, _ = active_subscription(sdk, plan.id)
    status, shown = emulator.control("POST", f"/subscriptions/{subscription.id}/advance", {"to": "end"})
    assert status == 200 and shown["status"] == "EXPIRED"
    assert len(receiver.wait_for(about(subscription.id, "PAYMENT.SALE.COMPLETED"), count=3)) == 3


def test_cancel_needs_a_reason_and_an_active_subscription(sdk, emulator, receiver, plan):
    pending = new_subscription(sdk, plan.id)
    status, body = emulator.api("POST", f"/v1/billing/subscriptions/{pending.id}/cancel", {"reason": "changed mind"})
    assert status == 422 and body["name"] == "UNPROCESSABLE_ENTITY"
    assert body["details"][0]["issue"] == "SUBSCRIPTION_STATUS_INVALID"

    subscription, _ = active_subscription(sdk, plan.id)
    status, body = emulator.api("POST", f"/v1/billing/subscriptions/{subscription.id}/cancel", {})
    assert status == 400 and body["details"][0] == {
        "field": "/reason", "location": "body", "issue": "MISSING_REQUIRED_PARAMETER",
        "description": "A required field / parameter is missing."}
    status, body = emulator.api("POST", f"/v1/billing/subscriptions/{subscription.id}/cancel", {"reason": "x" * 129})
    assert status == 400 and body["details"][0]["issue"] == "INVALID_STRING_MAX_LENGTH"

    answer = sdk.subscriptions.cancel_subscription({"id": subscription.id,
                                                    "body": CancelSubscriptionRequest(reason="Not needed any more")})
    assert answer.status_code == 204
    shown = sdk.subscriptions.get_subscription({"id": subscription.id}).body
    assert shown.status == "CANCELLED" and shown.status_change_note == "Not needed any more"
    assert getattr(shown.billing_info, "next_billing_time", None) is None
    assert shown.billing_info.last_payment.amount.value == "9.99"
    cancelled = receiver.wait_for(about(subscription.id, "BILLING.SUBSCRIPTION.CANCELLED"))[0]["event"]
    assert cancelled["resource"]["status"] == "CANCELLED"

    with pytest.raises(SubscriptionErrorException) as again:
        sdk.subscriptions.cancel_subscription({"id": subscription.id, "body": CancelSubscriptionRequest(reason="x")})
    assert again.value.response_code == 422
    status, body = emulator.api("POST", "/v1/billing/subscriptions/I-NOSUCHTHING/cancel", {"reason": "x"})
    assert status == 404 and body["name"] == "RESOURCE_NOT_FOUND"
    assert body["details"][0]["issue"] == "INVALID_RESOURCE_ID"
    status, body = emulator.control("POST", f"/subscriptions/{subscription.id}/advance", {})
    assert status == 409


def test_plans_are_listed_and_read(sdk, emulator, plan):
    shown = sdk.subscriptions.get_billing_plan(plan.id).body
    assert shown.billing_cycles[0].pricing_scheme.fixed_price.value == "9.99"
    assert shown.billing_cycles[0].frequency.interval_unit == "MONTH"
    status, listed = emulator.api("GET", f"/v1/billing/plans?product_id={plan.product_id}&total_required=true")
    assert status == 200 and [p["id"] for p in listed["plans"]] == [plan.id] and listed["total_items"] == 1
    status, listed = emulator.api("GET", "/v1/billing/plans?page_size=21")
    assert status == 400 and listed["details"][0]["issue"] == "INVALID_INTEGER_MAX_VALUE"
    status, body = emulator.api("GET", "/v1/billing/plans/P-NOSUCHPLAN000000000000000")
    assert status == 404 and body["name"] == "RESOURCE_NOT_FOUND"


@pytest.mark.parametrize("change, status, issue, field", [
    ({"product_id": "PROD-NOSUCHPRODUCT0000"}, 400, "INVALID_PARAMETER_VALUE", "/product_id"),
    ({"billing_cycles": []}, 400, "INVALID_PARAMETER_VALUE", "/billing_cycles"),
    ({"billing_cycles": [{"frequency": {"interval_unit": "MONTH"}, "tenure_type": "TRIAL", "sequence": 1,
                          "total_cycles": 1}]}, 422, "MISSING_REGULAR_BILLING_CYCLE", "/billing_cycles"),
    ({"billing_cycles": [{"frequency": {"interval_unit": "FORTNIGHT"}, "tenure_type": "REGULAR", "sequence": 1,
                          "pricing_scheme": {"fixed_price": {"currency_code": "USD", "value": "1.00"}}}]},
     400, "INVALID_PARAMETER_VALUE", "/billing_cycles/0/frequency/interval_unit"),
    ({"billing_cycles": [{"frequency": {"interval_unit": "MONTH"}, "tenure_type": "REGULAR", "sequence": 1,
                          "pricing_scheme": {"fixed_price": {"currency_code": "EUR", "value": "1.00"}}}]},
     422, "CURRENCY_MISMATCH", "/billing_cycles/0/pricing_scheme/fixed_price/currency_code"),
])
def test_bad_plans_get_paypals_errors(emulator, plan, change, status, issue, field):
    body = {"product_id": plan.product_id, "name": "Bad", "payment_preferences": {},
            "billing_cycles": [{"frequency": {"interval_unit": "MONTH"}, "tenure_type": "REGULAR", "sequence": 1,
                                "pricing_scheme": {"fixed_price": {"currency_code": "USD", "value": "1.00"}}}]}
    answer_status, answer = emulator.api("POST", "/v1/billing/plans", dict(body, **change))
    assert answer_status == status, answer
    assert answer["details"][0]["issue"] == issue and answer["details"][0]["field"] == field
    assert answer["links"][0]["href"].startswith("https://developer.paypal.com/docs/api/subscriptions/v1/#error-")


def test_bad_subscriptions_and_products_get_paypals_errors(emulator, sdk, plan):
    status, body = emulator.api("POST", "/v1/billing/subscriptions", {})
    assert status == 400 and body["details"][0]["issue"] == "MISSING_REQUIRED_PARAMETER"
    status, body = emulator.api("POST", "/v1/billing/subscriptions", {"plan_id": "P-" + "X" * 24})
    assert status == 400 and body["details"][0]["field"] == "/plan_id"
    draft = new_plan(sdk, plan.product_id, status="CREATED")
    status, body = emulator.api("POST", "/v1/billing/subscriptions", {"plan_id": draft.id})
    assert status == 422 and body["details"][0]["issue"] == "PLAN_STATUS_INVALID"
    status, body = emulator.api("GET", "/v1/billing/subscriptions/I-NOSUCHTHING")
    assert status == 404 and body["details"][0]["issue"] == "INVALID_RESOURCE_ID"
    status, body = emulator.api("POST", "/v1/catalogs/products", {"name": "No type"})
    assert status == 400 and body["details"][0] == {"field": "/type", "location": "body",
                                                    "issue": "MISSING_REQUIRED_PARAMETER",
                                                    "description": "A required field / parameter is missing."}
    status, body = emulator.call("POST", "/v1/billing/subscriptions", {"plan_id": plan.id})
    assert status == 401 and body["name"] == "AUTHENTICATION_FAILURE"


def test_a_short_billing_day_renews_on_time(sdk, emulator, receiver, plan):
    status, clock = emulator.control("PUT", "/billing-clock", {"day_s": 0.05})  # a month in 1.5 s
    assert status == 200 and clock == {"day_s": 0.05}
    try:
        subscription, _ = active_subscription(sdk, plan.id)
        renewals = receiver.wait_for(about(subscription.id, "PAYMENT.SALE.COMPLETED"), count=2, timeout_s=15)
        assert len({r["event"]["resource"]["id"] for r in renewals}) == 2
        sdk.subscriptions.cancel_subscription({"id": subscription.id, "body": CancelSubscriptionRequest(reason="done")})
    finally:
        emulator.control("PUT", "/billing-clock", {"day_s": 86400})
    for bad in ({"day_s": 0}, {"day_s": "1"}, {}):
        status, body = emulator.control("PUT", "/billing-clock", bad)
        assert status == 400 and body["error"]["code"] == "invalid_day_s"
    status, body = emulator.control("POST", "/subscriptions/I-NOSUCHTHING/advance", {})
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = emulator.control("POST", f"/subscriptions/{subscription.id}/advance", {"to": "tomorrow"})
    assert status == 400 and body["error"]["code"] == "invalid_to"


def test_a_sale_is_refunded_once_and_a_mismatched_sale_is_billed_as_the_fault_says(sdk, emulator, receiver, plan):
    emulator.fault(kind="sale_mismatch", amount="12.99", currency="EUR")
    subscription, _ = active_subscription(sdk, plan.id, custom_id="member-refund")
    sale = receiver.wait_for(about(subscription.id, "PAYMENT.SALE.COMPLETED"))[0]["event"]["resource"]
    assert sale["amount"]["total"] == "12.99" and sale["amount"]["currency"] == "EUR"
    assert sale["transaction_fee"]["currency"] == "EUR"
    path = f"/v1/payments/sale/{sale['id']}/refund"
    # More than the sale: refused; then the whole of it, once per request id.
    status, body = emulator.api("POST", path, {"amount": {"total": "13.00", "currency": "EUR"}})
    assert status == 400 and body["name"] == "REFUND_EXCEEDED_TRANSACTION_AMOUNT"
    status, refund = emulator.api("POST", path, {}, {"PayPal-Request-Id": "sale-refund-1"})
    assert status == 201 and refund["state"] == "completed" and refund["sale_id"] == sale["id"]
    assert refund["amount"] == {"total": "12.99", "currency": "EUR"}
    status, again = emulator.api("POST", path, {}, {"PayPal-Request-Id": "sale-refund-1"})
    assert status == 200 and again["id"] == refund["id"]
    status, body = emulator.api("POST", path, {}, {"PayPal-Request-Id": "sale-refund-2"})
    assert status == 400 and body["name"] == "TRANSACTION_ALREADY_REFUNDED"
    refunded = receiver.wait_for(lambda event: event["event_type"] == "PAYMENT.SALE.REFUNDED"
                                 and event["resource"]["id"] == refund["id"])
    assert len(refunded) == 1 and refunded[0]["event"]["resource"]["sale_id"] == sale["id"]
    status, body = emulator.api("POST", "/v1/payments/sale/NOSUCHSALE/refund", {})
    assert status == 404 and body["details"][0]["issue"] == "INVALID_RESOURCE_ID"
