"""The pages outside the call in real Chromium: after a real paid call (websockets, the actor
node, the PayPal emulator) both sides find it in /history with its terms, fingerprint, payment
and tip; the call's detail shows its log in the viewer's time zone; /earnings shows the host's
pending and available money, the next payout in the browser's time zone and, after a real
payout run through the emulator, the past payout. Checked at phone width and from the keyboard.

Screenshots go to var/screenshots/ (call-history*.png, call-earnings*.png)."""
import datetime
import re
import zoneinfo

import pytest

from rules import payout_rules
from tests.kit.browser import STEP_MS, fits_the_width, logged_in, open_page, run_in_thread, shot, tab_until
from tests.kit.calls import Call
from tests.kit.paypal import approve_on_paypal

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect

pytestmark = pytest.mark.browser

PHONE_WIDTH = {"width": 360, "height": 740}
HOST_ZONE = "Asia/Tokyo"            # payouts are Friday 19:00 in Los Angeles: Saturday morning here
CALLER_ZONE = "America/New_York"
PRICE_CENTS, TIP_CENTS = 1500, 500
# $15.00: PayPal keeps 3.49% (52.35 → 52 cents) + 49 cents = $1.01; $5.00: 17 + 49 = 66 cents.
NET_PAYMENT_CENTS, NET_TIP_CENTS = 1399, 434


