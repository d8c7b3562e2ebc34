"""Calls through the real path: websockets, gateway, member and call session actors on a
multiprocTCPBase node, the call store in SecantusDB."""
import time

import pytest

from actors.messages import PaymentCaptured
from tests.kit.calls import Call, ring, upgraded_host
from tests.kit.client import Member
from tests.kit.system import run, start_system, tell_call
from tests.kit.waiting import eventually


@pytest.fixture(scope="module", params=["shard", "process"])
def system(request, database_url, tmp_path_factory):
    """Calls hosted both ways: inside their host's shard (the default) and a process each."""
    running = start_system(database_url, tmp_path_factory.mktemp("calls"), call_hosting=request.param)
    yield running
    running.finish()


def test_a_paid_call_from_ring_to_hang_up(system):
    async def scenario():
        host = await upgraded_host(system)
        caller = await Member(system.url).sign_up("Caller")
        watcher = await (await Member(system.url).sign_up("Watcher")).socket()
        await watcher.request("watch", members=[host.id])
        host_page, host_other_page = await host.socket(), await host.socket()
        await watcher.expect("presence", member_id=host.id, status="online")
        caller_page = await caller.socket()

        call_id = await ring(caller_page, [host_page, host_other_page], host.id)
        await host_page.request("accept", call_id=call_id)
        stopped = await host_other_page.expect("ring_stopped", call_id=call_id)
        assert stopped["reason"] == "answered"
        for page in (host_page, caller_page):
            state = await page.expect("call_state", call_id=call_id, state="negotiating")
            assert state["media"] and state["round"] == 1 and state["deadline_ms"]
        await watcher.expect("presence", member_id=host.id, status="in_call")

        await host_page.request("propose", call_id=call_id, price_cents=1500, length_s=600)
        for page in (host_page, caller_page):
            proposed = await page.expect("call_state", call_id=call_id, event="proposed")
        terms = proposed["proposal"]
        assert (terms["price_cents"], terms["length_s"]) == (1500, 600)

        # Signaling flows while negotiating, only to the other participant.
        await caller_page.request("signal", call_id=call_id, kind="offer", sdp="v=0 offer")
        relayed = await host_page.expect("signal", call_id=call_id)
        assert (relayed["kind"], relayed["sdp"]) == ("offer", "v=0 offer")

        await caller_page.request("pay", call_id=call_id, proposal=terms["proposal"])
        for page in (host_page, caller_page):
            suspended = await page.expect("call_state", call_id=call_id, state="awaiting_payment")
            assert suspended["media"] is False and suspended["agreed"]["fingerprint"] == terms["fingerprint"]
        refused_id = await caller_page.request("signal", call_id=call_id, kind="offer", sdp="v=0")
        refused = await caller_page.expect("error", id=refused_id)
        assert refused["code"] == "media_not_allowed"

        tell_call(system, host.id, call_id, PaymentCaptured(1, {"capture_id": "CAPTURE-1", "amount_cents": 1500}))
        for page in (host_page, caller_page):
            running = await page.expect("call_state", call_id=call_id, state="running")
            assert running["media"] and running["ends_at_ms"] and 599 < running["remaining_s"] <= 600
        # The same capture told twice adds no time.
        tell_call(system, host.id, call_id, PaymentCaptured(1, {"capture_id": "CAPTURE-1", "amount_cents": 1500}))

        await caller_page.request("hang_up", call_id=call_id)
        for page in (host_page, caller_page):
            ended = await page.expect("call_state", call_id=call_id, state="ended")
            assert ended["end_reason"] == "hung_up"
        await watcher.expect("presence", member_id=host.id, status="online")

        stored = system.db.calls.find_one({"_id": call_id})
        assert stored["state"] == "ended" and stored["paid_s"] == 600
        events = [entry["event"] for entry in stored["log"]]
        assert events[:4] == ["ringing", "accepted", "proposed", "agreed"]
        assert events.count("payment_captured") == 1 and events[-1] == "ended"
        assert stored["rounds"][0]["fingerprint"] == terms["fingerprint"]
    run(scenario())


