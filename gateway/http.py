"""HTTP handlers: the JSON API for accounts and profiles, pages, avatars and /healthz.

Every state-changing request passes Tornado's XSRF check (the `_xsrf` cookie echoed in an
X-XSRFToken header); errors answer {"error": {"code", "message"}} with a fitting status.
"""
import json
import logging
from pathlib import Path

import pymongo
import tornado.web

from gateway.accounts import ClientError, own_profile, public_profile

log = logging.getLogger(__name__)

SESSION_COOKIE = "ik_session"
# An upload above the avatar limit is still read (and dropped) up to this size, so that its
# sender gets a clear 413 instead of a dropped connection: a phone photo is a few megabytes.
AVATAR_DRAIN_BYTES = 32 * 1024 * 1024
WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
# Told to clients while the database does not answer (a restart takes seconds).
DATABASE_RETRY_AFTER_S = 5


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
        self.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax", secure=self.app.settings.tls,
                        path="/", expires_days=self.app.settings.policy.session_ttl_s / 86400)

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
        member = await self.app.accounts.sign_up(body.get("email"), body.get("password"), body.get("display_name"))
        self.set_session_cookie(await self.app.accounts.start_session(member))
        self.send_json({"member": own_profile(member)}, 201)


class LogInHandler(BaseHandler):
    async def post(self):
        body = self.json_body()
        member = await self.app.accounts.log_in(body.get("email"), body.get("password"), self.request.remote_ip)
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
        await self.app.accounts.request_reset(self.json_body().get("email"))
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
        member = await self.app.accounts.update_profile(self.require_member(), self.json_body())
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


class MemberHandler(BaseHandler):
    async def get(self, member_id):
        member = await self.app.accounts.member(member_id)
        if member is None:
            raise ClientError(404, "no_such_member", "no member has this id")
        self.send_json({"member": public_profile(member)})


class HealthHandler(tornado.web.RequestHandler):
    def initialize(self, app):
        self.app = app

    async def get(self):
        report = await self.app.health()
        self.set_status(200 if report["ok"] else 503)
        self.finish(report)
