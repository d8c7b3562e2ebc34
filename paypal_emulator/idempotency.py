"""PayPal-Request-Id: a repeated id returns what the first request made, in its latest
state, for as long as PayPal keeps the key."""
import datetime

# How long PayPal keeps a PayPal-Request-Id (its reference: "The server stores keys for
# 6 hours" on orders and captures, 45 days on refunds, 30 days on payouts).
ORDERS_KEY_TTL_S = 6 * 3600
REFUNDS_KEY_TTL_S = 45 * 24 * 3600
PAYOUTS_KEY_TTL_S = 30 * 24 * 3600


class RequestIds:
    def __init__(self):
        self._seen = {}  # key -> (resource id, expires_at)

    def lookup(self, key, now):
        """The resource id the first request with `key` made, or None."""
        found = self._seen.get(key)
        if found is None:
            return None
        resource_id, expires_at = found
        if now >= expires_at:
            del self._seen[key]
            return None
        return resource_id

    def remember(self, key, resource_id, now, ttl_s):
        self._seen[key] = (resource_id, now + datetime.timedelta(seconds=ttl_s))
