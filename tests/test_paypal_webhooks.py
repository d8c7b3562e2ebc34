"""The gateway's offline check of PayPal webhooks (gateway/paypal_webhooks.py) against a real
emulator, which serves its certificate and signs any body, time and webhook id
(`POST /emulator/webhooks/sign`). Each refusal is checked for its status and code, and for
fetching no certificate when a cheaper check already refused."""
import asyncio
import base64
import datetime
import json
import time
import urllib.parse
import zlib

import pytest
import tornado.httpserver
import tornado.httputil
import tornado.testing
import tornado.web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.paypal_webhooks import (REQUIRED_HEADERS, CertificateUnavailable, WebhookRefused, WebhookVerifier,
                                     fetch_certificate)
from tests.conftest import free_port, run
from tests.test_paypal_emulator import WEBHOOK_ID, running_emulator

MAX_AGE_S = 300
EVENT = {"id": "WH-4RS12345AB678901C-5DE23456FG789012H", "event_version": "1.0", "create_time": "2026-03-06T19:00:00Z",
         "resource_type": "capture", "resource_version": "2.0", "event_type": "PAYMENT.CAPTURE.COMPLETED",
         "summary": "Payment completed for $ 10.00 USD — café", "links": [],
         "resource": {"id": "3C679366HH908993F", "status": "COMPLETED",
                      "amount": {"currency_code": "USD", "value": "10.00"}}}
