"""The database restarting under a live system (gateway, actor node, PayPal emulator on a
SecantusDB of the test's own): while it is down, requests that need it are refused clearly
and what does not need it goes on; once it is back the system carries on by itself, with
no restart of its own and no change lost."""
import asyncio
import json
import time
import urllib.error
import urllib.request

import websockets

from tests.kit.calls import Call
from tests.kit.client import Member
from tests.kit.paypal import approve_on_paypal
from tests.kit.system import run
from tests.kit.waiting import eventually
from tests.test_money_faults import booked_once

# Longer than the adapters' and the gateway's serverSelectionTimeoutMS (5 s): every client
# of the database has given up on it at least once before it is back.
OUTAGE_S = 12


def health(system):
    try:
        with urllib.request.urlopen(system.url + "/healthz", timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused)


async def health_is(system, status, timeout_s):
    return await eventually(lambda: health(system)[0] == status, f"/healthz answering {status}", timeout_s=timeout_s)


async def call_refusal(page, member_id):
    """What a page's call to itself is refused with: `self_call` when the call side is up,
    `unavailable` when the gateway knows its database is down. Changes nothing either way."""
    request_id = await page.request("call", member_id=member_id)
    return (await page.expect("error", id=request_id))["code"]


async def until_refused_with(page, member_id, code, timeout_s):
    await eventually(lambda: call_refusal(page, member_id), f"call refused with {code}", timeout_s,
                     until=lambda found: found == code, poll_s=0.2)


def test_a_database_restart_is_ridden_out_with_no_restart_and_no_change_lost(system_on_own_database, own_database):
    system = system_on_own_database

    async def scenario():
        call = await Call.answered(system, "Steady Host", "Steady Caller")
        await call.agree(0, 3600)
        await call.caller_page.expect("call_state", state="running")
        watcher = await Member(system.url).sign_up("Watcher")
        watcher_page = await watcher.socket()
        await watcher_page.request("watch", members=[call.caller.id])
        await watcher_page.expect("presence", member_id=call.caller.id, status="in_call")

        await asyncio.to_thread(own_database.stop)
        stopped_at = time.monotonic()
        # Signaling needs no database: it is relayed at once.
        await call.caller_page.request("signal", call_id=call.id, kind="offer", sdp="v=0 during the outage")
        assert (await call.host_page.expect("signal", call_id=call.id))["sdp"] == "v=0 during the outage"
        # A change the call makes by itself (the caller's page closing) while the database is
        # down: presence, which needs no database, shows it at once; the call stores it first.
        await call.caller_page.close()
        await watcher_page.expect("presence", member_id=call.caller.id, status="offline")

        # Down: /healthz says so, the API answers 503 at once, new sockets are refused.
        await health_is(system, 503, 20)
        assert health(system)[1]["database"]["ok"] is False
        await until_refused_with(call.host_page, call.host.id, "unavailable", 20)
        for member, method, path, body in ((call.host, "GET", "/api/me", None),
                                           (Member(system.url), "POST", "/api/login",
                                            {"email": call.caller.email, "password": "correct horse battery"}),
                                           (Member(system.url), "POST", "/api/signup",
                                            {"email": "late@example.com", "password": "correct horse battery",
                                             "display_name": "Late"})):
            asked_at = time.monotonic()
            answer = await member.request(method, path, body)
            assert (answer.code, answer.error_code) == (503, "database_unavailable"), (path, answer.body)
            assert answer.headers["Retry-After"] and time.monotonic() - asked_at < 3
        try:
            await call.caller.socket()
            raise AssertionError("a socket opened with no database to check its session")
        except websockets.InvalidStatus as refused:
            assert refused.response.status_code == 503

        # Open pages go on: ping needs no database; a call's changes are refused with no effect
        # (the host's hang-up here).
        ping_id = await call.host_page.request("ping")
        await call.host_page.expect("pong", id=ping_id)
        signal = await call.host_page.request("signal", call_id=call.id, kind="answer", sdp="v=0")
        assert (await call.host_page.expect("error", id=signal))["code"] == "peer_away"  # the session knows
        hang_up = await call.host_page.request("hang_up", call_id=call.id)
        refused = await call.host_page.expect("error", id=hang_up)
        assert refused["code"] == "unavailable" and "database" in refused["message"]
        # Until the database is back the host hears nothing of the caller leaving: not stored, not told.
        try:
            early = await call.host_page.expect("call_state", event="peer_left",
                                                timeout_s=max(0.1, OUTAGE_S - (time.monotonic() - stopped_at)))
            raise AssertionError(f"told before it was stored: {early}")
        except asyncio.TimeoutError:
            pass
        await asyncio.to_thread(own_database.start)

        # Back, nothing restarted: health, the call's held change, log-in, sign-up, presence.
        await health_is(system, 200, 30)
        left = await call.host_page.expect("call_state", event="peer_left", timeout_s=30)
        assert left["state"] == "running" and left["paused"]
        await until_refused_with(call.host_page, call.host.id, "self_call", 20)
        assert (await call.caller.log_in()).code == 200
        newcomer = await Member(system.url).sign_up("Newcomer")
        caller_page = await call.caller.socket()
        await watcher_page.expect("presence", member_id=call.caller.id, status="in_call")
        await caller_page.request("attach_call", call_id=call.id)
        back = await call.host_page.expect("call_state", event="peer_back")
        assert back["state"] == "running" and not back["paused"]
        await watcher_page.request("watch", members=[newcomer.id])
        await watcher_page.expect("presence", member_id=newcomer.id, status="offline")
        newcomer_page = await newcomer.socket()
        await watcher_page.expect("presence", member_id=newcomer.id, status="online")

        await call.host_page.request("hang_up", call_id=call.id)
        ended = await caller_page.expect("call_state", state="ended")
        assert ended["end_reason"] == "hung_up" and ended["ended_by"] == "host"
        stored = await eventually(lambda: system.db.calls.find_one({"_id": call.id, "state": "ended"}), "the call stored ended", timeout_s=15)
        events = [(entry["event"], entry.get("side")) for entry in stored["log"]]
        # The change made while the database was down is there, in its place.
        assert events[-3:] == [("left", "caller"), ("joined", "caller"), ("ended", None)], events
        assert [e for e, _ in events].count("left") == 1

        # A new call is placed and paid through PayPal, booked once.
        paid = await Call.answered(system, "Paid Host", "Paying Caller")
        await paid.agree(1500, 600)
        ready = await paid.caller_page.expect("call_state", event="payment_ready")
        approve_on_paypal(ready["payment"]["approve_url"])
        await paid.host_page.expect("call_state", state="running", event="payment_captured", timeout_s=20)
        booked_once(system, paid)
        await paid.host_page.request("hang_up", call_id=paid.id)
        await paid.caller_page.expect("call_state", state="ended")
        await newcomer_page.close()
    run(scenario())
