"""Several gateways on one actor node: members on different gateways see each other's
status, call each other (their signaling relayed gateway to gateway under the call's lease),
and a session ended on one gateway closes its sockets on all."""
import asyncio
import os
import signal as signals

import msgpack
import pytest

from gateway import links

from tests.kit.calls import ring
from tests.kit.client import Member
from tests.kit.system import free_port, run


@pytest.fixture(scope="module")
def two_gateways(system):
    return system.url, system.add_gateway()


def on(url, member):
    """The same member (same cookies) talking to another gateway."""
    twin = Member(url, member.email)
    twin.cookies = dict(member.cookies)
    twin.profile = member.profile
    return twin


async def answered_across(a, b):
    """A call answered between a host on gateway `b` and a caller on gateway `a`, negotiating
    on both pages: (host, host's page, caller's page, call id)."""
    host = await Member(b).sign_up("Host on B")
    caller = await Member(a).sign_up("Caller on A")
    host_page, caller_page = await host.socket(), await caller.socket()
    call_id = await ring(caller_page, [host_page], host.id)
    await host_page.request("accept", call_id=call_id)
    for page in (caller_page, host_page):
        await page.expect("call_state", call_id=call_id, state="negotiating")
    return host, host_page, caller_page, call_id


def test_presence_crosses_gateways(two_gateways):
    a, b = two_gateways

    async def scenario():
        host = await Member(b).sign_up("Host on B")
        viewer = await Member(a).sign_up("Viewer on A")
        watching = await viewer.socket()
        await watching.request("watch", members=[host.id])
        await watching.expect("presence", member_id=host.id, status="offline")
        page = await host.socket()
        await watching.expect("presence", timeout_s=1, member_id=host.id, status="online")
        await page.close()
        await watching.expect("presence", timeout_s=1, member_id=host.id, status="offline")
    run(scenario())


def test_a_caller_on_one_gateway_calls_a_host_on_another(two_gateways):
    a, b = two_gateways

    async def scenario():
        _, host_page, caller_page, call_id = await answered_across(a, b)
        await host_page.request("signal", call_id=call_id, kind="answer", sdp="v=0 from B")
        assert (await caller_page.expect("signal", call_id=call_id))["sdp"] == "v=0 from B"
        await caller_page.request("hang_up", call_id=call_id)
        assert (await host_page.expect("call_state", state="ended"))["end_reason"] == "hung_up"
    run(scenario())


def test_pages_on_two_gateways_signal_gateway_to_gateway_and_the_lease_follows_the_call(two_gateways, system):
    """The call's session leases the relay to both pages' gateways: signaling goes on while the
    shard running the session is stopped; a page taking the call over ends the old page's part,
    and the end of the call ends the lease."""
    a, b = two_gateways

    async def scenario():
        host, host_page, caller_page, call_id = await answered_across(a, b)
        shard_pid = system.db.calls.find_one({"_id": call_id})["session_pid"]
        os.kill(shard_pid, signals.SIGSTOP)
        try:
            await host_page.request("signal", call_id=call_id, kind="offer", sdp="v=0 from B")
            assert (await caller_page.expect("signal", call_id=call_id))["sdp"] == "v=0 from B"
            await caller_page.request("signal", call_id=call_id, kind="answer", sdp="v=0 from A")
            assert (await host_page.expect("signal", call_id=call_id))["sdp"] == "v=0 from A"
        finally:
            os.kill(shard_pid, signals.SIGCONT)
        # The host takes the call over from a page on A: the lease moves with it (both on A now).
        host_on_a = await on(a, host).socket()
        await host_on_a.request("attach_call", call_id=call_id)
        await host_on_a.expect("call_state", call_id=call_id, state="negotiating")
        request_id = await host_page.request("signal", call_id=call_id, kind="offer", sdp="old page")
        assert (await host_page.expect("error", id=request_id))["code"] == "not_call_page"
        await host_on_a.request("signal", call_id=call_id, kind="offer", sdp="new page")
        assert (await caller_page.expect("signal", call_id=call_id))["sdp"] == "new page"
        await caller_page.request("hang_up", call_id=call_id)
        await host_on_a.expect("call_state", call_id=call_id, state="ended")
        request_id = await caller_page.request("signal", call_id=call_id, kind="answer", sdp="too late")
        assert (await caller_page.expect("error", id=request_id))["code"] in ("media_not_allowed", "no_such_call")
        assert not [f for f in host_on_a.received + host_page.received
                    if f["type"] == "signal" and f.get("sdp") in ("old page", "too late")]
    run(scenario())


