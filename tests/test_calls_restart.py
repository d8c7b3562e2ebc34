"""A call session killed mid-call, or the member shard that hosts it, is recreated from the
store and the call goes on, with nothing paid for twice."""
import os
import signal
import time

from actors.messages import PaymentCaptured
from interkanect import processes
from tests.conftest import run, tell_call
from tests.test_calls_live import Call


def kill_session(system, call_id):
    pid = system.db.calls.find_one({"_id": call_id})["session_pid"]
    os.kill(pid, signal.SIGKILL)
    return pid


def test_a_killed_call_session_is_restored_and_the_call_goes_on(system):
    async def scenario():
        call = await Call.answered(system)
        host, host_page, caller_page, call_id = call.host, call.host_page, call.caller_page, call.id
        await host_page.request("propose", call_id=call_id, price_cents=2500, length_s=900)
        proposal = (await caller_page.expect("call_state", event="proposed"))["proposal"]

        # Killed while negotiating: the proposal on the table survives, and so does its round.
        first_pid = kill_session(system, call_id)
        for page in (host_page, caller_page):
            restored = await page.expect("call_state", event="restored")
            assert restored["state"] == "negotiating" and restored["proposal"] == proposal
        await caller_page.request("pay", call_id=call_id, proposal=proposal["proposal"])
        await host_page.expect("call_state", state="awaiting_payment")
        tell_call(system, host.id, call_id, PaymentCaptured(1, {"capture_id": "CAP-1", "amount_cents": 2500}))
        running = await caller_page.expect("call_state", state="running")
        assert system.db.calls.find_one({"_id": call_id})["session_pid"] != first_pid

        # Killed while running: the paid clock goes on from where it was, and a capture
        # delivered again after the restart adds no time.
        kill_session(system, call_id)
        restored = await caller_page.expect("call_state", event="restored")
        assert restored["state"] == "running" and restored["remaining_s"] <= running["remaining_s"]
        assert restored["remaining_s"] > 890 and restored["agreed"]["fingerprint"] == proposal["fingerprint"]
        tell_call(system, host.id, call_id, PaymentCaptured(1, {"capture_id": "CAP-1", "amount_cents": 2500}))
        await host_page.request("hang_up", call_id=call_id)
        ended = await caller_page.expect("call_state", state="ended")
        assert ended["end_reason"] == "hung_up"
        stored = system.db.calls.find_one({"_id": call_id})
        assert stored["paid_s"] == 900 and len(stored["payments"]) == 1
    run(scenario())


def test_a_killed_member_shard_takes_its_sessions_and_the_call_comes_back_from_the_store(system):
    """The host's shard process dies mid paid call: its members and (parent-death signal) its
    call sessions go with it; the new shard restores the call from the store, once."""
    async def scenario():
        call = await Call.answered(system)
        host, host_page, caller_page, call_id = call.host, call.host_page, call.caller_page, call.id
        await call.agree(2500, 900)
        tell_call(system, host.id, call_id, PaymentCaptured(1, {"capture_id": "CAP-1", "amount_cents": 2500}))
        running = await caller_page.expect("call_state", state="running")

        session = system.db.calls.find_one({"_id": call_id})["session_pid"]
        shard = processes.parent_of(session)
        killed_at = time.monotonic()
        os.kill(shard, signal.SIGKILL)
        for page in (host_page, caller_page):
            restored = await page.expect("call_state", event="restored", timeout_s=20)
            assert restored["state"] == "running" and restored["remaining_s"] <= running["remaining_s"]
        print(f"\nshard killed -> call restored on both pages: {time.monotonic() - killed_at:.1f} s")
        assert not processes.alive(session), "the old session died with its shard"
        assert system.db.calls.find_one({"_id": call_id})["session_pid"] != session

        # Both pages are attached to the new shard: the call goes on and ends normally.
        await host_page.request("signal", call_id=call_id, kind="offer", sdp="v=0 after the shard")
        assert (await caller_page.expect("signal", call_id=call_id))["sdp"] == "v=0 after the shard"
        await caller_page.request("hang_up", call_id=call_id)
        assert (await host_page.expect("call_state", state="ended"))["end_reason"] == "hung_up"
        stored = system.db.calls.find_one({"_id": call_id})
        assert stored["paid_s"] == 900 and len(stored["payments"]) == 1
    run(scenario())
