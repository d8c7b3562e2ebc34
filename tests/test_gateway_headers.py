"""What the gateway shows to whom, through a running system: pages only at their routes (with
their security headers), HTTPS kept to (HSTS, Secure cookies) whether TLS ends here or at a
proxy in front, and /healthz's detail only for a caller on the gateway's machine."""
import signal
import socket

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.kit.client import PASSWORD, Member
from tests.kit.system import run
from tests.test_accounts import cookie_flags, self_signed_cert, set_cookie_line  # noqa: F401 (a fixture)
from tests.test_serve import Serve

PAGES_UNDER_STATIC = ["login.html", "directory.html", "call.html", "account.html", "operator-refunds.html",
                      "README.md", "js/../login.html", "js/%2e%2e/login.html"]
STATIC_FILES = ["js/page.js", "css/app.css", "img/favicon.svg", "vendor/msgpack/decode.mjs"]
HEALTH_DETAIL = {"database", "actors"}


# Pages only at their routes ------------------------------------------------------------------

@pytest.mark.parametrize("path", PAGES_UNDER_STATIC)
def test_pages_are_not_served_under_static_without_their_headers(system, path):
    async def scenario():
        answer = await Member(system.url).request("GET", "/static/" + path, xsrf=False)
        assert answer.code == 404, answer.body[:200]
        assert b"<form" not in answer.body
    run(scenario())


@pytest.mark.parametrize("path", STATIC_FILES)
def test_scripts_styles_and_images_are_served_under_static(system, path):
    async def scenario():
        answer = await Member(system.url).request("GET", "/static/" + path, xsrf=False)
        assert answer.code == 200 and answer.body
    run(scenario())


# HTTPS: HSTS and Secure cookies ---------------------------------------------------------------

def test_over_plain_http_there_is_no_hsts_and_cookies_are_not_secure(system):
    async def scenario():
        member = Member(system.url)
        page = await member.request("GET", "/login", xsrf=False)
        assert "Strict-Transport-Security" not in page.headers
        assert "secure" not in cookie_flags(set_cookie_line(page, "_xsrf"))
    run(scenario())


def test_behind_a_tls_terminating_proxy_cookies_are_secure_and_hsts_is_sent(tmp_path):
    """public_url is https, the gateway itself speaks plain HTTP to the proxy in front."""
    serve = Serve(tmp_path / "var", IK_PUBLIC_URL="https://interkanect.example/")
    try:
        serve.start()

        async def scenario():
            member = Member(serve.url)
            page = await member.request("GET", "/login", xsrf=False)
            assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
            assert "secure" in cookie_flags(set_cookie_line(page, "_xsrf"))
            answer = await member.request("POST", "/api/signup", {"email": member.email, "password": PASSWORD,
                                                                  "display_name": "Behind A Proxy"})
            assert answer.code == 201, answer.body
            flags = cookie_flags(set_cookie_line(answer, "ik_session"))
            assert {"secure", "httponly"} <= set(flags)
            assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"
            for path in ("/static/css/app.css", "/no/such/page"):
                assert "Strict-Transport-Security" in (await member.request("GET", path, xsrf=False)).headers
        run(scenario())
    finally:
        code, left = serve.stop(signal.SIGTERM)
    assert code == 0 and left == []


def test_with_tls_here_every_answer_carries_hsts(system_with, self_signed_cert):  # noqa: F811
    cert, key = self_signed_cert
    system = system_with(tls_cert_file=str(cert), tls_key_file=str(key))

    async def scenario():
        client = AsyncHTTPClient(defaults={"ca_certs": str(cert)})  # the one Member reuses on this loop
        member = Member(system.url)
        for path in ("/", "/static/js/page.js", "/api/me", "/healthz"):
            answer = await member.request("GET", path, xsrf=False)
            assert answer.headers["Strict-Transport-Security"] == "max-age=31536000", path
        client.close()
    run(scenario())


# /healthz ---------------------------------------------------------------------------------------

def non_loopback_address():
    """An address of this machine that is not loopback (the route out; nothing is sent), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_healthz_shows_its_detail_to_a_caller_on_this_machine(system):
    async def scenario():
        answer = await Member(system.url).request("GET", "/healthz", xsrf=False)
        report = answer.json()
        assert answer.code == 200 and report["ok"] is True and report["paypal"] == "emulator"
        assert report["actors"]["nodes"] and report["actors"]["placement"] and report["database"]["ok"]
    run(scenario())


def test_healthz_behind_a_proxy_on_this_machine_says_only_ok(system):
    """The proxy is a loopback peer for everyone behind it; its forwarding header gives it away."""
    async def scenario():
        for header in ("X-Forwarded-For", "X-Real-Ip", "Forwarded"):
            value = "for=203.0.113.9" if header == "Forwarded" else "203.0.113.9"
            answer = await Member(system.url).request("GET", "/healthz", xsrf=False, headers={header: value})
            assert answer.code == 200 and answer.json() == {"ok": True, "paypal": "emulator"}, header
    run(scenario())


def test_healthz_from_another_machine_says_only_ok(system_with):
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    system = system_with(host=address)      # the gateway listens there; we call from that address

    async def scenario():
        answer = await Member(system.url).request("GET", "/healthz", xsrf=False)
        assert answer.code == 200 and answer.json() == {"ok": True, "paypal": "emulator"}
        assert not HEALTH_DETAIL & set(answer.json())
    run(scenario())
