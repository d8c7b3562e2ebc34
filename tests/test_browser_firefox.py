"""The app in Firefox (Debian's firefox-esr over Marionette, see tests/kit/firefox.py), next to
Chromium: a member logs in and watches another member's status dot come and go live, and a
Firefox caller calls a Chromium host — the ring, free terms agreed, video decoded on both
sides peer to peer, a chat line each way over the data channel, and the hang-up."""
import asyncio
import os
import re
import time

import pytest

from tests.kit import firefox
from tests.kit.browser import MEDIA_MS, SHOTS, STEP_MS, member, open_live, print_consoles, status, upgrade, video_flows
from tests.kit.client import PASSWORD, Member
from tests.kit.waiting import wait_for

playwright = pytest.importorskip("playwright.sync_api")
pytest.importorskip("marionette_driver")
expect = playwright.expect

pytestmark = pytest.mark.browser

STEP_S = STEP_MS / 1000
MEDIA_S = MEDIA_MS / 1000
PRESENCE_BOUND_S = 1      # the product promise: a dot follows its member within a second

# The remote <video> has shown `arguments[0]` more frames of one and the same stream. Firefox's
# getVideoPlaybackQuality() counts no frames of a MediaStream (it stays 0 while the video plays),
# so frames are counted with requestVideoFrameCallback, which both engines call per frame shown.
VIDEO_FLOWS = """
    const video = document.getElementById('remote-video');
    if (!video.srcObject || video.readyState < 2) return false;
    const seen = window.__ikFrames;
    if (seen && seen.stream === video.srcObject) return seen.frames >= arguments[0] ? seen.frames : false;
    const counter = {stream: video.srcObject, frames: 0};
    const tick = () => {
        if (window.__ikFrames !== counter) return;   // a newer count took over
        counter.frames += 1;
        video.requestVideoFrameCallback(tick);
    };
    window.__ikFrames = counter;
    video.requestVideoFrameCallback(tick);
    return false;
"""

# What the call page's remote <video> holds, for a failure's report.
REMOTE_VIDEO_STATE = """
    const video = document.getElementById('remote-video');
    const stream = video && video.srcObject;
    return video && {readyState: video.readyState, paused: video.paused, muted: video.muted,
        frames: window.__ikFrames && window.__ikFrames.frames, size: [video.videoWidth, video.videoHeight],
        tracks: stream ? stream.getTracks().map((t) => [t.kind, t.readyState, t.muted, t.enabled]) : null,
        tile: document.getElementById('remote-tile').dataset.media};
"""


@pytest.fixture
def start_firefox(tmp_path):
    """start_firefox(name) -> a running Firefox with a profile of its own (and its log beside it
    in tmp_path); every one is killed after the test."""
    if not firefox.installed():
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's firefox-esr (.ci/run does)")
        pytest.skip("Debian's firefox-esr is not installed (apt-get install firefox-esr)")
    started = []

    def start(name):
        started.append(firefox.Firefox(tmp_path / name, name=name))
        started[-1].start()
        return started[-1]
    yield start
    for running in started:
        running.quit()


def sign_up(ff, system, name, email=None):
    """Sign up in Firefox through the page's form; on the account page after."""
    ff.navigate(system.url + "/signup")
    ff.attribute_is("body", "data-ready", "true", timeout_s=STEP_S)
    ff.type("#signup-form [name=email]", email or f"{name.split()[0].lower()}-{time.monotonic_ns()}@example.com")
    ff.type("#signup-form [name=display_name]", name)
    ff.type("#signup-form [name=password]", PASSWORD)
    ff.click("#signup-form button[type=submit]")
    ff.wait_for("return location.pathname === '/account'", timeout_s=STEP_S, what="the account page")
    ff.attribute_is("body", "data-ready", "true", timeout_s=STEP_S)


def ready(ff, url):
    """Open `url` and wait until the page is drawn and its live socket is open."""
    ff.navigate(url)
    ff.attribute_is("body", "data-ready", "true", timeout_s=STEP_S)
    ff.attribute_is("#live-state", "data-state", "open", timeout_s=STEP_S)


def firefox_video_flows(ff, frames=15):
    ff.run("window.__ikFrames = null")
    return ff.wait_for(VIDEO_FLOWS, frames, timeout_s=MEDIA_S, what=f"{frames} remote video frames")


