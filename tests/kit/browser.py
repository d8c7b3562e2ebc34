"""Chromium pages for browser tests, through Playwright's sync API: a member signed up in a
browser of their own, made an upgraded host, a live page opened, a call placed and accepted
from two pages, the call's status and its remote video waited for, screenshots (var/screenshots/,
and on purpose docs/screenshots/), and the pages' consoles printed on a failure."""
import os
import shutil
import time
from pathlib import Path

from bson import ObjectId
from playwright.sync_api import expect

from tests.kit.client import PASSWORD
from tests.kit.system import ROOT


SHOTS = Path(os.environ.get("IK_SCREENSHOT_DIR", "var/screenshots"))
DOC_SHOTS = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1000, "height": 700}
PHONE = {"width": 390, "height": 780}
STEP_MS = 10_000            # one step of the call (a frame through gateway and actors, a page load)
MEDIA_MS = 20_000           # a peer connection coming up and frames decoded


def member(browser, system, name):
    """A new member signed up in a browser of their own (tests.test_browser_presence.sign_up,
    but filling the form only once the page's script is ready to take it)."""
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
