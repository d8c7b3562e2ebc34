"""The /ws endpoint's guards, each through a real websocket: who may connect, what a bad
frame gets back, and what closes a socket."""

import msgpack
import pytest
import websockets

from tests.kit.client import Member
from tests.kit.system import run

A_MEMBER_ID = "0" * 24


def ws_url(system):
    return "ws" + system.url[len("http"):] + "/ws"


def test_no_session_cookie_is_refused_with_401(system):
    async def scenario():
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(ws_url(system), origin=system.url)
        assert refused.value.response.status_code == 401
        with pytest.raises(websockets.InvalidStatus) as forged:
            await websockets.connect(ws_url(system), origin=system.url,
                                     additional_headers={"Cookie": "ik_session=forged"})
        assert forged.value.response.status_code == 401
    run(scenario())


def test_an_origin_not_on_the_allowlist_is_refused_with_403(system):
    async def scenario():
        member = await Member(system.url).sign_up()
        for origin in ("http://evil.example", system.url + ".evil.example", system.url.replace("http", "https")):
            with pytest.raises(websockets.InvalidStatus) as refused:
                await member.socket(origin=origin)
            assert refused.value.response.status_code == 403, origin
        socket = await member.socket()  # the exact origin is fine
        await socket.expect("hello")
    run(scenario())


BAD_FRAMES = [
    # (what is sent, expected code, expected request id in the answer)
    (msgpack.packb({"type": "teleport", "id": 7}), "unknown_type", 7),
    (msgpack.packb({"id": 8}), "missing_field", 8),
    (msgpack.packb({"type": "ping"}), "missing_field", None),
    (msgpack.packb({"type": "ping", "id": 9, "extra": 1}), "unexpected_field", 9),
    (msgpack.packb({"type": "ping", "id": "ten"}), "wrong_type", None),
    (msgpack.packb({"type": "watch", "id": 11, "members": "all"}), "wrong_type", 11),
    (msgpack.packb({"type": "watch", "id": 12, "members": ["not-an-id"]}), "invalid_value", 12),
    (msgpack.packb({"type": "watch", "id": 13, "members": []}), "invalid_value", 13),
    (msgpack.packb([1, 2, 3]), "malformed_frame", None),
    (b"\xc1\xc1 not msgpack", "malformed_frame", None),
    ("a text frame", "malformed_frame", None),
]


def test_each_bad_frame_gets_an_error_with_its_code_and_id_and_the_socket_stays_up(system):
    async def scenario():
        member = await Member(system.url).sign_up()
        socket = await member.socket()
        await socket.expect("hello")
        for data, code, request_id in BAD_FRAMES:
            await socket.connection.send(data)
            error = await socket.expect("error")
            assert (error["code"], error["id"]) == (code, request_id), (data, error)
            assert error["message"]
        # Still up and served after all that.
        request_id = await socket.request("ping")
        await socket.expect("pong", id=request_id)
    run(scenario())


def test_a_frame_over_64_kib_closes_with_1009(system):
    async def scenario():
        member = await Member(system.url).sign_up()
        socket = await member.socket()
        await socket.expect("hello")
        await socket.send({"type": "ping", "id": 1, "pad": "x" * (64 * 1024)})
        assert await socket.closed() == 1009
    run(scenario())


def test_a_frame_just_under_the_cap_is_answered(system):
    async def scenario():
        member = await Member(system.url).sign_up()
        socket = await member.socket()
        await socket.expect("hello")
        ids = ["%024x" % i for i in range(500)]
        request_id = await socket.request("watch", members=ids)  # ~13 KB, well under the cap: served
        # Read and answered: none of these ids is a member (the socket stays open).
        assert (await socket.expect("error", id=request_id))["code"] == "no_such_member"
        await socket.request("ping")
        await socket.expect("pong")
    run(scenario())


def test_a_flooding_client_is_closed_with_1008(system_with):
    system = system_with(flood_rate_per_s=20, flood_burst=40)

    async def scenario():
        member = await Member(system.url).sign_up()
        socket = await member.socket()
        await socket.expect("hello")
        for i in range(30):  # within the burst: all answered
            await socket.send({"type": "ping", "id": i})
        for i in range(30):
            await socket.expect("pong", id=i)
        flood = msgpack.packb({"type": "ping", "id": 0})
        for _ in range(500):
            try:
                await socket.connection.send(flood)
            except websockets.ConnectionClosed:
                break
        assert await socket.closed() == 1008
        # The member is not locked out: a new socket is welcome.
        again = await member.socket()
        await again.expect("hello")
    run(scenario())


def test_a_peer_that_stops_answering_pings_is_closed(system_with):
    system = system_with(ws_ping_interval_s=0.3, ws_ping_timeout_s=0.3)

    async def scenario():
        member = await Member(system.url).sign_up()
        viewer = await Member(system.url).sign_up()
        watching = await viewer.socket()
        await watching.request("watch", members=[member.id])
        await watching.expect("presence", member_id=member.id, status="offline")
        # A client that never reads its socket never answers pings, like a vanished laptop.
        silent = await websockets.connect(ws_url(system), origin=system.url, ping_interval=None,
                                          additional_headers={"Cookie": member.cookie_header()})
        await watching.expect("presence", member_id=member.id, status="online")
        silent.transport.pause_reading()
        # Tornado closes after interval + timeout, then waits 5 s for a close reply that never comes.
        await watching.expect("presence", timeout_s=10, member_id=member.id, status="offline")
        silent.transport.abort()
    run(scenario())


def test_logging_out_closes_that_sessions_sockets_within_seconds(system):
    async def scenario():
        member = await Member(system.url).sign_up()
        socket = await member.socket()
        await socket.expect("hello")
        other_device = Member(system.url, member.email)
        await other_device.log_in()
        other_socket = await other_device.socket()
        await other_socket.expect("hello")
        answer = await member.request("POST", "/api/logout")
        assert answer.code == 204
        assert await socket.closed(timeout_s=3) == 4401
        # The other device's session is untouched.
        request_id = await other_socket.request("ping")
        await other_socket.expect("pong", id=request_id)
    run(scenario())


def test_frames_that_once_crashed_the_socket_are_answered_and_it_stays_up(system):
    """Found by scripts/fuzz_ws.py: these dropped the socket with a traceback (1006)."""
    async def scenario():
        member = await Member(system.url).sign_up()
        socket = await member.socket()
        await socket.expect("hello")
        deep = b"\x82\xa4type\xa4ping\xa2id" + b"\x91" * 1000 + b"\xc0"
        for raw in (msgpack.packb({"type": [], "id": 1}), deep):
            await socket.connection.send(raw)
            assert (await socket.expect("error"))["code"] in ("unknown_type", "malformed_frame")
        await socket.request("ping")
        await socket.expect("pong")
    run(scenario())