def dot_status(member_id):
    return f'.status-dot[data-member-id="{member_id}"]'



def firefox_calls_upgraded_host(system, ff, name, host, host_id):
    """`host` (Chromium) is upgraded and online; `name` signs up in Firefox and calls from the
    host's page; the host accepts the ring that names them; both reach the call page. The call id."""
    upgrade(system, host, host_id)
    open_live(host, system.url + "/")   # a new page: the member's shard now knows the tier
    sign_up(ff, system, name)
    ready(ff, f"{system.url}/m/{host_id}")
    ff.click("#call-button")
    popup = host.locator("[data-incoming-call]")
    expect(popup.locator(".incoming-call__name")).to_have_text(name, timeout=STEP_MS)
    popup.locator("[data-action=accept]").click()
    host.wait_for_url("**/call/*", timeout=STEP_MS)
    call_id = host.url.rsplit("/", 1)[1]
    ff.wait_for("return location.pathname === arguments[0]", f"/call/{call_id}", timeout_s=STEP_S,
                what="the call page")
    status(host, "negotiating")
    return call_id

def test_a_member_logs_in_in_firefox_and_sees_a_dot_go_live_and_out(system, start_firefox, tmp_path):
    async def scenario():
        viewer = await Member(system.url).sign_up("Fiona Firefox")
        other = await Member(system.url).sign_up("Oscar Other")
        ff = await asyncio.to_thread(start_firefox, "viewer")

        def log_in():
            ff.navigate(system.url + "/login")
            ff.attribute_is("body", "data-ready", "true", timeout_s=STEP_S)
            ff.type("#login-form [name=email]", viewer.email)
            ff.type("#login-form [name=password]", PASSWORD)
            ff.click("#login-form button[type=submit]")
            ff.wait_for("return location.pathname === '/'", timeout_s=STEP_S, what="the directory after logging in")
            ff.attribute_is("body", "data-ready", "true", timeout_s=STEP_S)
            ff.attribute_is("body", "data-session", "member")
            ff.attribute_is("#live-state", "data-state", "open", timeout_s=STEP_S)
            ff.wait_for("return document.querySelector(`[data-member-card='${arguments[0]}']`)", other.id,
                        what="Oscar's card in the directory")
            ff.attribute_is(dot_status(other.id), "data-live", "true", timeout_s=STEP_S)
            ff.attribute_is(dot_status(other.id), "data-status", "offline")
        await asyncio.to_thread(log_in)

        socket = await other.socket()     # Oscar opens a page: online
        await socket.expect("hello")
        await asyncio.to_thread(ff.attribute_is, dot_status(other.id), "data-status", "online", PRESENCE_BOUND_S)
        assert await asyncio.to_thread(ff.attribute, dot_status(other.id), "aria-label") == "online"
        await asyncio.to_thread(ff.screenshot, SHOTS / "firefox-directory.png")
        await socket.close()              # and closes it: offline again
        await asyncio.to_thread(ff.attribute_is, dot_status(other.id), "data-status", "offline",
                                PRESENCE_BOUND_S + system.settings.policy.member_exit_grace_s)
    try:
        asyncio.run(scenario())
    except Exception:
        for log in tmp_path.glob("*.log"):
            print(f"--- {log.name} ---", log.read_text(errors="replace")[-6000:], sep="\n")
        raise


