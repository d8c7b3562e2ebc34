"""Accounts through the real path (HTTP client → gateway → database): sign up, log in and
out, the session cookie, XSRF, log-in throttling, and password reset by a one-time token
mailed to the outbox (no SMTP configured) or over SMTP (aiosmtpd on loopback). Tests that need
their own policy serve the gateway's application in this process (tests/inprocess.py)."""
import asyncio
import email
import hashlib
import re
import secrets
import shutil
import subprocess
import threading

import pytest
from aiosmtpd.controller import Controller
from tornado.httpclient import AsyncHTTPClient

from tests.inprocess import http_system_with  # noqa: F401 (a fixture)
from tests.kit.client import PASSWORD, Member
from tests.kit.system import free_port, run
from tests.kit.waiting import wait_for

NEW_PASSWORD = "a whole new passphrase"
RESET_LINK = re.compile(r"/reset\?token=([A-Za-z0-9_-]+)")
LOG_BOUND_S = 5.0  # the gateway writes its access line as it answers; allow a slow disk


def copy_of(member):
    """Another client holding the same cookies: the old session as a thief or stale tab keeps it."""
    other = Member(member.base_url, member.email)
    other.cookies = dict(member.cookies)
    return other


def set_cookie_line(answer, name):
    lines = [line for line in answer.headers.get_list("Set-Cookie") if line.startswith(name + "=")]
    assert len(lines) == 1, answer.headers.get_list("Set-Cookie")
    return lines[0]


def cookie_flags(line):
    return {part.strip().split("=")[0].lower(): part.strip() for part in line.split(";")[1:]}


def outbox_mails(system):
    """The mails `interkanect mail outbox` prints, as (to, body) pairs, oldest first."""
    printed = system.cli("mail", "outbox")
    assert printed.returncode == 0, printed.stderr
    mails = []
    for block in printed.stdout.split("--- ")[1:]:
        header, _, body = block.partition("\n\n")
        mails.append((re.search(r"to: (\S+)", header).group(1), body))
    return mails


def reset_token_from_outbox(system, address):
    bodies = [body for to, body in outbox_mails(system) if to == address]
    assert bodies, f"no mail to {address} in the outbox"
    return RESET_LINK.search(bodies[-1]).group(1)


async def ask_reset(member):
    answer = await member.request("POST", "/api/password-reset", {"email": member.email})
    assert answer.code == 202, answer.body
    return answer


async def confirm_reset(member, token, password=NEW_PASSWORD):
    return await member.request("POST", "/api/password-reset/confirm", {"token": token, "password": password})


def wait_for_log(system, text):
    """The gateway log once it holds `text` (bounded), so an absence checked after is meaningful."""
    path = system.log_dir / "gateway.log"
    def holding():
        log = path.read_text(errors="replace")
        return log if text in log else None
    return wait_for(holding, f"{text!r} in {path}", timeout_s=LOG_BOUND_S)


# Sign up ---------------------------------------------------------------------------------

def test_sign_up_starts_a_session_for_a_free_member_with_an_argon2id_hash(system):
    async def scenario():
        member = Member(system.url, email=f"Ann.{secrets.token_hex(4)}@Example.COM")
        answer = await member.request("POST", "/api/signup", {"email": member.email, "password": PASSWORD,
                                                              "display_name": "  Ann Expert "})
        assert answer.code == 201, answer.body
        profile = answer.json()["member"]
        assert profile["email"] == member.email.lower()
        assert (profile["display_name"], profile["tier"], profile["can_charge"]) == ("Ann Expert", "free", False)
        me = await member.request("GET", "/api/me")
        assert me.code == 200 and me.json()["member"] == profile

        flags = cookie_flags(set_cookie_line(answer, "ik_session"))
        assert "httponly" in flags and flags["samesite"].lower() == "samesite=lax" and flags["path"] == "Path=/"
        assert "secure" not in flags  # plain HTTP here; the TLS test checks Secure

        stored = system.db.members.find_one({"email": member.email.lower()})
        assert stored["password_hash"].startswith("$argon2id$")
        assert PASSWORD not in str(stored)
    run(scenario())


