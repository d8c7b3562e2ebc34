"""Calls in real Chromium browsers with fake cameras.

A paid call: the caller calls from the host's page, the host's page rings and is answered,
both pages turn into the call page in place (a caller's page closing while it rings cancels
the call) and see each other peer to peer, agree terms, are suspended for the payment, which
the caller makes on the PayPal emulator's page in a popup (cancelled once, then approved), are
reconnected when it is captured, survive a refresh, are warned before the end, and end when
the host does not extend. A caller whose browser blocks the popup pays in the same tab (and
tips there too). A caller tips during a running call through PayPal's popup, and the host's
page says so while the video goes on. Then the ring on every page of the host and why it
stopped (declined, cancelled, busy), a free host's terms with renegotiation, and prices read as
exact cents.

Screenshots of the main screens go to var/screenshots/ (three of them also to
docs/screenshots/)."""
import json
import re

import pytest

from tests.kit.browser import (PHONE, STEP_MS, VIEWPORT, call_and_accept, member, open_live, print_consoles, shot,
                               status, upgrade, video_flows)
from tests.kit.paypal import arm
from tests.kit.system import start_system
from tests.kit.waiting import page_sleep, wait_for

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect

pytestmark = pytest.mark.browser

FIRST_ROUND = "0:30"        # the paid time runs out within the test, after the 10 s warning
PRICE = "15"
CAPTURE_DELAY_S = 3         # PayPal's answer to a capture held back, to see the popup come back first


@pytest.fixture(scope="module")
def system(database_url, tmp_path_factory):
    # Lengths of a few seconds are allowed, so a paid round can run out during the test.
    running = start_system(database_url, tmp_path_factory.mktemp("browser-call"), min_length_s=1)
    yield running
    running.stop()


def fees_of(system, amount):
    """`interkanect fees AMOUNT --json`: what the pages must show of PayPal's fee."""
    answer = system.cli("fees", amount, "--json")
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


def dollars(cents):
    return f"${cents // 100}.{cents % 100:02d}"


def delay_captures(system, seconds):
    """The PayPal emulator answers the next capture `seconds` late (it is done at once)."""
    arm(system, {"kind": "timeout", "path": "/v2/checkout/orders/*/capture", "method": "POST", "delay_s": seconds})


# Every text the payment panel shows, in order (a step may last too short to be seen by polling).
RECORD_PAYMENT_TEXT = """() => {
    window.__ikPaymentTexts = [];
    new MutationObserver((records) => {
        for (const record of records) {
            for (const node of record.addedNodes) window.__ikPaymentTexts.push(node.textContent);
        }
    }).observe(document.getElementById('payment-text'), {childList: true});
}"""


