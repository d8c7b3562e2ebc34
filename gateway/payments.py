"""PayPal's side of a call payment as the gateway sees it: the payer's browser coming back
from PayPal's approval page, and (see paypal_webhooks.py) PayPal's webhooks. Both only tell
the call which order was approved; the call session asks the payments adapter to capture,
which is idempotent, so the two arriving together capture once. A webhook about money PayPal
moved (a refund, a dispute) is recorded and handed to the refunds actor, which books it
(actors/money_events.py): the gateway writes no money."""
import datetime
import logging
import time

import tornado.web

from actors import money_events
from actors.messages import OrderApproved
from gateway.paypal_webhooks import WebhookRefused

log = logging.getLogger(__name__)


async def tell_call_approved(app, order_id):
    """Tell the order's call that the payer approved it; False for an order that is not ours."""
    order = await app.db.orders.find_one({"_id": order_id}) if order_id else None
    if order is None:
        return False
    app.hub.to_call(order["host_id"], order["call_id"], OrderApproved(order["round"], order["_id"],
                                                                      order.get("tip", 0)))
    return order


class PayPalReturnHandler(tornado.web.RequestHandler):
    """PayPal sends the payer back here (`return_url`) with `?token=<order id>` once approved."""

    def initialize(self, app):
        self.app = app

    async def get(self):
        order = await tell_call_approved(self.app, self.get_query_argument("token", ""))
        if not order:
            raise tornado.web.HTTPError(404, "no such order")
        self.redirect(f"/call/{order['call_id']}")


class PayPalWebhookHandler(tornado.web.RequestHandler):
    """PayPal's signed notifications. Any answer but 2xx makes PayPal deliver again (up to 25
    times over 3 days), so events we do not act on are acknowledged too."""

    def initialize(self, app):
        self.app = app

    def check_xsrf_cookie(self):
        pass  # PayPal cannot send our XSRF token: its signature is the proof (checked in post)

    async def post(self):
        try:
            event = await self.app.webhooks.verify(self.request.headers, self.request.body, time.time())
        except WebhookRefused as refused:
            (log.warning if refused.status >= 500 else log.info)("webhook refused: %s", refused.code)
            self.app.metrics.webhook("unverified", refused.status)   # its body is not PayPal's word: no label from it
            self.set_status(refused.status)
            self.finish({"error": {"code": refused.code, "message": refused.message}})
            return
        # Kept for the record (and the refund review); a repeat delivery is the same document.
        # Stored before the 200: from here the refunds actor applies a money event whatever
        # becomes of this message or this gateway (its sweep reads what is due).
        await self.app.db.webhook_events.update_one(
            {"_id": event.get("id")}, {"$setOnInsert": money_events.record(
                event, datetime.datetime.now(datetime.timezone.utc))}, upsert=True)
        await tell_call_approved(self.app, approved_order_id(event))
        if money_events.is_money_event(event):
            await self.app.refund_desk.tell_event(event["id"])
        await self.app.upgrades.on_webhook(event)
        self.app.metrics.webhook(event.get("event_type"), 200, self.request.headers.get("PAYPAL-TRANSMISSION-TIME"))
        self.finish({"ok": True})


def approved_order_id(event):
    """The order a webhook event says was approved or paid, if it is one we act on."""
    kind, resource = event.get("event_type"), event.get("resource") or {}
    if kind == "CHECKOUT.ORDER.APPROVED":
        return resource.get("id")
    if kind in ("PAYMENT.CAPTURE.COMPLETED", "PAYMENT.CAPTURE.PENDING"):
        related = (resource.get("supplementary_data") or {}).get("related_ids") or {}
        return related.get("order_id")
    return None
