"""The stream between a gateway and a member shard (actors/shard_stream.py,
gateway/shard_streams.py), through the real path: a node on multiprocTCPBase, a gateway,
websocket pages, and the shards' stream ports at `shard_stream_port` + index."""
import asyncio
import os
import signal
import socket
import struct

import msgpack
import pytest

from actors import records, shard_stream
from rules.shards import shard_index
from interkanect import processes
from tests.kit.client import Member
from tests.kit.system import run, start_system
from tests.kit.waiting import eventually

SHARDS = 8  # start_system's


def free_port_range(count):
    for _ in range(100):
        base = processes.free_port()
        if all(_bindable(base + i) for i in range(count)):
            return base
    raise AssertionError(f"no {count} free ports in a row")


def _bindable(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@pytest.fixture(scope="module")
def system(database_url, tmp_path_factory):
    running = start_system(database_url, tmp_path_factory.mktemp("streams"),
                           shard_stream_port=free_port_range(SHARDS))
    yield running
    running.finish()


def stream_port(system, member_id):
    return system.settings.shard_stream_port + shard_index(member_id, SHARDS)


def tcp_states(port):
    """{state: count} of this machine's TCP sockets whose local port is `port` (/proc/net/tcp)."""
    states = {}
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port:
                states[fields[3]] = states.get(fields[3], 0) + 1
    return states


ESTABLISHED, LISTEN = "01", "0A"


def established(port):
    """Connections to the shard listening on `port` (it listens: else none can be)."""
    states = tcp_states(port)
    assert states.get(LISTEN) == 1
    return states.get(ESTABLISHED, 0)


def listening_pid(port):
    """The process listening on `port`."""
    with open("/proc/net/tcp") as table:
        inode = next(line.split()[9] for line in list(table)[1:]
                     if line.split()[3] == LISTEN and int(line.split()[1].split(":")[1], 16) == port)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return int(pid)
        except OSError:
            continue
    raise AssertionError(f"nobody listens on {port}")


async def pong(page):
    request_id = await page.request("ping")
    return await page.expect("pong", id=request_id)


def test_a_pages_frames_reach_its_shard_over_the_stream_and_the_answers_come_back(system):
    async def scenario():
        member = await Member(system.url).sign_up()
        page = await member.socket()
        await page.expect("hello")
        await pong(page)
        port = stream_port(system, member.id)
        # The shard listens where the setting says, and the gateway holds one stream to it.
        assert established(port) == 1
        second = await member.socket()
        await second.expect("hello")
        asked = [(p, await p.request("ping")) for p in (page, second) for _ in range(20)]
        for p, request_id in asked:
            await p.expect("pong", id=request_id)
        assert established(port) == 1, "one stream per gateway and shard, not per page"
    run(scenario())


def test_frames_in_flight_when_the_stream_drops_are_answered_unavailable_and_a_new_stream_serves_the_page(system):
    async def scenario():
        member = await Member(system.url).sign_up()
        page = await member.socket()
        await page.expect("hello")
        await pong(page)
        shard = listening_pid(stream_port(system, member.id))
        os.kill(shard, signal.SIGSTOP)   # the frames below reach its socket and are never handled
        try:
            in_flight = [await page.request("ping") for _ in range(3)]
            assert established(stream_port(system, member.id)) == 1
        finally:
            os.kill(shard, signal.SIGKILL)
        for request_id in in_flight:
            error = await page.expect("error", id=request_id)
            assert error["code"] == "unavailable" and "shard did not answer" in error["message"]
        assert not [f for f in page.received if f["type"] == "pong" and f["id"] in in_flight]

        # The directory starts the shard again; the gateway opens a stream to it and attaches
        # the page there again: its frames are answered once more.
        async def answered():
            request_id = await page.request("ping")
            try:
                frame = await page.expect("pong", id=request_id, timeout_s=1)
            except asyncio.TimeoutError:
                return False
            return frame
        await eventually(answered, "a pong from the new shard", timeout_s=30)
        assert listening_pid(stream_port(system, member.id)) != shard
    run(scenario())


def test_garbage_or_an_oversize_record_on_a_shard_stream_port_closes_that_connection_only(system):
    async def scenario():
        member = await Member(system.url).sign_up()
        page = await member.socket()
        await page.expect("hello")
        port = stream_port(system, member.id)
        for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                       # not a record
                     struct.pack("!I", records.RECORD_MAX_BYTES + 1) + b"x" * 64,  # longer than any record
                     records.encode([shard_stream.HELLO, "someone", "a guessed token"]),  # no invitation
                     records.encode([shard_stream.FRAME, member.id, 1, {"type": "ping", "id": 1}])):  # no hello
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(junk)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 10) == b"", f"{junk[:20]!r} was answered"
            writer.close()
        # The shard and the gateway's own stream go on.
        await pong(page)
        assert established(port) == 1
    run(scenario())


def test_a_gateway_that_reads_nothing_is_cut_off_at_the_backlog_limit(system):
    """A stand-in gateway, invited by the shard like a real one (StreamWhere), floods pings and
    reads nothing: the shard queues at most about STALLED_BYTES of pongs for it, then closes
    its stream; the real gateway's pages are served throughout."""
    from actors import leadership
    from actors.actor_transport import outside_system
    from actors.directory import DIRECTORY_NAME, Directory
    from actors.messages import BridgeRef, GetShards, StreamWhere, WhoAmI

    async def scenario():
        member = await Member(system.url).sign_up()
        page = await member.socket()
        await page.expect("hello")
        actors = outside_system(system.settings)
        name = leadership.global_name(DIRECTORY_NAME, leadership.current_token(system.settings))
        directory = actors.createActor(Directory, globalName=name)
        shard = actors.ask(directory, GetShards(1), 10).addresses[shard_index(member.id, SHARDS)]
        me = BridgeRef.of(actors.ask(directory, WhoAmI(2), 10).address)
        at = actors.ask(shard, StreamWhere(3, me), 10)
        assert at.address == ("127.0.0.1", stream_port(system, member.id))

        stalled = socket.create_connection(at.address)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # the kernel holds little for it
        ping = records.encode(shard_stream.frame_record(member.id, 1, {"type": "ping", "id": 1}))
        stalled.sendall(records.encode([shard_stream.HELLO, me.key, at.token])
                        + records.encode(shard_stream.open_record(member.id, 1, {"name": "stand-in"})))
        pong_bytes = len(records.encode([shard_stream.PUSH, [1], {"type": "pong", "id": 1}]))
        burst = ping * 1000
        sent = 0
        loop = asyncio.get_running_loop()
        try:
            # Pongs for well over the limit and the kernel's buffers, unless the shard cuts us off first.
            while sent * pong_bytes < 2.5 * records.STALLED_BYTES:
                await loop.run_in_executor(None, stalled.sendall, burst)
                sent += 1000
                if sent % 20000 == 0:
                    await pong(page)   # the shard serves the real gateway meanwhile
        except (BrokenPipeError, ConnectionResetError):
            pass  # cut off while sending: the shard closed the stream
        # Now read: what the shard had queued, then the end of the stream.
        stalled.settimeout(20)
        got = 0
        try:
            while chunk := stalled.recv(1 << 20):
                got += len(chunk)
        except ConnectionResetError:
            pass
        stalled.close()
        assert got < records.STALLED_BYTES + 4 * shard_stream.SEND_BUFFER_BYTES, f"{got} bytes were queued for a gateway reading nothing"
        await pong(page)
    run(scenario())