def test_a_paid_call_between_two_browsers(browser, system):
    host_context, host, host_id = member(browser, system, "Hana Host")
    caller_context, caller, _ = member(browser, system, "Carl Caller")
    try:
        upgrade(system, host, host_id)
        open_live(host, system.url + "/")   # a new page: the member's shard now knows the tier
        host.click("#search")                # a first gesture lets the page chirp

        # Calling: the Call button comes alive with the host online.
        open_live(caller, f"{system.url}/m/{host_id}")
        call_button = caller.locator("#call-button")
        expect(call_button).to_be_enabled(timeout=STEP_MS)
        for page in (host, caller):   # to tell that the call pages below are these pages, not reloads
            page.evaluate("window.notReloaded = true")
        call_button.click()

        # The host's page rings: popup with the caller's name, countdown, chirp.
        popup = host.locator("[data-incoming-call]")
        expect(popup).to_be_visible(timeout=STEP_MS)
        expect(popup.locator(".incoming-call__name")).to_have_text("Carl Caller")
        expect(popup.locator(".incoming-call__left")).to_have_text(re.compile(r"^\d+:\d\d$"))
        expect(popup).to_have_attribute("data-chirp", "played")
        expect(host).to_have_title("📞 Incoming call · interKanect")
        shot(host, "incoming-call", docs=True)

        caller.wait_for_url("**/call/*", timeout=STEP_MS)
        call_id = caller.url.rsplit("/", 1)[1]
        status(caller, "ringing")
        expect(caller.locator("#cancel-button")).to_be_visible()
        assert popup.get_attribute("data-incoming-call") == call_id

        # Accepting (from the keyboard: the popup took the focus) takes the host's page to the
        # call; both talk terms face to face.
        expect(popup.get_by_role("button", name="Accept")).to_be_focused()
        host.keyboard.press("Enter")
        host.wait_for_url(f"**/call/{call_id}", timeout=STEP_MS)
        for page in (host, caller):
            status(page, "negotiating")
            # Turned into call pages in place: their sockets, the call's connections, stayed open.
            assert page.evaluate("window.notReloaded") is True
        for page in (host, caller):
            video_flows(page)
        # The caller can tip this host (upgraded, with a payout email); the host has no Tip button.
        expect(caller.locator("#tip-button")).to_be_visible(timeout=STEP_MS)
        expect(host.locator("#tip-button")).to_be_hidden()

        # The host offers terms; the caller sees exactly them, with the same fingerprint. As the
        # price is typed the host reads what it leaves them: the server's fee rule, the CLI's figures.
        expect(host.locator("#price-field")).to_be_visible()
        net = host.locator("#price-net")
        host.locator("#price").press_sequentially("0.40")
        expect(net).to_have_attribute("data-state", "amount_below_minimum", timeout=STEP_MS)
        expect(net).to_contain_text("at least $2.00")
        host.fill("#price", "")
        host.locator("#price").press_sequentially(PRICE)
        split = fees_of(system, PRICE)
        expect(net).to_have_text(f"The caller pays {dollars(split['amount_cents'])}; PayPal keeps "
                                 f"{dollars(split['fee_cents'])}; you earn {dollars(split['net_cents'])}.",
                                 timeout=STEP_MS)
        shot(host, "terms-fee-preview", docs=True)
        host.fill("#minutes", FIRST_ROUND)
        host.click("#propose-button")
        fingerprint = host.locator("#proposal-sent-fingerprint")
        expect(fingerprint).to_have_text(re.compile(r"^[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}$"), timeout=STEP_MS)
        expect(caller.locator("#approval-terms")).to_be_visible(timeout=STEP_MS)
        expect(caller.locator("#terms-price")).to_have_text("$15.00")
        expect(caller.locator("#terms-length")).to_have_text("30 seconds")
        terms = fingerprint.text_content()
        expect(caller.locator("#terms-fingerprint")).to_have_text(terms)
        expect(caller.locator("#pay-button")).to_have_text("Pay $15.00")
        shot(host, "negotiation-host")
        shot(caller, "terms-approval", docs=True)

        # Agreeing suspends both: media off until the payment is captured. The caller's page
        # prepares the PayPal payment, then offers it; the host waits.
        caller.evaluate(RECORD_PAYMENT_TEXT)
        caller.click("#pay-button")
        for page in (host, caller):
            status(page, "awaiting_payment")
            expect(page.locator("#suspended-overlay")).to_be_visible()
            expect(page.locator("#remote-tile")).to_have_attribute("data-media", "idle")
            assert page.evaluate("document.getElementById('remote-video').srcObject") is None
        paypal_button = caller.locator("#paypal-button")
        expect(paypal_button).to_have_text("Pay $15.00 with PayPal", timeout=STEP_MS)
        expect(paypal_button).to_be_focused()
        assert caller.evaluate("window.__ikPaymentTexts")[0] == "Preparing the PayPal payment…"
        expect(caller.locator("#payment-panel")).to_have_attribute("data-step", "ready")
        expect(caller.locator("#payment-terms")).to_have_text("$15.00 for 30 seconds")
        expect(caller.locator("#payment-fingerprint")).to_have_text(terms)
        expect(host.locator("#payment-panel")).to_have_attribute("data-step", "host")
        expect(host.locator("#payment-text")).to_have_text("Waiting for the caller to pay…")
        expect(host.locator("#paypal-button")).to_be_hidden()
        expect(caller.locator("#tip-button")).to_be_hidden()   # no tips while suspended
        shot(caller, "suspended")
        shot(host, "suspended-host")
        caller.set_viewport_size(PHONE)
        shot(caller, "suspended-phone", full_page=True)
        caller.set_viewport_size(VIEWPORT)

        # PayPal opens in a popup. The payer closing it brings the button back; cancelling on
        # PayPal closes it, and nothing is paid.
        with caller.expect_popup(timeout=STEP_MS) as opened:
            paypal_button.click()
        paypal = opened.value
        expect(paypal.locator("#amount")).to_have_text("$15.00 USD", timeout=STEP_MS)
        expect(caller.locator("#payment-panel")).to_have_attribute("data-step", "open")
        expect(paypal_button).to_have_text("Show the PayPal window")
        shot(paypal, "paypal")
        paypal.close()
        expect(caller.locator("#payment-panel")).to_have_attribute("data-step", "ready")
        expect(paypal_button).to_have_text("Pay $15.00 with PayPal")
        with caller.expect_popup(timeout=STEP_MS) as opened:
            paypal_button.click()
        paypal = opened.value
        paypal.on("console", lambda message: print(f"paypal popup {message.type}: {message.text}"))
        with paypal.expect_event("close", timeout=STEP_MS):
            paypal.click("#cancel")
        expect(caller.locator("#payment-panel")).to_have_attribute("data-step", "cancelled")
        expect(caller.locator("#payment-text")).to_have_text(
            "You cancelled on PayPal; nothing was paid. Pay when you are ready.")
        status(caller, "awaiting_payment")

        # Approved: PayPal sends the popup to /paypal/return, which captures and goes on to the
        # call page. There (PayPal's answer to the capture held back a few seconds, to see it)
        # the popup only tells its opener, which resumes with the call and then closes it.
        with caller.expect_popup(timeout=STEP_MS) as opened:
            paypal_button.click()
        paypal = opened.value
        paypal.on("console", lambda message: print(f"paypal popup {message.type}: {message.text}"))
        closed = []
        paypal.on("close", lambda _: closed.append(True))
        expect(paypal.locator("#approve")).to_be_visible(timeout=STEP_MS)
        order_id = re.search(r"[?&]token=([^&]+)", paypal.url).group(1)
        delay_captures(system, CAPTURE_DELAY_S)
        paypal.click("#approve")
        expect(paypal.locator("#paypal-return")).to_have_attribute("data-outcome", "approved", timeout=STEP_MS)
        assert paypal.url == f"{system.url}/call/{call_id}"
        expect(caller.locator("#payment-panel")).to_have_attribute("data-step", "approved")
        expect(caller.locator("#paypal-button")).to_be_hidden()
        shot(paypal, "paypal-return")
        shot(caller, "payment-approved")
        for page in (host, caller):
            status(page, "running", timeout=CAPTURE_DELAY_S * 1000 + STEP_MS)
        wait_for(lambda: closed, "the call page closing PayPal's popup", STEP_MS / 1000, sleep=page_sleep(caller))
        for page in (host, caller):
            expect(page.locator("#suspended-overlay")).to_be_hidden()
        for page in (host, caller):
            video_flows(page)
        for page in (host, caller):   # the popup's page never took the call over
            expect(page.locator("#call-error")).to_be_hidden()
            expect(page.locator("#peer-away")).to_be_hidden()
        expect(caller.locator("#time-left")).to_have_text(re.compile(r"^0:[0-3]\d$"))
        shot(caller, "running-call", docs=True)
        caller.set_viewport_size(PHONE)
        shot(caller, "running-call-phone", full_page=True)
        caller.set_viewport_size(VIEWPORT)

        # A refresh re-attaches to the running call and the media comes back; the microphone
        # the caller muted stays muted.
        caller.click("#mute-button")
        expect(caller.locator("#mute-button")).to_have_attribute("aria-pressed", "true")
        caller.reload()
        status(caller, "running")
        for page in (caller, host):
            video_flows(page)
        expect(caller.locator("#mute-button")).to_have_attribute("aria-pressed", "true")
        assert caller.evaluate("document.getElementById('local-video').srcObject.getAudioTracks()[0].enabled") is False

        # Warned before the end; at the end the host is asked, the caller waits for the answer.
        for page in (host, caller):
            expect(page.locator("#time-warning")).to_have_text(
                re.compile(r"^10 seconds left\."), timeout=40_000)
        for page in (host, caller):
            status(page, "extension_offered", timeout=10_000 + STEP_MS)
        expect(host.locator("#extend-heading")).to_have_text("Time is up — extend?")
        expect(caller.locator("#extend-text")).to_contain_text("Waiting for the host")
        expect(caller.locator("#extend-actions")).to_be_hidden()
        shot(host, "extend-prompt")
        host.click("#extend-no")
        for page in (host, caller):
            status(page, "ended")
            expect(page.locator("#end-reason")).to_have_attribute("data-reason", "completed")
            expect(page.locator("#end-reason")).to_have_text("The paid time is over and the call was not extended.")
            expect(page.locator("#hangup-button")).to_be_hidden()
        expect(caller.locator("#back-link")).to_have_attribute("href", f"/m/{host_id}")
        shot(caller, "ended")

        stored = system.db.calls.find_one({"_id": call_id})
        assert stored["end_reason"] == "completed"
        assert [(p["order_id"], p["amount_cents"]) for p in stored["payments"]] == [(order_id, 1500)]
    except Exception:
        print_consoles(host, caller)
        raise
    finally:
        host_context.close()
        caller_context.close()


