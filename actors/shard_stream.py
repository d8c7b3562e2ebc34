"""The stream between a gateway and a member shard: a page's events go to the shard, and what
the shard says to pages comes back, over one TCP connection per gateway and shard instead of
Thespian messages (README "Decisions": a round trip through the shard 0.36× the bare echo by
Thespian, ~0.9× by a stream).

The shard listens on `actor_host` (the private actor network, docs/operating.md) at
`shard_stream_port` + its index (0: any free port), from the first gateway that asks where
(`StreamWhere`, by Thespian: the answer carries a token the gateway's hello must show). Its
socket and those of its gateways are watched by Thespian's own select loop (the shard returns
`ThespianWatch` from every message), and each record is handled like the events of a `Batch`.

Records (actors/records.py: a length, then msgpack) are lists whose first item says what they
are (the constants below). Gateway → shard: a hello first, then page events and heartbeats.
Shard → gateway: frames for pages, relay leases, attach answers, statuses, and after each read
an ACK of the records it has handled (the gateway answers the rest `unavailable` if the stream
drops: gateway/shard_streams.py). Anything else closes the stream, and nothing else changes.

A gateway that reads nothing while STALLED_BYTES wait for it (besides what the kernel holds,
SEND_BUFFER_BYTES) is stalled: the shard closes its stream and gives it up as if its heartbeats
had stopped (its pages are closed for presence and calls), so it cannot grow the shard's
memory; its next heartbeat attaches it again.
"""
import errno
import logging
import socket

from actors import records
from actors.messages import (Attached, CallFrame, Close, Frame, Heartbeat, Open, Presence, ProfileChanged, RelayLease,
                             ToCall, Unwatch, Watch)

log = logging.getLogger(__name__)

# Gateway → shard.
HELLO, OPEN, CLOSE, FRAME, WATCH, UNWATCH, CALL_FRAME, PROFILE, HEARTBEAT = range(9)
# Shard → gateway.
PUSH, LEASE, ATTACHED, PRESENCE, ACK = range(10, 15)

READ_BYTES = 256 * 1024
# Reads per readable socket per pass: what is there now. Thespian's select is level-triggered,
# so more comes with the next WatchMessage, after the shard's other messages had a turn.
READS_PER_PASS = 4
# A backlog the kernel would not take is tried again this soon (ThespianWatch watches reads only).
RETRY_WRITE_S = 0.002
# What the kernel may hold for a gateway besides our backlog (it doubles this): fixed rather
# than autotuned (up to 4 MB), so a stalled gateway costs at most ~2 MB + STALLED_BYTES here.
# 1 MB outlasts a round trip of a private network at any rate a shard can write.
SEND_BUFFER_BYTES = 1024 * 1024


# Encoding: the gateway's side -----------------------------------------------------------

def open_record(member_id, conn_id, profile):
    return [OPEN, member_id, conn_id, profile]


def close_record(member_id, conn_id):
    return [CLOSE, member_id, conn_id]


def frame_record(member_id, conn_id, frame):
    return [FRAME, member_id, conn_id, frame]


def call_frame_record(host_id, call_id, member_id, conn_id, frame):
    return [CALL_FRAME, host_id, call_id, member_id, conn_id, frame]


def watch_record(member_id, watch=True):
    return [WATCH if watch else UNWATCH, member_id]


def profile_record(member_id, profile):
    return [PROFILE, member_id, profile]


HEARTBEAT_RECORD = [HEARTBEAT]


def event_of(record, bridge):
    """The shard's message for a gateway's record (bridge: the gateway's BridgeRef), or raise
    RecordError."""
    try:
        kind = record[0]
        if kind == FRAME and _ids(record[1], record[2]) and isinstance(record[3], dict):
            return Frame(record[1], record[2], bridge, record[3])
        if kind == CALL_FRAME and _ids(record[3], record[4]) and isinstance(record[5], dict):
            return ToCall(record[1], record[2], CallFrame(record[3], (bridge, record[4]), record[5]))
        if kind == OPEN and _ids(record[1], record[2]) and isinstance(record[3], dict):
            return Open(record[1], record[2], bridge, record[3])
        if kind == CLOSE and _ids(record[1], record[2]):
            return Close(record[1], record[2], bridge)
        if kind in (WATCH, UNWATCH) and isinstance(record[1], str):
            return (Watch if kind == WATCH else Unwatch)(record[1], bridge)
        if kind == PROFILE and isinstance(record[1], str) and isinstance(record[2], dict):
            return ProfileChanged(record[1], record[2])
        if kind == HEARTBEAT:
            return Heartbeat(bridge)
    except (TypeError, IndexError, KeyError):
        pass
    raise records.RecordError(f"not a gateway's record: {str(record)[:80]}")


def _ids(member_id, conn_id):
    return isinstance(member_id, str) and isinstance(conn_id, int)


# Encoding: the shard's side -------------------------------------------------------------

def record_of(item):
    """The record of one thing the shard says to a gateway: a Push item ((conn_ids, frame) or
    RelayLease), an Attached or a Presence."""
    if isinstance(item, RelayLease):
        pages = None if item.pages is None else [[bridge.key, bridge.link, conn_id] for bridge, conn_id in item.pages]
        return [LEASE, item.call_id, pages]
    if isinstance(item, Attached):
        return [ATTACHED, item.member_id, item.conn_id, item.status, item.refused, item.message]
    if isinstance(item, Presence):
        return [PRESENCE, item.member_id, item.status]
    conn_ids, frame = item
    return [PUSH, conn_ids, frame]