def test_calling_offline_self_or_a_busy_free_host_is_refused(system):
    async def scenario():
        host = await Member(system.url).sign_up("Free host")
        caller = await Member(system.url).sign_up("Caller")
        second = await Member(system.url).sign_up("Second caller")
        caller_page = await caller.socket()
        await caller_page.expect("hello")
        request_id = await caller_page.request("call", member_id=host.id)
        assert (await caller_page.expect("error", id=request_id))["code"] == "offline"
        request_id = await caller_page.request("call", member_id=caller.id)
        assert (await caller_page.expect("error", id=request_id))["code"] == "self_call"

        host_page = await host.socket()
        await host_page.expect("hello")
        call_id = await ring(caller_page, [host_page], host.id)
        second_page = await second.socket()
        request_id = await second_page.request("call", member_id=host.id)
        assert (await second_page.expect("error", id=request_id))["code"] == "busy"

        # A stranger cannot act on the call.
        request_id = await second_page.request("accept", call_id=call_id)
        assert (await second_page.expect("error", id=request_id))["code"] == "no_such_call"
        await caller_page.request("cancel", call_id=call_id)
        assert (await host_page.expect("ring_stopped", call_id=call_id))["reason"] == "cancelled"
        assert (await caller_page.expect("call_state", state="ended"))["end_reason"] == "cancelled"
    run(scenario())


def test_a_free_host_negotiates_a_free_call_and_its_limits(system):
    async def scenario():
        host = await Member(system.url).sign_up("Free host")
        caller = await Member(system.url).sign_up("Caller")
        host_page, caller_page = await host.socket(), await caller.socket()
        call_id = await ring(caller_page, [host_page], host.id)
        await host_page.request("accept", call_id=call_id)
        await caller_page.expect("call_state", state="negotiating")
        for price, length, code in ((500, 600, "free_tier_price"), (0, 30 * 60, "free_tier_length"),
                                    (0, 10, "length_out_of_range")):
            request_id = await host_page.request("propose", call_id=call_id, price_cents=price, length_s=length)
            assert (await host_page.expect("error", id=request_id))["code"] == code
        request_id = await caller_page.request("propose", call_id=call_id, price_cents=0, length_s=600)
        assert (await caller_page.expect("error", id=request_id))["code"] == "not_host"
        await host_page.request("propose", call_id=call_id, price_cents=0, length_s=600)
        proposal = (await caller_page.expect("call_state", event="proposed"))["proposal"]
        request_id = await host_page.request("pay", call_id=call_id, proposal=proposal["proposal"])
        assert (await host_page.expect("error", id=request_id))["code"] == "not_caller"
        await caller_page.request("pay", call_id=call_id, proposal=proposal["proposal"])
        running = await caller_page.expect("call_state", state="running")
        assert running["agreed"]["price_cents"] == 0
        await host_page.request("hang_up", call_id=call_id)
        assert (await caller_page.expect("call_state", state="ended"))["end_reason"] == "hung_up"
    run(scenario())


@pytest.fixture(scope="module")
def quick_system(database_url, tmp_path_factory):
    from tests.kit.system import start_system
    running = start_system(database_url, tmp_path_factory.mktemp("quick"), ring_timeout_s=0.5,
                           negotiation_window_s=1.0, payment_window_s=1.0, reconnect_grace_s=1.0)
    yield running
    running.finish()


def test_a_missed_call_ends_for_both_and_emails_the_host(quick_system):
    system = quick_system

    async def scenario():
        host = await Member(system.url).sign_up("Busy Bee")
        caller = await Member(system.url).sign_up("Eager Caller")
        host_page, caller_page = await host.socket(), await caller.socket()
        call_id = await ring(caller_page, [host_page], host.id)
        assert (await host_page.expect("ring_stopped", call_id=call_id))["reason"] == "missed"
        assert (await caller_page.expect("call_state", state="ended"))["end_reason"] == "missed"
        mail = await eventually(lambda: system.db.outbox.find_one({"to": host.email}), "the missed-call mail")
        assert "Eager Caller" in mail["subject"]
    run(scenario())