def test_a_caller_whose_browser_blocks_popups_pays_in_the_same_tab(browser, system):
    host_context, host, host_id = member(browser, system, "Paula Payee")
    caller_context, caller, _ = member(browser, system, "Bob Blocker")
    try:
        upgrade(system, host, host_id)
        caller.add_init_script("window.open = () => null")   # what a blocked popup returns
        call_id = call_and_accept(system, host, caller, host_id)
        status(host, "negotiating")
        host.fill("#price", "2.50")
        host.fill("#minutes", "1")
        host.click("#propose-button")
        expect(caller.locator("#pay-button")).to_have_text("Pay $2.50", timeout=STEP_MS)
        caller.click("#pay-button")
        paypal_button = caller.locator("#paypal-button")
        expect(paypal_button).to_have_text("Pay $2.50 with PayPal", timeout=STEP_MS)

        # PayPal takes the tab; Cancel brings it back to the call page, which re-attaches.
        paypal_button.click()
        expect(caller.locator("#amount")).to_have_text("$2.50 USD", timeout=STEP_MS)
        caller.click("#cancel")
        expect(caller).to_have_url(f"{system.url}/call/{call_id}", timeout=STEP_MS)   # its ?token= dropped
        status(caller, "awaiting_payment")
        expect(caller.locator("#payment-panel")).to_have_attribute("data-step", "cancelled", timeout=STEP_MS)
        expect(paypal_button).to_be_visible()

        # Approved: back through /paypal/return to the call page, and the call runs.
        paypal_button.click()
        caller.click("#approve", timeout=STEP_MS)
        caller.wait_for_url(f"**/call/{call_id}", timeout=STEP_MS)
        for page in (host, caller):
            status(page, "running")
            expect(page.locator("#suspended-overlay")).to_be_hidden()
            expect(page.locator("#call-error")).to_be_hidden()
        for page in (host, caller):
            video_flows(page)

        # A tip: the blocked popup does not take the tab to PayPal by itself (that would stop the
        # video); the caller chooses to approve in this tab, and comes back to the running call.
        caller.click("#tip-button")
        dialog = caller.locator("#tip-dialog")
        expect(dialog).to_have_attribute("data-step", "choose")
        caller.get_by_role("radio", name="$10").check()
        caller.click("#tip-send")
        tip_button = caller.locator("#tip-paypal-button")
        expect(tip_button).to_have_text("Tip $10.00 with PayPal", timeout=STEP_MS)
        tip_button.click()
        expect(dialog).to_have_attribute("data-step", "blocked")
        expect(caller.locator("#tip-here-button")).to_be_focused()
        status(caller, "running")
        caller.click("#tip-here-button")
        expect(caller.locator("#amount")).to_have_text("$10.00 USD", timeout=STEP_MS)
        caller.click("#approve")
        caller.wait_for_url(f"**/call/{call_id}", timeout=STEP_MS)
        expect(dialog).to_have_attribute("data-step", "sent", timeout=STEP_MS)
        expect(caller.locator("#tip-heading")).to_have_text("Tip sent — thank you")
        expect(host.locator('#toasts [data-toast="tip-received"] .toast__text')).to_have_text(
            "Bob Blocker tipped you $10.00", timeout=STEP_MS)
        caller.click("#tip-close")
        for page in (host, caller):
            status(page, "running")
            expect(page.locator("#call-error")).to_be_hidden()
        for page in (host, caller):
            video_flows(page)

        host.click("#hangup-button")
        for page in (host, caller):
            status(page, "ended")
        stored = system.db.calls.find_one({"_id": call_id})
        assert [p["amount_cents"] for p in stored["payments"]] == [250]
        assert [(t["amount_cents"], t["state"]) for t in stored["tips"]] == [(1000, "captured")]
    except Exception:
        print_consoles(host, caller)
        raise
    finally:
        host_context.close()
        caller_context.close()


