"""A test member: a real HTTP client (cookies, XSRF) and real websockets against a gateway.

Every frame a socket receives is validated against schemas/server.json, so any test that
reads frames also checks the server speaks its documented protocol.
"""
import asyncio
import http.cookies
import json
import secrets
import urllib.parse

import msgpack
import websockets
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

import schemas

DEFAULT_TIMEOUT_S = 10
PASSWORD = "correct horse battery"


class Response:
    def __init__(self, code, headers, body):
        self.code = code
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    @property
    def error_code(self):
        return self.json()["error"]["code"]


class Member:
    def __init__(self, base_url, email=None):
        self.base_url = base_url.rstrip("/")
        self.email = email or f"m{secrets.token_hex(6)}@example.com"
        self.cookies = {}
        self.profile = None

    @property
    def id(self):
        return self.profile["id"]

    @property
    def origin(self):
        return self.base_url

    def cookie_header(self):
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def _remember(self, headers):
        for line in headers.get_list("Set-Cookie"):
            jar = http.cookies.SimpleCookie()
            jar.load(line)
            for name, morsel in jar.items():
                if morsel["expires"] and "1970" in morsel["expires"] or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    async def request(self, method, path, body=None, raw=None, headers=None, xsrf=True):
        if "_xsrf" not in self.cookies and xsrf:
            await self.request("GET", "/login", xsrf=False)
        all_headers = {"Cookie": self.cookie_header()}
        if xsrf and "_xsrf" in self.cookies:
            all_headers["X-XSRFToken"] = self.cookies["_xsrf"]
        if body is not None:
            raw = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        if raw is None and method in ("POST", "PUT", "PATCH"):
            raw = b""
        request = HTTPRequest(self.base_url + path, method=method, headers=all_headers, body=raw,
                              follow_redirects=False, request_timeout=DEFAULT_TIMEOUT_S)
        try:
            answer = await AsyncHTTPClient().fetch(request, raise_error=False)
        except HTTPClientError as error:  # pragma: no cover - raise_error=False returns instead
            answer = error.response
        self._remember(answer.headers)
        return Response(answer.code, answer.headers, answer.body)

    async def sign_up(self, display_name="Test Member", password=PASSWORD):
        answer = await self.request("POST", "/api/signup", {"email": self.email, "password": password,
                                                            "display_name": display_name})
        assert answer.code == 201, answer.body
        self.profile = answer.json()["member"]
        return self

    async def log_in(self, password=PASSWORD):
        answer = await self.request("POST", "/api/login", {"email": self.email, "password": password})
        if answer.code == 200:
            self.profile = answer.json()["member"]
        return answer

    async def socket(self, origin=None):
        """A page of this member, returned once the server greeted it (hello, or the error that
        refuses it): attached to its member as a browser's page is before it shows anything, so
        a call to this member placed next finds it online. The greeting stays unread."""
        ws_url = "ws" + self.base_url[len("http"):] + "/ws"
        connection = await websockets.connect(
            ws_url, additional_headers={"Cookie": self.cookie_header()}, origin=origin or self.origin,
            max_size=None, open_timeout=DEFAULT_TIMEOUT_S)
        page = Socket(connection)
        try:
            page.greeting = await page.frame()
            page.unread.append(page.greeting)
        except websockets.ConnectionClosed:
            pass  # refused before any frame; closed() tells how
        return page


class Socket:
    """A websocket that speaks msgpack and checks every received frame against the schema."""

    def __init__(self, connection):
        self.connection = connection
        self.received = []
        self.unread = []   # frames read while waiting for another kind; later expects see them
        self.greeting = None  # the server's first frame: hello, or the error refusing this page
        self.next_id = 1

    async def send(self, frame):
        await self.connection.send(msgpack.packb(frame, use_bin_type=True))

    async def request(self, frame_type, **fields):
        request_id = self.next_id
        self.next_id += 1
        await self.send(dict(type=frame_type, id=request_id, **fields))
        return request_id

    async def frame(self, timeout_s=DEFAULT_TIMEOUT_S):
        data = await asyncio.wait_for(self.connection.recv(), timeout_s)
        assert isinstance(data, bytes), "the server sends binary frames only"
        frame = msgpack.unpackb(data, raw=False)
        schemas.SERVER.validate(frame)
        self.received.append(frame)
        return frame

    async def expect(self, frame_type, timeout_s=DEFAULT_TIMEOUT_S, **fields):
        """The first unread frame of this type whose fields match, oldest first; frames of other
        kinds stay unread for later expects. Bounded by timeout_s."""
        def matches(frame):
            return frame["type"] == frame_type and all(frame.get(k) == v for k, v in fields.items())
        for index, frame in enumerate(self.unread):
            if matches(frame):
                return self.unread.pop(index)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                frame = await self.frame(max(0.01, deadline - loop.time()))
            except asyncio.TimeoutError:
                # Say what did come instead: a failing test shows what the server said.
                raise asyncio.TimeoutError(f"no {frame_type} frame with {fields} in {timeout_s} s; "
                                           f"unread: {self.unread[-5:]}") from None
            if matches(frame):
                return frame
            self.unread.append(frame)

    async def closed(self, timeout_s=DEFAULT_TIMEOUT_S):
        """Wait for the server to close; returns the close code."""
        try:
            while True:
                await asyncio.wait_for(self.connection.recv(), timeout_s)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None

    async def close(self):
        await self.connection.close()


def quote(text):
    return urllib.parse.quote(text)
