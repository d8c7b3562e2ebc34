"""Connection quality as evidence, in Chromium: both call pages measure their RTCPeerConnection
and send summaries; after a call with a drop (the caller's page reloaded mid-call) the call's
page under /history charts both sides' lines with the drop marked; a caller asking for a
refund points at a moment by clicking the chart, and the operator's review shows it marked.
Screenshots go to var/screenshots/call-quality*.png (one also to docs/screenshots/)."""
import asyncio
import os
import re
import shutil

import pytest

from tests.kit.browser import (DOC_SHOTS, SHOTS, STEP_MS, an_operator, call_and_accept, logged_in, member, open_page,
                               run_in_thread, shot, status, video_flows)
from tests.kit.calls import Call, pay_round
from tests.kit.system import start_system
from tests.kit.waiting import wait_for
from tests.test_browser_pages import CALLER_ZONE

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect

pytestmark = pytest.mark.browser

INTERVAL_S = 0.5
METRICS = ("rtt_ms", "loss_pct", "kbps")


@pytest.fixture(scope="module")
def system(database_url, tmp_path_factory):
    running = start_system(database_url, tmp_path_factory.mktemp("browser-quality"), quality_interval_s=INTERVAL_S)
    yield running
    running.stop()


def stored_samples(system, call_id, side, after_s=0):
    call = system.db.calls.find_one({"_id": call_id}, {"quality": 1})
    return [s for s in ((call or {}).get("quality") or {}).get(side, []) if s["at_s"] > after_s]


def test_the_quality_chart_shows_both_sides_and_the_drop_after_a_call(browser, system):
    host_context, host, host_id = member(browser, system, "Hugo Quality")
    caller_context, caller, _ = member(browser, system, "Cleo Quality")
    try:
        call_id = call_and_accept(system, host, caller, host_id)
        for page in (host, caller):
            status(page, "negotiating")   # talking terms: media flows, and so do the measurements
        for page in (host, caller):
            video_flows(page)
        # Samples are stored every few of them: wait until each side has some.
        for side in ("host", "caller"):
            wait_for(lambda side=side: len(stored_samples(system, call_id, side)) >= 2, f"the {side}'s measurements")

        # The caller's page drops out (a reload) and comes back into the call.
        caller.reload()
        status(caller, "negotiating")
        video_flows(caller)
        back = max(entry["at_s"] for entry in system.db.calls.find_one({"_id": call_id})["log"]
                   if entry["event"] == "joined" and entry["side"] == "caller")
        for side in ("host", "caller"):
            wait_for(lambda side=side: stored_samples(system, call_id, side, after_s=back),
                     f"the {side}'s measurements after the drop")
        host.click("#hangup-button")
        status(host, "ended")

        open_page(host, f"{system.url}/history/{call_id}")
        chart = host.locator("#quality .quality-chart")
        expect(chart).to_be_visible()
        for metric in METRICS:
            plot = chart.locator(f'svg[data-metric="{metric}"]')
            expect(plot).to_have_count(1)
            # A line per side, each broken at the drop (the connection was gone for both).
            for side in ("host", "caller"):
                expect(plot.locator(f'polyline[data-side="{side}"]')).to_have_count(2)
            expect(plot.locator('.quality-drop[data-side="caller"]')).to_have_count(1)
            expect(plot.locator('.quality-drop[data-side="host"]')).to_have_count(0)
        expect(chart.locator(".quality-chart__legend")).to_contain_text("Hugo Quality")
        expect(chart.locator(".quality-chart__legend")).to_contain_text("Cleo Quality")
        summary = chart.locator(".quality-chart__summary")
        expect(summary).to_contain_text(re.compile(r"Cleo Quality: \d+ measurements, worst round trip [\d.]+ ms"))
        expect(summary).to_contain_text("dropped 1 time")
        # The round trips drawn are the ones measured: real values, from the peer connection.
        rtts = [s["rtt_ms"] for s in stored_samples(system, call_id, "host")]
        assert rtts and all(r is not None and 0 <= r < 1000 for r in rtts), rtts
        assert any(s["kbps"] for s in stored_samples(system, call_id, "caller")), "video was flowing"
        host.locator("#quality").scroll_into_view_if_needed()
        shot(host, "quality")
        host.locator("#quality").screenshot(path=str(shot_path("quality-chart")))
        if os.environ.get("IK_UPDATE_DOC_SCREENSHOTS"):  # the README's picture, refreshed on purpose only
            shutil.copyfile(shot_path("quality-chart"), DOC_SHOTS / "quality-chart.png")
    finally:
        host_context.close()
        caller_context.close()