def test_the_caller_tips_during_the_call_and_the_host_sees_it_arrive(browser, system):
    host_context, host, host_id = member(browser, system, "Tia Tipped")
    caller_context, caller, _ = member(browser, system, "Gus Generous")
    try:
        upgrade(system, host, host_id)
        call_id = call_and_accept(system, host, caller, host_id)
        # A free call: an upgraded host takes tips all the same.
        status(host, "negotiating")
        host.fill("#price", "0")
        host.fill("#minutes", "10")
        host.click("#propose-button")
        expect(caller.locator("#pay-button")).to_have_text("Start the free call", timeout=STEP_MS)
        caller.click("#pay-button")
        for page in (host, caller):
            status(page, "running")
        for page in (host, caller):
            video_flows(page)
            page.evaluate("window.__ikStream = document.getElementById('remote-video').srcObject")

        # The amount dialog: presets, another amount, the minimum; refusals in words.
        tip_button = caller.locator("#tip-button")
        expect(tip_button).to_be_visible(timeout=STEP_MS)
        expect(host.locator("#tip-button")).to_be_hidden()
        tip_button.click()
        expect(caller.get_by_role("dialog", name="Tip Tia Tipped")).to_be_visible()
        dialog = caller.locator("#tip-dialog")   # named after its heading, which follows the tip
        expect(dialog).to_have_attribute("data-step", "choose")
        expect(caller.get_by_role("radio", name="$5")).to_be_focused()
        expect(caller.locator("#tip-minimum")).to_have_text("The smallest tip is $2.00.")
        five = fees_of(system, "5")
        expect(caller.locator("#tip-net")).to_have_text(f"Tia Tipped receives {dollars(five['net_cents'])} of it; "
                                                       f"PayPal keeps {dollars(five['fee_cents'])}.", timeout=STEP_MS)
        shot(caller, "tip-dialog")
        caller.fill("#tip-amount", "five")
        caller.click("#tip-send")
        expect(caller.locator("#tip-amount-error")).to_have_attribute("data-error-code", "tip_format")
        caller.fill("#tip-amount", "1.50")
        expect(caller.get_by_role("radio", name="Other")).to_be_checked()
        expect(caller.locator("#tip-send")).to_have_text("Send a $1.50 tip")
        caller.click("#tip-send")
        amount_error = caller.locator("#tip-amount-error")
        expect(amount_error).to_have_attribute("data-error-code", "tip_out_of_range", timeout=STEP_MS)
        expect(amount_error).to_contain_text("$2.00")
        expect(caller.locator("#tip-amount")).to_be_focused()
        caller.get_by_role("radio", name="$5").check()
        expect(caller.locator("#tip-send")).to_have_text("Send a $5.00 tip")
        caller.click("#tip-send")

        # Ready: PayPal's approval of the tip, in a popup, like the call's payment.
        paypal_button = caller.locator("#tip-paypal-button")
        expect(paypal_button).to_have_text("Tip $5.00 with PayPal", timeout=STEP_MS)
        expect(paypal_button).to_be_focused()
        expect(dialog).to_have_attribute("data-step", "ready")
        shot(caller, "tip-ready")
        with caller.expect_popup(timeout=STEP_MS) as opened:   # cancelled once: nothing paid
            paypal_button.click()
        paypal = opened.value
        with paypal.expect_event("close", timeout=STEP_MS):
            paypal.click("#cancel")
        expect(dialog).to_have_attribute("data-step", "cancelled")
        expect(caller.locator("#tip-status")).to_have_text("You cancelled on PayPal; nothing was paid.")
        with caller.expect_popup(timeout=STEP_MS) as opened:
            paypal_button.click()
        paypal = opened.value
        paypal.on("console", lambda message: print(f"paypal popup {message.type}: {message.text}"))
        closed = []
        paypal.on("close", lambda _: closed.append(True))
        expect(paypal.locator("#amount")).to_have_text("$5.00 USD", timeout=STEP_MS)
        expect(dialog).to_have_attribute("data-step", "open")
        expect(paypal_button).to_have_text("Show the PayPal window")
        delay_captures(system, CAPTURE_DELAY_S)
        paypal.click("#approve")
        back = paypal.locator("#paypal-return")
        expect(back).to_have_attribute("data-purpose", "tip", timeout=STEP_MS)
        expect(back).to_have_attribute("data-outcome", "approved")
        expect(back.locator("h1")).to_have_text("Tip approved")
        expect(dialog).to_have_attribute("data-step", "approved")
        status(caller, "running")   # the call never waits for a tip

        # Captured: the caller is thanked, the popup closes, the host's page says so.
        expect(dialog).to_have_attribute("data-step", "sent", timeout=CAPTURE_DELAY_S * 1000 + STEP_MS)
        expect(caller.locator("#tip-heading")).to_have_text("Tip sent — thank you")
        expect(caller.locator("#tip-status")).to_have_text("Tia Tipped receives your $5.00 tip.")
        expect(caller.locator("#tip-close")).to_be_focused()
        toast = host.locator('#toasts [data-toast="tip-received"]')
        expect(toast.locator(".toast__text")).to_have_text("Gus Generous tipped you $5.00", timeout=STEP_MS)
        expect(toast).to_have_attribute("data-tip", "1")
        expect(host.locator("#toasts")).to_have_attribute("aria-live", "polite")
        expect(host.locator("#tips-total")).to_have_text("Gus Generous tipped you $5.00 in this call.")
        shot(caller, "tip-sent")
        shot(host, "tip-received")
        wait_for(lambda: closed, "the call page closing PayPal's popup", STEP_MS / 1000, sleep=page_sleep(caller))
        caller.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(tip_button).to_be_focused()
        expect(caller.locator("#tips-total")).to_have_text("You tipped Tia Tipped $5.00 in this call. Thank you!")

        # The call and its video went on throughout, on the same streams.
        for page in (host, caller):
            status(page, "running")
            expect(page.locator("#suspended-overlay")).to_be_hidden()
            expect(page.locator("#call-error")).to_be_hidden()
            expect(page.locator("#peer-away")).to_be_hidden()
        for page in (host, caller):
            video_flows(page)
            assert page.evaluate("document.getElementById('remote-video').srcObject === window.__ikStream")

        host.click("#hangup-button")
        for page in (host, caller):
            status(page, "ended")
        stored = system.db.calls.find_one({"_id": call_id})
        assert [(t["tip"], t["amount_cents"], t["state"]) for t in stored["tips"]] == [(1, 500, "captured")]
    except Exception:
        print_consoles(host, caller)
        raise
    finally:
        host_context.close()
        caller_context.close()