def test_a_signal_sent_as_the_call_ends_is_refused_whichever_gateway_hears_of_the_end_first(two_gateways, system):
    """The caller's gateway is held still while its page signals and the host hangs up on the
    other gateway: the host's gateway drops the lease first, so a frame the caller's gateway
    still relays under it goes to the call's session, which refuses it to the sender."""
    a, b = two_gateways
    gateway_a = next(process for name, process in system.children.children if name == "gateway")

    async def scenario():
        _, host_page, caller_page, call_id = await answered_across(a, b)
        gateway_a.send_signal(signals.SIGSTOP)
        try:
            request_id = await caller_page.request("signal", call_id=call_id, kind="offer", sdp="as it ends")
            await host_page.request("hang_up", call_id=call_id)
            await host_page.expect("call_state", call_id=call_id, state="ended")
        finally:
            gateway_a.send_signal(signals.SIGCONT)
        refused = await caller_page.expect("error", id=request_id)
        assert refused["code"] in ("media_not_allowed", "no_such_call")
        await caller_page.expect("call_state", call_id=call_id, state="ended")
        assert not [f for f in host_page.received if f["type"] == "signal"]
    run(scenario())


def test_logging_out_on_one_gateway_closes_the_sessions_sockets_on_the_other(two_gateways, system):
    a, b = two_gateways

    async def scenario():
        member = await Member(a).sign_up()
        socket_on_a = await member.socket()
        await socket_on_a.expect("hello")
        member_on_b = on(b, member)
        socket_on_b = await member_on_b.socket()
        await socket_on_b.expect("hello")
        assert (await member_on_b.request("POST", "/api/logout")).code == 204
        assert await socket_on_b.closed(timeout_s=2) == 4401
        bound_s = 3 * system.settings.policy.session_check_interval_s + 2
        assert await socket_on_a.closed(timeout_s=bound_s) == 4401
    run(scenario())


def test_an_expired_session_closes_its_sockets(system_with):
    system = system_with(session_ttl_s=2.0)

    async def scenario():
        member = await Member(system.url).sign_up()
        socket = await member.socket()
        await socket.expect("hello")
        assert await socket.closed(timeout_s=5) == 4401
        assert (await member.request("GET", "/api/me")).code == 401
    run(scenario())


def test_a_gateway_link_delivers_nothing_its_own_leases_do_not_allow(system_with):
    """Whoever reaches a gateway's link port: records that are not signals close the link, and
    a signal for pages no lease pairs with the sender is bounced back, never delivered."""
    system = system_with(gateway_link_port=free_port())

    async def record(reader):
        (length,) = links.LENGTH.unpack(await reader.readexactly(links.LENGTH.size))
        return msgpack.unpackb(await reader.readexactly(length), raw=False)

    def packed(item):
        payload = msgpack.packb(item, use_bin_type=True)
        return links.LENGTH.pack(len(payload)) + payload

    async def scenario():
        member = await Member(system.url).sign_up()
        page = await member.socket()
        await page.expect("hello")
        port = system.settings.gateway_link_port
        reader, writer = await asyncio.open_connection(system.settings.actor_host, port)
        writer.write(links.LENGTH.pack(10 * 1024 * 1024))   # a record far over the limit
        assert await asyncio.wait_for(reader.read(), 5) == b""
        reader, writer = await asyncio.open_connection(system.settings.actor_host, port)
        writer.write(packed([links.HELLO, "a gateway nobody knows"]))
        forged = {"type": "signal", "call_id": "0" * 24, "kind": "offer", "sdp": "v=0 forged"}
        for conn_id in range(1, 6):
            writer.write(packed([links.SIGNAL, conn_id, 7, forged]))
        for _ in range(5):
            assert await asyncio.wait_for(record(reader), 5) == [links.BOUNCE, 7, forged]
        writer.write(packed(["not", "a", "record"]))
        assert await asyncio.wait_for(reader.read(), 5) == b""
        await page.request("ping")
        await page.expect("pong")
        assert not [f for f in page.received if f["type"] == "signal"]
    run(scenario())
