"""Accounts under abuse, through the real path (HTTP client → gateway → database; the pages in
Chromium; the throttling tests against the gateway's application served in this process, with
no actor node: tests/inprocess.py): guesses at once, a slowed-down but never locked-out owner, clients behind a trusted
proxy, sign-up and reset floods, sign-up probing for registered emails, and the payout email
changed with a stolen session (issue 13, "Accounts")."""
import asyncio
import secrets
import time

import pytest
from tornado.httpclient import AsyncHTTPClient

from gateway.throttle import address_key, client_address, slowdown_s, trusted_networks
from tests.inprocess import http_system_with  # noqa: F401 (a fixture)
from tests.kit.client import PASSWORD, Member
from tests.kit.system import run
from tests.kit.waiting import wait_for
from tests.test_accounts import outbox_mails

WRONG = "not the password at all"
PROXY = ("127.0.0.1",)  # the test client's address: it plays the load balancer


def behind_proxy(address):
    return {"X-Forwarded-For": address}


async def ready(clients):
    """Each client holds its XSRF cookie, so that their requests later go out together."""
    for client in clients:
        await client.request("GET", "/login", xsrf=False)
    return clients


async def log_in(client, password=PASSWORD, headers=None):
    return await client.request("POST", "/api/login", {"email": client.email, "password": password}, headers=headers)


async def sign_up(client, headers=None, display_name="Newcomer"):
    return await client.request("POST", "/api/signup", {"email": client.email, "password": PASSWORD,
                                                        "display_name": display_name}, headers=headers)


async def ask_reset(client, headers=None):
    return await client.request("POST", "/api/password-reset", {"email": client.email}, headers=headers)


def retry_after_s(answer):
    return int(answer.headers["Retry-After"])


# Log-in: guesses at once, and the owner slowed down, not locked out -------------------------

def test_forty_guesses_at_once_check_no_more_passwords_than_the_accounts_limit(http_system_with):
    system = http_system_with(login_failures_per_account=5, login_failures_per_address=100,
                         login_slowdown_s=30, login_slowdown_max_s=60)

    async def scenario():
        AsyncHTTPClient(max_clients=64)  # this loop's client: all forty go out at once
        owner = await Member(system.url).sign_up("Guessed At")
        guessers = await ready([Member(system.url, owner.email) for _ in range(40)])
        answers = await asyncio.gather(*(log_in(g, f"{WRONG} {n}") for n, g in enumerate(guessers)))
        # Every attempt took its slot before its password was checked: 5 were, 35 were not.
        assert sorted(a.code for a in answers) == [401] * 5 + [429] * 35
        refused = [a for a in answers if a.code == 429]
        assert {a.error_code for a in refused} == {"too_many_attempts"}
        # 30 s after the last attempt counted; one that started before it (all forty are in flight
        # at once) waits from that one, so a second or two more.
        assert all(0 < retry_after_s(a) <= 30 + 5 for a in refused), [retry_after_s(a) for a in refused]
        # The right password among the later attempts waits too: the account is slowed down.
        late = await log_in(Member(system.url, owner.email))
        assert (late.code, late.error_code) == (429, "too_many_attempts")
        assert 0 < retry_after_s(late) <= 30
        assert "ik_session" not in late.headers.get("Set-Cookie", "")
    run(scenario())


def test_past_the_accounts_failures_the_owner_waits_a_growing_delay_then_logs_in(http_system_with):
    system = http_system_with(login_failures_per_account=3, login_slowdown_s=1, login_slowdown_max_s=2)

    async def scenario():
        owner = await Member(system.url).sign_up("Slowed Down")
        attacker = Member(system.url, owner.email)
        for _ in range(3):
            assert (await log_in(attacker, WRONG)).code == 401
        # Three failures by someone else: the owner is asked to wait a second, not 15 minutes.
        waited = await log_in(Member(system.url, owner.email))
        assert (waited.code, waited.error_code) == (429, "too_many_attempts")
        assert retry_after_s(waited) == 1
        assert "try again in 1 s" in waited.json()["error"]["message"]
        await asyncio.sleep(retry_after_s(waited))
        device = Member(system.url, owner.email)
        assert (await log_in(device)).code == 200
        assert (await device.request("GET", "/api/me")).json()["member"]["id"] == owner.id
        # The next attempt waits longer (doubled), and no longer than the most.
        again = await log_in(attacker, WRONG)
        assert (again.code, retry_after_s(again)) == (429, 2)
        await asyncio.sleep(retry_after_s(again))
        assert (await log_in(attacker, WRONG)).code == 401
        assert retry_after_s(await log_in(attacker, WRONG)) == 2
    run(scenario())