def test_every_page_rings_and_hears_why_the_ring_stopped(browser, system):
    host_context, host, host_id = member(browser, system, "Fay Free")
    first_context, first, _ = member(browser, system, "First Caller")
    second_context, second, _ = member(browser, system, "Second Caller")
    pages = [host, first, second]
    try:
        # Notifications are offered on a button, never asked for on load; "Not now" is kept.
        open_live(host, system.url + "/")
        expect(host.locator("#notify-offer")).to_be_visible()
        host.click("#notify-dismiss")
        expect(host.locator("#notify-offer")).to_have_count(0)
        open_live(host, f"{system.url}/m/{host_id}")
        expect(host.locator("#notify-offer")).to_have_count(0)
        expect(host.locator("#call-actions")).to_be_hidden()   # nobody calls themselves
        other_tab = host_context.new_page()
        pages.append(other_tab)
        open_live(other_tab, system.url + "/account")

        open_live(first, f"{system.url}/m/{host_id}")
        first.click("#call-button")
        for page in (host, other_tab):
            expect(page.locator("[data-incoming-call]")).to_be_visible(timeout=STEP_MS)
        first.wait_for_url("**/call/*", timeout=STEP_MS)
        status(first, "ringing")
        first.set_viewport_size(PHONE)
        shot(first, "ringing-phone", full_page=True)

        # A free host takes one call at a time: the second caller is told so by the button.
        open_live(second, f"{system.url}/m/{host_id}")
        expect(second.locator("#call-button")).to_be_enabled(timeout=STEP_MS)
        second.click("#call-button")
        refusal = second.locator("#call-error")
        expect(refusal).to_have_attribute("data-error-code", "busy", timeout=STEP_MS)
        expect(refusal).to_contain_text("free hosts take one call at a time")
        expect(second.locator("#call-button")).to_be_enabled()
        shot(second, "busy")

        # Declined on one page: it closes there, the other page says why, the caller too.
        host.locator("[data-incoming-call] [data-action=decline]").click()
        expect(host.locator("[data-incoming-call]")).to_have_count(0, timeout=STEP_MS)
        expect(other_tab.locator("[data-incoming-call]")).to_have_attribute("data-reason", "declined", timeout=STEP_MS)
        expect(other_tab.locator(".incoming-call__text")).to_have_text("Declined.")
        status(first, "ended")
        expect(first.locator("#end-reason")).to_have_text("Fay Free declined the call.")

        # The second caller tries again and cancels while it rings: the host's pages say so.
        second.click("#call-button")
        second.wait_for_url("**/call/*", timeout=STEP_MS)
        popups = [page.locator(f'[data-incoming-call="{second.url.rsplit("/", 1)[1]}"]') for page in (host, other_tab)]
        for popup in popups:
            expect(popup).to_have_attribute("data-state", "ringing", timeout=STEP_MS)
        status(second, "ringing")
        second.click("#cancel-button")
        for popup in popups:
            expect(popup).to_have_attribute("data-reason", "cancelled", timeout=STEP_MS)
            expect(popup.locator(".incoming-call__text")).to_have_text("Second Caller hung up before you answered.")
        status(second, "ended")
        expect(second.locator("#end-reason")).to_have_text("You cancelled the call.")

        # An ended call's page, opened again, says how it ended (from the call's history).
        second.reload()
        status(second, "ended")
        expect(second.locator("#end-reason")).to_have_attribute("data-reason", "cancelled")
    except Exception:
        print_consoles(*pages)
        raise
    finally:
        for context in (host_context, first_context, second_context):
            context.close()


