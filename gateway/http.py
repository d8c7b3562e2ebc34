"""HTTP handlers: the JSON API for accounts and profiles, pages, avatars and /healthz.

Every state-changing request passes Tornado's XSRF check (the `_xsrf` cookie echoed in an
X-XSRFToken header); errors answer {"error": {"code", "message"}} with a fitting status.
"""
import ipaddress
import json
import logging
import urllib.parse
from pathlib import Path

import pymongo
import tornado.web

from rules import fees
from rules.terms import Refused, dollars
from gateway.accounts import ClientError, own_profile
from gateway.throttle import client_address, trusted_networks
from interkanect.paypal_mode import paypal_mode

log = logging.getLogger(__name__)

SESSION_COOKIE = "ik_session"
# An upload above the avatar limit is still read (and dropped) up to this size, so that its
# sender gets a clear 413 instead of a dropped connection: a phone photo is a few megabytes.
AVATAR_DRAIN_BYTES = 32 * 1024 * 1024
WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
# Told to clients while the database does not answer (a restart takes seconds).
DATABASE_RETRY_AFTER_S = 5


def reached_over_https(settings):
    """Browsers reach us over HTTPS: TLS ends here, or `public_url` is https (TLS ends at a proxy
    in front). Then cookies are Secure and every answer carries HSTS."""
    return settings.tls or urllib.parse.urlsplit(settings.url).scheme == "https"


class DatabaseUnavailable(Exception):
    """The gateway knows its database is not answering: refuse at once instead of waiting for it."""


class BaseHandler(tornado.web.RequestHandler):
    def initialize(self, app):
        self.app = app

    async def prepare(self):
        if not self.app.database_up:
            raise DatabaseUnavailable()
        found = await self.app.accounts.session(self.get_cookie(SESSION_COOKIE))
        self.session_id, self.member, _ = found if found else (None, None, None)

    def get_current_user(self):
        return self.member

    def client_address(self):
        """Whom limits count by: the peer, or behind a trusted proxy the client it names."""
        return client_address(self.request.remote_ip, self.request.headers.get_list("X-Forwarded-For"),
                              trusted_networks(self.app.settings.trusted_proxies))

    def require_member(self):
        if self.member is None:
            raise ClientError(401, "not_logged_in", "log in first")
        return self.member

    def require_operator(self):
        member = self.require_member()
        if not member.get("operator"):
            raise ClientError(403, "not_operator", "only an operator can do this")
        return member

    def check_xsrf_cookie(self):
        # Tornado words its refusals differently (missing, bad format, mismatch); the client
        # needs one typed error whichever it was, answered like every other client fault.
        try:
            super().check_xsrf_cookie()
        except tornado.web.HTTPError:
            raise ClientError(403, "xsrf", "the X-XSRFToken header is missing or does not match the _xsrf cookie; "
                                           "reload the page and try again") from None

    def json_body(self):
        try:
            body = json.loads(self.request.body or b"null")
        # A body nested deeper than the parser recurses is bad input too, not a server fault.
        except (ValueError, RecursionError):
            raise ClientError(400, "invalid_json", "the body is not valid JSON (or is nested too deeply)") from None
        if not isinstance(body, dict):
            raise ClientError(400, "invalid_body", "send a JSON object")
        return body

    def send_json(self, value, status=200):
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value))

    def set_session_cookie(self, token):
        settings = self.app.settings
        self.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax", secure=reached_over_https(settings),
                        path="/", expires_days=settings.policy.session_ttl_s / 86400)

    def _handle_request_exception(self, error):
        if isinstance(error, ClientError):
            log.info("%s %s refused: %s", self.request.method, self.request.path, error.code)
            if error.retry_after_s:
                self.set_header("Retry-After", str(error.retry_after_s))
            self.send_json({"error": {"code": error.code, "message": error.message}}, error.status)
            return
        if isinstance(error, (DatabaseUnavailable, pymongo.errors.ConnectionFailure)):
            # Not a fault of ours or the client's: it passes once the database is back.
            log.warning("%s %s refused: the database is not answering", self.request.method, self.request.path)
            self.set_header("Retry-After", str(DATABASE_RETRY_AFTER_S))
            self.send_json({"error": {"code": "database_unavailable",
                                      "message": "the database is not answering; try again in a few seconds"}}, 503)
            return
        super()._handle_request_exception(error)

    def write_error(self, status_code, **kwargs):
        error = kwargs.get("exc_info", (None, None))[1]
        message = getattr(error, "log_message", None) or self._reason
        code = "http_%d" % status_code
        if status_code >= 500:
            code, message = "internal", "something went wrong on our side; try again"
        self.finish({"error": {"code": code, "message": message}})


# Pages load only our own scripts, styles and images, connect only to us, and cannot be
# framed (clickjacking). PayPal's approval page opens in its own window, not a frame.
PAGE_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


class PageHandler(BaseHandler):
    """Serves one HTML page of web/; pages fetch their data from the JSON API."""

    def initialize(self, app, page):
        super().initialize(app)
        self.page = page

    async def prepare(self):
        # Static: it asks the API who is logged in, so it loads (and says why) while the database is down.
        self.session_id, self.member = None, None

    def get(self, *args):
        self.xsrf_token  # sets the _xsrf cookie the page's scripts echo back
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        for name, value in PAGE_SECURITY_HEADERS.items():
            self.set_header(name, value)
        self.finish((WEB_ROOT / self.page).read_bytes())


class SignUpHandler(BaseHandler):
    async def post(self):
        body = self.json_body()
        member = await self.app.accounts.sign_up(body.get("email"), body.get("password"), body.get("display_name"),
                                                 self.client_address())
        if member is None:  # the email has an account: its owner got a mail, nobody gets a session
            self.send_json({"member": None}, 201)
            return
        self.set_session_cookie(await self.app.accounts.start_session(member))
        self.send_json({"member": own_profile(member)}, 201)


