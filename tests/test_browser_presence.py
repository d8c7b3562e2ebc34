"""Presence in real Chromium: a viewer's directory and member page show the host's dot turn
green within a second of the host opening a page, and go out when the host closes it."""
import os
import time

import pytest

from tests.kit.browser import SHOTS

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
BOUND_MS = 1000  # the product promise

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (.ci/run does)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def sign_up(browser, system, name):
    context = browser.new_context()
    page = context.new_page()
    page.goto(system.url + "/signup")
    page.wait_for_selector("body[data-ready=true]")  # the page's script handles the form
    page.fill("#signup-form [name=email]", f"{name.lower()}-{time.monotonic_ns()}@example.com")
    page.fill("#signup-form [name=display_name]", name)
    page.fill("#signup-form [name=password]", "correct horse battery")
    page.click("#signup-form button[type=submit]")
    page.wait_for_url(lambda url: "/signup" not in url)
    member = page.request.get(system.url + "/api/me").json()["member"]
    return context, page, member["id"]


def dot(page, member_id):
    return page.locator(f'.status-dot[data-member-id="{member_id}"]').first


def test_the_dot_follows_the_host_in_every_viewer_browser_within_a_second(browser, system):
    host_context, host_page, host_id = sign_up(browser, system, "Hostess")
    host_page.close()  # the host is offline now
    viewer_context, directory, _ = sign_up(browser, system, "Viewer")
    directory.goto(system.url + "/")
    member_page = viewer_context.new_page()
    member_page.goto(f"{system.url}/m/{host_id}")
    for page in (directory, member_page):
        playwright.expect(dot(page, host_id)).to_have_attribute("data-status", "offline", timeout=5000)
        playwright.expect(dot(page, host_id)).to_have_attribute("data-live", "true", timeout=5000)

    page = host_context.new_page()
    with page.expect_websocket() as opened:
        page.goto(system.url + "/")
    opened.value.wait_for_event("framereceived")  # the host's hello: the host is online now
    for viewer in (directory, member_page):
        playwright.expect(dot(viewer, host_id)).to_have_attribute("data-status", "online", timeout=BOUND_MS)
    SHOTS.mkdir(parents=True, exist_ok=True)
    directory.screenshot(path=str(SHOTS / "directory.png"), full_page=True)
    member_page.screenshot(path=str(SHOTS / "member.png"), full_page=True)

    page.close()
    for viewer in (directory, member_page):
        playwright.expect(dot(viewer, host_id)).to_have_attribute("data-status", "offline", timeout=BOUND_MS)
    host_context.close()
    viewer_context.close()
