"""Offline verification of PayPal webhook deliveries: the signature over
`transmission_id|transmission_time|webhook_id|crc32(raw body)`, checked with the certificate
named by PAYPAL-CERT-URL, which must be PayPal's certificate path on PayPal's hosts (or, in
development, the same path on the emulator's).

Replay protection is deliberately not here: a correctly signed delivery may arrive twice
(PayPal retries, duplicates and reorders), and the ledger and the call messages are
idempotent by PayPal's ids (event, capture, refund, payout item), so a replay changes nothing.
The time window below only bounds how long a captured delivery stays usable.
"""
import asyncio
import base64
import binascii
import datetime
import collections
import json
import re
import urllib.parse
import zlib

import tornado.httpclient
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from tornado.simple_httpclient import SimpleAsyncHTTPClient

AUTH_ALGO = "SHA256withRSA"
REQUIRED_HEADERS = ("PAYPAL-TRANSMISSION-ID", "PAYPAL-TRANSMISSION-TIME", "PAYPAL-TRANSMISSION-SIG",
                    "PAYPAL-CERT-URL", "PAYPAL-AUTH-ALGO")
# PayPal's REST hosts, live and sandbox, old (api.) and current (api-m.) names: its cert URLs
# look like https://api.paypal.com/v1/notifications/certs/CERT-360caa42-…. Exact names only:
# a suffix match ("*.paypal.com") would trust hosts we have no reason to trust.
PAYPAL_CERT_HOSTS = frozenset({"api.paypal.com", "api.sandbox.paypal.com", "api-m.paypal.com",
                               "api-m.sandbox.paypal.com"})
# The only path a certificate URL may have: PayPal's certificates are at
# /v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77 (the emulator serves the same shape).
# Any other path on an allowed host is refused unfetched: the header is the sender's to choose.
CERT_PATH = re.compile(r"/v1/notifications/certs/CERT-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}")
# PayPal signs with one certificate at a time and rotates it rarely: a few cover a rotation, and
# live and sandbox. Past it the least recently used is forgotten (and fetched again if named).
CERT_CACHE_MAX = 8
# A certificate URL whose fetch failed is refused unfetched for this long, so a flood of forged
# deliveries naming it costs one fetch a minute; PayPal's first retry comes 60 s or more later.
CERT_FAILURE_MEMORY_S = 60
CERT_FAILURES_MAX = 256
# PayPal retries with a fresh transmission time, so a genuine delivery is seconds old; five
# minutes covers a slow gateway and clock skew while limiting how long a captured one replays.
DEFAULT_MAX_AGE_S = 5 * 60
CERT_FETCH_TIMEOUT_S = 10
# A PEM certificate chain is a few kilobytes; the cap stops a hostile or broken answer early.
CERT_MAX_BYTES = 64 * 1024


class WebhookRefused(Exception):
    """A delivery we will not act on: answer `status` (anything but 2xx makes PayPal retry)."""

    def __init__(self, status, code, message):
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


class CertificateUnavailable(Exception):
    """The certificate could not be fetched now (network, timeout, non-200, too large)."""


async def fetch_certificate(url, timeout_s=CERT_FETCH_TIMEOUT_S, max_bytes=CERT_MAX_BYTES):
    """The default fetch: GET `url`, never following a redirect (it could lead anywhere), with
    a timeout and a size cap. A client of its own, because max_body_size is per client."""
    client = SimpleAsyncHTTPClient(force_instance=True, max_body_size=max_bytes)
    try:
        response = await client.fetch(url, follow_redirects=False, connect_timeout=timeout_s,
                                      request_timeout=timeout_s, raise_error=False)
    except (OSError, tornado.httpclient.HTTPError) as error:  # an oversized body closes the stream
        raise CertificateUnavailable(f"fetching {url} failed: {error}") from None
    finally:
        client.close()
    if response.code != 200:
        raise CertificateUnavailable(f"fetching {url} answered {response.code}")
    return response.body


