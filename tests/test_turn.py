"""TURN REST credentials per call: their format (pure), and a real coturn on loopback that
relays with an issued credential and refuses a forged or expired one."""
import asyncio
import base64
import dataclasses
import hashlib
import hmac
import os
import random
import secrets
import shutil
import socket
import time

import pytest
from hypothesis import given, strategies as st

from rules.turn import TurnConfig, TurnCredentialError, ice_servers
from interkanect import processes
from tests.kit.system import run

SECRET = "s3cret-shared-with-coturn"
CONFIG = TurnConfig(stun_urls=["stun:turn.example:3478"],
                    turn_urls=["turn:turn.example:3478?transport=udp", "turn:turn.example:3478?transport=tcp"],
                    secret=SECRET)
NOW_S = 1_750_000_000.25
CALL_END_S = NOW_S + 20 * 60

call_ids = st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"], include_characters="-_"),
                   min_size=1, max_size=40)


def turn_entry(servers):
    [entry] = [server for server in servers if "credential" in server]
    return entry


def coturn_password(secret, username):
    """What coturn computes: base64(HMAC-SHA1(static-auth-secret, username)), written out here
    independently of rules.turn."""
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


# --- the credential format ---------------------------------------------------------------

@given(call_id=call_ids, length_s=st.floats(min_value=1, max_value=CONFIG.max_credential_lifetime_s))
def test_username_is_the_call_end_then_the_call_id(call_id, length_s):
    entry = turn_entry(ice_servers(CONFIG, call_id, NOW_S, NOW_S + length_s))
    expiry, separator, named_call = entry["username"].partition(":")
    assert (int(expiry), separator, named_call) == (int(NOW_S + length_s), ":", call_id)


@given(call_id=call_ids)
def test_credential_verifies_with_the_shared_secret(call_id):
    entry = turn_entry(ice_servers(CONFIG, call_id, NOW_S, CALL_END_S))
    assert entry["credential"] == coturn_password(SECRET, entry["username"])
    assert len(base64.b64decode(entry["credential"], validate=True)) == hashlib.sha1().digest_size


def test_a_different_secret_gives_a_different_credential():
    other = dataclasses.replace(CONFIG, secret="another secret")
    ours = turn_entry(ice_servers(CONFIG, "call-1", NOW_S, CALL_END_S))
    theirs = turn_entry(ice_servers(other, "call-1", NOW_S, CALL_END_S))
    assert ours["username"] == theirs["username"]
    assert ours["credential"] != theirs["credential"]


def test_each_call_gets_its_own_credential():
    first = turn_entry(ice_servers(CONFIG, "call-1", NOW_S, CALL_END_S))
    second = turn_entry(ice_servers(CONFIG, "call-2", NOW_S, CALL_END_S))
    assert first["credential"] != second["credential"]


def test_stun_entries_carry_no_credential_and_turn_entries_do():
    servers = ice_servers(CONFIG, "call-1", NOW_S, CALL_END_S)
    assert servers[0] == {"urls": ["stun:turn.example:3478"]}
    assert turn_entry(servers)["urls"] == list(CONFIG.turn_urls)
    assert set(turn_entry(servers)) == {"urls", "username", "credential"}


def test_a_stun_only_configuration_needs_no_secret():
    assert ice_servers(TurnConfig(stun_urls=["stun:a:3478"]), "call-1", NOW_S, CALL_END_S) == [
        {"urls": ["stun:a:3478"]}]
    assert ice_servers(TurnConfig(), "call-1", NOW_S, CALL_END_S) == []


def test_a_long_call_gets_a_credential_capped_at_the_lifetime():
    capped = dataclasses.replace(CONFIG, max_credential_lifetime_s=3600)
    entry = turn_entry(ice_servers(capped, "call-1", NOW_S, NOW_S + 10 * 3600))
    assert entry["username"] == f"{int(NOW_S + 3600)}:call-1"


@pytest.mark.parametrize("expires_at_s", [NOW_S, NOW_S - 1])
def test_no_credential_for_a_call_that_has_ended(expires_at_s):
    with pytest.raises(TurnCredentialError, match="call that ended"):
        ice_servers(CONFIG, "call-1", NOW_S, expires_at_s)


@pytest.mark.parametrize("call_id", ["", "a:b"])
def test_a_call_id_coturn_would_misread_is_refused(call_id):
    with pytest.raises(TurnCredentialError, match="call id"):
        ice_servers(CONFIG, call_id, NOW_S, CALL_END_S)