def test_a_free_host_offers_minutes_only_and_the_caller_renegotiates_then_declines(browser, system):
    host_context, host, host_id = member(browser, system, "Frida Free")
    caller_context, caller, _ = member(browser, system, "Curious Caller")
    try:
        call_and_accept(system, host, caller, host_id)
        for page in (host, caller):
            status(page, "negotiating")

        # A free host sets the length only: the price is fixed at free.
        expect(host.locator("#price-field")).to_be_hidden()
        expect(host.locator("#terms-hint")).to_contain_text("Free tier")
        host.fill("#minutes", "90")
        host.click("#propose-button")
        expect(host.locator("#minutes-error")).to_have_attribute("data-error-code", "free_tier_length", timeout=STEP_MS)
        host.fill("#minutes", "ten")
        host.click("#propose-button")
        expect(host.locator("#minutes-error")).to_have_attribute("data-error-code", "length_format")
        host.fill("#minutes", "15")
        host.click("#propose-button")
        expect(caller.locator("#terms-price")).to_have_text("Free", timeout=STEP_MS)
        expect(caller.locator("#terms-length")).to_have_text("15 minutes")
        expect(caller.locator("#pay-button")).to_have_text("Start the free call")
        expect(caller.locator("#tip-button")).to_be_hidden()   # a free host cannot be tipped

        # Renegotiate: the terms are set aside and the host is told; then the caller declines.
        caller.click("#renegotiate-button")
        expect(caller.locator("#approval-waiting-text")).to_contain_text("You asked to renegotiate", timeout=STEP_MS)
        expect(host.locator("#terms-hint")).to_have_text(
            "Curious Caller asked to renegotiate. Offer new terms when you are ready.", timeout=STEP_MS)
        expect(host.locator("#proposal-sent")).to_be_hidden()
        host.fill("#minutes", "10")
        host.click("#propose-button")
        expect(caller.locator("#terms-length")).to_have_text("10 minutes", timeout=STEP_MS)
        caller.click("#decline-terms-button")
        for page in (host, caller):
            status(page, "ended")
            expect(page.locator("#end-reason")).to_have_attribute("data-reason", "declined_terms")
        expect(host.locator("#end-reason")).to_have_text("Curious Caller declined the terms. Nobody was charged.")
    except Exception:
        print_consoles(host, caller)
        raise
    finally:
        host_context.close()
        caller_context.close()


def test_prices_and_lengths_are_read_exactly(browser, system):
    page = browser.new_page()
    try:
        page.goto(system.url + "/login")
        read = page.evaluate("""async () => {
            const terms = await import('/static/js/terms.js');
            const attempt = (fn, text) => { try { return fn(text); } catch (error) { return error.code; } };
            return {
                cents: ['15', '15.5', '$15.50', '0.29', '.5', '1,250.00', '0', '19.999', 'abc', '-3', '']
                    .map((text) => attempt(terms.centsFromDollars, text)),
                seconds: ['10', '2.5', '1:30', '0:05', '1:75', 'ten']
                    .map((text) => attempt(terms.secondsFromMinutes, text)),
                prices: [0, 1500, 123456].map(terms.priceText),
            };
        }""")
    finally:
        page.close()
    assert read["cents"] == [1500, 1550, 1550, 29, 50, 125000, 0, "price_format", "price_format", "price_format",
                             "price_format"]
    assert read["seconds"] == [600, 150, 90, 5, "length_format", "length_format"]
    assert read["prices"] == ["Free", "$15.00", "$1,234.56"]
