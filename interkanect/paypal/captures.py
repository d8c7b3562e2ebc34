"""A capture read at PayPal from the gateway's loop (GET /v2/payments/captures/{id}), to learn
its order: a refund or dispute webhook naming a capture the ledger does not hold is either
about money of ours PayPal took before we booked it (its order is ours) or not ours at all."""
import urllib.parse

from interkanect.paypal.errors import PayPalError
from interkanect.paypal.rest import TIMEOUT_S, AsyncRestClient

# PayPal waits for the webhook's answer: a few quick tries, then a 5xx and PayPal asks again.
ATTEMPTS = 3
BACKOFF_S = 0.2


class PayPalCaptures:
    def __init__(self, base_url, client_id, client_secret, timeout_s=TIMEOUT_S, backoff_s=BACKOFF_S):
        self.rest = AsyncRestClient(base_url, client_id, client_secret, timeout_s, backoff_s, attempts=ATTEMPTS)

    async def order_id(self, capture_id):
        """The order PayPal says this capture belongs to; None for a capture PayPal does not
        know (404) or one it names no order for. PayPalUnavailable when PayPal does not answer."""
        try:
            capture = await self.rest.call("read capture", "GET",
                                           f"/v2/payments/captures/{urllib.parse.quote(capture_id, safe='')}")
        except PayPalError as error:
            if error.status == 404:
                return None
            raise
        related = ((capture or {}).get("supplementary_data") or {}).get("related_ids") or {}
        return related.get("order_id")
