"""Presence in real Chromium: a viewer's directory and member page show the host's dot turn
green within a second of the host opening a page, and go out when the host closes it."""
import os
import time

import pytest

from tests.kit.browser import SHOTS, member

playwright = pytest.importorskip("playwright.sync_api")

BOUND_MS = 1000  # the product promise

pytestmark = pytest.mark.browser


def dot(page, member_id):
    return page.locator(f'.status-dot[data-member-id="{member_id}"]').first


def test_the_dot_follows_the_host_in_every_viewer_browser_within_a_second(browser, system):
    host_context, host_page, host_id = member(browser, system, "Hostess")
    host_page.close()  # the host is offline now
    viewer_context, directory, _ = member(browser, system, "Viewer")
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