def test_no_agreement_in_the_window_ends_the_call_and_nobody_pays(quick_system):
    system = quick_system

    async def scenario():
        host = await Member(system.url).sign_up()
        caller = await Member(system.url).sign_up()
        host_page, caller_page = await host.socket(), await caller.socket()
        call_id = await ring(caller_page, [host_page], host.id)
        await host_page.request("accept", call_id=call_id)
        ended = await caller_page.expect("call_state", state="ended", timeout_s=5)
        assert ended["end_reason"] == "no_agreement"
        assert system.db.calls.find_one({"_id": call_id})["payments"] == []
    run(scenario())


def test_both_sides_read_the_call_log_and_strangers_cannot(system):
    async def scenario():
        call = await Call.answered(system, "Logged Host", "Logged Caller")
        host, caller, host_page, caller_page, call_id = call.host, call.caller, call.host_page, call.caller_page, call.id
        stranger = await Member(system.url).sign_up("Stranger")
        proposal = await call.agree(900, 300)
        tell_call(system, host.id, call_id, PaymentCaptured(1, {"capture_id": "LOG-1", "amount_cents": 900}))
        await caller_page.expect("call_state", state="running")
        await caller_page.request("hang_up", call_id=call_id)
        await host_page.expect("call_state", state="ended")

        for member, role, other in ((host, "host", caller), (caller, "caller", host)):
            listed = (await member.request("GET", "/api/calls")).json()["calls"]
            mine = [c for c in listed if c["id"] == call_id]
            assert len(mine) == 1 and mine[0]["role"] == role and mine[0]["with"]["id"] == other.id
            assert mine[0]["paid_cents"] == 900 and mine[0]["rounds"][0]["fingerprint"] == proposal["fingerprint"]
            log = (await member.request("GET", f"/api/calls/{call_id}")).json()["call"]
            events = [entry["event"] for entry in log["log"]]
            assert events[0] == "ringing" and "payment_captured" in events and events[-1] == "ended"
            assert log["end_reason"] == "hung_up" and set(log["connected_s"]) == {"host", "caller"}
        answer = await stranger.request("GET", f"/api/calls/{call_id}")
        assert answer.code == 404 and answer.error_code == "no_such_call"
        assert (await stranger.request("GET", "/api/calls")).json()["calls"] == []
        assert (await Member(system.url).request("GET", "/api/calls")).code == 401
    run(scenario())


def test_media_chat_and_whiteboard_content_never_reaches_the_server(system):
    async def scenario():
        member = await Member(system.url).sign_up()
        page = await member.socket()
        await page.expect("hello")
        call_id = "a" * 24
        for frame, code in (({"type": "chat", "id": 1, "call_id": call_id, "text": "hi"}, "unknown_type"),
                            ({"type": "whiteboard", "id": 2, "call_id": call_id, "stroke": [1, 2]}, "unknown_type"),
                            ({"type": "media", "id": 3, "call_id": call_id, "data": b"\x00" * 100}, "unknown_type"),
                            ({"type": "signal", "id": 4, "call_id": call_id, "kind": "chat", "sdp": "hi"},
                             "invalid_value"),
                            ({"type": "signal", "id": 5, "call_id": call_id, "kind": "offer", "sdp": "v=0",
                              "text": "smuggled"}, "unexpected_field")):
            await page.send(frame)
            error = await page.expect("error", id=frame["id"])
            assert error["code"] == code, (frame, error)
    run(scenario())


def test_a_side_away_longer_than_the_grace_ends_the_call_with_the_unused_time_recorded(quick_system):
    system = quick_system

    async def scenario():
        call = await Call.answered(system)
        host_page, caller_page, call_id = call.host_page, call.caller_page, call.id
        await call.agree(0, 600)
        await caller_page.close()
        away = await host_page.expect("call_state", event="peer_left")
        assert away["paused"] and away["grace_deadline_ms"]
        ended = await host_page.expect("call_state", state="ended", timeout_s=5)
        assert ended["end_reason"] == "away_too_long"
        last = system.db.calls.find_one({"_id": call_id})["log"][-1]
        assert last["event"] == "ended" and last["by"] == "caller" and 595 < last["unused_paid_s"] <= 600
    run(scenario())