def test_an_address_past_its_failures_is_refused_until_the_window_ends_even_with_the_right_password(http_system_with):
    system = http_system_with(login_failures_per_address=4, login_window_s=600)

    async def scenario():
        AsyncHTTPClient(max_clients=64)
        owner = await Member(system.url).sign_up("Shares An Address")
        sprayers = await ready([Member(system.url) for _ in range(20)])  # emails nobody has
        answers = await asyncio.gather(*(log_in(s, WRONG) for s in sprayers))
        assert sorted(a.code for a in answers) == [401] * 4 + [429] * 16
        refused = await log_in(Member(system.url, owner.email))
        assert (refused.code, refused.error_code) == (429, "too_many_attempts")
        assert 0 < retry_after_s(refused) <= 600
        assert "from your network" in refused.json()["error"]["message"]
    run(scenario())


# The client's address behind a trusted proxy ----------------------------------------------

@pytest.mark.parametrize("peer, forwarded_for, client", [
    ("192.0.2.1", ["203.0.113.7"], "192.0.2.1"),                       # not a proxy of ours: its word is ignored
    ("10.0.0.5", ["203.0.113.7"], "203.0.113.7"),
    ("10.0.0.5", ["198.51.100.1, 203.0.113.7"], "203.0.113.7"),         # what the client wrote itself is left of it
    ("10.0.0.5", ["203.0.113.7, 10.0.0.9"], "203.0.113.7"),             # two proxies of ours in a row
    ("10.0.0.5", ["203.0.113.7", "10.0.0.9"], "203.0.113.7"),           # the header given twice
    ("10.0.0.5", [], "10.0.0.5"),                                       # the proxy's own request
    ("::ffff:10.0.0.5", ["2001:db8::1"], "2001:db8::1"),
])
def test_the_client_is_the_right_most_address_that_is_not_a_trusted_proxy(peer, forwarded_for, client):
    assert client_address(peer, forwarded_for, trusted_networks(("10.0.0.0/8",))) == client


def test_an_ipv6_client_counts_by_its_64_and_a_bad_proxy_setting_says_which_entry():
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_key("::ffff:203.0.113.7") == "203.0.113.7"
    with pytest.raises(ValueError, match="'10.0.0.0/33'"):
        trusted_networks(("127.0.0.1", "10.0.0.0/33"))


