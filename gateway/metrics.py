"""Prometheus metrics of one gateway, at GET /metrics for a scraper on this machine or in
`metrics_networks` (docs/operating.md "Metrics", with a Grafana dashboard in docs/).

Counted as things happen: frames received by type, error frames sent by code (every limit,
bad frame and wrong-state refusal reaches a page that way), the gateway → member shard →
gateway round trip of a page attaching, the directory's answer time, PayPal's webhooks by
event type and answer with their lag, the loop stopping for garbage collection. Read at each
scrape: pages and members on this gateway, and from the database the calls not ended by
state, refund requests, payout batches and captures by state (each a small indexed count).
Label values are the product's own words, never a member's input, so the series stay few."""
import datetime
import ipaddress

import tornado.web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from actors import money_events
from rules import refund_rules
from gateway.http import loopback_caller

# Round trips inside one machine or a private network: a millisecond to seconds.
HOP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# PayPal retries for three days: a lag of minutes means deliveries failed.
LAG_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600, 86400)
# Capture states worth watching (the rest are final and many).
WATCHED_CAPTURE_STATES = ("pending", "booked", "refunding", "refund_refused")


class GatewayMetrics:
    def __init__(self):
        self.seen = {}   # id(gauge) -> the states it has shown, so a state now gone reads 0
        r = self.registry = CollectorRegistry()
        self.pages = Gauge("interkanect_pages_open", "Websocket pages open on this gateway.", registry=r)
        self.members = Gauge("interkanect_members_online", "Members with a page open on this gateway.", registry=r)
        self.frames = Counter("interkanect_frames_received", "Frames received from pages, by type.", ["type"],
                              registry=r)
        self.refusals = Counter("interkanect_refusals", "Error frames sent to pages, by code: limits, bad frames, "
                                                        "wrong state.", ["code"], registry=r)
        self.shard_roundtrip = Histogram("interkanect_shard_roundtrip_seconds", "A page attaching: gateway to its "
                                         "member's shard and back.", buckets=HOP_BUCKETS, registry=r)
        self.directory_roundtrip = Histogram("interkanect_directory_roundtrip_seconds", "The member directory "
                                             "answering this gateway's heartbeat.", buckets=HOP_BUCKETS, registry=r)
        self.webhooks = Counter("interkanect_webhooks", "PayPal webhook deliveries, by event type and our answer.",
                                ["event_type", "status"], registry=r)
        self.webhook_lag = Histogram("interkanect_webhook_lag_seconds", "From PayPal's transmission time to our "
                                     "receipt of a verified delivery.", buckets=LAG_BUCKETS, registry=r)
        self.calls = Gauge("interkanect_calls", "Calls not ended, by state (database).", ["state"], registry=r)
        self.refund_requests = Gauge("interkanect_refund_requests", "Refund requests by state (database); "
                                     "needs_operator: a refund PayPal failed too often.", ["state"], registry=r)
        self.payouts = Gauge("interkanect_payout_batches", "Payout batches by state (database).", ["state"],
                             registry=r)
        self.captures = Gauge("interkanect_captures", "Captures not settled yet, by state (database).", ["state"],
                              registry=r)
        self.money_events = Gauge("interkanect_money_events", "PayPal's money webhooks recorded and not applied "
                                  "yet (database): due (the refunds actor has not come to them), waiting (their "
                                  "capture not booked yet, or PayPal unreachable: tried again later).", ["state"],
                                  registry=r)
        self.gc_pauses = Histogram("interkanect_gc_pause_seconds", "This gateway's loop stopped for a garbage "
                                   "collection, by generation (2: a full one).", ["generation"],
                                   buckets=HOP_BUCKETS, registry=r)

    def gc_paused(self, generation, seconds):
        self.gc_pauses.labels(str(generation)).observe(seconds)

    def refused(self, frame):
        if frame.get("type") == "error":
            self.refusals.labels(str(frame.get("code"))).inc()

    def webhook(self, event_type, status, transmission_time=None):
        self.webhooks.labels(str(event_type or "unreadable")[:64], str(status)).inc()
        if transmission_time is not None:
            try:
                sent = datetime.datetime.fromisoformat(transmission_time)
                self.webhook_lag.observe(max(0.0, (datetime.datetime.now(datetime.timezone.utc) - sent).total_seconds()))
            except (TypeError, ValueError):
                pass

    async def refresh(self, hub, db):
        """The gauges read at scrape time."""
        connections = list(hub.connections.values())
        self.pages.set(len(connections))
        self.members.set(len({c.member_id for c in connections}))
        await self._by_state(self.calls, db.calls, {"state": {"$ne": "ended"}}, "$state")
        await self._by_state(self.payouts, db.payout_batches, {}, "$state")
        await self._by_state(self.captures, db.orders, {"capture_state": {"$in": list(WATCHED_CAPTURE_STATES)}},
                             "$capture_state")
        waiting = await db.webhook_events.count_documents({"money": money_events.DUE, "tries": {"$gt": 0}})
        due = await db.webhook_events.count_documents({"money": money_events.DUE})
        self.money_events.labels("due").set(due - waiting)
        self.money_events.labels("waiting").set(waiting)
        counts = {state: 0 for state in refund_rules.VIEW_STATES + ("needs_operator",)}
        async for request in db.refund_requests.find({"state": refund_rules.OPEN},
                                                      {"state": 1, "decision": 1, "plan.escalated": 1}):
            counts[refund_rules.view_state(request)] += 1
            if any(item.get("escalated") for item in request.get("plan", [])):
                counts["needs_operator"] += 1
        for state in (refund_rules.REFUNDED, refund_rules.DENIED):
            counts[state] = await db.refund_requests.count_documents({"state": state})
        for state, count in counts.items():
            self.refund_requests.labels(state).set(count)

    async def _by_state(self, gauge, collection, match, field):
        rows = await (await collection.aggregate([{"$match": match}, {"$group": {"_id": field, "n": {"$sum": 1}}}]))\
            .to_list()
        counts = {str(row["_id"]): row["n"] for row in rows}
        states = self.seen.setdefault(id(gauge), set())
        states |= set(counts)
        for state in states:
            gauge.labels(state).set(counts.get(state, 0))

    def exposition(self):
        return CONTENT_TYPE_LATEST, generate_latest(self.registry)


class MetricsHandler(tornado.web.RequestHandler):
    def initialize(self, app):
        self.app = app

    async def get(self):
        if not allowed(self.request, self.app.settings.metrics_networks):
            self.set_status(403)
            self.finish({"error": {"code": "not_allowed", "message": "metrics are for a scraper on this machine or "
                                                                    "in metrics_networks"}})
            return
        metrics = self.app.metrics
        await metrics.refresh(self.app.hub, self.app.db)
        content_type, body = metrics.exposition()
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-store")
        self.finish(body)


def allowed(request, networks):
    """A scraper on this machine (no proxy in between) or in one of `networks`."""
    if loopback_caller(request):
        return True
    address = getattr(request.connection.context, "address", None)
    try:
        peer = ipaddress.ip_address(address[0] if isinstance(address, tuple) else "")
    except ValueError:
        return False
    return any(peer in ipaddress.ip_network(network, strict=False) for network in networks)
