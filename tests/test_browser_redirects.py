"""After signing up or logging in, `?next=` leads only to a page of ours, in real Chromium: the
values that left the site before (a tab, CR or LF inside "//", which the browser drops) land on
the fallback instead (issue 13, open redirect)."""
import time
import urllib.parse

import pytest


playwright = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

ELSEWHERE = ["/%09/evil.example", "/%0d/evil.example", "/%0a/evil.example", "//evil.example",
             "/\\evil.example", "https://evil.example/", "/%09%2Fevil.example"]


def sign_up_with_next(browser, system, next_value):
    """Sign up in a fresh browser at /signup?next=<next_value> (already URL-encoded); the URL it lands on."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{system.url}/signup?next={next_value}")
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#signup-form [name=email]", f"next-{time.monotonic_ns()}@example.com")
    page.fill("#signup-form [name=display_name]", "Redirected")
    page.fill("#signup-form [name=password]", "correct horse battery")
    page.click("#signup-form button[type=submit]")
    page.wait_for_url(lambda url: "/signup" not in url)
    landed = page.url
    context.close()
    return landed


@pytest.mark.parametrize("next_value", ELSEWHERE)
def test_a_next_that_would_leave_the_site_lands_on_our_own_page(browser, system, next_value):
    landed = sign_up_with_next(browser, system, next_value)
    assert landed.startswith(system.url + "/"), landed
    assert urllib.parse.urlsplit(landed).path == "/account"  # sign-up's own fallback


def test_a_next_of_ours_is_followed_with_its_query(browser, system):
    landed = sign_up_with_next(browser, system, urllib.parse.quote("/history?x=1", safe=""))
    assert landed == system.url + "/history?x=1"