def test_the_slow_down_doubles_from_the_first_wait_up_to_the_most():
    assert [slowdown_s(over, 1, 60) for over in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert slowdown_s(10_000, 1, 60) == 60


def test_without_trusted_proxies_x_forwarded_for_is_ignored_so_it_cannot_buy_fresh_limits(http_system_with):
    system = http_system_with(login_failures_per_address=3)

    async def scenario():
        owner = await Member(system.url).sign_up("Behind Nothing")
        for n in range(3):
            forged = behind_proxy(f"203.0.113.{n + 1}")
            assert (await log_in(Member(system.url), WRONG, headers=forged)).code == 401
        answer = await log_in(Member(system.url, owner.email), headers=behind_proxy("198.51.100.77"))
        assert (answer.code, answer.error_code) == (429, "too_many_attempts")
    run(scenario())


def test_behind_a_trusted_proxy_each_client_counts_by_its_forwarded_address(system_with):
    # A gateway process: its access log is read below.
    system = system_with(login_failures_per_address=3, trusted_proxies=PROXY)

    async def scenario():
        owner = await Member(system.url).sign_up("Behind A Proxy")
        guesser = behind_proxy("203.0.113.7")
        for _ in range(3):
            assert (await log_in(Member(system.url), WRONG, headers=guesser)).code == 401
        assert (await log_in(Member(system.url), WRONG, headers=guesser)).code == 429
        # Entries left of the proxy's own are the client's word: prepending one changes nothing.
        spoofed = behind_proxy("198.51.100.20, 203.0.113.7")
        assert (await log_in(Member(system.url, owner.email), headers=spoofed)).code == 429
        # Another client behind the same proxy is not held back by the guesser.
        assert (await log_in(Member(system.url, owner.email), headers=behind_proxy("198.51.100.9"))).code == 200
    run(scenario())
    # The access log names the client, then the proxy it came through (Tornado writes an access
    # line after the answer is sent: waited for, bounded).
    def logged():
        log = (system.log_dir / "gateway.log").read_text()
        return "POST /api/login (203.0.113.7 via 127.0.0.1)" in log and "(198.51.100.9 via 127.0.0.1)" in log
    wait_for(logged, "the access log naming each client and the proxy")


# Sign-up and reset requests ------------------------------------------------------------------

def test_sign_ups_are_limited_per_address_and_per_email(http_system_with):
    system = http_system_with(signups_per_address=3, signups_per_email=2, trusted_proxies=PROXY)

    async def scenario():
        crowd = behind_proxy("203.0.113.50")
        for _ in range(3):
            assert (await sign_up(Member(system.url), crowd)).code == 201
        refused = await sign_up(Member(system.url), crowd)
        assert (refused.code, refused.error_code) == (429, "too_many_signups")
        assert retry_after_s(refused) > 0 and refused.json()["error"]["message"]
        assert (await sign_up(Member(system.url), behind_proxy("203.0.113.51"))).code == 201

        # One email, from ever new addresses: its inbox gets a bounded number of mails.
        email = f"popular.{secrets.token_hex(4)}@example.com"
        answers = [await sign_up(Member(system.url, email), behind_proxy(f"198.51.100.{n}")) for n in range(1, 5)]
        assert [a.code for a in answers] == [201, 201, 429, 429]
        assert answers[2].error_code == "too_many_signups"
        assert len([to for to, _ in outbox_mails(system) if to == email]) == 1
        assert system.db.members.count_documents({"email": email}) == 1
    run(scenario())


def test_reset_requests_are_limited_per_address_and_per_email_alike_for_registered_or_not(http_system_with):
    system = http_system_with(reset_requests_per_address=4, reset_requests_per_email=2, trusted_proxies=PROXY)

    async def scenario():
        member = await Member(system.url).sign_up("Reset Bombed")
        stranger = Member(system.url)
        for client in (member, stranger):
            answers = [await ask_reset(client, behind_proxy(f"198.51.100.{n}")) for n in range(1, 4)]
            assert [a.code for a in answers] == [202, 202, 429], client.email
            assert answers[2].error_code == "too_many_reset_requests"
        assert len([to for to, _ in outbox_mails(system) if to == member.email]) == 2
        # Per address: a fifth email from one address waits, whoever it is for.
        sender = behind_proxy("203.0.113.90")
        assert [(await ask_reset(Member(system.url), sender)).code for _ in range(5)] == [202] * 4 + [429]
    run(scenario())


def test_sign_up_with_a_registered_email_answers_as_a_new_one_and_mails_the_owner(system):
    async def scenario():
        owner = await Member(system.url).sign_up("First Owner")
        fresh = Member(system.url)
        new = await fresh.request("POST", "/api/signup", {"email": fresh.email, "password": "another password 1",
                                                          "display_name": "Someone New"})
        again = Member(system.url, email=owner.email.upper())
        taken = await again.request("POST", "/api/signup", {"email": again.email, "password": "another password 1",
                                                            "display_name": "Usurper"})
        assert taken.code == new.code == 201
        assert set(taken.json()) == set(new.json()) == {"member"}
        assert taken.json()["member"] is None and new.json()["member"]["email"] == fresh.email
        assert "ik_session" not in again.cookies
        assert (await again.request("GET", "/api/me")).code == 401
        [body] = [body for to, body in outbox_mails(system) if to == owner.email]
        assert f"{system.url}/login" in body and f"{system.url}/reset" in body and "First Owner" in body
        assert "another password 1" not in body
        # The owner's password and name are untouched.
        assert system.db.members.count_documents({"email": owner.email}) == 1
        assert (await Member(system.url, owner.email).log_in()).code == 200
        assert (await owner.request("GET", "/api/me")).json()["member"]["display_name"] == "First Owner"
    run(scenario())


# The payout email and a stolen session ---------------------------------------------------------

def test_a_stolen_session_cannot_guess_the_password_through_the_payout_email(http_system_with):
    system = http_system_with(login_failures_per_account=2, login_slowdown_s=60)

    async def scenario():
        member = await Member(system.url).sign_up("Session Stolen")
        for _ in range(2):
            answer = await member.request("PATCH", "/api/me", {"payout_email": "thief@example.com", "password": WRONG})
            assert (answer.code, answer.error_code) == (403, "wrong_password")
        answer = await member.request("PATCH", "/api/me", {"payout_email": "thief@example.com", "password": PASSWORD})
        assert (answer.code, answer.error_code) == (429, "too_many_attempts")
        assert (await member.request("GET", "/api/me")).json()["member"]["payout_email"] == ""
        assert [to for to, _ in outbox_mails(system) if to == "thief@example.com"] == []
    run(scenario())


# The pages, in Chromium --------------------------------------------------------------------------

STEP_MS = 10_000


def signed_up_page(browser, system, email, name="Page Member"):
    """A fresh browser on /signup, the form sent; returns the page."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(system.url + "/signup")
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#signup-form [name=email]", email)
    page.fill("#signup-form [name=display_name]", name)
    page.fill("#signup-form [name=password]", PASSWORD)
    page.click("#signup-form button[type=submit]")
    return page


@pytest.mark.browser
def test_the_sign_up_page_with_a_registered_email_says_to_check_the_inbox(browser, system):
    email = f"twice-{time.monotonic_ns()}@example.com"
    first = signed_up_page(browser, system, email, "First")
    first.wait_for_url("**/account?welcome=1", timeout=STEP_MS)
    second = signed_up_page(browser, system, email, "Second")
    second.wait_for_selector("#signup-check-inbox:not([hidden])", timeout=STEP_MS)
    assert second.locator("#signup").is_hidden()
    assert second.locator("#signup-check-inbox-email").text_content() == email
    assert second.evaluate("document.activeElement.id") == "signup-check-inbox-heading"
    assert second.request.get(system.url + "/api/me").status == 401
    assert "/signup" in second.url
    for page in (first, second):
        page.context.close()


@pytest.mark.browser
def test_the_account_page_asks_for_the_password_when_the_payout_email_changes(browser, system):
    page = signed_up_page(browser, system, f"payee-{time.monotonic_ns()}@example.com")
    page.wait_for_url("**/account?welcome=1", timeout=STEP_MS)
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#payout-password").is_hidden()
    page.fill("#profile-form [name=headline]", "Plain headline")
    page.click("#profile-form button[type=submit]")
    page.wait_for_selector("#profile-form [data-form-status]:has-text('Profile saved.')", timeout=STEP_MS)

    page.fill("#profile-form [name=payout_email]", "payouts@example.com")
    assert page.locator("#payout-password").is_visible()
    page.click("#profile-form button[type=submit]")
    error = page.locator("#payout_password-error")
    error.wait_for(state="visible", timeout=STEP_MS)
    assert error.get_attribute("data-error-code") == "password_required"
    assert page.evaluate("document.activeElement.id") == "payout_password"

    page.fill("#profile-form [name=payout_password]", PASSWORD)
    page.click("#profile-form button[type=submit]")
    page.wait_for_selector("#profile-form [data-form-status]:has-text('Profile saved.')", timeout=STEP_MS)
    assert page.locator("#payout-password").is_hidden()
    assert page.input_value("#profile-form [name=payout_password]") == ""
    me = page.request.get(system.url + "/api/me").json()["member"]
    assert me["payout_email"] == "payouts@example.com"
    notice = system.db.outbox.find_one({"to": me["email"], "subject": "Your interKanect payout email changed"})
    assert notice and "p***@example.com" in notice["body"]
    page.context.close()

