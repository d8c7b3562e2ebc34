"""Posting signed webhook events, PayPal style: at least once, retried on anything but a 2xx
up to 25 times with growing waits, no order promised (and, by fault switch, duplicated or
deliberately reordered). Every delivery and attempt is kept for the control API."""
import asyncio
import dataclasses
import json
import logging

import tornado.httpclient

from paypal_emulator import ids
from paypal_emulator.events import timestamp
from paypal_emulator.webhooks import retry_delays_s, serialize

log = logging.getLogger(__name__)

# Deliveries in flight at once; more wait in Tornado's queue (a payout batch of thousands
# of items emits thousands of events).
MAX_CONCURRENT_DELIVERIES = 50


def resource_id(event):
    """The id of what an event is about: a capture, refund, order, dispute, payout item or batch."""
    resource = event["resource"]
    return (resource.get("id") or resource.get("dispute_id") or resource.get("payout_item_id")
            or resource.get("batch_header", {}).get("payout_batch_id"))


@dataclasses.dataclass
class Delivery:
    event_id: str
    event_type: str
    resource_id: str
    body: bytes
    attempts: list = dataclasses.field(default_factory=list)
    # PENDING (retrying), SUCCESS (a 2xx came back), FAILURE (retries exhausted),
    # HELD (kept back to go out of order), NOT_SENT (no webhook URL configured).
    status: str = "PENDING"

    def to_json(self):
        return {"event_id": self.event_id, "event_type": self.event_type, "resource_id": self.resource_id,
                "status": self.status, "attempts": self.attempts}


class WebhookSender:
    def __init__(self, settings, signing_key, urls, faults, clock):
        self.url = settings.webhook_url
        self.webhook_id = settings.webhook_id
        self.signing_key = signing_key
        self.cert_url = urls.cert(signing_key.cert_id)
        self.faults = faults
        self.clock = clock
        self.delays_s = retry_delays_s(settings.webhook_max_retries, scale=settings.time_scale)
        self.timeout_s = settings.webhook_timeout_s
        self.deliveries = []
        self.bodies = {}  # event id -> the exact bytes sent, for the verify API
        self._held = {}  # out-of-order fault id -> deliveries held back
        self._tasks = set()
        self._client = tornado.httpclient.AsyncHTTPClient(force_instance=True, max_clients=MAX_CONCURRENT_DELIVERIES)

    def send(self, body):
        """Queue one event (its envelope) for delivery."""
        raw = serialize(body)
        self.bodies[body["id"]] = raw
        self._queue(body, raw)

    def resend(self, event_id):
        """Deliver a sent event again, byte for byte (PayPal's resend API; a replay)."""
        raw = self.bodies[event_id]
        self._queue(json.loads(raw), raw)

    def _queue(self, body, raw):
        copies = 2 if self.faults.take("webhook_duplicate") else 1
        deliveries = [Delivery(body["id"], body["event_type"], resource_id(body), raw) for _ in range(copies)]
        self.deliveries += deliveries
        held_by = self.faults.take("webhook_out_of_order")
        if held_by:
            self._hold(held_by, deliveries)
            return
        for delivery in deliveries:
            self._spawn(self._deliver(delivery))

    def _hold(self, fault, deliveries):
        for delivery in deliveries:
            delivery.status = "HELD"
        first = fault.id not in self._held
        self._held.setdefault(fault.id, []).extend(deliveries)
        if fault.remaining == 0:
            self._release(fault.id)
        elif first:
            asyncio.get_running_loop().call_later(fault.hold_s, self._release, fault.id)

    def _release(self, fault_id):
        held = self._held.pop(fault_id, None)
        if held:
            self._spawn(self._deliver_in_order(list(reversed(held))))

    async def _deliver_in_order(self, deliveries):
        """First attempts one after another (so the order is really the reversed one); retries
        then run on their own."""
        for delivery in deliveries:
            delivery.status = "PENDING"
            if not await self._attempt(delivery):
                self._spawn(self._retry(delivery))

    async def _deliver(self, delivery):
        if not await self._attempt(delivery):
            await self._retry(delivery)

    async def _retry(self, delivery):
        for delay_s in self.delays_s:
            await asyncio.sleep(delay_s)
            if await self._attempt(delivery):
                return
        delivery.status = "FAILURE"
        log.warning("webhook %s %s: no 2xx after %d attempts; giving up", delivery.event_type, delivery.event_id,
                    len(delivery.attempts))

    async def _attempt(self, delivery):
        """One signed POST; True when the delivery is settled (2xx, or nowhere to send)."""
        if not self.url:
            delivery.status = "NOT_SENT"
            return True
        transmission_id, transmission_time = ids.transmission_id(), timestamp(self.clock())
        headers = self.signing_key.headers(transmission_id, transmission_time, self.webhook_id, delivery.body,
                                           self.cert_url)
        headers["User-Agent"] = "PayPal/AUHD-214.0-emulator"
        attempt = {"transmission_id": transmission_id, "transmission_time": transmission_time}
        delivery.attempts.append(attempt)
        try:
            response = await self._client.fetch(self.url, method="POST", body=delivery.body, headers=headers,
                                                request_timeout=self.timeout_s, raise_error=False)
        except (OSError, ValueError) as error:  # an unusable URL; 599 covers the network's failures
            attempt.update(status_code=None, error=str(error))
            return False
        attempt["status_code"] = response.code
        if response.error and response.code == 599:
            attempt["error"] = str(response.error)
        if 200 <= response.code < 300:
            delivery.status = "SUCCESS"
            return True
        return False

    def _spawn(self, coroutine):
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task):
        self._tasks.discard(task)
        if not task.cancelled() and task.exception():
            log.error("webhook delivery failed", exc_info=task.exception())

    async def stop(self):
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._client.close()
