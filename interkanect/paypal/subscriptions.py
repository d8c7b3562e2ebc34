"""PayPal's Subscriptions API (catalog products, plans, subscriptions, their cancellation),
asynchronously on Tornado's loop over our REST client: the gateway's "Upgrade" and
`interkanect upgrade-plan` use it; and the v1 sale refund, blocking, for the refunds actor (a
cycle billed for another amount than its plan is refunded: actors/subscription_sales.py). Refusals are `PayPalError` (with PayPal's
status, name and issue), no usable answer `PayPalUnavailable`."""
import urllib.parse

from interkanect.paypal.money import cents_to_value
from interkanect.paypal.rest import TIMEOUT_S, AsyncRestClient, RestClient

# A person is waiting for most of these answers (the Upgrade button): fewer, quicker retries
# than the actors' five.
ATTEMPTS = 3
BACKOFF_S = 0.2


class PayPalSubscriptions:
    """Catalog products, plans and subscriptions over PayPal's REST API, asynchronously, with a
    client-credentials token cached until shortly before it expires."""

    def __init__(self, base_url, client_id, client_secret, timeout_s=TIMEOUT_S, backoff_s=BACKOFF_S):
        # A person waits on the other side of most of these calls: three attempts, not five.
        self.rest = AsyncRestClient(base_url, client_id, client_secret, timeout_s, backoff_s, attempts=ATTEMPTS)

    async def create_product(self, name, request_id):
        return await self._call("POST", "/v1/catalogs/products", {"name": name, "type": "SERVICE",
                                                                  "category": "SOFTWARE"}, request_id)

    async def create_plan(self, product_id, name, price_cents, interval, request_id):
        cycle = {"frequency": {"interval_unit": interval, "interval_count": 1}, "tenure_type": "REGULAR",
                 "sequence": 1, "total_cycles": 0,
                 "pricing_scheme": {"fixed_price": {"currency_code": "USD", "value": cents_to_value(price_cents)}}}
        return await self._call("POST", "/v1/billing/plans", {
            "product_id": product_id, "name": name, "status": "ACTIVE", "billing_cycles": [cycle],
            "payment_preferences": {"auto_bill_outstanding": True, "payment_failure_threshold": 1}}, request_id)

    async def create_subscription(self, plan_id, custom_id, return_url, cancel_url, request_id):
        return await self._call("POST", "/v1/billing/subscriptions", {
            "plan_id": plan_id, "custom_id": custom_id,
            "application_context": {"brand_name": "interKanect", "shipping_preference": "NO_SHIPPING",
                                    "user_action": "SUBSCRIBE_NOW", "return_url": return_url,
                                    "cancel_url": cancel_url}}, request_id)

    async def subscription(self, subscription_id):
        return await self._call("GET", f"/v1/billing/subscriptions/{urllib.parse.quote(subscription_id)}")

    async def cancel(self, subscription_id, reason):
        await self._call("POST", f"/v1/billing/subscriptions/{urllib.parse.quote(subscription_id)}/cancel",
                         {"reason": reason})

    async def _call(self, method, path, body=None, request_id=None):
        return await self.rest.call(f"{method} {path}", method, path, body, request_id)


class SaleRefunds:
    """PayPal's v1 sale refund, blocking: the whole sale back to the payer."""

    def __init__(self, base_url, client_id, client_secret, timeout_s=TIMEOUT_S, backoff_s=BACKOFF_S):
        self.rest = RestClient(base_url, client_id, client_secret, timeout_s, backoff_s)

    def refund_sale(self, sale_id, request_id):
        """The refund (the same one for every ask with this request id)."""
        path = f"/v1/payments/sale/{urllib.parse.quote(sale_id)}/refund"
        return self.rest.call(f"POST {path}", "POST", path, {}, request_id)
