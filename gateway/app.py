"""One gateway process: the Tornado application, its hub, and their start and stop."""
import asyncio
import datetime
import logging
import os
import signal
import urllib.parse

import pymongo
import tornado.httpserver
import tornado.web

from actors import evidence, leadership
from gateway import earnings, follows, history, http, metrics, operators, payments, refunds, upgrade
from gateway.accounts import Accounts, actor_profile
from gateway.bridge import ActorBridge
from gateway.hub import Hub
from gateway.links import Links
from gateway.paypal_webhooks import WebhookVerifier
from gateway.throttle import client_address, trusted_networks
from gateway.ws import CLOSE_SESSION_ENDED, SocketHandler
from interkanect import collector, db as database
from interkanect.mail import Mailer
from interkanect.paypal_mode import paypal_mode

log = logging.getLogger(__name__)

MEMBER_ID = r"([0-9a-f]{24})"
# The folders of web/ served under /static; the HTML pages beside them are served only at their routes.
STATIC_FOLDERS = ("js", "css", "img", "vendor")
# Browsers that reached us over HTTPS keep to it for a year; subdomains are not ours to promise.
HSTS_MAX_AGE_S = 365 * 24 * 3600
access_log = logging.getLogger("tornado.access")
# How often a gateway asks whether its database answers; while it does not, requests that
# need it are refused at once with 503 (http.py) and call changes with `unavailable` (hub.py).
DATABASE_CHECK_S = 1.0


