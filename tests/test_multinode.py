"""Several actor nodes in one Thespian convention and several gateways, on loopback: members
and their calls spread over the nodes, a lost node's calls go on from the store, and a lost
gateway's members come back through another one."""
import asyncio
import signal
import time

import pytest
from bson import ObjectId

from actors import placement
from actors.liveness import BridgeLiveness
from actors.shards import shard_index
from tests.client import PASSWORD, Member
from tests.conftest import run
from tests.multinode import Cluster
from tests.test_call_payments import approve_on_paypal
from tests.test_calls_live import Call, ring
from tests.test_gateways import on

SHARDS = 8
# Detection bounds: the convention declares a node dead after 3 missed 2 s check-ins, a shard
# gives up on a gateway after 5 missed 1 s heartbeats; the rest is margin for a shared machine.
NODE_LOSS_BOUND_S = 40
GATEWAY_LOSS_BOUND_S = 15


# Placement and liveness rules ----------------------------------------------------------

def test_shards_spread_round_robin_and_a_lost_nodes_shards_go_to_the_least_loaded():
    spread = placement.spread(8, ["leader", "node-1", "node-2"])
    assert [spread[i] for i in range(8)] == ["leader", "node-1", "node-2"] * 2 + ["leader", "node-1"]
    moves = placement.rehome(spread, "node-1", ["leader", "node-2"])
    assert moves == {1: "node-2", 4: "leader", 7: "node-2"}
    assert placement.rehome(spread, "node-1", []) == {}
    with pytest.raises(ValueError):
        placement.spread(8, [])


def test_a_bridge_is_given_up_after_its_timeout_and_resyncs_when_it_speaks_again():
    liveness = BridgeLiveness(timeout_s=3)
    assert liveness.heard("a", now_s=0) is False and liveness.heard("b", now_s=2) is False
    assert liveness.silent(now_s=3) == [] and liveness.silent(now_s=3.5) == ["a"]
    assert liveness.silent(now_s=4) == [] and liveness.watching
    assert liveness.heard("a", now_s=5) is True   # it was given up: attach again
    assert liveness.heard("a", now_s=6) is False


# A convention of three nodes and two gateways ----------------------------------------------

@pytest.fixture
def cluster(database_url, tmp_path_factory):
    running = Cluster(database_url, tmp_path_factory.mktemp("cluster"), node_count=3, gateway_count=2).start()
    yield running
    running.stop()


async def member_on(cluster, url, node, name, upgraded=False):
    """Sign up members through `url` until one's shard lives on `node`."""
    where = cluster.placement()
    for _ in range(40):
        member = await Member(url).sign_up(name)
        if where[shard_index(member.id, SHARDS)] == node:
            if upgraded:
                assert (await member.request("PATCH", "/api/me", {"payout_email": "p@example.com", "password": PASSWORD})).code == 200
                cluster.db.members.update_one({"_id": ObjectId(member.id)}, {"$set": {"tier": "upgraded"}})
            return member
    raise AssertionError(f"no member landed on {node}")


async def answered_call(cluster, host_node, caller_node):
    """A call answered between a host on gateway B (shard on host_node) and a caller on gateway A."""
    a, b = cluster.gateways[0].url, cluster.gateways[1].url
    host = await member_on(cluster, b, host_node, "Host", upgraded=True)
    caller = await member_on(cluster, a, caller_node, "Caller")
    host_page, caller_page = await host.socket(), await caller.socket()
    call = Call(host, caller, host_page, caller_page, await ring(caller_page, [host_page], host.id))
    await host_page.request("accept", call_id=call.id)
    return call


def test_members_on_different_nodes_and_gateways_call_each_other(cluster):
    async def scenario():
        assert set(cluster.placement().values()) == {"leader", "node-1", "node-2"}
        # Gateway B talks to node-2's admin only (as on node-2's machine), yet finds the
        # leader's directory: it reports the same placement.
        b = cluster.gateways[1].system
        assert b.settings.admin_port == cluster.node("node-2").admin_port != cluster.node("leader").admin_port
        status, health = b.health()
        assert status == 200 and health["actors"]["placement"] == {str(i): n for i, n in cluster.placement().items()}
        call = await answered_call(cluster, "node-1", "node-2")
        for page in (call.host_page, call.caller_page):
            await page.expect("call_state", state="negotiating")
        # The call session is the host's shard's child: it runs in node-1's processes.
        session_pid = cluster.db.calls.find_one({"_id": call.id})["session_pid"]
        assert cluster.node_of_pid(session_pid) == "node-1"
        await call.caller_page.request("signal", call_id=call.id, kind="offer", sdp="v=0 from A")
        assert (await call.host_page.expect("signal", call_id=call.id))["sdp"] == "v=0 from A"
        await call.caller_page.request("hang_up", call_id=call.id)
        assert (await call.host_page.expect("call_state", state="ended"))["end_reason"] == "hung_up"
    run(scenario())


