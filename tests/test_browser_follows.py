"""Following in real Chromium: a visitor follows a member from the member's page (the button
and the count change), the member opens a page, and within 2 s the follower's page shows
"<name> is online now" linking to the member. The member sees the count on their own page
and on /account.

Screenshot: var/screenshots/follow-toast.png."""
import os
import shutil
import time

import pytest

from tests.kit.browser import DOC_SHOTS, SHOTS, member

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect

pytestmark = pytest.mark.browser

# The issue promises 2 s; a test on a shared machine bounds it loosely and prints the figure
# (speed goals are measured, not asserted tightly: README, Performance).
NOTICE_BOUND_S = 10
STEP_MS = 10_000


def signed_up_without_a_page(browser, system, name):
    """A member's browser, signed up through the API: logged in, but no page of theirs has been
    open yet (so their first page is a return their followers hear of). Returns (context, id)."""
    context = browser.new_context()
    context.request.get(system.url + "/login")  # the _xsrf cookie
    xsrf = next(c["value"] for c in context.cookies() if c["name"] == "_xsrf")
    answer = context.request.post(system.url + "/api/signup", headers={"X-XSRFToken": xsrf}, data={
        "email": f"{name.lower()}-{time.monotonic_ns()}@example.com", "password": "correct horse battery",
        "display_name": name})
    assert answer.status == 201, answer.text()
    return context, answer.json()["member"]["id"]


def ready(page, url):
    page.goto(url)
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=STEP_MS)


def test_a_follower_sees_the_member_come_online_within_two_seconds(browser, system):
    member_context, member_id = signed_up_without_a_page(browser, system, "Grace")
    follower_context, follower_page, _ = member(browser, system, "Follower")
    follower_context.grant_permissions(["notifications"], origin=system.url)

    ready(follower_page, f"{system.url}/m/{member_id}")
    button, count = follower_page.locator("#follow-button"), follower_page.locator("#member-followers")
    expect(count).to_have_text("0 followers")
    expect(button).to_have_text("Follow")
    button.click()
    expect(button).to_have_text("Following", timeout=STEP_MS)
    expect(button).to_have_attribute("aria-pressed", "true")
    expect(count).to_have_text("1 follower")

    member_page = member_context.new_page()
    opened_s = time.monotonic()
    member_page.goto(system.url + "/")
    toast = follower_page.locator(f'.toast[data-toast="followed-online"][data-member-id="{member_id}"]')
    expect(toast).to_be_visible(timeout=STEP_MS)
    shown_s = time.monotonic() - opened_s
    print(f"follow_notice_page_s={shown_s:.2f}")
    assert shown_s <= NOTICE_BOUND_S, f"the notice came {shown_s:.1f} s after the member opened a page"
    expect(toast.locator(".toast__text")).to_have_text("Grace is online now.")
    expect(toast.locator("a")).to_have_attribute("href", f"/m/{member_id}")
    expect(follower_page.locator("#toasts")).to_have_attribute("aria-live", "polite")
    SHOTS.mkdir(parents=True, exist_ok=True)
    follower_page.screenshot(path=str(SHOTS / "follow-toast.png"))
    if os.environ.get("IK_UPDATE_DOC_SCREENSHOTS"):  # the README's picture, refreshed on purpose only
        shutil.copyfile(SHOTS / "follow-toast.png", DOC_SHOTS / "follow-toast.png")

    # The member sees how many follow them, and has no button to follow themself.
    ready(member_page, f"{system.url}/m/{member_id}")
    expect(member_page.locator("#member-followers")).to_have_text("1 follower")
    expect(member_page.locator("#follow-button")).to_be_hidden()
    ready(member_page, f"{system.url}/account")
    expect(member_page.locator("#account-followers")).to_have_text("1 follower")

    # "Following" unfollows.
    button.click()
    expect(button).to_have_text("Follow", timeout=STEP_MS)
    expect(count).to_have_text("0 followers")
    member_context.close()
    follower_context.close()