def test_a_firefox_caller_and_a_chromium_host_see_each_other_and_chat(browser, system, start_firefox):
    host_context, host, host_id = member(browser, system, "Chloe Chromium")
    ff = start_firefox("caller")
    try:
        # The caller signs up in Firefox and calls from the host's page; Chromium rings with
        # Firefox's name; the host accepts; both are on the call page.
        call_id = firefox_calls_upgraded_host(system, ff, "Felix Firefox", host, host_id)
        ff.attribute_is("#call-status", "data-state", "negotiating", timeout_s=STEP_S)

        # Face to face while they talk terms: each decodes the other's camera.
        video_flows(host)
        firefox_video_flows(ff)

        # The upgraded host offers a free call; Firefox sees exactly those terms and starts it.
        host.fill("#price", "0")
        host.fill("#minutes", "5")
        host.click("#propose-button")
        fingerprint = host.locator("#proposal-sent-fingerprint")
        expect(fingerprint).to_have_text(re.compile(r"^[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}$"), timeout=STEP_MS)
        ff.text_is("#terms-price", "Free", timeout_s=STEP_S)
        ff.text_is("#terms-length", "5 minutes")
        ff.text_is("#terms-fingerprint", fingerprint.text_content())
        ff.text_is("#pay-button", "Start the free call")
        ff.click("#pay-button")
        status(host, "running")
        ff.attribute_is("#call-status", "data-state", "running", timeout_s=STEP_S)
        video_flows(host)
        firefox_video_flows(ff)
        ff.screenshot(SHOTS / "firefox-call.png")

        # Both engines read the same check words off the encrypted connection's fingerprints, and
        # each sees the other's view mirror its own.
        expect(host.locator("#checkwords")).to_have_attribute("data-state", "match", timeout=STEP_MS)
        ff.attribute_is("#checkwords", "data-state", "match", timeout_s=STEP_S)
        words = host.locator("#checkwords-words").get_attribute("data-words")
        assert words and ff.attribute("#checkwords-words", "data-words") == words

        # A chat line each way over the call's data channel.
        ff.attribute_is("#chat-panel", "data-channel", "open", timeout_s=STEP_S)
        expect(host.locator("#chat-panel")).to_have_attribute("data-channel", "open", timeout=STEP_MS)
        ff.type("#chat-input", "Hello from Firefox")
        ff.click("#chat-send")
        expect(host.locator('#chat-log [data-from="them"] .chat__text')).to_have_text(["Hello from Firefox"],
                                                                                        timeout=STEP_MS)
        ff.attribute_is('#chat-log [data-from="me"]', "data-status", "delivered", timeout_s=STEP_S)
        host.fill("#chat-input", "Hello from Chromium")
        host.press("#chat-input", "Enter")
        ff.text_is('#chat-log [data-from="them"] .chat__text', "Hello from Chromium", timeout_s=STEP_S)

        # Firefox hangs up; both pages end.
        ff.click("#hangup-button")
        status(host, "ended")
        ff.attribute_is("#call-status", "data-state", "ended", timeout_s=STEP_S)
    except Exception:
        print_consoles(host)
        print(f"--- {ff.name} ---", ff.log(), sep="\n")
        print("--- Firefox's remote video ---", ff.run(REMOTE_VIDEO_STATE), sep="\n")
        raise
    finally:
        host_context.close()


def approve_in_paypal_popup(ff, opener_css):
    """Press `opener_css` in Firefox's page, approve on the PayPal window it opens, and come back
    to the page (the popup tells its opener and closes itself)."""
    page = ff.marionette.current_window_handle
    before = set(ff.marionette.window_handles)
    ff.click(opener_css)
    opened = wait_for(lambda: set(ff.marionette.window_handles) - before, "the PayPal window", STEP_S)
    ff.marionette.switch_to_window(opened.pop())
    try:
        ff.click("#approve")
    finally:
        ff.marionette.switch_to_window(page)


