"""The /ws endpoint: authenticated at the upgrade, msgpack frames, validated against schemas/.

A refused frame is answered with an error frame and the socket stays open; only abuse
closes it: a frame over the size cap (1009, by Tornado), a flood (1008), a dead peer
(ping timeout), or a session that ended (4401).
"""
import logging
import time

import msgpack
import pymongo.errors
import tornado.web
import tornado.websocket

import schemas
from rules import frames
from gateway.accounts import actor_profile
from gateway.http import SESSION_COOKIE
from gateway.hub import PageRefused, Unavailable, WatchRefused

log = logging.getLogger(__name__)

CLOSE_POLICY = 1008
CLOSE_SESSION_ENDED = 4401


class TokenBucket:
    """Allows `rate_per_s` frames a second on average, `burst` at once."""

    def __init__(self, rate_per_s, burst, now):
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def take(self, now):
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def encode(frame):
    return msgpack.packb(frame, use_bin_type=True)


def decode(data):
    """The frame in `data`, or raise FrameError."""
    if not isinstance(data, bytes):
        raise schemas.FrameError("malformed_frame", "frames are binary msgpack, not text")
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException, TypeError) as error:
        raise schemas.FrameError("malformed_frame", f"not a msgpack frame: {error}") from None


class Connection:
    """One open websocket, as the hub sees it."""

    def __init__(self, socket, member, session_id, session_expires_at):
        self.socket = socket
        self.member_id = str(member["_id"])
        self.profile = actor_profile(member)  # what the member's shard needs of them (read at each page open)
        self.session_id = session_id
        self.session_expires_at = session_expires_at
        self.conn_id = None
        self.watching = set()
        self.call_hosts = {}     # call_id → host's member id, for the calls this page is in (from call_state)

    def send_frame(self, frame):
        self.socket.send_frame(frame)

    def close(self, code, reason):
        self.socket.close(code, reason)


class SocketHandler(tornado.websocket.WebSocketHandler):
    def initialize(self, app):
        self.app = app
        self.connection = None
        self.bucket = None

    async def prepare(self):
        # Exactly the allowlisted origins, scheme included; Tornado alone would also accept a
        # missing Origin or one whose host matches whatever the scheme.
        if not self.check_origin(self.request.headers.get("Origin", "")):
            raise tornado.web.HTTPError(403, "this origin may not open a socket")
        # The session is in the database: while it is not answering, say so (the page retries).
        if not self.app.database_up:
            raise tornado.web.HTTPError(503, "the database is not answering; try again shortly")
        try:
            found = await self.app.accounts.session(self.get_cookie(SESSION_COOKIE))
        except pymongo.errors.ConnectionFailure:
            raise tornado.web.HTTPError(503, "the database is not answering; try again shortly") from None
        if found is None:
            raise tornado.web.HTTPError(401, "log in first")
        self.session_id, self.member_doc, self.session_expires_at = found

    def check_origin(self, origin):
        return origin in self.app.settings.origins

    async def open(self):
        policy = self.app.settings.policy
        self.bucket = TokenBucket(policy.flood_rate_per_s, policy.flood_burst, time.monotonic())
        self.connection = Connection(self, self.member_doc, self.session_id, self.session_expires_at)
        member_id = self.connection.member_id
        try:
            status = await self.app.hub.open(self.connection)
        except Unavailable as error:
            self.send_frame(frames.error(None, "unavailable", str(error)))
            self.close(1011, "try again")
            return
        except PageRefused as refused:
            log.info("refused a page of member %s: %s", member_id, refused.code)
            self.send_frame(frames.error(None, refused.code, str(refused)))
            self.close(CLOSE_POLICY, refused.code)
            return
        self.send_frame(frames.hello(member_id, status))

    def on_message(self, data):
        if not self.bucket.take(time.monotonic()):
            log.info("closing a flooding socket of member %s", self.connection.member_id)
            self.close(CLOSE_POLICY, "too many frames")
            return
        try:
            frame = schemas.CLIENT.validate(decode(data))
        except schemas.FrameError as error:
            log.info("refused a frame: %s", error.code)
            self.send_frame(frames.error(error.request_id, error.code, error.message))
            return
        except Exception:  # our fault, not the client's: logged, answered, and the socket stays up
            log.exception("a frame could not be read")
            self.send_frame(frames.error(None, "internal_error",
                                         "interKanect could not handle this frame; it has been logged"))
            return
        self.app.metrics.frames.labels(frame["type"]).inc()
        # A coroutine returned here is awaited by Tornado before this socket's next frame, so a
        # watch that waits for the database is never overtaken by the unwatch after it.
        return self.dispatch(frame)

    def dispatch(self, frame):
        hub = self.app.hub
        if frame["type"] == "watch":
            return self.watch(frame)
        elif frame["type"] == "unwatch":
            hub.unwatch(self.connection, frame["members"])
        else:
            hub.frame(self.connection, frame)

    async def watch(self, frame):
        """Follow the members named, within this page's and this account's limits, and only
        members that exist: a made-up id would cost a shard and a presence answer for nothing."""
        hub, wanted = self.app.hub, list(dict.fromkeys(frame["members"]))
        try:
            hub.check_watch(self.connection, wanted)
            fresh = [member_id for member_id in wanted if member_id not in self.connection.watching]
            existing = await self.app.accounts.existing_members(fresh) if fresh else set()
        except WatchRefused as refused:
            self.send_frame(frames.error(frame["id"], refused.code, str(refused)))
            return
        except pymongo.errors.ConnectionFailure:
            self.send_frame(frames.error(frame["id"], "unavailable",
                                         "the database is not answering; watch again in a few seconds"))
            return
        if self.connection.conn_id not in hub.connections:
            return  # the page closed meanwhile
        found = [member_id for member_id in fresh if member_id in existing]
        try:
            hub.check_watch(self.connection, found)  # again: another page of this account may have watched meanwhile
        except WatchRefused as refused:
            self.send_frame(frames.error(frame["id"], refused.code, str(refused)))
            return
        hub.watch(self.connection, found)
        unknown = [member_id for member_id in fresh if member_id not in existing]
        if unknown:
            self.send_frame(frames.error(frame["id"], "no_such_member",
                                         f"{len(unknown)} of these ids are no member: {', '.join(unknown[:5])}"
                                         f"{'…' if len(unknown) > 5 else ''}"))

    def send_frame(self, frame):
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        if self.app.settings.check_frames:
            # Tests and debugging: a frame the page would not understand is a bug here, loudly.
            schemas.SERVER.validate(frame)
        self.app.metrics.refused(frame)
        self.write_message(encode(frame), binary=True)

    def on_close(self):
        if self.connection is not None and self.connection.conn_id is not None:
            self.app.hub.close(self.connection)
