"""A whole paid call with two aiortc peers standing in for the two browsers: they connect
peer to peer through the gateway's relayed signaling, talk over a data channel, are
suspended for payment, reconnect, survive a page refresh, extend, and hang up."""
import pytest

from actors.messages import PaymentCaptured
from tests.kit.calls import ring, upgraded_host
from tests.kit.client import Member
from tests.kit.peers import Peer, connect
from tests.kit.system import run, start_system, tell_call

FIRST_ROUND_S = 4  # short, so the paid time runs out within the test


@pytest.fixture(scope="module")
def system(database_url, tmp_path_factory):
    running = start_system(database_url, tmp_path_factory.mktemp("webrtc"), min_length_s=1, reconnect_grace_s=10)
    yield running
    running.finish()


async def talk(a, b):
    await a.say("ping from " + a.socket_name)
    assert await b.heard() == "ping from " + a.socket_name
    await b.say("pong from " + b.socket_name)
    assert await a.heard() == "pong from " + b.socket_name


async def agree_and_pay(system, host, host_page, caller_page, call_id, round_number, price_cents, length_s):
    await host_page.request("propose", call_id=call_id, price_cents=price_cents, length_s=length_s)
    proposal = (await caller_page.expect("call_state", event="proposed", round=round_number))["proposal"]
    await caller_page.request("pay", call_id=call_id, proposal=proposal["proposal"])
    for page in (host_page, caller_page):
        suspended = await page.expect("call_state", state="awaiting_payment", round=round_number)
        assert suspended["media"] is False
    tell_call(system, host.id, call_id, PaymentCaptured(round_number, {"capture_id": f"C{round_number}",
                                                                       "amount_cents": price_cents}))
    for page in (host_page, caller_page):
        running = await page.expect("call_state", state="running", event="payment_captured", round=round_number)
        assert running["media"] and running["ends_at_ms"]
    return proposal


def test_a_whole_call_between_two_webrtc_peers(system):
    async def scenario():
        host = await upgraded_host(system)
        caller = await Member(system.url).sign_up("Caller")
        host_page, caller_page = await host.socket(), await caller.socket()
        call_id = await ring(caller_page, [host_page], host.id)
        await host_page.request("accept", call_id=call_id)
        await caller_page.expect("call_state", state="negotiating")
        await host_page.expect("call_state", state="negotiating")

        # Talking terms, face to face: connected peer to peer through relayed signaling.
        host_peer, caller_peer = Peer(host_page, call_id), Peer(caller_page, call_id)
        host_peer.socket_name, caller_peer.socket_name = "host", "caller"
        await connect(caller_peer, host_peer)
        await talk(caller_peer, host_peer)

        # Pay: suspended (media stops), then captured: reconnected and talking again.
        await agree_and_pay(system, host, host_page, caller_page, call_id, 1, 1000, FIRST_ROUND_S)
        await connect(caller_peer, host_peer)
        await talk(host_peer, caller_peer)

        # The caller's page is refreshed: a new websocket re-attaches and media is restarted.
        await caller_peer.close()
        await caller_page.close()
        away = await host_page.expect("call_state", event="peer_left")
        assert away["paused"] and away["grace_deadline_ms"] and not away["caller"]["connected"]
        caller_page = await caller.socket()
        await caller_page.request("attach_call", call_id=call_id)
        back = await caller_page.expect("call_state", call_id=call_id, event="peer_back")
        assert back["state"] == "running" and back["role"] == "caller"
        assert (await host_page.expect("call_state", event="peer_back"))["caller"]["connected"]
        caller_peer = Peer(caller_page, call_id)
        caller_peer.socket_name = "caller"
        await connect(caller_peer, host_peer)
        await talk(caller_peer, host_peer)

        # The paid time runs out: not cut, the host is offered an extension.
        offer = await host_page.expect("call_state", state="extension_offered", timeout_s=FIRST_ROUND_S + 10)
        assert offer["media"] and offer["remaining_s"] == 0
        await talk(host_peer, caller_peer)  # still connected while the host decides
        await host_page.request("extend", call_id=call_id, yes=True)
        await caller_page.expect("call_state", state="negotiating", round=2)
        await agree_and_pay(system, host, host_page, caller_page, call_id, 2, 500, 60)
        await connect(caller_peer, host_peer)
        await talk(caller_peer, host_peer)

        await host_page.request("hang_up", call_id=call_id)
        for page in (host_page, caller_page):
            ended = await page.expect("call_state", state="ended")
            assert ended["end_reason"] == "hung_up" and ended["media"] is False
        await host_peer.close()
        await caller_peer.close()

        stored = system.db.calls.find_one({"_id": call_id})
        assert [r["price_cents"] for r in stored["rounds"]] == [1000, 500]
        assert [p["capture_id"] for p in stored["payments"]] == ["C1", "C2"]
        assert stored["paid_s"] == FIRST_ROUND_S + 60
        events = [entry["event"] for entry in stored["log"]]
        for event in ("left", "joined", "time_up", "extension", "ended"):
            assert event in events
        assert stored["connected_s"]["caller"] > 0 and stored["connected_s"]["host"] > 0
    run(scenario())
