"""Bounded work per call through the real path (websockets, gateway, the host's shard and the
call session, SecantusDB, the PayPal emulator): one tip awaiting approval at a time, and a
stored call document whose log stays within its cap however often a page re-attaches."""
from rules.call import MONEY_AND_STATE_EVENTS
from tests.kit.calls import Call
from tests.kit.paypal import approve_on_paypal
from tests.kit.system import run

LOG_CAP = 20
REATTACHES = 40


def test_a_second_tip_and_a_flood_of_reattaches_leave_the_call_bounded_and_working(system_with):
    system = system_with(call_log_max_entries=LOG_CAP)

    async def scenario():
        call = await Call.answered(system, "Bounded Host", "Eager Caller")
        await call.agree(0, 600)
        await call.caller_page.request("tip", call_id=call.id, amount_cents=500)
        (tip,) = (await call.caller_page.expect("call_state", event="tip_ready"))["tips"]
        request_id = await call.caller_page.request("tip", call_id=call.id, amount_cents=700)
        refused = await call.caller_page.expect("error", id=request_id)
        assert refused["code"] == "tip_pending" and "lapse" in refused["message"]

        # A page that re-attaches over and over: each is answered, none grows the stored call past its cap.
        for _ in range(REATTACHES):
            await call.caller_page.request("attach_call", call_id=call.id)
        for _ in range(REATTACHES):
            await call.caller_page.expect("call_state", event="joined")
        log = system.db.calls.find_one({"_id": call.id})["log"]
        assert len(log) <= LOG_CAP
        (summary,) = [entry for entry in log if entry["event"] == "summarised"]
        listed_joins = sum(entry["event"] == "joined" for entry in log)
        assert summary["counts"] == {"joined": REATTACHES - listed_joins} and listed_joins < REATTACHES

        # The call still works, and money past the cap is logged: the first tip is approved and captured.
        approve_on_paypal(tip["approve_url"])
        received = await call.host_page.expect("call_state", event="tip_received")
        assert received["state"] == "running" and received["tips"][0]["state"] == "captured"
        await call.host_page.request("hang_up", call_id=call.id)
        await call.caller_page.expect("call_state", state="ended")
        stored = system.db.calls.find_one({"_id": call.id})
        kept = [entry["event"] for entry in stored["log"] if entry["event"] in MONEY_AND_STATE_EVENTS]
        assert kept == ["ringing", "accepted", "agreed", "running", "tip_captured", "ended"]
        assert [(t["amount_cents"], t["state"]) for t in stored["tips"]] == [(500, "captured")]
    run(scenario())