@pytest.mark.parametrize("body, code", [
    ({"email": "no-at-sign.example.com"}, "invalid_email"),
    ({"email": "someone@localhost"}, "invalid_email"),
    ({"email": "two words@example.com"}, "invalid_email"),
    ({"email": "x" * 250 + "@example.com"}, "invalid_email"),
    ({"email": 42}, "invalid_email"),
    ({"password": "short"}, "weak_password"),
    ({"password": "x" * 257}, "weak_password"),
    ({"password": ["a list", "of words"]}, "weak_password"),
    ({"display_name": "   "}, "invalid_display_name"),
    ({"display_name": "x" * 81}, "invalid_display_name"),
    ({"display_name": None}, "invalid_display_name"),
    ({"display_name": "Ann\u202eNOSLIW"}, "invalid_display_name"),  # a bidi override turns the name round
    ({"display_name": "Ann\x00Admin"}, "invalid_display_name"),
    ({"display_name": "Ann\nSupport team"}, "invalid_display_name"),
    (b'{"email": "a@example.com", ', "invalid_json"),
    (b"\xff\xfe not utf-8", "invalid_json"),
    (b"[" * 100_000, "invalid_json"),  # deeper than the JSON parser recurses: still bad input
    (b'["a@example.com", "correct horse battery"]', "invalid_body"),
    (b'"just a string"', "invalid_body"),
    (b"", "invalid_body"),
])
def test_sign_up_with_bad_input_is_refused_and_creates_nothing(system, body, code):
    async def scenario():
        member = Member(system.url)
        if isinstance(body, dict):
            answer = await member.request("POST", "/api/signup", dict(
                {"email": member.email, "password": PASSWORD, "display_name": "Bad Input"}, **body))
        else:
            answer = await member.request("POST", "/api/signup", raw=body, headers={"Content-Type": "application/json"})
        assert (answer.code, answer.error_code) == (400, code), answer.body
        assert answer.json()["error"]["message"]
        assert "ik_session" not in member.cookies
        assert system.db.members.count_documents({"display_name": "Bad Input"}) == 0
    run(scenario())


# Log in and out --------------------------------------------------------------------------

def test_log_in_with_the_right_password_whatever_the_email_case(system):
    async def scenario():
        member = await Member(system.url).sign_up("Returning")
        device = Member(system.url, member.email.upper())
        answer = await device.log_in()
        assert answer.code == 200 and answer.json()["member"]["id"] == member.id
        assert "httponly" in cookie_flags(set_cookie_line(answer, "ik_session"))
        assert (await device.request("GET", "/api/me")).json()["member"]["id"] == member.id
    run(scenario())


def test_a_wrong_password_and_an_unknown_email_get_the_same_401(system):
    async def scenario():
        member = await Member(system.url).sign_up()
        wrong = await Member(system.url, member.email).log_in(password="not the password")
        unknown = await Member(system.url).log_in()
        assert wrong.code == unknown.code == 401
        assert wrong.json() == unknown.json()  # nothing tells an account exists
        assert wrong.error_code == "bad_credentials"
        assert "ik_session" not in wrong.headers.get("Set-Cookie", "")
    run(scenario())


def test_log_in_with_bad_input_gets_a_clear_error(system):
    async def scenario():
        client = Member(system.url)
        answer = await client.request("POST", "/api/login", {"email": "not an email", "password": PASSWORD})
        assert (answer.code, answer.error_code) == (400, "invalid_email")
        answer = await client.request("POST", "/api/login", raw=b"{oops", headers={"Content-Type": "application/json"})
        assert (answer.code, answer.error_code) == (400, "invalid_json")
        answer = await client.request("POST", "/api/login", raw=b"[1, 2]", headers={"Content-Type": "application/json"})
        assert (answer.code, answer.error_code) == (400, "invalid_body")
    run(scenario())