def test_a_firefox_caller_pays_a_chromium_host_through_paypal_tips_and_hangs_up(browser, system,
                                                                              start_firefox):
    host_context, host, host_id = member(browser, system, "Paula Paid")
    ff = start_firefox("payer")
    try:
        call_id = firefox_calls_upgraded_host(system, ff, "Fiona Firefox", host, host_id)

        # Paid terms; Firefox pays on PayPal's page in a popup; the call runs with video both ways.
        host.fill("#price", "2.50")
        host.fill("#minutes", "5")
        host.click("#propose-button")
        ff.text_is("#terms-price", "$2.50", timeout_s=STEP_S)
        ff.text_is("#pay-button", "Pay $2.50")
        ff.click("#pay-button")
        ff.attribute_is("#call-status", "data-state", "awaiting_payment", timeout_s=STEP_S)
        ff.text_is("#paypal-button", "Pay $2.50 with PayPal", timeout_s=STEP_S)
        approve_in_paypal_popup(ff, "#paypal-button")
        ff.attribute_is("#call-status", "data-state", "running", timeout_s=STEP_S)
        status(host, "running")
        video_flows(host)
        firefox_video_flows(ff)
        ff.screenshot(SHOTS / "firefox-paid-call.png")

        # A $5 tip from Firefox, approved on PayPal the same way; the host is told.
        ff.click("#tip-button")
        ff.attribute_is("#tip-dialog", "data-step", "choose", timeout_s=STEP_S)
        ff.click("#tip-send")
        ff.text_is("#tip-paypal-button", "Tip $5.00 with PayPal", timeout_s=STEP_S)
        approve_in_paypal_popup(ff, "#tip-paypal-button")
        ff.attribute_is("#tip-dialog", "data-step", "sent", timeout_s=STEP_S)
        expect(host.locator('#toasts [data-toast="tip-received"]')).to_contain_text("Fiona Firefox tipped you $5.00",
                                                                                   timeout=STEP_MS)

        # Firefox hangs up; both end; the payment and the tip are booked once each.
        ff.click("#tip-close")
        ff.click("#hangup-button")
        status(host, "ended")
        ff.attribute_is("#call-status", "data-state", "ended", timeout_s=STEP_S)
        kinds = sorted(t["kind"] for t in system.db.ledger.find({"call_id": call_id}))
        assert kinds == ["call_payment", "tip"], kinds
    except Exception:
        print_consoles(host)
        print(f"--- {ff.name} ---", ff.log(), sep="\n")
        raise
    finally:
        host_context.close()


def test_a_chromium_caller_pays_a_firefox_host(browser, system, start_firefox):
    ff = start_firefox("host")
    caller_context, caller, _ = member(browser, system, "Carl Chrome")
    try:
        # The host signs up in Firefox, adds a payout email on the account page; an operator upgrades them.
        email = f"hugo-{time.monotonic_ns()}@example.com"
        sign_up(ff, system, "Hugo Firefox", email)
        ff.type("#profile-form [name=payout_email]", "hugo.payouts@example.com")
        ff.type("#profile-form [name=payout_password]", PASSWORD)
        ff.click("#profile-form button[type=submit]")
        ff.text_is("#profile-form [data-form-status]", "Profile saved.", timeout_s=STEP_S)
        host_id = str(system.db.members.find_one({"email": email})["_id"])
        answer = system.cli("members", "set-tier", email, "upgraded")
        assert answer.returncode == 0, answer.stderr
        ready(ff, system.url + "/")

        # The Chromium caller calls; Firefox accepts and sets paid terms.
        open_live(caller, f"{system.url}/m/{host_id}")
        expect(caller.locator("#call-button")).to_be_enabled(timeout=STEP_MS)
        caller.click("#call-button")
        ff.click("[data-incoming-call] [data-action=accept]")
        caller.wait_for_url("**/call/*", timeout=STEP_MS)
        call_id = caller.url.rsplit("/", 1)[1]
        ff.wait_for("return location.pathname === arguments[0]", f"/call/{call_id}", timeout_s=STEP_S,
                    what="the call page")
        ff.attribute_is("#call-status", "data-state", "negotiating", timeout_s=STEP_S)
        ff.type("#price", "3")
        ff.type("#minutes", "5")
        ff.click("#propose-button")

        # Chromium pays on PayPal's page; both run, with video both ways.
        expect(caller.locator("#terms-price")).to_have_text("$3.00", timeout=STEP_MS)
        caller.click("#pay-button")
        paypal_button = caller.locator("#paypal-button")
        expect(paypal_button).to_have_text("Pay $3.00 with PayPal", timeout=STEP_MS)
        with caller.expect_popup(timeout=STEP_MS) as opened:
            paypal_button.click()
        opened.value.click("#approve")
        status(caller, "running")
        ff.attribute_is("#call-status", "data-state", "running", timeout_s=STEP_S)
        video_flows(caller)
        firefox_video_flows(ff)

        # Firefox, the host, hangs up; the payment is booked once.
        ff.click("#hangup-button")
        status(caller, "ended")
        ff.attribute_is("#call-status", "data-state", "ended", timeout_s=STEP_S)
        assert [t["kind"] for t in system.db.ledger.find({"call_id": call_id})] == ["call_payment"]
    except Exception:
        print_consoles(caller)
        print(f"--- {ff.name} ---", ff.log(), sep="\n")
        raise
    finally:
        caller_context.close()