def test_an_unpaid_order_ends_the_call_when_the_payment_window_closes(quick_system):
    system = quick_system

    async def scenario():
        call = await Call.answered(system)
        host, caller_page, call_id = call.host, call.caller_page, call.id
        await call.agree(700, 600)
        ended = await caller_page.expect("call_state", state="ended", timeout_s=5)
        assert ended["end_reason"] == "payment_timeout"
        # A capture arriving after the window is not taken as payment for a call that ended.
        tell_call(system, host.id, call_id, PaymentCaptured(1, {"capture_id": "LATE", "amount_cents": 700}))
        assert system.db.calls.find_one({"_id": call_id})["payments"] == []
    run(scenario())


def test_participants_get_turn_credentials_for_their_call(system_with):
    system = system_with(turn_urls=("turn:127.0.0.1:3478?transport=udp",), stun_urls=("stun:127.0.0.1:3478",),
                         turn_secret="s3cret")

    async def scenario():
        host = await Member(system.url).sign_up()
        caller = await Member(system.url).sign_up()
        host_page, caller_page = await host.socket(), await caller.socket()
        call_id = await ring(caller_page, [host_page], host.id)
        await host_page.request("accept", call_id=call_id)
        for page in (host_page, caller_page):
            servers = (await page.expect("call_state", state="negotiating"))["ice_servers"]
            turn = [s for s in servers if "username" in s]
            assert turn and turn[0]["username"].endswith(":" + call_id)
            assert int(turn[0]["username"].split(":")[0]) > time.time()
    run(scenario())


def test_the_host_stops_ringing_when_the_callers_page_closes(system):
    async def scenario():
        host = await Member(system.url).sign_up()
        caller = await Member(system.url).sign_up()
        host_page, caller_page = await host.socket(), await caller.socket()
        call_id = await ring(caller_page, [host_page], host.id)
        await caller_page.close()
        assert (await host_page.expect("ring_stopped", call_id=call_id))["reason"] == "cancelled"
        request_id = await host_page.request("accept", call_id=call_id)
        assert (await host_page.expect("error", id=request_id))["code"] in ("wrong_state", "no_such_call")
    run(scenario())


def test_two_pages_on_one_gateway_signal_through_it_and_the_lease_ends_with_the_call(system):
    """The call's session leases the relay to the gateway holding both pages: signaling goes on
    while the session's process is stopped, and stops being relayed at the first change."""
    import os
    import signal as signals

    async def scenario():
        call = await Call.answered(system)
        await call.agree(0, 600)
        await call.caller_page.expect("call_state", call_id=call.id, state="running")
        session_pid = system.db.calls.find_one({"_id": call.id})["session_pid"]
        os.kill(session_pid, signals.SIGSTOP)
        try:
            await call.host_page.request("signal", call_id=call.id, kind="offer", sdp="v=0 leased")
            assert (await call.caller_page.expect("signal", call_id=call.id))["sdp"] == "v=0 leased"
            await call.caller_page.request("signal", call_id=call.id, kind="answer", sdp="v=0 back")
            assert (await call.host_page.expect("signal", call_id=call.id))["sdp"] == "v=0 back"
        finally:
            os.kill(session_pid, signals.SIGCONT)
        await call.host_page.request("hang_up", call_id=call.id)
        await call.caller_page.expect("call_state", call_id=call.id, state="ended")
        request_id = await call.caller_page.request("signal", call_id=call.id, kind="offer", sdp="v=0 too late")
        refused = await call.caller_page.expect("error", id=request_id)
        assert refused["code"] in ("media_not_allowed", "no_such_call")
        assert not [f for f in call.host_page.received if f["type"] == "signal" and f["sdp"] == "v=0 too late"]
    run(scenario())
