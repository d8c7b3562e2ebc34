"""Connection quality as evidence through the real path: `quality` frames from both pages of a
call (websockets, gateway, the call session in its host's shard, the call store), refused when
malformed, too frequent or not the sender's call; the timelines readable by the call's two
sides, part of its signed record, and pointed at by a refund request."""
import asyncio
import datetime

import pytest

from actors import evidence
from tests.kit.calls import Call, pay_round
from tests.kit.client import Member
from tests.kit.system import run, start_system
from tests.kit.waiting import eventually

INTERVAL_S = 1
SAMPLE = {"rtt_ms": 48.0, "loss_pct": 0.0, "kbps": 1500, "freezes": 0, "relayed": False}


@pytest.fixture(scope="module")
def system(database_url, tmp_path_factory):
    running = start_system(database_url, tmp_path_factory.mktemp("quality"), quality_interval_s=INTERVAL_S,
                           min_length_s=60)
    yield running
    running.finish()


async def refused(page, request_id):
    error = await page.expect("error", id=request_id)
    return error["code"]


def test_each_sides_samples_are_kept_with_the_call_and_signed_in_its_record(system):
    async def scenario():
        call = await Call.answered(system, "Quinn Host", "Quade Caller")
        await call.host_page.expect("call_state", state="negotiating")
        state = await call.caller_page.expect("call_state", state="negotiating")
        assert state["limits"]["quality_interval_ms"] == INTERVAL_S * 1000
        # The caller's link is bad, the host's good; each sends two summaries an interval apart.
        for lossy in (12.5, 30.0):
            await call.caller_page.request("quality", call_id=call.id, **dict(SAMPLE, loss_pct=lossy, rtt_ms=410))
            await call.host_page.request("quality", call_id=call.id, **SAMPLE)
            await asyncio.sleep(INTERVAL_S)   # the pace pages keep (the rule refuses under half of it)
        await call.host_page.request("hang_up", call_id=call.id)
        await call.caller_page.expect("call_state", state="ended")
        detail = (await call.caller.request("GET", f"/api/calls/{call.id}")).json()["call"]
        assert [s["loss_pct"] for s in detail["quality"]["caller"]] == [12.5, 30.0]
        assert [s["rtt_ms"] for s in detail["quality"]["host"]] == [48.0, 48.0]
        assert all(s["at_s"] <= s["until_s"] for side in ("host", "caller") for s in detail["quality"][side])
        # The list of calls stays light: no timelines in it.
        listed = (await call.host.request("GET", "/api/calls")).json()["calls"]
        assert "quality" not in listed[0]
        # The record carries them in its signed facts: an edited loss no longer verifies.
        record = (await call.host.request("GET", f"/api/calls/{call.id}/record")).json()
        facts = record["links"][0]["facts"]
        assert [s["loss_pct"] for s in facts["quality"]["caller"]] == [12.5, 30.0]
        key = evidence.public_key_from_text(
            (await call.host.request("GET", "/.well-known/interkanect-record-key")).json()["public_key"])
        assert evidence.verify(record, key)[0]
        facts["quality"]["caller"][1]["loss_pct"] = 0
        assert not evidence.verify(record, key)[0]
    run(scenario())


def test_bad_quality_frames_are_refused_with_a_reason_and_change_nothing(system):
    async def scenario():
        call = await Call.answered(system, "Rhys Host", "Rory Caller")
        await call.caller_page.expect("call_state", state="negotiating")
        page = call.caller_page
        # Out of bounds, a wrong type, a missing measure: the gateway's schema says which.
        assert await refused(page, await page.request("quality", call_id=call.id, **dict(SAMPLE, loss_pct=140))) \
            == "invalid_value"
        wrong = await page.request("quality", call_id=call.id, **dict(SAMPLE, relayed="yes"))
        assert await refused(page, wrong) == "wrong_type"
        missing = dict(SAMPLE)
        del missing["kbps"]
        assert await refused(page, await page.request("quality", call_id=call.id, **missing)) == "missing_field"
        # A second summary at once: too often.
        await page.request("quality", call_id=call.id, **SAMPLE)
        assert await refused(page, await page.request("quality", call_id=call.id, **SAMPLE)) == "quality_too_often"
        # Someone else's call: nothing to tell them.
        stranger = await Member(system.url).sign_up("Sam Stranger")
        stranger_page = await stranger.socket()
        assert await refused(stranger_page, await stranger_page.request("quality", call_id=call.id, **SAMPLE)) \
            == "no_such_call"
        await call.host_page.request("hang_up", call_id=call.id)
        await page.expect("call_state", state="ended")
        # After the end the call is gone for its pages: nothing more is measured into it. The
        # ended session refuses a frame at once (media_not_allowed); the caller's member, told
        # of the end by another message than the page's "ended" frame, forgets the call a moment
        # later (no_such_call): under load a frame can land in between.
        async def forgotten():
            code = await refused(page, await page.request("quality", call_id=call.id, **SAMPLE))
            assert code in ("media_not_allowed", "no_such_call"), code
            return code == "no_such_call"
        await eventually(forgotten, "the ended call forgotten by the caller's page")
        detail = (await call.caller.request("GET", f"/api/calls/{call.id}")).json()["call"]
        assert len(detail["quality"]["caller"]) == 1 and detail["quality"]["host"] == []
    run(scenario())


def test_a_refund_request_points_at_a_moment_within_the_call(system):
    async def scenario():
        call = await Call.answered(system, "Tara Host", "Theo Caller")
        await pay_round(call, 1500, 60)
        await call.host_page.request("hang_up", call_id=call.id)
        await call.caller_page.expect("call_state", state="ended")
        detail = (await call.caller.request("GET", f"/api/calls/{call.id}")).json()["call"]
        path = f"/api/calls/{call.id}/refund"
        for moment in (-1, 3600, "0:05", True):
            answer = await call.caller.request("POST", path, {"reason": "frozen video", "moment_s": moment})
            assert (answer.code, answer.error_code) == (400, "invalid_moment"), answer.body
        assert (await call.caller.request("GET", path)).error_code == "no_refund_request"  # nothing asked
        length_s = (datetime.datetime.fromisoformat(detail["ended_at"])
                    - datetime.datetime.fromisoformat(detail["answered_at"])).total_seconds()
        moment = round(length_s / 2, 1)
        asked = await call.caller.request("POST", path, {"reason": "frozen video", "moment_s": moment})
        assert asked.code == 201 and asked.json()["moment_s"] == moment, asked.body
        assert (await call.host.request("GET", path)).json()["moment_s"] == moment
    run(scenario())
