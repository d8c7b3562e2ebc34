"""Refunds and the operators' pages in real Chromium: after a real paid call (websockets, the
actor node, the PayPal emulator) the caller asks for a refund on the call's detail page; the host
sees the request; an operator (set with `interkanect members set-operator`) finds it in the
review queue with its deadline, opens the call's log, adds a note from interviewing the host
and approves; the money goes back through the emulator and the caller's page says refunded.
Operators find members and set their tier; everyone else gets an "operators only" page.

Screenshots go to var/screenshots/ (call-refund*.png, call-operator*.png)."""
import datetime
import re
import time

import pytest

from rules import payout_calendar
from tests.kit.browser import STEP_MS, an_operator, fits_the_width, logged_in, open_page, run_in_thread, shot, tab_until
from tests.kit.client import Member
from tests.kit.operators import approve
from tests.kit.paypal import arm, paypal_api
from tests.kit.waiting import page_sleep, wait_for
from tests.test_browser_pages import (CALLER_ZONE, HOST_ZONE, NET_PAYMENT_CENTS, NET_TIP_CENTS, PHONE_WIDTH,
                                      paid_call_with_tip)

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect

pytestmark = pytest.mark.browser

OPERATOR_ZONE = "Europe/Berlin"
SETTLE_S = 30     # PayPal's refund (the emulator) and the ledger booking, after the decision


def wait_for_refund_state(page, system, call_id, state, timeout_s=SETTLE_S):
    """The request reaches `state` (read through the page's own session), within a bound."""
    wait_for(lambda: page.request.get(f"{system.url}/api/calls/{call_id}/refund").json()["state"],
             f"the refund request {state}", timeout_s, until=lambda seen: seen == state, sleep=page_sleep(page))