def test_turn_urls_without_a_secret_are_a_configuration_error():
    with pytest.raises(TurnCredentialError, match="secret is empty"):
        TurnConfig(turn_urls=["turn:a:3478"])


# --- a real coturn on loopback -----------------------------------------------------------

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
REALM = "interkanect.test"
RELAY_PORTS = 16  # relayed addresses coturn may hand out: a few per test is plenty
STARTUP_S = 20
ALLOCATE_S = 10
CONNECT_S = 30


@dataclasses.dataclass(frozen=True)
class Coturn:
    host: str
    port: int
    secret: str
    relay_ports: range
    workdir: object  # turn.log (coturn --verbose) is there when a test fails

    def config(self, secret=None):
        urls = [f"turn:{self.host}:{self.port}?transport=udp", f"turn:{self.host}:{self.port}?transport=tcp"]
        return TurnConfig(turn_urls=urls, secret=self.secret if secret is None else secret)


def free_udp_and_tcp_port(host="127.0.0.1"):
    """A port free for both UDP and TCP: coturn listens on both with one number."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port


def turnserver_argv(port, secret, relay_ports, workdir):
    return [TURNSERVER, "-n",  # no configuration file: everything is on this line
            "--listening-ip=127.0.0.1", f"--listening-port={port}", "--relay-ip=127.0.0.1",
            f"--min-port={relay_ports.start}", f"--max-port={relay_ports.stop - 1}",
            "--use-auth-secret", f"--static-auth-secret={secret}", f"--realm={REALM}",
            # Both peers of the test live on 127.0.0.1, which coturn refuses as a peer by default;
            # it accepts allow-loopback-peers only with the CLI off (or password protected).
            "--allow-loopback-peers", "--no-cli",
            "--no-tls", "--no-dtls",
            f"--log-file={workdir / 'turn.log'}", "--simple-log", "--verbose",
            f"--pidfile={workdir / 'turn.pid'}", f"--userdb={workdir / 'turndb'}"]


@pytest.fixture(scope="module")
def coturn(tmp_path_factory):
    if not os.path.exists(TURNSERVER):
        message = f"coturn is not installed ({TURNSERVER} is missing): apt-get install -y coturn"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    workdir = tmp_path_factory.mktemp("coturn")
    port, secret = free_udp_and_tcp_port(), secrets.token_urlsafe(24)
    # Above Linux's ephemeral range (32768-60999), so other tests' sockets rarely hold them.
    first_relay_port = random.randrange(61000, 65536 - RELAY_PORTS, RELAY_PORTS)
    relay_ports = range(first_relay_port, first_relay_port + RELAY_PORTS)
    children = processes.Supervisor()
    output = open(workdir / "turnserver.out", "ab")
    try:
        process = children.start("coturn", turnserver_argv(port, secret, relay_ports, workdir),
                                 stdout=output, stderr=output)
        processes.wait_until(lambda: processes.port_listening("127.0.0.1", port), STARTUP_S, "coturn",
                             process=process)
        yield Coturn("127.0.0.1", port, secret, relay_ports, workdir)
    finally:
        children.stop_all()
        output.close()


class Peer(asyncio.DatagramProtocol):
    """A plain UDP socket on loopback, or the application end of a TURN allocation."""

    def __init__(self):
        loop = asyncio.get_running_loop()
        self.received = asyncio.Queue()
        self.closed = loop.create_future()

    def datagram_received(self, data, addr):
        self.received.put_nowait((data, addr))

    def connection_lost(self, exc):
        if not self.closed.done():
            self.closed.set_result(exc)


async def allocate(server, entry, transport):
    """Open a TURN allocation with the ICE server entry a page would be given."""
    from aioice.turn import create_turn_endpoint
    return await asyncio.wait_for(
        create_turn_endpoint(Peer, (server.host, server.port), entry["username"], entry["credential"],
                             transport=transport), ALLOCATE_S)


async def release(relay, peer):
    relay.close()  # deletes the allocation, then tells the protocol
    await asyncio.wait_for(peer.closed, ALLOCATE_S)


def issued(server, secret=None, now_s=None, expires_at_s=None, call_id="call-turn-test"):
    now_s = time.time() if now_s is None else now_s
    expires_at_s = now_s + 20 * 60 if expires_at_s is None else expires_at_s
    return turn_entry(ice_servers(server.config(secret), call_id, now_s, expires_at_s))


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_an_issued_credential_opens_a_relay_that_carries_data(coturn, transport):
    async def scenario():
        loop = asyncio.get_running_loop()
        outside, outside_peer = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
        relay, relay_peer = await allocate(coturn, issued(coturn), transport)
        try:
            relayed_host, relayed_port = relay.get_extra_info("sockname")
            assert relayed_host == "127.0.0.1" and relayed_port in coturn.relay_ports
            relay.sendto(b"hello from the relay", outside.get_extra_info("sockname"))
            data, source = await asyncio.wait_for(outside_peer.received.get(), ALLOCATE_S)
            assert (data, source) == (b"hello from the relay", (relayed_host, relayed_port))
            outside.sendto(b"hello back", (relayed_host, relayed_port))
            data, _ = await asyncio.wait_for(relay_peer.received.get(), ALLOCATE_S)
            assert data == b"hello back"
        finally:
            await release(relay, relay_peer)
            outside.close()
    run(scenario())


def refused_code(coturn, entry):
    from aioice.stun import TransactionFailed

    async def scenario():
        with pytest.raises(TransactionFailed) as refused:
            await allocate(coturn, entry, "udp")
        return refused.value.response.attributes["ERROR-CODE"][0]
    return run(scenario())


def test_a_credential_signed_with_another_secret_is_refused(coturn):
    assert refused_code(coturn, issued(coturn, secret="not the server's secret")) == 401


def test_a_credential_for_a_call_that_has_ended_is_refused(coturn):
    now_s = time.time()
    # Issued an hour ago for a call that ended a minute ago: signed correctly, but expired.
    entry = issued(coturn, now_s=now_s - 3600, expires_at_s=now_s - 60)
    assert entry["credential"] == coturn_password(coturn.secret, entry["username"])
    assert refused_code(coturn, entry) == 401


def test_a_tampered_username_is_refused(coturn):
    """A page cannot stretch its credential by rewriting the expiry in the username."""
    entry = issued(coturn)
    expiry, call_id = entry["username"].split(":")
    assert refused_code(coturn, dict(entry, username=f"{int(expiry) + 3600}:{call_id}")) == 401


def test_two_peers_talk_through_the_relay_only(coturn):
    from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection

    servers = ice_servers(coturn.config(), "call-turn-test", time.time(), time.time() + 20 * 60)
    configuration = RTCConfiguration(iceServers=[RTCIceServer(**server) for server in servers],
                                     iceTransportPolicy=RTCIceTransportPolicy.RELAY)

    async def scenario():
        loop = asyncio.get_running_loop()
        caller, host = RTCPeerConnection(configuration), RTCPeerConnection(configuration)
        opened, echoed = loop.create_future(), loop.create_future()
        try:
            chat = caller.createDataChannel("chat")
            chat.on("open", lambda: opened.done() or opened.set_result(True))
            chat.on("message", lambda message: echoed.done() or echoed.set_result(message))

            @host.on("datachannel")
            def answer_chat(channel):
                channel.on("message", lambda message: channel.send(f"echo: {message}"))

            await asyncio.wait_for(negotiate(caller, host), CONNECT_S)
            await asyncio.wait_for(opened, CONNECT_S)
            chat.send("hello through coturn")
            assert await asyncio.wait_for(echoed, CONNECT_S) == "echo: hello through coturn"
            for peer in (caller, host):
                assert candidate_types(peer.localDescription.sdp) == {"relay"}
                assert selected_pair_types(peer) == ("relay", "relay")
        finally:
            await caller.close()
            await host.close()
    run(scenario())


async def negotiate(caller, host):
    # aiortc gathers every candidate before setLocalDescription returns: no trickle needed.
    await caller.setLocalDescription(await caller.createOffer())
    await host.setRemoteDescription(caller.localDescription)
    await host.setLocalDescription(await host.createAnswer())
    await caller.setRemoteDescription(host.localDescription)


def candidate_types(sdp):
    return {line.split(" typ ")[1].split()[0] for line in sdp.splitlines() if line.startswith("a=candidate:")}


def selected_pair_types(peer):
    # aiortc has no getSelectedCandidatePair(): read the pair aioice nominated for the data channel.
    pair = peer.sctp.transport.transport._connection._nominated[1]
    return pair.local_candidate.type, pair.remote_candidate.type
