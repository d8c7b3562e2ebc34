"""PayPal's side of a call payment as the gateway sees it: the payer's browser coming back
from PayPal's approval page, and (see paypal_webhooks.py) PayPal's webhooks. Both only tell
the call which order was approved; the call session asks the payments adapter to capture,
which is idempotent, so the two arriving together capture once."""
import logging

import tornado.web

from actors.messages import OrderApproved
from gateway.accounts import ClientError

log = logging.getLogger(__name__)


class PayPalReturnHandler(tornado.web.RequestHandler):
    """PayPal sends the payer back here (`return_url`) with `?token=<order id>` once approved."""

    def initialize(self, app):
        self.app = app

    async def get(self):
        order = await self.app.db.orders.find_one({"_id": self.get_query_argument("token", "")})
        if order is None:
            raise tornado.web.HTTPError(404, "no such order")
        self.app.hub.to_call(order["host_id"], order["call_id"], OrderApproved(order["round"], order["_id"]))
        self.redirect(f"/call/{order['call_id']}")


def approved_order_id(event):
    """The order a webhook event says was approved or paid, if it is one we act on."""
    kind, resource = event.get("event_type"), event.get("resource") or {}
    if kind == "CHECKOUT.ORDER.APPROVED":
        return resource.get("id")
    if kind in ("PAYMENT.CAPTURE.COMPLETED", "PAYMENT.CAPTURE.PENDING"):
        related = (resource.get("supplementary_data") or {}).get("related_ids") or {}
        return related.get("order_id")
    return None