def test_a_refund_from_request_to_refunded_through_the_operators_queue(browser, system):
    host, caller, call_id = paid_call_with_tip(system, "Rita Refunded", "Ralf Regret")
    operator = an_operator(system, "Olga Operator")
    caller_context, caller_page = logged_in(browser, system, caller, CALLER_ZONE)
    host_context, host_page = logged_in(browser, system, host, HOST_ZONE)
    operator_context, operator_page = logged_in(browser, system, operator, OPERATOR_ZONE)
    try:
        # The caller asks from the call's detail page; a reason is required.
        open_page(caller_page, f"{system.url}/history/{call_id}")
        form = caller_page.locator("#refund-form")
        expect(form).to_be_visible()
        expect(caller_page.locator("#reason")).to_have_attribute("required", "")
        tab_until(caller_page, "#reason")
        tab_until(caller_page, "#refund-form button[type=submit]")
        caller_page.keyboard.press("Enter")
        expect(caller_page.locator("#reason-error")).to_have_attribute("data-error-code", "reason_required",
                                                                         timeout=STEP_MS)
        expect(caller_page.locator("#reason")).to_be_focused()
        caller_page.keyboard.type("The host's video froze after two minutes and never came back.")
        caller_page.click("#refund-form button[type=submit]")
        state = caller_page.locator("#refund-state")
        expect(state).to_have_attribute("data-state", "open", timeout=STEP_MS)
        expect(form).to_be_hidden()
        refund = caller_page.request.get(f"{system.url}/api/calls/{call_id}/refund").json()
        deadline = datetime.datetime.fromisoformat(refund["deadline"])
        shown = caller_page.locator("#refund-deadline")
        assert datetime.datetime.fromisoformat(shown.get_attribute("datetime")) == deadline
        expect(caller_page.locator("#refund-standing")).to_contain_text("$13.99 of the $15.00 paid")
        shot(caller_page, "refund-requested", full_page=True)

        # The host sees that a request is open on that call.
        open_page(host_page, f"{system.url}/history/{call_id}")
        expect(host_page.locator("#refund-state")).to_have_attribute("data-state", "open")
        expect(host_page.locator("#refund-standing")).to_have_text(
            "Ralf Regret asked for a refund of this call. An operator reviews it and may ask you about the call.")
        expect(host_page.locator("#refund-form")).to_be_hidden()
        # ... and neither side has the Operator link.
        expect(host_page.locator("#nav-operator")).to_have_count(0)

        # The operator: the link in the header, the request in the queue with its deadline.
        open_page(operator_page, system.url + "/")
        operator_page.click("#nav-operator")
        operator_page.wait_for_url("**/operator/refunds", timeout=STEP_MS)
        expect(operator_page.locator("body")).to_have_attribute("data-ready", "true", timeout=STEP_MS)
        item = operator_page.locator(f'.refund-item[data-call-id="{call_id}"]')
        expect(item).to_have_attribute("data-state", "open")
        expect(item.locator(".refund-item__heading")).to_have_text("Ralf Regret asks Rita Refunded's call back")
        shown = item.locator(".refund-item__deadline")
        assert datetime.datetime.fromisoformat(shown.get_attribute("datetime")) == deadline
        assert "GMT+1" in shown.text_content() or "CET" in shown.text_content()
        expect(item).to_contain_text("The host's video froze after two minutes and never came back.")
        expect(item).to_contain_text("$15.00")

        # The call's log, opened from the keyboard.
        log_button = item.locator(".refund-item__log-button")
        tab_until(operator_page, ".refund-item__log-button")
        operator_page.keyboard.press("Enter")
        expect(log_button).to_have_attribute("aria-expanded", "true", timeout=STEP_MS)
        expect(item.locator('.call-log [data-event="payment_captured"]')).to_contain_text(
            "Payment of $15.00 captured for round 1.")
        expect(item.locator('.call-log [data-event="ringing"]')).to_contain_text("Ralf Regret called Rita Refunded.")

        # A note from interviewing the host (an empty one is refused).
        note_form = item.locator(".note-form")
        note_form.locator("button[type=submit]").click()
        expect(note_form.locator("[data-form-error]")).to_have_attribute("data-error-code", "note_required",
                                                                         timeout=STEP_MS)
        note_form.locator("textarea").fill("Called Rita: she confirms her camera failed mid-call.")
        note_form.locator("button[type=submit]").click()
        item = operator_page.locator(f'.refund-item[data-call-id="{call_id}"]')
        expect(item.locator(".note")).to_have_count(1, timeout=STEP_MS)
        expect(item.locator(".note")).to_contain_text("Olga Operator")
        expect(item.locator(".note")).to_contain_text("Called Rita: she confirms her camera failed mid-call.")
        expect(item.locator(".note-form textarea")).to_be_focused()
        expect(item.locator(".call-log")).to_be_visible()   # the redraw kept the log open
        shot(operator_page, "operator-refunds", full_page=True)

        # Approve with a note: the refund goes to PayPal (the emulator) and is booked.
        decision = item.locator(".decision-form")
        decision.get_by_label("Approve", exact=False).check()
        decision.locator("textarea").fill("Approved: the host confirms the video failed.")
        decision.locator("button[type=submit]").click()
        expect(item.locator(".refund-item__state")).to_have_attribute(
            "data-state", re.compile("approved|refunded"), timeout=STEP_MS + 8000)
        wait_for_refund_state(caller_page, system, call_id, "refunded")
        booked = list(system.db.ledger.find({"call_id": call_id, "kind": "refund"}))
        assert sum(entry["amount_cents"] for transaction in booked for entry in transaction["entries"]
                   if entry["account"].startswith("caller:")) == NET_PAYMENT_CENTS

        # The caller's page says refunded, with the operator's note; the host's too.
        open_page(caller_page, f"{system.url}/history/{call_id}")
        expect(caller_page.locator("#refund-state")).to_have_attribute("data-state", "refunded")
        expect(caller_page.locator("#refund-standing")).to_have_text(
            "Refunded: $13.99 of the $15.00 paid went back to your PayPal account.")
        expect(caller_page.locator("#refund-decision-note")).to_contain_text(
            "Approved: the host confirms the video failed.")
        shot(caller_page, "refund-refunded", docs=True, full_page=True)
        open_page(host_page, f"{system.url}/history/{call_id}")
        expect(host_page.locator("#refund-state")).to_have_attribute("data-state", "refunded")

        # The queue's filter: no open request left; the refunded one under "Refunded".
        open_page(operator_page, system.url + "/operator/refunds")
        expect(operator_page.locator(f'.refund-item[data-call-id="{call_id}"]')).to_have_count(0)
        operator_page.select_option("#state", "refunded")
        operator_page.click("#refund-filter button[type=submit]")
        expect(operator_page.locator(f'.refund-item[data-call-id="{call_id}"]')).to_have_attribute(
            "data-state", "refunded", timeout=STEP_MS)

        # At phone width the queue fits.
        operator_page.set_viewport_size(PHONE_WIDTH)
        open_page(operator_page, system.url + "/operator/refunds?state=all")
        assert fits_the_width(operator_page)
        shot(operator_page, "operator-refunds-phone", full_page=True)

        # Everyone else: an "operators only" page, and the API refuses them.
        for url in ("/operator/refunds", "/operator/members"):
            open_page(caller_page, system.url + url)
            expect(caller_page.locator("#operators-only")).to_be_visible()
            expect(caller_page.locator("#refunds, #members")).to_be_hidden()
        refused = caller_page.request.get(system.url + "/api/refunds")
        assert refused.status == 403 and refused.json()["error"]["code"] == "not_operator"
    finally:
        for context in (caller_context, host_context, operator_context):
            context.close()