def log_request(handler):
    """Tornado's access log, minus the query string: a reset link's token must not be logged
    (nor an unfollow link's, in its path).
    Behind a trusted proxy the client's address is logged, then the proxy's."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    request, who = handler.request, handler.request.remote_ip
    networks = handler.application.settings.get("trusted_proxy_networks")
    if networks:
        client = client_address(request.remote_ip, request.headers.get_list("X-Forwarded-For"), networks)
        if client != request.remote_ip:
            who = f"{client} via {request.remote_ip}"
    path = "/unfollow/…" if request.path.startswith("/unfollow/") else request.path
    access_log.log(level, "%d %s %s (%s) %.2fms", status, request.method, path, who,
                   1000.0 * request.request_time())


class StrictTransportSecurity(tornado.web.OutputTransform):
    """HSTS on every answer (pages, API, static files, errors, the websocket upgrade); installed
    when browsers reach us over HTTPS, whether TLS ends here or at a proxy."""

    def transform_first_chunk(self, status_code, headers, chunk, finishing):
        headers["Strict-Transport-Security"] = f"max-age={HSTS_MAX_AGE_S}"
        return status_code, headers, chunk


class StaticHandler(tornado.web.StaticFileHandler):
    """web/'s scripts, styles, images and vendored modules. Never a page: a page is served at its route, with its
    security headers (`/static/login.html` and `/static/js/../login.html` are 404)."""

    def validate_absolute_path(self, root, absolute_path):
        root = os.path.abspath(root)
        if not any(absolute_path.startswith(os.path.join(root, folder) + os.path.sep) for folder in STATIC_FOLDERS):
            raise tornado.web.HTTPError(404)
        return super().validate_absolute_path(root, absolute_path)


class Gateway:
    def __init__(self, settings):
        self.settings = settings
        self.db = database.async_database(settings)
        self.mailer = Mailer(settings, self.db)
        self.accounts = Accounts(self.db, settings.policy, self.mailer, settings.url)
        self.database_up = True       # the last check's answer (see _watch_database)
        self.metrics = metrics.GatewayMetrics()
        self.record_keys = evidence.RecordKeys(settings)
        self.hub = Hub(ActorBridge(settings, self._on_actor_messages), lambda: self.database_up, settings.policy,
                       self.metrics, Links(settings.actor_host, settings.gateway_link_port))
        # The local emulator serves its signing certificate itself; real PayPal from its own hosts.
        emulator_host = [urllib.parse.urlsplit(settings.paypal_url).netloc] if settings.paypal_emulated else []
        self.webhooks = WebhookVerifier(settings.paypal_webhook_id_in_use, emulator_host)
        self.refund_desk = refunds.RefundDesk(self.hub)
        self.upgrades = upgrade.Upgrades(settings, self.db, member_changed=self.member_changed, mailer=self.mailer)
        self.follows = follows.Follows(self.db, self.member_changed)
        self.server = None
        self.session_watch = None
        self.database_watch = None

    def _on_actor_messages(self, messages):
        self.hub.on_messages(messages)

    def application(self):
        a = {"app": self}
        pages = [(r"/", "directory.html"), (r"/login", "login.html"), (r"/signup", "signup.html"),
                 (r"/reset", "reset.html"), (r"/account", "account.html"), (r"/m/" + MEMBER_ID, "member.html"),
                 (r"/call/([0-9a-f]{24})", "call.html"),
                 (r"/history", "history.html"), (r"/history/([0-9a-f]{24})", "history.html"),
                 (r"/earnings", "earnings.html"), (r"/operator/refunds", "operator-refunds.html"),
                 (r"/operator/members", "operator-members.html")]
        routes = [(path, http.PageHandler, dict(a, page=page)) for path, page in pages]
        routes += [
            (r"/healthz", http.HealthHandler, a),
            (r"/metrics", metrics.MetricsHandler, a),
            (r"/ws", SocketHandler, a),
            (r"/api/signup", http.SignUpHandler, a),
            (r"/api/login", http.LogInHandler, a),
            (r"/api/logout", http.LogOutHandler, a),
            (r"/api/password-reset", http.ResetRequestHandler, a),
            (r"/api/password-reset/confirm", http.ResetConfirmHandler, a),
            (r"/api/me", http.MeHandler, a),
            (r"/api/me/avatar", http.AvatarUploadHandler, a),
            (r"/api/members", http.MembersHandler, a),
            (r"/api/members/" + MEMBER_ID, follows.MemberHandler, a),
            (r"/api/members/" + MEMBER_ID + "/follow", follows.FollowHandler, a),
            (r"/unfollow/([A-Za-z0-9_-]{1,64})", follows.UnfollowLinkHandler, a),
            (r"/avatars/" + MEMBER_ID, http.AvatarHandler, a),
            (r"/paypal/return", payments.PayPalReturnHandler, a),
            (r"/paypal/webhook", payments.PayPalWebhookHandler, a),
            (r"/api/calls", history.CallsHandler, a),
            (r"/api/calls/([0-9a-f]{24})", history.CallLogHandler, a),
            (r"/api/calls/([0-9a-f]{24})/record", history.CallRecordHandler, a),
            (r"/api/records/verify", history.RecordVerifyHandler, a),
            (r"/\.well-known/interkanect-record-key", history.RecordKeyHandler, a),
            (r"/api/earnings", earnings.EarningsHandler, a),
            (r"/api/calls/([0-9a-f]{24})/refund", refunds.CallRefundHandler, a),
            (r"/api/refunds", refunds.RefundsHandler, a),
            (r"/api/refunds/([0-9a-f]{24})/notes", refunds.RefundNotesHandler, a),
            (r"/api/refunds/([0-9a-f]{24})/decision", refunds.RefundDecisionHandler, a),
            (r"/api/refunds/([0-9a-f]{24})/retry", refunds.RefundRetryHandler, a),
            (r"/api/operator/members", operators.OperatorMembersHandler, a),
            (r"/api/operator/members/" + MEMBER_ID + "/tier", operators.OperatorTierHandler, a),
            (r"/api/me/upgrade", upgrade.UpgradeHandler, a),
            (r"/api/me/upgrade/cancel", upgrade.CancelUpgradeHandler, a),
            (r"/paypal/subscription-return", upgrade.SubscriptionReturnHandler, a),
            (r"/api/site", http.SiteHandler, a),
            (r"/api/fees", http.FeesHandler, a),
            (r"/static/(.*)", StaticHandler, {"path": str(http.WEB_ROOT)}),
        ]
        policy = self.settings.policy
        https = http.reached_over_https(self.settings)
        return tornado.web.Application(
            routes, log_function=log_request, xsrf_cookies=True,
            trusted_proxy_networks=trusted_networks(self.settings.trusted_proxies),
            xsrf_cookie_kwargs={"samesite": "Lax", "secure": https},
            transforms=[StrictTransportSecurity] if https else [],
            websocket_ping_interval=policy.ws_ping_interval_s, websocket_ping_timeout=policy.ws_ping_timeout_s,
            websocket_max_message_size=policy.ws_max_frame_bytes)

    async def start(self, sockets=None):
        await database.ensure_indexes(self.db)
        await refunds.ensure_indexes(self.db)
        lease = await self.db.leadership.find_one({"_id": leadership.LEASE_ID})  # the leader's directory's name
        await self.hub.start(lease["token"] if lease else None)
        ssl_options = None
        if self.settings.tls:
            ssl_options = {"certfile": self.settings.tls_cert_file, "keyfile": self.settings.tls_key_file}
        self.server = tornado.httpserver.HTTPServer(self.application(), ssl_options=ssl_options,
                                                    max_body_size=self.settings.policy.avatar_max_bytes + 64 * 1024)
        if sockets is None:
            self.server.listen(self.settings.port, self.settings.host)
        else:
            self.server.add_sockets(sockets)
        self.session_watch = asyncio.create_task(self._watch_sessions())
        self.database_watch = asyncio.create_task(self._watch_database())

    async def stop(self):
        for task in (self.session_watch, self.database_watch):
            if task:
                task.cancel()
        if self.server:
            self.server.stop()
            await self.server.close_all_connections()
        self.hub.stop()
        await self.db.client.close()

    def member_changed(self, member):
        """A member document changed (tier, payout email, name, subscription): their live actor hears it."""
        if member is not None:
            self.hub.profile_changed(str(member["_id"]), actor_profile(member))

    async def _watch_database(self):
        """Keep `database_up`: down only when pymongo finds no server (a slow answer is not an
        outage), up again at the first answer."""
        while True:
            try:
                await self.db.command("ping")
                up = True
            except pymongo.errors.ConnectionFailure:
                up = False
            except pymongo.errors.PyMongoError:
                log.exception("database check failed")
                up = True  # it answered, if with an error: not an outage
            if up != self.database_up:
                log.warning("the database %s", "answers again" if up else "does not answer")
            self.database_up = up
            await asyncio.sleep(DATABASE_CHECK_S)

    def close_session_sockets(self, session_id):
        for connection in self.hub.connections_of_sessions().get(session_id, []):
            connection.close(CLOSE_SESSION_ENDED, "session ended")

    async def _watch_sessions(self):
        """Close sockets whose session ended: expired (known locally) or revoked anywhere
        (logged out or reset on any gateway). Each round reads only recent revocations, so
        the cost follows log-outs, not open sockets."""
        interval_s = self.settings.policy.session_check_interval_s
        # Overlapping windows: a revocation is seen even if this loop or a clock runs late.
        window = datetime.timedelta(seconds=3 * interval_s + 5)
        while True:
            await asyncio.sleep(interval_s)
            sessions = self.hub.connections_of_sessions()
            if not sessions:
                continue
            current = datetime.datetime.now(datetime.timezone.utc)
            ended = {s for s, connections in sessions.items() if connections[0].session_expires_at <= current}
            try:
                ended |= await self.accounts.revoked_since(current - window) & set(sessions)
            except pymongo.errors.PyMongoError:
                log.warning("cannot read session revocations: the database is not answering")
            for session_id in ended:
                self.close_session_sockets(session_id)

    async def health(self):
        try:
            await asyncio.wait_for(self.db.command("ping"), 2)
            db_report = {"ok": True}
        except (pymongo.errors.PyMongoError, asyncio.TimeoutError) as error:
            db_report = {"ok": False, "error": str(error) or "no answer"}
        actors = await self.hub.health()
        return {"ok": db_report["ok"] and actors["ok"], "paypal": paypal_mode(self.settings), "database": db_report,
                "actors": actors}


async def run(settings):
    """Run a gateway until SIGINT or SIGTERM."""
    gateway = Gateway(settings)
    collector.watch_pauses(gateway.metrics.gc_paused)
    collector.tune()   # its first full collection is the first one operators see
    await gateway.start()
    log.info("gateway listening on %s", settings.url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await gateway.stop()