def paid_call_with_tip(system, host_name, caller_name):
    """A real paid call, driven over websockets as the two pages would: terms agreed, paid on
    the PayPal emulator's page, a tip approved there too, then the host hangs up. Returns
    (host, caller, call_id): tests.kit.client.Member objects, logged in through the API."""
    async def scenario():
        call = await Call.answered(system, host_name, caller_name)
        await call.agree(PRICE_CENTS, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        approve_on_paypal(ready["payment"]["approve_url"])
        await call.host_page.expect("call_state", state="running", event="payment_captured")
        await call.caller_page.request("tip", call_id=call.id, amount_cents=TIP_CENTS)
        tip_ready = await call.caller_page.expect("call_state", event="tip_ready")
        approve_on_paypal(tip_ready["tips"][0]["approve_url"])
        await call.host_page.expect("call_state", event="tip_received")
        await call.host_page.request("hang_up", call_id=call.id)
        await call.caller_page.expect("call_state", state="ended")
        for page in (call.host_page, call.caller_page):
            await page.close()
        return call.host, call.caller, call.id
    return run_in_thread(scenario, timeout_s=120)


def clock_words(instant, zone, seconds=False):
    """"7:03 PM" / "7:03:12 PM" as Intl's en-US says it, in `zone`."""
    local = instant.astimezone(zoneinfo.ZoneInfo(zone))
    return local.strftime("%-I:%M:%S %p" if seconds else "%-I:%M %p")


def plain(text):
    """Intl puts narrow no-break spaces before AM/PM; compare with plain spaces."""
    return re.sub(r"[\u202f\u00a0]", " ", text)


def test_history_and_call_detail_after_a_paid_call_for_both_sides(browser, system):
    host, caller, call_id = paid_call_with_tip(system, "Hana History", "Carl Caller")
    stored = system.db.calls.find_one({"_id": call_id})
    (round_one,) = stored["rounds"]
    host_context, host_page = logged_in(browser, system, host, HOST_ZONE)
    caller_context, caller_page = logged_in(browser, system, caller, CALLER_ZONE)
    try:
        for page, zone, role, title in ((caller_page, CALLER_ZONE, "caller", "You called Hana History"),
                                        (host_page, HOST_ZONE, "host", "Carl Caller called you")):
            open_page(page, system.url + "/history")
            expect(page.locator("#nav-history")).to_have_attribute("aria-current", "page")
            row = page.locator(f'li.history-call[data-call-id="{call_id}"]')
            expect(row).to_have_attribute("data-role", role)
            expect(row).to_have_attribute("data-state", "ended")
            expect(row.locator(".history-call__link")).to_have_text(title)
            expect(row.locator(".history-call__money")).to_have_text("$15.00 paid, $5.00 in tips")
            expect(row.locator(".fingerprint")).to_have_text(round_one["fingerprint"])
            expect(row.locator(".history-call__terms")).to_contain_text("Round 1: $15.00 for 10 minutes")
            # The list does not say who hung up (GET /api/calls has no `ended_by`); the detail's log does.
            expect(row.locator(".history-call__outcome")).to_have_text("The call was hung up.")
            when = row.locator(".history-call__when time")
            assert datetime.datetime.fromisoformat(when.get_attribute("datetime")) == stored["created_at"]
            assert clock_words(stored["created_at"], zone) in plain(when.text_content())
            expect(page.locator("#history-zone")).to_have_text(zone)
        shot(caller_page, "history")

        # The caller opens the call from the keyboard: the detail with the call's log.
        tab_until(caller_page, f'a[href="/history/{call_id}"]')
        caller_page.keyboard.press("Enter")
        caller_page.wait_for_url(f"**/history/{call_id}", timeout=STEP_MS)
        expect(caller_page.locator("body")).to_have_attribute("data-ready", "true", timeout=STEP_MS)
        detail = caller_page.locator("#call-detail")
        expect(detail).to_be_visible()
        expect(caller_page.locator("#detail-heading")).to_have_text("Your call to Hana History")
        facts = caller_page.locator("#detail-facts")
        expect(facts).to_contain_text("$15.00 for round 1 (PayPal fee $1.01, host earns $13.99)")
        expect(facts).to_contain_text("Tip of $5.00")
        expect(facts.locator(".fingerprint")).to_have_text(round_one["fingerprint"])
        log = caller_page.locator("#call-log .call-log__entry")
        events = [entry["event"] for entry in stored["log"]]
        expect(log).to_have_count(len(events))
        assert [log.nth(i).get_attribute("data-event") for i in range(len(events))] == events
        expect(caller_page.locator('#call-log [data-event="ringing"]')).to_contain_text("Carl Caller called Hana History.")
        expect(caller_page.locator('#call-log [data-event="agreed"]')).to_contain_text(
            f"Carl Caller agreed to $15.00 for 10 minutes (fingerprint {round_one['fingerprint']}).")
        expect(caller_page.locator('#call-log [data-event="payment_captured"]')).to_have_text(
            re.compile(r"Payment of \$15\.00 captured for round 1\.$"))
        expect(caller_page.locator('#call-log [data-event="tip_captured"]')).to_contain_text("Tip of $5.00 captured.")
        expect(caller_page.locator('#call-log [data-event="ended"]')).to_contain_text("Hana History hung up.")
        first = stored["log"][0]
        at = datetime.datetime.fromtimestamp(first["at_s"], datetime.timezone.utc)
        assert plain(log.first.locator("time").text_content()) == clock_words(at, CALLER_ZONE, seconds=True)
        shot(caller_page, "history-detail", full_page=True)

        # The host's detail of the same call, in Tokyo time.
        open_page(host_page, f"{system.url}/history/{call_id}")
        expect(host_page.locator("#detail-heading")).to_have_text("Carl Caller's call to you")
        host_first = host_page.locator("#call-log .call-log__entry").first.locator("time")
        assert plain(host_first.text_content()) == clock_words(at, HOST_ZONE, seconds=True)
        expect(host_page.locator('#call-log [data-event="ended"]')).to_contain_text("You hung up.")

        # Someone else's call is not shown, and says so.
        open_page(host_page, f"{system.url}/history/{'0' * 24}")
        expect(host_page.locator("#call-missing")).to_be_visible()

        # At phone width: everything fits, nothing scrolls sideways.
        for url in (f"{system.url}/history", f"{system.url}/history/{call_id}"):
            caller_page.set_viewport_size(PHONE_WIDTH)
            open_page(caller_page, url)
            assert fits_the_width(caller_page), url
        shot(caller_page, "history-detail-phone", full_page=True)
    finally:
        host_context.close()
        caller_context.close()


def test_earnings_show_pending_available_the_next_payout_in_the_viewers_zone_and_past_payouts(browser, system):
    host, _, _ = paid_call_with_tip(system, "Earning Host", "Paying Caller")
    context, page = logged_in(browser, system, host, HOST_ZONE)
    try:
        open_page(page, system.url + "/earnings")
        expect(page.locator("#nav-earnings")).to_have_attribute("aria-current", "page")
        # The call's net is held for its refund window; the tip's net is available at once.
        expect(page.locator("#pending")).to_have_text("$13.99")
        expect(page.locator("#pending")).to_have_attribute("data-cents", str(NET_PAYMENT_CENTS))
        expect(page.locator("#available")).to_have_text("$4.34")
        expect(page.locator("#available-meaning")).to_have_text("Goes to your PayPal account with the next payout.")
        expect(page.locator("#paid-out")).to_have_text("$0.00")
        expect(page.locator("#payouts-empty")).to_be_visible()
        expect(page.locator("#payout-email-note")).to_be_hidden()

        # The next payout: Friday 19:00 in Los Angeles, said in Tokyo time (Saturday morning).
        earnings = page.request.get(system.url + "/api/earnings").json()
        next_at = datetime.datetime.fromisoformat(earnings["next_payout_at"])
        tokyo = next_at.astimezone(zoneinfo.ZoneInfo(HOST_ZONE))
        shown = page.locator("#next-payout-at")
        assert datetime.datetime.fromisoformat(shown.get_attribute("datetime")) == next_at
        text = plain(shown.text_content())
        assert f"{tokyo:%A, %B} {tokyo.day}, {tokyo.year}" in text and clock_words(next_at, HOST_ZONE) in text, text
        assert tokyo.strftime("%A") == "Saturday" and "GMT+9" in text, text
        expect(page.locator("#earnings-zone")).to_have_text(HOST_ZONE)
        shot(page, "earnings")

        # A payout run (the operator's command, through the node's scheduler and PayPal's
        # Payouts API on the emulator) pays the available tip; the page lists it.
        latest = payout_rules.latest_payout_at_or_before(datetime.datetime.now(datetime.timezone.utc))
        ran = system.cli("payouts", "run", "--at", latest.isoformat(), "--json")
        assert ran.returncode == 0, ran.stderr
        open_page(page, system.url + "/earnings")
        row = page.locator("#payouts tbody tr")
        expect(row).to_have_count(1)
        expect(row.locator("td").nth(1)).to_have_text("$4.34")
        expect(row.locator("td").nth(2)).to_have_text("payouts@example.com")
        expect(page.locator("#paid-out")).to_have_text("$4.34")
        expect(page.locator("#available")).to_have_text("$0.00")
        expect(page.locator("#pending")).to_have_text("$13.99")
        assert clock_words(latest, HOST_ZONE) in plain(row.locator("time").text_content())

        # A negative balance reads as money owed, with an exact minus sign (formatting from cents).
        formatted = page.evaluate("""async () => {
            const { moneyText } = await import('/static/js/money.js');
            return [-320, 0, 5, 123456789, -100000].map(moneyText);
        }""")
        assert formatted == ["\u2212$3.20", "$0.00", "$0.05", "$1,234,567.89", "\u2212$1,000.00"]

        # Phone width, and every control reachable from the keyboard.
        page.set_viewport_size(PHONE_WIDTH)
        open_page(page, system.url + "/earnings")
        assert fits_the_width(page)
        shot(page, "earnings-phone", docs=True, full_page=True)
        for control in ("#nav-directory", "#nav-history", "#nav-earnings", "#nav-account", "#logout-button"):
            page.focus("body")
            tab_until(page, control)
    finally:
        context.close()


def test_a_call_record_downloaded_from_the_call_page_verifies_and_an_edited_one_does_not(browser, system,
                                                                                         tmp_path):
    import json
    host, caller, call_id = paid_call_with_tip(system, "Rhea Record", "Rolf Record")
    context, page = logged_in(browser, system, caller, CALLER_ZONE)
    try:
        open_page(page, f"{system.url}/history/{call_id}")
        expect(page.locator("#record")).to_be_visible()
        with page.expect_download(timeout=STEP_MS) as downloading:
            page.click("#record-download")
        download = downloading.value
        assert download.suggested_filename == f"interkanect-call-{call_id}.json"
        original = tmp_path / download.suggested_filename
        download.save_as(original)
        record = json.loads(original.read_text())
        assert record["call_id"] == call_id and any(link.get("event") == "payment_captured"
                                                    for link in record["links"])
        # `interkanect verify-record`: intact; with the key published at the well-known URL too.
        checked = system.cli("verify-record", str(original))
        assert checked.returncode == 0 and "intact and signed by interKanect" in checked.stdout, checked
        key = page.request.get(f"{system.url}/.well-known/interkanect-record-key").json()
        assert key["alg"] == "Ed25519" and key["key_id"] == record["key_id"]
        assert system.cli("verify-record", str(original), "--public-key", key["public_key"]).returncode == 0
        # One entry edited (a payment made smaller): the CLI and the page's check both say so.
        edited = tmp_path / "edited.json"
        for link in record["links"]:
            if link.get("event") == "payment_captured":
                link["amount_cents"] = 100
        edited.write_text(json.dumps(record))
        refused = system.cli("verify-record", str(edited))
        assert refused.returncode == 1 and "was changed after it was recorded" in refused.stdout, refused
        verdict = page.locator("#record-verdict")
        page.set_input_files("#record-file", str(edited))
        page.click("#record-check button[type=submit]")
        expect(verdict).to_have_attribute("data-intact", "false", timeout=STEP_MS)
        expect(verdict).to_contain_text("was changed after it was recorded")
        page.set_input_files("#record-file", str(original))
        page.click("#record-check button[type=submit]")
        expect(verdict).to_have_attribute("data-intact", "true", timeout=STEP_MS)
        expect(verdict).to_have_text(f"{original.name}: intact and signed by interKanect.")
        # Only its two sides read a call's record.
        stranger = page.request.get(f"{system.url}/api/calls/{'0' * 24}/record")
        assert stranger.status == 404
    finally:
        context.close()