def test_a_refund_paypal_keeps_failing_is_shown_to_operators_who_ask_paypal_again(browser, system):
    host, caller, call_id = paid_call_with_tip(system, "Fiona Failing", "Felix Failed")
    operator = an_operator(system, "Otto Oncall")

    async def ask_and_approve():
        view = (await caller.request("POST", f"/api/calls/{call_id}/refund", {"reason": "no sound"})).json()
        arm(system, {"kind": "refund_outcome", "outcome": "FAILED", "count": 3})
        return (await approve(operator, view["id"])).json()
    run_in_thread(ask_and_approve)
    context, page = logged_in(browser, system, operator, OPERATOR_ZONE)
    try:
        wait_for(lambda: page.request.get(f"{system.url}/api/calls/{call_id}/refund").json().get("needs_operator"),
                 "PayPal's three failures reaching the operators", SETTLE_S, sleep=page_sleep(page))
        open_page(page, system.url + "/operator/refunds?state=approved")
        item = page.locator(f'.refund-item[data-call-id="{call_id}"]')
        expect(item).to_have_attribute("data-state", "approved")
        expect(item.locator('.refund-item__progress [data-needs-operator="true"]')).to_contain_text(
            "PayPal failed this refund 3 times (last: FAILED)")
        shot(page, "operator-refund-failing", full_page=True)
        tab_until(page, f'.refund-item[data-call-id="{call_id}"] .retry-form button[type=submit]')
        page.keyboard.press("Enter")
        wait_for_refund_state(page, system, call_id, "refunded")
        open_page(page, system.url + "/operator/refunds?state=refunded")
        expect(page.locator(f'.refund-item[data-call-id="{call_id}"]')).to_have_attribute("data-state", "refunded")
    finally:
        context.close()