def test_log_out_ends_that_session_on_the_server_and_no_other(system):
    async def scenario():
        member = await Member(system.url).sign_up()
        stale_tab = copy_of(member)
        laptop = Member(system.url, member.email)
        assert (await laptop.log_in()).code == 200

        answer = await member.request("POST", "/api/logout")
        assert answer.code == 204
        assert "ik_session" not in member.cookies  # the browser's cookie is cleared
        assert (await member.request("GET", "/api/me")).code == 401
        # A copy of the old cookie opens nothing: the session is gone from the server.
        refused = await stale_tab.request("GET", "/api/me")
        assert (refused.code, refused.error_code) == (401, "not_logged_in")
        assert (await laptop.request("GET", "/api/me")).code == 200
    run(scenario())


# XSRF --------------------------------------------------------------------------------------

STATE_CHANGING = [
    ("POST", "/api/signup"), ("POST", "/api/login"), ("POST", "/api/logout"), ("POST", "/api/password-reset"),
    ("POST", "/api/password-reset/confirm"), ("PATCH", "/api/me"), ("PUT", "/api/me/avatar"),
]


@pytest.mark.parametrize("token", [None, "forged-token"], ids=["missing", "forged"])
def test_every_state_changing_request_without_the_xsrf_token_is_refused_and_changes_nothing(system, token):
    async def scenario():
        member = await Member(system.url).sign_up("Guarded")
        newcomer = f"x{secrets.token_hex(6)}@example.com"
        bodies = {"/api/signup": {"email": newcomer, "password": PASSWORD, "display_name": "Sneaky"},
                  "/api/login": {"email": member.email, "password": PASSWORD},
                  "/api/password-reset": {"email": member.email},
                  "/api/password-reset/confirm": {"token": "whatever", "password": NEW_PASSWORD},
                  "/api/me": {"display_name": "Defaced"}}
        for method, path in STATE_CHANGING:
            raw = b"\x89PNG\r\n\x1a\n" + b"0" * 64 if path == "/api/me/avatar" else None
            headers = {"X-XSRFToken": token} if token else {}
            answer = await member.request(method, path, bodies.get(path), raw=raw, headers=headers, xsrf=False)
            assert (answer.code, answer.error_code) == (403, "xsrf"), (method, path, answer.body)
        me = await member.request("GET", "/api/me")
        assert me.code == 200  # not logged out
        assert me.json()["member"]["display_name"] == "Guarded" and not me.json()["member"]["has_avatar"]
        assert system.db.members.count_documents({"email": newcomer}) == 0
        assert [to for to, _ in outbox_mails(system) if to == member.email] == []
    run(scenario())


# Log-in throttling -------------------------------------------------------------------------

# A minute's slow-down, so that only the reset can let the owner in at once.
THROTTLE = dict(login_failures_per_account=3, login_failures_per_address=5, login_slowdown_s=60)


def test_log_in_is_slowed_down_per_account_until_a_password_reset(http_system_with):
    system = http_system_with(**THROTTLE)

    async def scenario():
        member = await Member(system.url).sign_up()
        attacker = Member(system.url, member.email)
        for _ in range(3):
            assert (await attacker.log_in(password="guess guess guess")).code == 401
        # Now even the right password waits: the account is under attack.
        answer = await Member(system.url, member.email).log_in()
        assert (answer.code, answer.error_code) == (429, "too_many_attempts")
        assert 0 < int(answer.headers["Retry-After"]) <= 60
        assert "ik_session" not in answer.headers.get("Set-Cookie", "")
        # Another account from the same address is not locked by it.
        other = await Member(system.url).sign_up()
        assert (await Member(system.url, other.email).log_in()).code == 200
        # The owner's way out: a reset lifts the lock.
        await ask_reset(member)
        assert (await confirm_reset(member, reset_token_from_outbox(system, member.email))).code == 204
        assert (await Member(system.url, member.email).log_in(NEW_PASSWORD)).code == 200
    run(scenario())


