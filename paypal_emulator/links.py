"""The URLs the emulator puts in HATEOAS links, webhook events and headers, all under its
own base URL (PayPal's would be api-m.paypal.com and www.paypal.com)."""


def link(href, rel, method="GET"):
    return {"href": href, "rel": rel, "method": method}


class Urls:
    def __init__(self, base_url):
        self.base = base_url.rstrip("/")

    def order(self, order_id):
        return f"{self.base}/v2/checkout/orders/{order_id}"

    def approve(self, order_id):
        return f"{self.base}/checkoutnow?token={order_id}"

    def capture(self, capture_id):
        return f"{self.base}/v2/payments/captures/{capture_id}"

    def refund(self, refund_id):
        return f"{self.base}/v2/payments/refunds/{refund_id}"

    def payout_batch(self, batch_id):
        return f"{self.base}/v1/payments/payouts/{batch_id}"

    def payout_item(self, item_id):
        return f"{self.base}/v1/payments/payouts-item/{item_id}"

    def event(self, event_id):
        return f"{self.base}/v1/notifications/webhooks-events/{event_id}"

    def cert(self, cert_id):
        return f"{self.base}/v1/notifications/certs/{cert_id}"

    def dispute(self, dispute_id):
        return f"{self.base}/v1/customer/disputes/{dispute_id}"
