"""A call session killed mid-call, or the member shard that hosts it, is recreated from the
store and the call goes on, with nothing paid for twice. Both ways calls can be hosted: inside
the host's shard (the default: the session's process is the shard's) and as a process each."""
import os
import signal
import time

import pytest

from actors.messages import PaymentCaptured
from interkanect import processes
from tests.kit.calls import Call
from tests.kit.paypal import approve_on_paypal
from tests.kit.system import run, start_system, tell_call
from tests.kit.waiting import eventually


@pytest.fixture(scope="module", params=["shard", "process"])
def system(request, database_url, tmp_path_factory):
    running = start_system(database_url, tmp_path_factory.mktemp("restart"), call_hosting=request.param)
    yield running
    running.finish()


def kill_session(system, call_id):
    """SIGKILL the process running the call's session (with calls in shards: the shard's)."""
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

        stored = system.db.calls.find_one({"_id": call_id})
        session, shard = stored["session_pid"], stored["shard_pid"]
        assert processes.parent_of(session) == shard or session == shard
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


def test_two_killed_shards_bring_back_every_live_call_they_hosted_once(system):
    """Many live calls over the shards; two shard processes SIGKILLed at once: every call they
    hosted comes back from the store once (one `restored` per page), the others never stop."""
    async def scenario():
        calls = [await Call.answered(system, f"Host {n}", f"Caller {n}") for n in range(8)]
        for call in calls:
            await call.agree(0, 600)  # a free round: running at once
        shard_of = {call.id: system.db.calls.find_one({"_id": call.id})["shard_pid"] for call in calls}
        killed = sorted(set(shard_of.values()))[:2]
        hit = [call for call in calls if shard_of[call.id] in killed]
        spared = [call for call in calls if shard_of[call.id] not in killed]
        assert len(killed) == 2 and hit
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        for call in hit:
            for page in (call.host_page, call.caller_page):
                restored = await page.expect("call_state", call_id=call.id, event="restored", timeout_s=20)
                assert restored["state"] == "running"
        for call in calls:  # every call goes on: signaling both ways, then a normal end
            await call.host_page.request("signal", call_id=call.id, kind="offer", sdp="v=0 after")
            assert (await call.caller_page.expect("signal", call_id=call.id))["sdp"] == "v=0 after"
            await call.caller_page.request("hang_up", call_id=call.id)
            assert (await call.host_page.expect("call_state", call_id=call.id, state="ended"))["end_reason"] == \
                "hung_up"
        for call in calls:
            for page in (call.host_page, call.caller_page):
                restores = [f for f in page.received if f["type"] == "call_state" and f.get("event") == "restored"]
                assert len(restores) == (1 if call in hit else 0), (call.id, restores)
                signals = [f for f in page.received if f["type"] == "signal"]
                assert len(signals) == (1 if page is call.caller_page else 0)
    run(scenario())


def test_a_killed_payments_adapter_is_replaced_and_a_call_waiting_for_its_payment_pays_through_the_new_one(system):
    """Hosted either way, a call awaiting payment uses the adapter that replaced a killed one."""
    async def scenario():
        call = await Call.answered(system)
        await call.agree(1500, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        first = system.db.platform.find_one({"_id": "adapter:PaymentsActor"})["pid"]
        os.kill(first, signal.SIGKILL)
        await eventually(lambda: system.db.platform.find_one({"_id": "adapter:PaymentsActor"})["pid"] != first,
                         "a new payments adapter", timeout_s=15)
        approve_on_paypal(ready["payment"]["approve_url"])
        await call.host_page.expect("call_state", state="running", event="payment_captured", timeout_s=15)
        assert system.db.ledger.count_documents({"call_id": call.id}) == 1
        await call.host_page.request("hang_up", call_id=call.id)
        await call.caller_page.expect("call_state", state="ended")
    run(scenario())