def test_log_in_is_throttled_per_address(http_system_with):
    system = http_system_with(**THROTTLE)

    async def scenario():
        member = await Member(system.url).sign_up()
        # One failure on each of five accounts: no account reaches its own limit.
        for _ in range(5):
            assert (await Member(system.url).log_in(password="spraying passwords")).code == 401
        answer = await Member(system.url, member.email).log_in()
        assert (answer.code, answer.error_code) == (429, "too_many_attempts")
        assert int(answer.headers["Retry-After"]) > 0
        assert answer.json()["error"]["message"]
    run(scenario())


# Password reset ----------------------------------------------------------------------------

def test_password_reset_through_the_outbox_end_to_end(system):
    async def scenario():
        member = await Member(system.url).sign_up("Forgetful")
        old_session = copy_of(member)
        phone = Member(system.url, member.email)
        assert (await phone.log_in()).code == 200

        asked = await ask_reset(Member(system.url, member.email))
        stranger = Member(system.url)  # an email nobody signed up with: the same answer, and no mail
        assert (await ask_reset(stranger)).json() == asked.json()
        mails = outbox_mails(system)
        assert [to for to, _ in mails if to == stranger.email] == []
        [body] = [body for to, body in mails if to == member.email]
        assert f"{system.url}/reset?token=" in body and PASSWORD not in body
        token = RESET_LINK.search(body).group(1)

        # A weak new password is refused and does not spend the token.
        weak = await confirm_reset(Member(system.url), token, password="short")
        assert (weak.code, weak.error_code) == (400, "weak_password")
        assert (await confirm_reset(Member(system.url), token)).code == 204

        assert (await Member(system.url, member.email).log_in(PASSWORD)).code == 401
        assert (await Member(system.url, member.email).log_in(NEW_PASSWORD)).code == 200
        reused = await confirm_reset(Member(system.url), token, password="yet another passphrase")
        assert (reused.code, reused.error_code) == (400, "invalid_token")
        assert (await Member(system.url, member.email).log_in(NEW_PASSWORD)).code == 200
        # Whoever knew the old password is out: every session before the reset has ended.
        for before in (old_session, phone):
            assert (await before.request("GET", "/api/me")).code == 401
    run(scenario())


def test_a_forged_missing_or_expired_reset_token_is_refused_and_changes_nothing(system):
    async def scenario():
        member = await Member(system.url).sign_up()
        client = Member(system.url)
        for token in (secrets.token_urlsafe(32), "", None, 12345, ["a", "b"]):
            answer = await confirm_reset(client, token)
            assert (answer.code, answer.error_code) == (400, "invalid_token"), token

        await ask_reset(member)
        token = reset_token_from_outbox(system, member.email)
        # The link's hour has passed (moved in the database rather than waited for).
        stored = {"_id": hashlib.sha256(token.encode()).hexdigest()}
        created_at = system.db.reset_tokens.find_one(stored)["created_at"]
        system.db.reset_tokens.update_one(stored, {"$set": {"expires_at": created_at}})
        expired = await confirm_reset(client, token)
        assert (expired.code, expired.error_code) == (400, "invalid_token")
        assert "ask for a new one" in expired.json()["error"]["message"]
        assert (await Member(system.url, member.email).log_in(PASSWORD)).code == 200
        assert (await member.request("GET", "/api/me")).code == 200
    run(scenario())


def test_a_reset_voids_the_other_links_sent_before_it(system):
    async def scenario():
        member = await Member(system.url).sign_up()
        await ask_reset(member)
        first = reset_token_from_outbox(system, member.email)
        await ask_reset(member)
        second = reset_token_from_outbox(system, member.email)
        assert first != second
        assert (await confirm_reset(member, second)).code == 204
        # An older mail found later (in a shared inbox, say) must not reset the password again.
        late = await confirm_reset(Member(system.url), first, password="the attacker's choice")
        assert (late.code, late.error_code) == (400, "invalid_token")
        assert (await Member(system.url, member.email).log_in(NEW_PASSWORD)).code == 200
    run(scenario())


