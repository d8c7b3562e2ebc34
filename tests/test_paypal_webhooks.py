"""The gateway's offline check of PayPal webhooks (gateway/paypal_webhooks.py) against a real
emulator, which serves its certificate and signs any body, time and webhook id
(`POST /emulator/webhooks/sign`). Each refusal is checked for its status and code, and for
fetching no certificate when a cheaper check already refused; at the end, forged deliveries to a
running gateway's /paypal/webhook, counted at the emulator's certificate URL."""
import asyncio
import base64
import datetime
import json
import time
import urllib.parse
import urllib.request
import zlib

import pytest
import tornado.httpserver
import tornado.httputil
import tornado.testing
import tornado.web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.paypal_webhooks import (CERT_PATH, REQUIRED_HEADERS, CertificateUnavailable, WebhookRefused,
                                     WebhookVerifier, fetch_certificate)
from tests.kit.client import Member
from tests.kit.system import free_port, run
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
    # PayPal's own path shape: /v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77
    assert fetch.urls[0].startswith(emulator.url + "/v1/notifications/certs/CERT-")
    assert CERT_PATH.fullmatch(urllib.parse.urlsplit(fetch.urls[0]).path)


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


def test_a_failed_fetch_is_remembered_briefly_then_tried_again(emulator):
    memory_s, answers = 60, []
    first_s = time.time()
    later_s = first_s + memory_s + 1
    now_headers = signed(emulator)
    later_headers = signed(emulator, transmission_time=internet_time(later_s))

    async def flaky(url):
        answers.append(url)
        if len(answers) == 1:
            raise CertificateUnavailable("connection reset")
        return await fetch_certificate(url)

    async def scenario():
        verifier = WebhookVerifier(WEBHOOK_ID, [emulator_host(emulator)], fetch=flaky, failure_memory_s=memory_s)
        for at_s in (first_s, first_s + 1, first_s + memory_s - 1):  # a flood naming it: one fetch
            with pytest.raises(WebhookRefused) as refused:
                await verifier.verify(now_headers, RAW, at_s)
            assert (refused.value.status, refused.value.code) == (503, "certificate_unavailable")
        assert len(answers) == 1
        return await verifier.verify(later_headers, RAW, later_s)  # PayPal's retry, a minute on

    assert run(scenario()) == EVENT and len(answers) == 2


def test_the_certificate_cache_is_bounded(emulator):
    """Certificates are kept least recently used first; past the bound the oldest is fetched again."""
    headers = signed(emulator)
    pem = urllib.request.urlopen(headers["PAYPAL-CERT-URL"], timeout=5).read()
    base = urllib.parse.urlsplit(headers["PAYPAL-CERT-URL"])
    urls = [f"{base.scheme}://{base.netloc}/v1/notifications/certs/CERT-{n:08x}-fca2a594-a5cafa77" for n in range(4)]
    fetched = []

    async def same_certificate(url):
        fetched.append(url)
        return pem

    async def scenario():
        verifier = WebhookVerifier(WEBHOOK_ID, [emulator_host(emulator)], fetch=same_certificate, cache_max=3)
        for url in urls[:3] + [urls[0]] + [urls[3]] + [urls[1], urls[0]]:
            await verifier.verify({**headers, "PAYPAL-CERT-URL": url}, RAW, time.time())

    run(scenario())
    # urls[0] was used again before urls[3] came, so urls[1] was the one forgotten.
    assert fetched == urls[:3] + [urls[3], urls[1]]


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


# An allowed host is not enough: only the certificate path is fetched (PayPal's hosts serve
# much else, and the emulator's /emulator control API is on its host).
@pytest.mark.parametrize("cert_url", [
    "{base}/emulator/health",
    "{base}/v1/notifications/certs/../../../emulator/health",
    "{base}/v1/notifications/certs/%2e%2e/%2e%2e/%2e%2e/emulator/health",
    "{base}{path}/../../../../emulator/health",
    "{base}{path}?then=/emulator/health",
    "{base}{path}#fragment",
    "{base}{path}/",
    "{base}/v1/notifications/certs/CERT-1",
    "{base}/v1/notifications/certs/CERT-360CAA42-FCA2A594-A5CAFA77",
    "https://api.paypal.com/v1/oauth2/token",
    "https://api.paypal.com/v1/notifications/certs/",
    "https://api-m.sandbox.paypal.com/v1/notifications/webhooks-events/WH-1",
])
def test_certificate_url_off_paypals_certificate_path_refused_without_a_fetch(emulator, cert_url):
    headers = signed(emulator)
    path = urllib.parse.urlsplit(headers["PAYPAL-CERT-URL"]).path
    url = cert_url.format(base=emulator.url, path=path)
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