class LogInHandler(BaseHandler):
    async def post(self):
        body = self.json_body()
        member = await self.app.accounts.log_in(body.get("email"), body.get("password"), self.client_address())
        self.set_session_cookie(await self.app.accounts.start_session(member))
        self.send_json({"member": own_profile(member)})


class LogOutHandler(BaseHandler):
    async def post(self):
        if self.session_id:
            await self.app.accounts.end_session(self.session_id)
            self.app.close_session_sockets(self.session_id)
        self.clear_cookie(SESSION_COOKIE, path="/")
        self.set_status(204)


class ResetRequestHandler(BaseHandler):
    async def post(self):
        await self.app.accounts.request_reset(self.json_body().get("email"), self.client_address())
        self.send_json({"message": "if an account has this email, a reset link is on its way"}, 202)


class ResetConfirmHandler(BaseHandler):
    async def post(self):
        body = self.json_body()
        await self.app.accounts.reset_password(body.get("token"), body.get("password"))
        self.set_status(204)


class MeHandler(BaseHandler):
    def get(self):
        self.send_json({"member": own_profile(self.require_member())})

    async def patch(self):
        member = await self.app.accounts.update_profile(self.require_member(), self.json_body(), self.client_address())
        self.app.member_changed(member)  # a payout email added or removed changes what they may charge
        self.send_json({"member": own_profile(member)})


@tornado.web.stream_request_body
class AvatarUploadHandler(BaseHandler):
    def initialize(self, app):
        super().initialize(app)
        # Here, not in prepare: a refused XSRF check skips prepare, yet the body still arrives.
        self.limit_bytes = app.settings.policy.avatar_max_bytes
        self.kept = bytearray()

    async def prepare(self):
        await super().prepare()
        # The server's own body limit would answer a bare 400 and close the connection.
        self.request.connection.set_max_body_size(max(AVATAR_DRAIN_BYTES, self.limit_bytes + 1))

    def data_received(self, chunk):
        # One byte past the limit is enough for set_avatar to refuse it; the rest is dropped.
        room = self.limit_bytes + 1 - len(self.kept)
        if room > 0:
            self.kept += chunk[:room]

    async def put(self):
        await self.app.accounts.set_avatar(self.require_member(), bytes(self.kept))
        self.set_status(204)


class AvatarHandler(BaseHandler):
    async def get(self, member_id):
        avatar = await self.app.accounts.avatar(member_id)
        if avatar is None:
            raise ClientError(404, "no_avatar", "this member has no avatar")
        self.set_header("Content-Type", avatar["type"])
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(avatar["data"])


class MembersHandler(BaseHandler):
    async def get(self):
        members = await self.app.accounts.directory(self.get_query_argument("q", ""))
        self.send_json({"members": members})


# GET /api/members/<id> (the profile with its followers) is gateway/follows.py's MemberHandler.


# Headers a proxy adds for the client behind it: their presence means the caller is not this machine.
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-Ip")


def loopback_caller(request):
    """Whether the caller is on this machine: the socket's peer address is loopback and no proxy
    forwarded the request (a proxy on this machine is a loopback peer for everyone behind it)."""
    address = getattr(request.connection.context, "address", None)
    try:
        peer = ipaddress.ip_address(address[0] if isinstance(address, tuple) else "")
    except ValueError:
        return False  # a Unix socket, or no address: not provably this machine
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped:
        peer = peer.ipv4_mapped
    return peer.is_loopback and not any(name in request.headers for name in FORWARDING_HEADERS)


class HealthHandler(tornado.web.RequestHandler):
    """200 or 503, and which PayPal (live, sandbox, emulator) for anyone; the database and actor
    detail (node names, placement, connection counts) only for a caller on this machine."""

    def initialize(self, app):
        self.app = app

    async def get(self):
        report = await self.app.health()
        self.set_status(200 if report["ok"] else 503)
        self.set_header("Cache-Control", "no-store")
        self.finish(report if loopback_caller(self.request) else {"ok": report["ok"], "paypal": report["paypal"]})


class FeesHandler(BaseHandler):
    """GET /api/fees?amount=15.50: what a price or tip of that many dollars leaves the member
    after PayPal's fee, by the server's one fee rule (`rules/fees.py`), for the terms form and
    the tip dialog to show as the amount is typed. 0 is a free call. Refused like the CLI's
    `interkanect fees`: not dollars (`invalid_amount`), under the minimum (`amount_below_minimum`)."""

    async def prepare(self):
        pass  # no session and no database: the rule is arithmetic

    def get(self):
        text = self.get_query_argument("amount", "")
        try:
            cents = fees.parse_dollars(text)
            if cents == 0:
                self.send_json({"amount_cents": 0, "fee_cents": 0, "net_cents": 0, "free": True})
                return
            policy = self.app.settings.policy
            if cents > policy.max_price_cents:
                raise Refused("amount_above_maximum", f"a price or tip is at most {dollars(policy.max_price_cents)}")
            split = fees.check_payment(cents, policy.min_price_cents)
        except Refused as refused:
            raise ClientError(400, refused.code, refused.message) from None
        self.send_json(dict(split.view(), free=False))


class SiteHandler(tornado.web.RequestHandler):
    """What every page shows whoever looks: which PayPal takes the payments (the footer says
    when no real money moves). No session, no database."""

    def initialize(self, app):
        self.app = app

    def get(self):
        self.set_header("Cache-Control", "no-store")
        self.finish({"paypal": paypal_mode(self.app.settings)})
