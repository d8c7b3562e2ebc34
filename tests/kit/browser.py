"""Chromium pages for browser tests, through Playwright's sync API: a member signed up in a
browser of their own, or logged in in a time zone, made an upgraded host, a page opened, a call
placed and accepted from two pages, the call's status and its remote video waited for, the
keyboard's reach and a phone's width, screenshots (var/screenshots/, and on purpose
docs/screenshots/), and the pages' consoles printed on a failure. Playwright's sync API holds
the test's thread: the websocket clients run in another (`run_in_thread`)."""
import concurrent.futures
import os
import shutil
import time
from pathlib import Path

from bson import ObjectId
from playwright.sync_api import expect

from tests.kit.client import PASSWORD
from tests.kit.operators import operator
from tests.kit.system import ROOT, run


SHOTS = Path(os.environ.get("IK_SCREENSHOT_DIR", "var/screenshots"))
DOC_SHOTS = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1000, "height": 700}
PHONE = {"width": 390, "height": 780}
STEP_MS = 10_000            # one step of the call (a frame through gateway and actors, a page load)
MEDIA_MS = 20_000           # a peer connection coming up and frames decoded


# Debian's Chromium (`.ci/run` installs it); the `browser` fixture (tests/conftest.py) launches it.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--use-fake-ui-for-media-stream",
                 "--use-fake-device-for-media-stream"]


def member(browser, system, name):
    """A new member signed up in a browser of their own, filling the form once the page's
    script is ready to take it: (context, page, member id)."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.console = []
    page.on("console", lambda message: page.console.append(f"{message.type}: {message.text}"))
    page.goto(system.url + "/signup")
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=STEP_MS)
    page.fill("#signup-form [name=email]", f"{name.split()[0].lower()}-{time.monotonic_ns()}@example.com")
    page.fill("#signup-form [name=display_name]", name)
    page.fill("#signup-form [name=password]", "correct horse battery")
    page.click("#signup-form button[type=submit]")
    page.wait_for_url("**/account?welcome=1", timeout=STEP_MS)
    member_id = page.request.get(system.url + "/api/me").json()["member"]["id"]
    return context, page, member_id


def upgrade(system, page, member_id):
    """An upgraded host with a payout email, entered on the account page as a member would."""
    page.goto(system.url + "/account")
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=STEP_MS)
    page.fill("#profile-form [name=payout_email]", "payouts@example.com")
    page.fill("#profile-form [name=payout_password]", PASSWORD)  # a payout email changes with the password
    page.click("#profile-form button[type=submit]")
    expect(page.locator("#profile-form [data-form-status]")).to_have_text("Profile saved.", timeout=STEP_MS)
    system.db.members.update_one({"_id": ObjectId(member_id)}, {"$set": {"tier": "upgraded"}})


def open_live(page, url):
    page.goto(url)
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=STEP_MS)
    expect(page.locator("#live-state")).to_have_attribute("data-state", "open", timeout=STEP_MS)


def call_and_accept(system, host, caller, host_id):
    """Both pages open, the caller presses Call on the host's page, the host accepts the popup;
    both pages turn into the call page. Returns the call id."""
    open_live(host, system.url + "/")
    open_live(caller, f"{system.url}/m/{host_id}")
    expect(caller.locator("#call-button")).to_be_enabled(timeout=STEP_MS)
    caller.click("#call-button")
    host.locator("[data-incoming-call] [data-action=accept]").click(timeout=STEP_MS)
    host.wait_for_url("**/call/*", timeout=STEP_MS)
    caller.wait_for_url(host.url, timeout=STEP_MS)
    return host.url.rsplit("/", 1)[1]


def shot(page, name, docs=False, full_page=False):
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"call-{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if docs and os.environ.get("IK_UPDATE_DOC_SCREENSHOTS"):  # refresh the README's pictures on purpose only
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_SHOTS / f"{name}.png")


def video_flows(page, frames=15, timeout=MEDIA_MS):
    """Wait until the remote <video> decodes `frames` more frames of one and the same stream."""
    page.evaluate("window.__ikFrames = null")
    page.wait_for_function("""(frames) => {
        const video = document.getElementById('remote-video');
        if (!video.srcObject || video.readyState < 2) return false;
        const now = video.getVideoPlaybackQuality().totalVideoFrames;
        const seen = window.__ikFrames;
        if (!seen || seen.stream !== video.srcObject) {
            window.__ikFrames = {stream: video.srcObject, first: now};
            return false;
        }
        return now - seen.first >= frames;
    }""", arg=frames, timeout=timeout, polling=100)


def print_consoles(*pages):
    """On a failure: what the pages logged (refused frames, media errors)."""
    for page in pages:
        print(f"--- console of {page.url} ---", *getattr(page, "console", []), sep="\n")


def status(page, state, timeout=STEP_MS):
    expect(page.locator("#call-status")).to_have_attribute("data-state", state, timeout=timeout)


def logged_in(browser, system, who, timezone_id, viewport=VIEWPORT):
    """A browser of `who` (a tests.kit.client.Member) in `timezone_id`, logged in on /login."""
    context = browser.new_context(viewport=viewport, timezone_id=timezone_id, locale="en-US")
    page = context.new_page()
    page.console = []
    page.on("console", lambda message: page.console.append(f"{message.type}: {message.text}"))
    page.goto(system.url + "/login")
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=STEP_MS)
    page.fill("#login-form [name=email]", who.email)
    page.fill("#login-form [name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url, timeout=STEP_MS)
    return context, page


def open_page(page, url):
    page.goto(url)
    try:
        expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=STEP_MS)
    except AssertionError:
        print(f"--- console of {url} ---", *page.console, sep="\n")
        raise


def fits_the_width(page):
    """Nothing wider than the viewport: no sideways scrolling on a phone."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def tab_until(page, selector, limit=40):
    """Press Tab until `selector` has the focus (it must be reachable from the keyboard)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} is not reachable with Tab")


def run_in_thread(coroutine_function, timeout_s=60):
    """Playwright's sync API holds this thread's event loop: async clients run in another."""
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(lambda: run(coroutine_function())).result(timeout=timeout_s)


def an_operator(system, name):
    """A member signed up through the API and made an operator (kit operators.operator)."""
    return run_in_thread(lambda: operator(system, name))