# What PayPal (and the emulator) put on the wire: compact JSON, UTF-8.
RAW = json.dumps(EVENT, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """`interkanect paypal-emulator` on an unused port; it sends no webhooks, it only signs."""
    yield from running_emulator(tmp_path_factory, "--webhook-id", WEBHOOK_ID)


def emulator_host(emulator):
    return urllib.parse.urlsplit(emulator.url).netloc


def signed(emulator, raw=RAW, **fields):
    """PayPal's headers for `raw`, signed by the emulator (transmission_time, webhook_id optional)."""
    status, answer = emulator.control("POST", "/webhooks/sign", {"body": raw.decode(), **fields})
    assert status == 200, answer
    return answer["headers"]


def internet_time(epoch_s):
    return datetime.datetime.fromtimestamp(epoch_s, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class CountingFetch:
    """The real fetch, recording every URL it was asked for."""

    def __init__(self):
        self.urls = []

    async def __call__(self, url):
        self.urls.append(url)
        return await fetch_certificate(url)


def verifier_for(emulator, fetch, webhook_id=WEBHOOK_ID, extra_hosts=()):
    return WebhookVerifier(webhook_id, [emulator_host(emulator), *extra_hosts], max_age_s=MAX_AGE_S, fetch=fetch)


def refusal(emulator, headers, raw=RAW, now_s=None, **options):
    """(status, code, certificate fetches) of a delivery that must be refused."""
    fetch = CountingFetch()
    verifier = verifier_for(emulator, fetch, **options)
    with pytest.raises(WebhookRefused) as refused:
        run(verifier.verify(headers, raw, time.time() if now_s is None else now_s))
    return refused.value.status, refused.value.code, len(fetch.urls)


# --- genuine deliveries -----------------------------------------------------------------------

def test_genuine_delivery_verifies_and_yields_the_event(emulator):
    headers = signed(emulator)
    fetch = CountingFetch()
    # As Tornado hands them over: case-insensitive HTTPHeaders.
    event = run(verifier_for(emulator, fetch).verify(tornado.httputil.HTTPHeaders(headers), RAW, time.time()))
    assert event == EVENT
    assert fetch.urls == [headers["PAYPAL-CERT-URL"]]
    assert fetch.urls[0].startswith(emulator.url + "/v1/notifications/certs/CERT-")


def test_lowercase_header_names_are_accepted(emulator):
    headers = {name.lower(): value for name, value in signed(emulator).items()}
    assert run(verifier_for(emulator, CountingFetch()).verify(headers, RAW, time.time())) == EVENT


def test_certificate_fetched_once_for_many_deliveries(emulator):
    bodies = [json.dumps({**EVENT, "id": f"WH-{n}"}, separators=(",", ":")).encode() for n in range(12)]
    deliveries = [(signed(emulator, body), body) for body in bodies]

    async def scenario():
        fetch = CountingFetch()
        verifier = verifier_for(emulator, fetch)
        # Ten at once (they share one fetch in flight), then the rest one by one, then a forgery.
        events = await asyncio.gather(*(verifier.verify(h, b, time.time()) for h, b in deliveries[:10]))
        events += [await verifier.verify(h, b, time.time()) for h, b in deliveries[10:]]
        with pytest.raises(WebhookRefused):
            await verifier.verify(deliveries[0][0], bodies[1], time.time())
        return events, fetch.urls

    events, fetched = run(scenario())
    assert [event["id"] for event in events] == [f"WH-{n}" for n in range(12)]
    assert fetched == [deliveries[0][0]["PAYPAL-CERT-URL"]]


def test_a_failed_fetch_is_not_cached(emulator):
    headers, answers = signed(emulator), []

    async def flaky(url):
        answers.append(url)
        if len(answers) == 1:
            raise CertificateUnavailable("connection reset")
        return await fetch_certificate(url)

    async def scenario():
        verifier = WebhookVerifier(WEBHOOK_ID, [emulator_host(emulator)], fetch=flaky)
        with pytest.raises(WebhookRefused) as refused:
            await verifier.verify(headers, RAW, time.time())
        assert (refused.value.status, refused.value.code) == (503, "certificate_unavailable")
        return await verifier.verify(headers, RAW, time.time())  # PayPal's retry

    assert run(scenario()) == EVENT and len(answers) == 2


# --- forged, altered or misdirected deliveries ---------------------------------------------------

def test_reserialised_body_refused(emulator):
    """Same JSON, other bytes: the CRC is over the raw body, so parsing and re-encoding fails."""
    reserialised = json.dumps(json.loads(RAW)).encode()
    assert json.loads(reserialised) == EVENT and reserialised != RAW
    assert refusal(emulator, signed(emulator), reserialised) == (401, "bad_signature", 1)


def test_delivery_for_another_webhook_refused(emulator):
    assert refusal(emulator, signed(emulator, webhook_id="OTHERWEBHOOK")) == (401, "bad_signature", 1)
    assert refusal(emulator, signed(emulator), webhook_id="OTHERWEBHOOK") == (401, "bad_signature", 1)


def test_forged_signature_refused(emulator):
    headers = signed(emulator)
    # Signed correctly over the right message, but with a key that is not the certificate's.
    message = "|".join([headers["PAYPAL-TRANSMISSION-ID"], headers["PAYPAL-TRANSMISSION-TIME"], WEBHOOK_ID,
                        str(zlib.crc32(RAW) & 0xFFFFFFFF)]).encode()
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = base64.b64encode(other_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    assert refusal(emulator, {**headers, "PAYPAL-TRANSMISSION-SIG": forged}) == (401, "bad_signature", 1)
    # A genuine signature of another transmission.
    borrowed = signed(emulator, transmission_time=headers["PAYPAL-TRANSMISSION-TIME"])["PAYPAL-TRANSMISSION-SIG"]
    assert refusal(emulator, {**headers, "PAYPAL-TRANSMISSION-SIG": borrowed}) == (401, "bad_signature", 1)
    assert refusal(emulator, {**headers, "PAYPAL-TRANSMISSION-SIG": "not base64!"}) == (
        400, "invalid_signature_encoding", 0)


@pytest.mark.parametrize("offset_s", [-MAX_AGE_S - 100, -3600 * 24, MAX_AGE_S + 100])
def test_stale_or_future_transmission_time_refused_without_a_fetch(emulator, offset_s):
    headers = signed(emulator, transmission_time=internet_time(time.time() + offset_s))
    assert refusal(emulator, headers) == (401, "stale", 0)


@pytest.mark.parametrize("offset_s", [-MAX_AGE_S + 60, MAX_AGE_S - 60])
def test_transmission_time_within_the_window_verifies(emulator, offset_s):
    headers = signed(emulator, transmission_time=internet_time(time.time() + offset_s))
    assert run(verifier_for(emulator, CountingFetch()).verify(headers, RAW, time.time())) == EVENT


@pytest.mark.parametrize("transmission_time", ["yesterday", "2026-03-06T19:00:00"])  # no zone
def test_unreadable_transmission_time_refused(emulator, transmission_time):
    assert refusal(emulator, signed(emulator, transmission_time=transmission_time)) == (
        400, "invalid_transmission_time", 0)


# The cert URL is not covered by the signature: a forger points it at a certificate of their own.
@pytest.mark.parametrize("cert_url", [
    "http://127.0.0.1:{other_port}{path}",             # another port on the same machine
    "http://localhost:{port}{path}",                    # the emulator under a name not allowed
    "http://127.0.0.1:{port}@evil.example{path}",       # user-info trick: the host is evil.example
    "ftp://127.0.0.1:{port}{path}",
    "https://evil.example{path}",                       # https, not PayPal
    "https://api.paypal.com.evil.example{path}",
    "https://evil.example{path}?https://api.paypal.com",
    "https://www.paypal.com{path}",                     # PayPal, but not one of its API hosts
    "http://api.paypal.com{path}",                      # PayPal over plain http
    "https://api.paypal.com:8443{path}",
])
def test_certificate_url_off_the_allowed_hosts_refused_without_a_fetch(emulator, cert_url):
    headers = signed(emulator)
    parts = urllib.parse.urlsplit(headers["PAYPAL-CERT-URL"])
    url = cert_url.format(port=parts.port, other_port=free_port(), path=parts.path)
    assert refusal(emulator, {**headers, "PAYPAL-CERT-URL": url}) == (401, "untrusted_cert_url", 0)


@pytest.mark.parametrize("name", REQUIRED_HEADERS)
def test_missing_header_refused(emulator, name):
    headers = signed(emulator)
    assert refusal(emulator, {k: v for k, v in headers.items() if k != name}) == (400, "missing_header", 0)
    assert refusal(emulator, {**headers, name: ""}) == (400, "missing_header", 0)


@pytest.mark.parametrize("algo", ["SHA1withRSA", "SHA256withECDSA", "none"])
def test_other_auth_algo_refused(emulator, algo):
    assert refusal(emulator, {**signed(emulator), "PAYPAL-AUTH-ALGO": algo}) == (400, "unsupported_auth_algo", 0)


@pytest.mark.parametrize("raw", [b"", b"not json", b'["PAYMENT.CAPTURE.COMPLETED"]', b'"an event"', b"[" * 100000])
def test_signed_body_that_is_not_a_json_object_refused(emulator, raw):
    assert refusal(emulator, signed(emulator, raw), raw) == (400, "invalid_body", 1)


def test_certificate_outside_its_validity_refused(emulator):
    """The emulator's certificate is valid from its start for 365 days."""
    later_s = time.time() + 400 * 86400
    expired = signed(emulator, transmission_time=internet_time(later_s))
    assert refusal(emulator, expired, now_s=later_s) == (401, "bad_certificate", 1)
    earlier_s = time.time() - 86400
    not_yet = signed(emulator, transmission_time=internet_time(earlier_s))
    assert refusal(emulator, not_yet, now_s=earlier_s) == (401, "bad_certificate", 1)


# --- the default fetch ----------------------------------------------------------------------------

class Redirect(tornado.web.RequestHandler):
    def initialize(self, to):
        self.to = to

    def get(self):
        self.redirect(self.to)


class Huge(tornado.web.RequestHandler):
    def get(self):
        self.finish(b"-----BEGIN CERTIFICATE-----\n" + b"A" * 200_000)


class NotACertificate(tornado.web.RequestHandler):
    def get(self):
        self.finish(b"<html>maintenance</html>")


@pytest.mark.parametrize("path, status, code", [
    ("/redirect", 503, "certificate_unavailable"),   # to the real certificate: still not followed
    ("/huge", 503, "certificate_unavailable"),       # over the size cap
    ("/missing", 503, "certificate_unavailable"),
    ("/garbage", 401, "bad_certificate"),
])
def test_default_fetch_follows_no_redirect_and_caps_the_size(emulator, path, status, code):
    headers = signed(emulator)

    async def scenario():
        sock, port = tornado.testing.bind_unused_port()
        server = tornado.httpserver.HTTPServer(tornado.web.Application([
            (r"/redirect", Redirect, {"to": headers["PAYPAL-CERT-URL"]}), (r"/huge", Huge),
            (r"/garbage", NotACertificate)]))
        server.add_sockets([sock])
        try:
            verifier = WebhookVerifier(WEBHOOK_ID, [emulator_host(emulator), f"127.0.0.1:{port}"])
            with pytest.raises(WebhookRefused) as refused:
                await verifier.verify({**headers, "PAYPAL-CERT-URL": f"http://127.0.0.1:{port}{path}"}, RAW,
                                      time.time())
            return refused.value
        finally:
            server.stop()

    refused = run(scenario())
    assert (refused.status, refused.code) == (status, code)