class ShardStreams:
    """A shard's listening socket and its gateways' streams (one per gateway)."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.listener = None
        self.streams = {}      # fileno → Stream
        self.by_bridge = {}    # bridge key → the Stream its hello opened
        self.invited = {}      # bridge key → (BridgeRef, token): told where by StreamWhere
        self.stalled = []      # BridgeRefs whose stream was closed for reading nothing; the shard gives them up

    def listen(self):
        """(host, port) where this shard's streams connect; listens from the first call on."""
        if self.listener is None:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.port))
            listener.listen(128)
            listener.setblocking(False)
            self.listener = listener
        return self.listener.getsockname()[:2]

    def invite(self, bridge, token):
        self.invited[bridge.key] = (bridge, token)

    def filenos(self):
        fds = list(self.streams)
        if self.listener is not None:
            fds.append(self.listener.fileno())
        return fds

    def has(self, bridge):
        return bridge.key in self.by_bridge

    # Reading ------------------------------------------------------------------------------

    def ready(self, filenos):
        """[(Stream, records)] of the streams that had something to read."""
        got = []
        for fileno in filenos:
            if self.listener is not None and fileno == self.listener.fileno():
                self.accept()
            elif fileno in self.streams:
                stream = self.streams[fileno]
                incoming = self.read(stream)
                if incoming:
                    got.append((stream, incoming))
        return got

    def accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # out of file descriptors: the gateway tries again
                log.warning("shard stream: accept failed: %s", error)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            self.streams[sock.fileno()] = Stream(sock)

    def read(self, stream):
        """The records that came on `stream` (the hello is taken here)."""
        incoming = []
        for _ in range(READS_PER_PASS):
            try:
                data = stream.sock.recv(READ_BYTES)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as error:
                self.close(stream, f"lost: {error}")
                return incoming
            if not data:
                self.close(stream, "closed by the gateway", quiet=True)
                return incoming
            try:
                for record in stream.reader.feed(data):
                    if stream.bridge is None:
                        self.hello(stream, record)
                    else:
                        incoming.append(event_of(record, stream.bridge))
            except records.RecordError as error:
                self.close(stream, str(error))
                return incoming
            if len(data) < READ_BYTES:
                break
        return incoming

    def hello(self, stream, record):
        if not (isinstance(record, list) and len(record) == 3 and record[0] == HELLO):
            raise records.RecordError("no hello")
        bridge, token = self.invited.get(record[1], (None, None))
        if bridge is None or record[2] != token:
            raise records.RecordError("a hello with no invitation")
        old = self.by_bridge.get(bridge.key)
        if old is not None:
            self.close(old, "replaced by a new stream from the same gateway", quiet=True)
        stream.bridge = bridge
        self.by_bridge[bridge.key] = stream

    # Writing ------------------------------------------------------------------------------

    def send(self, bridge, items):
        """Queue records for a gateway's stream; False if it has none (Thespian carries them)."""
        stream = self.by_bridge.get(bridge.key)
        if stream is None:
            return False
        stream.out += b"".join(records.encode(record_of(item)) for item in items)
        return True

    def ack(self, stream, count):
        if stream.bridge is not None and self.by_bridge.get(stream.bridge.key) is stream:
            stream.out += records.encode([ACK, count])

    def flush(self):
        """Write what waits; True if some could not be written yet (try again in RETRY_WRITE_S)."""
        waiting = False
        for stream in list(self.by_bridge.values()):
            if not stream.out:
                continue
            try:
                sent = stream.sock.send(stream.out)
                del stream.out[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as error:
                self.close(stream, f"lost: {error}")
                continue
            if len(stream.out) > records.STALLED_BYTES:
                self.stalled.append(stream.bridge)
                self.close(stream, f"stalled: {len(stream.out)} bytes not read")
            elif stream.out:
                waiting = True
        return waiting

    def close(self, stream, why, quiet=False):
        if self.streams.pop(stream.sock.fileno(), None) is None:
            return
        if stream.bridge is not None and self.by_bridge.get(stream.bridge.key) is stream:
            del self.by_bridge[stream.bridge.key]
        (log.info if quiet else log.warning)("shard stream of %s %s; closed",
                                             stream.bridge.key if stream.bridge else "a gateway", why)
        _close(stream.sock)

    def close_all(self):
        for stream in list(self.streams.values()):
            self.close(stream, "the shard stops", quiet=True)
        if self.listener is not None:
            _close(self.listener)
            self.listener = None


class Stream:
    """One gateway's stream: its partial records, and what the kernel has not taken yet."""

    def __init__(self, sock):
        self.sock = sock
        self.reader = records.RecordReader()
        self.out = bytearray()
        self.bridge = None     # the gateway's BridgeRef, from its hello


def _close(sock):
    # shutdown, not only close: call session processes forked from the shard hold copies of
    # its sockets (call_hosting "process"), and close alone would leave the connection open.
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError as error:
        if error.errno not in (errno.ENOTCONN, errno.EBADF, errno.EINVAL):
            log.info("shard stream shutdown: %s", error)
    sock.close()