def test_an_operator_finds_a_member_and_sets_their_tier(browser, system):
    operator = an_operator(system, "Otto Operator")
    member = run_in_thread(lambda: Member(system.url).sign_up("Tierney Tiered"))
    context, page = logged_in(browser, system, operator, OPERATOR_ZONE)
    try:
        open_page(page, system.url + "/operator/members")
        tab_until(page, "#q")
        page.keyboard.type("Tierney")
        page.keyboard.press("Enter")
        rows = page.locator("#members-table tbody tr")
        expect(rows).to_have_count(1, timeout=STEP_MS)
        row = page.locator(f'tr[data-member-id="{member.id}"]')
        expect(row).to_contain_text(member.email)
        expect(page.locator("#member-count")).to_have_text("1 member matching “Tierney”.")
        select = row.get_by_label("Tier of Tierney Tiered")
        expect(select).to_have_value("free")

        # From the keyboard: the select, then Save.
        tab_until(page, f"#tier-{member.id}")
        select.select_option("upgraded")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        expect(row.locator(".tier-note")).to_have_text("Saved: Tierney Tiered is upgraded.", timeout=STEP_MS)
        assert system.db.members.find_one({"email": member.email})["tier"] == "upgraded"
        shot(page, "operator-members")
        public = page.request.get(f"{system.url}/api/members/{member.id}").json()["member"]
        assert public["tier"] == "upgraded"

        # The search survives a reload (it is in the address) and shows the new tier.
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=STEP_MS)
        expect(page.locator(f'tr[data-member-id="{member.id}"] select')).to_have_value("upgraded")

        page.set_viewport_size(PHONE_WIDTH)
        open_page(page, system.url + "/operator/members?q=Tierney")
        assert fits_the_width(page)
        shot(page, "operator-members-phone", full_page=True)
    finally:
        context.close()


def test_a_refund_after_the_payout_leaves_the_host_owing_and_the_earnings_page_says_so(browser, system_with):
    # Earnings released one second after the call; a refund made on PayPal's dashboard after the
    # payout (booked from its webhook) then takes them back from available.
    system = system_with(earnings_hold_s=1, refund_window_s=1)
    host, caller, call_id = paid_call_with_tip(system, "Owen Owing", "Cara Claimant")
    ended_at = system.db.calls.find_one({"_id": call_id})["ended_at"]
    # Wait out the one-second hold (a known deadline in the data, not a guess).
    time.sleep(max(0.0, (ended_at - datetime.datetime.now(datetime.timezone.utc)).total_seconds() + 1.5))
    next_payout = payout_calendar.next_payouts(datetime.datetime.now(datetime.timezone.utc), 1)[0]
    ran = system.cli("payouts", "run", "--at", next_payout.isoformat(), "--json")
    assert ran.returncode == 0, ran.stderr
    paid = NET_PAYMENT_CENTS + NET_TIP_CENTS

    (capture,) = system.db.ledger.find({"call_id": call_id, "kind": "call_payment"})
    status, _ = paypal_api(system.settings.paypal_url, "POST", f"/v2/payments/captures/{capture['_id'][8:]}/refund",
                           {"amount": {"currency_code": "USD",
                                      "value": f"{NET_PAYMENT_CENTS // 100}.{NET_PAYMENT_CENTS % 100:02d}"}})
    assert status == 201
    context, page = logged_in(browser, system, host, HOST_ZONE)
    try:
        wait_for(lambda: system.db.ledger.find_one({"call_id": call_id, "kind": "refund"}),
                 "the dashboard refund booked from its webhook", SETTLE_S, sleep=page_sleep(page))
        open_page(page, system.url + "/earnings")
        expect(page.locator("#paid-out")).to_have_text(f"${paid // 100}.{paid % 100:02d}")
        expect(page.locator("#pending")).to_have_text("$0.00")
        available = page.locator("#available")
        expect(available).to_have_text("\u2212$13.99")
        expect(available).to_have_attribute("data-cents", str(-NET_PAYMENT_CENTS))
        expect(page.locator("#available-meaning")).to_contain_text(
            "You owe $13.99: a refund took back earnings that had already been paid out.")
        shot(page, "earnings-owing", full_page=True)
    finally:
        context.close()