class WebhookVerifier:
    """Checks deliveries for one webhook id. `allowed_cert_hosts` ("host:port") are extra
    certificate hosts reached over http or https: the emulator's, in development; leave it
    empty against PayPal. `fetch(url) -> bytes` raises CertificateUnavailable on failure.
    Each certificate URL is fetched once: kept (at most `cache_max`) when it loads, its
    refusal repeated for `failure_memory_s` when it does not."""

    def __init__(self, webhook_id, allowed_cert_hosts=(), max_age_s=DEFAULT_MAX_AGE_S, fetch=fetch_certificate,
                 cache_max=CERT_CACHE_MAX, failure_memory_s=CERT_FAILURE_MEMORY_S):
        self.webhook_id = webhook_id
        self.allowed_cert_hosts = frozenset(host.lower() for host in allowed_cert_hosts)
        self.max_age_s = max_age_s
        self.fetch = fetch
        self.cache_max = cache_max
        self.failure_memory_s = failure_memory_s
        # url -> x509.Certificate, least recently used first: PayPal reuses one for many deliveries
        self._certificates = collections.OrderedDict()
        self._failures = collections.OrderedDict()  # url -> (until_s, (status, code, message)), oldest first
        self._loading = {}       # url -> Task, so concurrent deliveries share one fetch

    async def verify(self, headers, raw_body, now_s):
        """The event (a dict) if `raw_body` is a genuine delivery at `now_s`; else WebhookRefused.
        Cheap checks come first, so a forged request costs no fetch."""
        found = {name.upper(): value for name, value in headers.items()}
        missing = [name for name in REQUIRED_HEADERS if not found.get(name)]
        if missing:
            raise WebhookRefused(400, "missing_header", f"missing {', '.join(missing)}")
        if found["PAYPAL-AUTH-ALGO"] != AUTH_ALGO:
            raise WebhookRefused(400, "unsupported_auth_algo", f"PAYPAL-AUTH-ALGO must be {AUTH_ALGO}")
        transmission_id, transmission_time = found["PAYPAL-TRANSMISSION-ID"], found["PAYPAL-TRANSMISSION-TIME"]
        self._check_time(transmission_time, now_s)
        signature = _decode_signature(found["PAYPAL-TRANSMISSION-SIG"])
        certificate = await self._certificate(self._checked_cert_url(found["PAYPAL-CERT-URL"]), now_s)
        message = f"{transmission_id}|{transmission_time}|{self.webhook_id}|{zlib.crc32(raw_body) & 0xFFFFFFFF}"
        try:
            certificate.public_key().verify(signature, message.encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise WebhookRefused(401, "bad_signature", "the signature does not match this body, time and "
                                                       "webhook id") from None
        return _event(raw_body)

    def _check_time(self, transmission_time, now_s):
        try:
            sent = datetime.datetime.fromisoformat(transmission_time)
        except ValueError:
            sent = None
        if sent is None or sent.tzinfo is None:
            raise WebhookRefused(400, "invalid_transmission_time", "PAYPAL-TRANSMISSION-TIME is not an "
                                                                   "Internet date-time with a zone")
        # Symmetric: a time far in the future is as suspect as an old one (or a broken clock).
        if abs(now_s - sent.timestamp()) > self.max_age_s:
            raise WebhookRefused(401, "stale", f"transmitted at {transmission_time}, more than "
                                               f"{self.max_age_s} s from now")

    def _checked_cert_url(self, url):
        try:
            parts = urllib.parse.urlsplit(url)
        except ValueError:  # a malformed IPv6 host, say
            parts = None
        # netloc, not hostname: a port or user@ part makes it another host, refused.
        netloc = parts.netloc.lower() if parts else ""
        paypal = parts and parts.scheme == "https" and netloc in PAYPAL_CERT_HOSTS
        allowed = parts and parts.scheme in ("http", "https") and netloc in self.allowed_cert_hosts
        if not (paypal or allowed):
            raise WebhookRefused(401, "untrusted_cert_url", f"PAYPAL-CERT-URL {url!r} is not on a PayPal host")
        # The URL as given must be exactly host + certificate path: no query, fragment or dots.
        if not CERT_PATH.fullmatch(parts.path) or url != f"{parts.scheme}://{parts.netloc}{parts.path}":
            raise WebhookRefused(401, "untrusted_cert_url", f"PAYPAL-CERT-URL {url!r} is not PayPal's certificate "
                                                            f"path /v1/notifications/certs/CERT-…")
        return url

    async def _certificate(self, url, now_s):
        certificate = self._certificates.get(url)
        if certificate is not None:
            self._certificates.move_to_end(url)
        else:
            self._repeat_failure(url, now_s)
            if url not in self._loading:
                self._loading[url] = asyncio.ensure_future(self._load(url))
            try:
                # shield: one waiter giving up must not cancel the fetch the others wait for
                certificate = await asyncio.shield(self._loading[url])
            except WebhookRefused as refused:
                self._remember_failure(url, refused, now_s)
                raise
            finally:
                self._loading.pop(url, None)
        now = datetime.datetime.fromtimestamp(now_s, datetime.timezone.utc)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise WebhookRefused(401, "bad_certificate", f"the certificate at {url} is not valid at "
                                                         f"{now:%Y-%m-%dT%H:%M:%SZ}")
        return certificate

    async def _load(self, url):
        try:
            pem = await self.fetch(url)
        except CertificateUnavailable as error:
            # Not the sender's fault: 503, and PayPal's retry will try again.
            raise WebhookRefused(503, "certificate_unavailable", str(error)) from None
        try:
            # PayPal serves the signing certificate first, then its chain.
            certificate = x509.load_pem_x509_certificates(pem)[0]
        except ValueError:
            raise WebhookRefused(401, "bad_certificate", f"{url} did not answer a PEM certificate") from None
        if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
            raise WebhookRefused(401, "bad_certificate", f"the certificate at {url} has no RSA key")
        self._certificates[url] = certificate
        while len(self._certificates) > self.cache_max:
            self._certificates.popitem(last=False)
        return certificate

    def _repeat_failure(self, url, now_s):
        """Refuse as last time, unfetched, while the failure is remembered."""
        until_s, refusal = self._failures.get(url, (None, None))
        if until_s is not None and now_s < until_s:
            raise WebhookRefused(*refusal)
        self._failures.pop(url, None)

    def _remember_failure(self, url, refused, now_s):
        # Concurrent waiters of one fetch all land here: the first one's deadline stands.
        refusal = (refused.status, refused.code, refused.message)
        self._failures.setdefault(url, (now_s + self.failure_memory_s, refusal))
        while len(self._failures) > CERT_FAILURES_MAX:
            self._failures.popitem(last=False)


def _decode_signature(value):
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRefused(400, "invalid_signature_encoding", "PAYPAL-TRANSMISSION-SIG is not base64") from None


def _event(raw_body):
    try:
        event = json.loads(raw_body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        event = None
    if not isinstance(event, dict):
        raise WebhookRefused(400, "invalid_body", "the body is not a JSON object")
    return event