def shot_path(name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS / f"call-{name}.png"


def paid_call_with_measurements(system):
    """A paid call over websockets whose pages send the quality summaries a browser would: the
    caller's loss climbs midway. Returns (host, caller, call_id)."""
    async def scenario():
        call = await Call.answered(system, "Hedda Measured", "Carl Measured")
        await pay_round(call, 1500, 600)
        for loss in (0, 0, 25, 40, 0):
            await call.caller_page.request("quality", call_id=call.id, rtt_ms=60 + loss * 10, loss_pct=loss,
                                           kbps=1200 - loss * 20, freezes=1 if loss else 0, relayed=False)
            await call.host_page.request("quality", call_id=call.id, rtt_ms=55, loss_pct=0, kbps=1500, freezes=0,
                                         relayed=True)
            await asyncio.sleep(INTERVAL_S)   # the pace a page keeps
        await call.host_page.request("hang_up", call_id=call.id)
        await call.caller_page.expect("call_state", state="ended")
        for page in (call.host_page, call.caller_page):
            await page.close()
        return call.host, call.caller, call.id
    return run_in_thread(scenario)


def test_a_refund_request_points_at_a_moment_on_the_chart_and_the_operator_sees_it(browser, system):
    host, caller, call_id = paid_call_with_measurements(system)
    operator = an_operator(system, "Oona Operator")
    caller_context, page = logged_in(browser, system, caller, CALLER_ZONE)
    operator_context, operator_page = logged_in(browser, system, operator, CALLER_ZONE)
    try:
        open_page(page, f"{system.url}/history/{call_id}")
        expect(page.locator("#moment-field")).to_be_visible()
        # A moment typed badly is refused at the field.
        page.fill("#reason", "My video froze and the sound cut out.")
        page.fill("#moment", "1:75")
        page.click("#refund-form button[type=submit]")
        expect(page.locator("#moment-error")).to_have_attribute("data-error-code", "moment_format", timeout=STEP_MS)
        # Clicking the loss chart in its middle writes the moment and marks it.
        plot = page.locator('#quality svg[data-metric="loss_pct"]')
        box = plot.bounding_box()
        plot.click(position={"x": box["width"] * 0.6, "y": box["height"] / 2})
        moment = page.locator("#moment")
        expect(moment).to_have_value(re.compile(r"^\d+:\d\d$"))
        expect(page.locator("#quality .quality-moment")).to_have_count(len(METRICS))
        picked = moment.input_value()
        page.click("#refund-form button[type=submit]")
        expect(page.locator("#refund-state")).to_have_attribute("data-state", "open", timeout=STEP_MS)
        expect(page.locator("#refund-moment")).to_have_text(f"Points at {picked} on the connection chart.")
        refund = page.request.get(f"{system.url}/api/calls/{call_id}/refund").json()
        minutes, seconds = picked.split(":")
        assert round(refund["moment_s"]) == int(minutes) * 60 + int(seconds), refund

        # The operator's review: the chart with the caller's moment marked.
        open_page(operator_page, f"{system.url}/operator/refunds")
        item = operator_page.locator(f'.refund-item[data-call-id="{call_id}"]')
        item.locator(".refund-item__log-button").click()
        expect(item.locator(".refund-moment")).to_have_text(
            f"The caller points at {picked} (marked on the chart).", timeout=STEP_MS)
        expect(item.locator(".quality-moment")).to_have_count(len(METRICS))
        expect(item.locator('svg[data-metric="loss_pct"] polyline[data-side="caller"]')).to_have_count(1)
        expect(item.locator(".quality-chart__summary")).to_contain_text("Carl Measured: 5 measurements")
        expect(item.locator(".quality-chart__summary")).to_contain_text("worst loss 40%")
        expect(item.locator(".quality-chart__summary")).to_contain_text("Hedda Measured: 5 measurements")
        expect(item.locator(".quality-chart__summary")).to_contain_text("through a relay")
        shot(operator_page, "quality-review", full_page=True)
    finally:
        caller_context.close()
        operator_context.close()