@pytest.mark.parametrize("caller_node", ["node-2", "node-1"], ids=["caller elsewhere", "caller on it too"])
def test_a_paid_call_goes_on_when_the_hosts_node_is_killed(cluster, caller_node):
    async def scenario():
        call = await answered_call(cluster, "node-1", caller_node)
        await call.agree(1500, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        approve_on_paypal(ready["payment"]["approve_url"])
        for page in (call.host_page, call.caller_page):
            running = await page.expect("call_state", state="running", event="payment_captured")

        killed_at = time.monotonic()
        cluster.kill_node("node-1")   # the host's shard and the call session die with it
        for page in (call.host_page, call.caller_page):
            restored = await page.expect("call_state", event="restored", timeout_s=NODE_LOSS_BOUND_S)
            assert restored["state"] == "running" and restored["agreed"]["price_cents"] == 1500
            assert 600 - NODE_LOSS_BOUND_S - 30 < restored["remaining_s"] <= running["remaining_s"]
        print(f"\nnode killed -> call restored on both pages: {time.monotonic() - killed_at:.1f} s")
        assert "node-1" not in set(cluster.placement().values())
        session_pid = cluster.db.calls.find_one({"_id": call.id})["session_pid"]
        assert cluster.node_of_pid(session_pid) in ("leader", "node-2")

        # Both sides still act on the call through their (new) shards.
        await call.caller_page.request("signal", call_id=call.id, kind="offer", sdp="v=0 after")
        assert (await call.host_page.expect("signal", call_id=call.id, timeout_s=15))["sdp"] == "v=0 after"
        await call.host_page.request("signal", call_id=call.id, kind="answer", sdp="v=0 back")
        assert (await call.caller_page.expect("signal", call_id=call.id, timeout_s=15))["sdp"] == "v=0 back"
        await call.host_page.request("hang_up", call_id=call.id)
        for page in (call.host_page, call.caller_page):
            ended = await page.expect("call_state", state="ended", timeout_s=15)
            assert ended["end_reason"] == "hung_up"

        stored = cluster.db.calls.find_one({"_id": call.id})
        assert stored["state"] == "ended" and stored["paid_s"] == 600 and len(stored["payments"]) == 1
        booked = list(cluster.db.ledger.find({"call_id": call.id}))
        assert len(booked) == 1 and booked[0]["kind"] == "call_payment"
        assert sum(entry["amount_cents"] for entry in booked[0]["entries"]) == 0
    run(scenario())


def test_a_call_goes_on_when_the_callers_node_is_killed(cluster):
    async def scenario():
        call = await answered_call(cluster, "node-2", "node-1")
        await call.agree(0, 600)
        killed_at = time.monotonic()
        cluster.kill_node("node-1")   # the caller's shard dies; the session (on node-2) lives

        # Frames sent before the caller is back in a new shard are lost: send until one
        # arrives (each try bounded), as a page's WebRTC stack would retry.
        deadline = time.monotonic() + NODE_LOSS_BOUND_S
        while True:
            await call.caller_page.request("signal", call_id=call.id, kind="offer", sdp="v=0 again")
            try:
                await call.host_page.expect("signal", call_id=call.id, sdp="v=0 again", timeout_s=1)
                break
            except asyncio.TimeoutError:
                assert time.monotonic() < deadline, "the caller never reached the call again"
        print(f"\ncaller's node killed -> caller's frames reach the call again: {time.monotonic() - killed_at:.1f} s")
        await call.caller_page.request("hang_up", call_id=call.id)
        for page in (call.host_page, call.caller_page):
            assert (await page.expect("call_state", state="ended", timeout_s=15))["end_reason"] == "hung_up"
        stored = cluster.db.calls.find_one({"_id": call.id})
        assert stored["state"] == "ended" and "left" not in [entry["event"] for entry in stored["log"]]
    run(scenario())


def test_a_killed_gateways_members_come_back_through_another(cluster):
    async def scenario():
        a, b = cluster.gateways[0], cluster.gateways[1]
        call = await answered_call(cluster, "node-1", "leader")
        watcher = await (await Member(a.url).sign_up("Watcher")).socket()
        await watcher.request("watch", members=[call.host.id])
        await call.agree(0, 600)
        await watcher.expect("presence", member_id=call.host.id, status="in_call", timeout_s=10)

        killed_at = time.monotonic()
        cluster.kill_gateway(b)     # the host's only page was there
        await watcher.expect("presence", member_id=call.host.id, status="offline", timeout_s=GATEWAY_LOSS_BOUND_S)
        offline_s = time.monotonic() - killed_at
        await call.caller_page.expect("call_state", event="peer_left", timeout_s=GATEWAY_LOSS_BOUND_S)
        print(f"\ngateway killed -> its member offline for watchers: {offline_s:.1f} s, "
              f"peer_left: {time.monotonic() - killed_at:.1f} s")

        # The host's page reconnects through gateway A and re-attaches to the call.
        host_again = await on(a.url, call.host).socket()
        await host_again.expect("hello")
        await host_again.request("attach_call", call_id=call.id)
        back = await call.caller_page.expect("call_state", event="peer_back", timeout_s=10)
        assert back["state"] == "running"
        await watcher.expect("presence", member_id=call.host.id, status="in_call", timeout_s=10)
        await host_again.request("hang_up", call_id=call.id)
        assert (await call.caller_page.expect("call_state", state="ended"))["end_reason"] == "hung_up"
        stored = cluster.db.calls.find_one({"_id": call.id})
        assert stored["state"] == "ended" and [e["event"] for e in stored["log"]].count("left") == 1
    run(scenario())


def test_a_restarted_deployment_carries_on_the_calls_it_had(database_url, tmp_path_factory):
    """The leader and the gateway are lost at once; a new leader recovers the live call from
    the store at start, and both sides re-attach to it through the new gateway."""
    cluster = Cluster(database_url, tmp_path_factory.mktemp("restart"), node_count=1, gateway_count=1).start()
    try:
        async def before():
            url = cluster.gateways[0].url
            host = await member_on(cluster, url, "leader", "Host", upgraded=True)
            caller = await member_on(cluster, url, "leader", "Caller")
            host_page, caller_page = await host.socket(), await caller.socket()
            call = Call(host, caller, host_page, caller_page, await ring(caller_page, [host_page], host.id))
            await host_page.request("accept", call_id=call.id)
            await call.agree(0, 600)
            return call
        call = run(before())
        cluster.kill_gateway(cluster.gateways[0])
        cluster.kill_node("leader")
        cluster.restart_leader()
        cluster.add_gateway()

        async def after():
            url = cluster.gateways[0].url
            pages = {}
            for who, member in (("host", call.host), ("caller", call.caller)):
                pages[who] = await on(url, member).socket()
                await pages[who].expect("hello")
                await pages[who].request("attach_call", call_id=call.id)
            for page in pages.values():
                state = await page.expect("call_state", call_id=call.id, timeout_s=20)
                assert state["state"] == "running" and state["agreed"]["price_cents"] == 0
            await pages["caller"].request("hang_up", call_id=call.id)
            assert (await pages["host"].expect("call_state", state="ended", timeout_s=15))["end_reason"] == "hung_up"
        run(after())
        stored = cluster.db.calls.find_one({"_id": call.id})
        assert stored["state"] == "ended" and stored["end_reason"] == "hung_up"
    finally:
        cluster.stop()


def test_a_stalled_gateway_is_given_up_then_attaches_its_pages_again(database_url, tmp_path_factory):
    """A gateway that stops answering for longer than the heartbeat timeout (SIGSTOP) has its
    pages closed; once it runs again its next heartbeat makes it attach them again."""
    cluster = Cluster(database_url, tmp_path_factory.mktemp("stall"), node_count=1, gateway_count=2).start()
    try:
        async def scenario():
            a, b = cluster.gateways
            member = await Member(b.url).sign_up("On B")
            watcher = await (await Member(a.url).sign_up("Watcher")).socket()
            page = await member.socket()
            await page.expect("hello")
            await watcher.request("watch", members=[member.id])
            await watcher.expect("presence", member_id=member.id, status="online")
            b.process.send_signal(signal.SIGSTOP)
            try:
                await watcher.expect("presence", member_id=member.id, status="offline",
                                     timeout_s=GATEWAY_LOSS_BOUND_S)
            finally:
                b.process.send_signal(signal.SIGCONT)
            await watcher.expect("presence", member_id=member.id, status="online", timeout_s=GATEWAY_LOSS_BOUND_S)
            await page.request("ping")
            await page.expect("pong", timeout_s=10)   # its frames reach its member again
        run(scenario())
    finally:
        cluster.stop()