CERTS = "/v1/notifications/certs/"
REDIRECT, HUGE, MISSING, GARBAGE = (f"CERT-{n:08x}-00000000-00000000" for n in range(4))


@pytest.mark.parametrize("cert_id, status, code", [
    (REDIRECT, 503, "certificate_unavailable"),   # to the real certificate: still not followed
    (HUGE, 503, "certificate_unavailable"),       # over the size cap
    (MISSING, 503, "certificate_unavailable"),
    (GARBAGE, 401, "bad_certificate"),
])
def test_default_fetch_follows_no_redirect_and_caps_the_size(emulator, cert_id, status, code):
    headers = signed(emulator)
    path = CERTS + cert_id

    async def scenario():
        sock, port = tornado.testing.bind_unused_port()
        server = tornado.httpserver.HTTPServer(tornado.web.Application([
            (CERTS + REDIRECT, Redirect, {"to": headers["PAYPAL-CERT-URL"]}), (CERTS + HUGE, Huge),
            (CERTS + GARBAGE, NotACertificate)]))
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


# --- forged deliveries to a running gateway --------------------------------------------------------

def system_emulator(system, method, path, body=None):
    request = urllib.request.Request(system.settings.paypal_url + "/emulator" + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.load(answer)


def certificate_fetches(system, url):
    path = urllib.parse.urlsplit(url).path
    return len(system_emulator(system, "GET", f"/requests?path={urllib.parse.quote(path)}")["requests"])


async def deliver(system, headers, raw=RAW):
    """POST to the gateway's /paypal/webhook as PayPal would: (status, error code or None)."""
    answer = await Member(system.url).request("POST", "/paypal/webhook", raw=raw, xsrf=False,
                                              headers={**headers, "Content-Type": "application/json"})
    return answer.code, (answer.json().get("error") or {}).get("code")


def test_a_forged_webhook_naming_another_path_of_the_emulator_makes_the_gateway_fetch_nothing(system):
    headers = system_emulator(system, "POST", "/webhooks/sign", {"body": RAW.decode()})["headers"]
    control = system.settings.paypal_url + "/emulator/health"

    async def scenario():
        return await deliver(system, {**headers, "PAYPAL-CERT-URL": control})
    assert run(scenario()) == (401, "untrusted_cert_url")


def test_forged_webhooks_naming_one_certificate_fetch_it_once(system):
    headers = system_emulator(system, "POST", "/webhooks/sign", {"body": RAW.decode()})["headers"]
    base = urllib.parse.urlsplit(headers["PAYPAL-CERT-URL"])
    # PayPal's path shape on the emulator's host, but no certificate there: each fetch is a 404.
    unknown = f"{base.scheme}://{base.netloc}/v1/notifications/certs/CERT-0badc0de-0badc0de-0badc0de"
    genuine = headers["PAYPAL-CERT-URL"]

    async def scenario():
        answers = [await deliver(system, {**headers, "PAYPAL-CERT-URL": unknown}) for _ in range(10)]
        assert answers == [(503, "certificate_unavailable")] * 10
        # The genuine certificate with a forged signature: fetched (at most) once, then kept.
        forged = {**headers, "PAYPAL-TRANSMISSION-SIG": base64.b64encode(b"x" * 256).decode()}
        answers = [await deliver(system, forged) for _ in range(10)]
        assert answers == [(401, "bad_signature")] * 10
    run(scenario())
    assert certificate_fetches(system, unknown) == 1
    assert certificate_fetches(system, genuine) <= 1
