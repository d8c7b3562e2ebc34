"""PayPal's REST API over HTTP, blocking (`RestClient`, for the actors that block on I/O) or on
Tornado's loop (`AsyncRestClient`, for the gateway), with the same rules:

- a client-credentials token is cached until shortly before PayPal says it expires, and
  renewed once when PayPal answers 401 (a token revoked early);
- what may be transient (5xx, 429, no answer, an answer cut short) is retried with backoff
  and jitter, with the same PayPal-Request-Id, so a retry returns the first result instead of
  acting twice; any other 4xx is PayPal's final word (`PayPalError`); no usable answer after
  every attempt is `PayPalUnavailable`.
"""
import asyncio
import base64
import http.client
import json
import logging
import random
import time
import urllib.error
import urllib.request

from interkanect.paypal.errors import PayPalError, PayPalUnavailable, refusal

log = logging.getLogger(__name__)

ATTEMPTS = 5
BACKOFF_S = 0.5
TIMEOUT_S = 15
# A cached token is renewed this long before PayPal says it expires.
TOKEN_RENEW_MARGIN_S = 60
TOKEN_BODY = "grant_type=client_credentials"


def transient(status):
    return status >= 500 or status == 429


def retry_delay_s(attempt, backoff_s):
    """The wait after failed attempt `attempt` (from 1): doubling, with jitter."""
    return backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)


class Token:
    """The client-credentials token, until shortly before it expires."""

    def __init__(self, client_id, client_secret):
        self.basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self.value, self.expires_at = None, 0.0

    def current(self):
        return self.value if self.value and time.monotonic() < self.expires_at else None

    def forget(self):
        self.value = None

    def headers(self):
        """The token request's headers."""
        return {"Authorization": f"Basic {self.basic}", "Accept": "application/json",
                "Content-Type": "application/x-www-form-urlencoded"}

    def keep(self, status, answer):
        """The token from PayPal's answer to the token request."""
        if transient(status):
            raise PayPalUnavailable(f"no PayPal token for now (HTTP {status})")
        if status != 200 or not isinstance(answer, dict) or "access_token" not in answer:
            answer = answer if isinstance(answer, dict) else {}
            raise PayPalError(answer.get("error", ""), "", f"no PayPal token (HTTP {status}): "
                              f"{answer.get('error_description', '')}", status)
        self.value = answer["access_token"]
        self.expires_at = time.monotonic() + max(0, answer.get("expires_in", 0) - TOKEN_RENEW_MARGIN_S)
        return self.value


def request_headers(token, method, body, request_id):
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if request_id:
        headers["PayPal-Request-Id"] = request_id
    if method == "POST":
        headers["Prefer"] = "return=representation"
    return headers


def parse(raw):
    """A JSON answer's body, None when empty; ValueError when it is not JSON (an answer cut
    short, a proxy's error page): retried like no answer."""
    return json.loads(raw) if raw and raw.strip() else None


class _Attempts:
    """One call's attempts: what each answer means, and when to give up."""

    def __init__(self, what, attempts):
        self.what, self.attempts = what, attempts
        self.attempt, self.renewed, self.failure = 0, False, None

    def __iter__(self):
        while self.attempt < self.attempts:
            self.attempt += 1
            yield self.attempt
        raise PayPalUnavailable(f"PayPal {self.what}: {self.failure}")

    def answered(self, status, answer, token):
        """True when the answer is the result; False to try again (after a wait unless the
        token was just renewed); raises PayPal's refusal."""
        if status < 300:
            return True
        if status == 401 and not self.renewed:
            token.forget()
            self.renewed = True
            self.attempt -= 1   # a renewed token is not a failed attempt
            return False
        if not transient(status):
            raise refusal(status, answer)
        self.failed(f"HTTP {status} {(answer or {}).get('name', '') if isinstance(answer, dict) else ''}")
        return False

    def failed(self, failure):
        self.failure = failure
        log.warning("PayPal %s failed (attempt %d): %s", self.what, self.attempt, failure)

    def wait_s(self, backoff_s):
        return retry_delay_s(self.attempt, backoff_s) if self.failure is not None and self.attempt < self.attempts \
            else 0.0


class RestClient:
    """Blocking calls (urllib): for the actors whose own process may wait on PayPal."""

    def __init__(self, base_url, client_id, client_secret, timeout_s=TIMEOUT_S, backoff_s=BACKOFF_S,
                 attempts=ATTEMPTS):
        self.base_url, self.timeout_s = base_url.rstrip("/"), timeout_s
        self.backoff_s, self.attempts = backoff_s, attempts
        self.token = Token(client_id, client_secret)

    def call(self, what, method, path, body=None, request_id=None):
        calls = _Attempts(what, self.attempts)
        for _ in calls:
            calls.failure = None
            try:
                status, answer = self._open(method, path, body, request_headers(self._token(), method, body,
                                                                                 request_id))
                if calls.answered(status, answer, self.token):
                    return answer
            except (OSError, ValueError, http.client.HTTPException, PayPalUnavailable) as error:
                calls.failed(error)   # refused, reset, timed out, cut short, or no token for now
            time.sleep(calls.wait_s(self.backoff_s))

    def _token(self):
        token = self.token.current()
        if token is None:
            status, answer = self._open("POST", "/v1/oauth2/token", TOKEN_BODY, self.token.headers())
            token = self.token.keep(status, answer)
        return token

    def _open(self, method, path, body, headers):
        """(status, parsed body); a 4xx/5xx answer is returned, not raised."""
        data = body.encode() if isinstance(body, str) else None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                return answer.status, parse(answer.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, parse(error.read())


class AsyncRestClient:
    """The same calls on Tornado's loop: for the gateway, which must never block."""

    def __init__(self, base_url, client_id, client_secret, timeout_s=TIMEOUT_S, backoff_s=BACKOFF_S,
                 attempts=ATTEMPTS):
        self.base_url, self.timeout_s = base_url.rstrip("/"), timeout_s
        self.backoff_s, self.attempts = backoff_s, attempts
        self.token = Token(client_id, client_secret)

    async def call(self, what, method, path, body=None, request_id=None):
        calls = _Attempts(what, self.attempts)
        for _ in calls:
            calls.failure = None
            try:
                status, answer = await self._open(method, path, body, request_headers(
                    await self._token(), method, body, request_id))
                if calls.answered(status, answer, self.token):
                    return answer
            except (OSError, ValueError, PayPalUnavailable) as error:
                calls.failed(error)
            await asyncio.sleep(calls.wait_s(self.backoff_s))

    async def _token(self):
        token = self.token.current()
        if token is None:
            status, answer = await self._open("POST", "/v1/oauth2/token", TOKEN_BODY, self.token.headers())
            token = self.token.keep(status, answer)
        return token

    async def _open(self, method, path, body, headers):
        import tornado.httpclient   # the gateway's loop client; blocking callers never load it
        try:
            answer = await tornado.httpclient.AsyncHTTPClient().fetch(
                self.base_url + path, method=method, headers=headers, raise_error=False,
                request_timeout=self.timeout_s, body=body if isinstance(body, str) else None if body is None
                else json.dumps(body))
        except tornado.httpclient.HTTPClientError as error:   # the stream closed before an answer
            raise OSError(str(error)) from error
        if answer.code == 599:   # no answer at all (refused, reset, timed out)
            raise OSError(str(answer.error))
        return answer.code, parse(answer.body.decode() if answer.body else "")