def test_no_password_or_reset_token_reaches_the_gateway_log(system):
    async def scenario():
        first, second = "first secret " + secrets.token_hex(8), "second secret " + secrets.token_hex(8)
        member = await Member(system.url).sign_up(password=first)
        assert (await Member(system.url, member.email).log_in(first)).code == 200
        assert (await Member(system.url, member.email).log_in(first + "typo")).code == 401
        await ask_reset(member)
        token = reset_token_from_outbox(system, member.email)
        # The mailed link opens the reset page: its address holds the token.
        page = await Member(system.url).request("GET", "/reset?token=" + token, xsrf=False)
        assert page.code == 200
        assert (await confirm_reset(member, token, second)).code == 204
        assert (await Member(system.url, member.email).log_in(second)).code == 200
        log = wait_for_log(system, "POST /api/password-reset/confirm")
        wait_for_log(system, "GET /reset")
        for secret in (first, second, first + "typo", token):
            assert secret not in log
    run(scenario())


class RecordingSMTP:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self):
        self.messages = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.original_content)))
        self.arrived.set()
        return "250 OK"


@pytest.fixture
def smtp_server():
    handler = RecordingSMTP()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller
    controller.stop()


def test_password_reset_over_smtp_mails_the_link_and_no_password(system_with, smtp_server):
    system = system_with(smtp_host="127.0.0.1", smtp_port=smtp_server.port)   # a process: its log is read
    handler = smtp_server.handler

    async def scenario():
        member = await Member(system.url).sign_up("Mailed", password=PASSWORD)
        await ask_reset(Member(system.url, member.email))
        assert await asyncio.to_thread(handler.arrived.wait, 10), "no mail reached the SMTP server"
        [(recipients, message)] = handler.messages
        assert recipients == [member.email] and message["To"] == member.email
        assert "reset" in message["Subject"].lower()
        body = message.get_payload(decode=True).decode()
        assert f"{system.url}/reset?token=" in body and "Mailed" in body
        assert PASSWORD not in message.as_string()
        assert system.db.outbox.count_documents({}) == 0  # sent, not kept

        token = RESET_LINK.search(body).group(1)
        assert (await confirm_reset(Member(system.url), token)).code == 204
        assert (await Member(system.url, member.email).log_in(NEW_PASSWORD)).code == 200
        log = wait_for_log(system, "POST /api/password-reset/confirm")
        assert PASSWORD not in log and NEW_PASSWORD not in log
    run(scenario())


# TLS ---------------------------------------------------------------------------------------

@pytest.fixture
def self_signed_cert(tmp_path):
    """A certificate for 127.0.0.1 made by the openssl command line tool."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_over_tls_the_session_and_xsrf_cookies_are_secure(system_with, self_signed_cert):
    cert, key = self_signed_cert
    system = system_with(tls_cert_file=str(cert), tls_key_file=str(key))
    assert system.url.startswith("https://")

    async def scenario():
        # The first AsyncHTTPClient() on this loop is the one Member reuses: make it trust our cert.
        client = AsyncHTTPClient(defaults={"ca_certs": str(cert)})
        member = Member(system.url)
        page = await member.request("GET", "/login", xsrf=False)
        assert "secure" in cookie_flags(set_cookie_line(page, "_xsrf"))
        answer = await member.request("POST", "/api/signup", {"email": member.email, "password": PASSWORD,
                                                              "display_name": "Over TLS"})
        assert answer.code == 201, answer.body
        flags = cookie_flags(set_cookie_line(answer, "ik_session"))
        assert {"secure", "httponly"} <= set(flags) and flags["samesite"].lower() == "samesite=lax"
        assert (await member.request("GET", "/api/me")).json()["member"]["display_name"] == "Over TLS"
        client.close()
    run(scenario())
