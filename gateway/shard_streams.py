"""This gateway's streams to the member shards, on the asyncio loop: one TCP connection per
shard (actors/shard_stream.py says what travels and why).

A stream asks its shard where to connect (`StreamWhere`, by Thespian through the bridge),
connects, shows the shard's token in its hello, and sends what waited. Each record sent is
remembered until the shard's ACK says it was handled: if the stream drops first, each page
frame still unacknowledged is answered `unavailable`, and an attach still waiting fails
(the page is told `unavailable`), as when a shard does not answer. The next record for that
shard opens a new stream (the heartbeats send one each interval); a stream that replaces a
lost one attaches this gateway's pages and watches there again (the shard may have given
this gateway up meanwhile: resync). A shard that reads nothing while STALLED_BYTES wait for it
is treated as lost the same way.
"""
import asyncio
import logging
from collections import deque

from actors import records
from actors.messages import Attached, Presence, Push, RelayLease, BridgeRef, StreamWhere
from actors.shard_stream import ACK, ATTACHED, HELLO, LEASE, PRESENCE, PUSH

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3
READ_BYTES = 256 * 1024
UNAVAILABLE = "the member's shard did not answer; try again in a few seconds"


class ShardStreams:
    """`on_messages(list)`: what shards said, as the hub takes Thespian's; `lost(entries)`: the
    entries of records a lost stream had not had handled; `reattach(index)`: a stream replaced
    one that was lost."""

    def __init__(self, bridge, address, on_messages, lost, reattach):
        self.bridge, self.address = bridge, address   # ActorBridge, this gateway's BridgeRef
        self.on_messages, self.lost, self.reattach = on_messages, lost, reattach
        self.streams = {}      # shard index → _Stream
        self.dropped = set()   # indexes whose stream was lost, its shard unchanged: attach again

    def send(self, index, shard, record, entry=None):
        """Send `record` to shard `index` (Thespian address `shard`); `entry` is what is owed if
        it is never handled: ("frame", conn_id, request id), ("open", conn_id) or None."""
        stream = self.streams.get(index)
        if stream is None or stream.closed:
            stream = self.streams[index] = _Stream(self, index, shard)
        stream.send(records.encode(record), entry)

    def moved(self, index):
        """Shard `index` is a new actor: its old stream goes (what it had not handled is lost)."""
        self.dropped.discard(index)
        stream = self.streams.pop(index, None)
        if stream is not None:
            stream.close()

    def stop(self):
        for stream in list(self.streams.values()):
            stream.close()


class _Stream:
    def __init__(self, streams, index, shard):
        self.streams, self.index, self.shard = streams, index, shard
        self.writer = None
        self.waiting = []          # (bytes, entry) until connected
        self.unacked = deque()     # entries of records written and not yet acknowledged
        self.out = []              # records of this loop iteration: written together (one send)
        self.closed = False
        self.loop = asyncio.get_running_loop()
        self.task = self.loop.create_task(self._run())

    def send(self, data, entry):
        if self.writer is None:
            self.waiting.append((data, entry))
            return
        if not self.out:
            self.loop.call_soon(self._write)
        self.out.append(data)
        self.unacked.append(entry)

    def _write(self):
        if self.closed:
            return
        self.writer.write(b"".join(self.out))
        self.out = []
        if self.writer.transport.get_write_buffer_size() > records.STALLED_BYTES:
            log.warning("the stream to member shard %d is stalled; closing it", self.index)
            self.close()

    def close(self):
        if not self.closed:
            self.task.cancel()
            self._forget()

    def _forget(self):
        """No more records for this stream: the next goes on a new one, which attaches again
        unless the shard itself is new (ShardStreams.moved took this one out first)."""
        self.closed = True
        streams = self.streams
        if streams.streams.get(self.index) is self:
            del streams.streams[self.index]
            streams.dropped.add(self.index)

    async def _run(self):
        streams = self.streams
        try:
            at = await streams.bridge.request(self.shard, lambda req_id: StreamWhere(req_id, streams.address),
                                              CONNECT_TIMEOUT_S)
            opening = asyncio.open_connection(*at.address, limit=records.RECORD_MAX_BYTES + records.LENGTH.size)
            reader, self.writer = await asyncio.wait_for(opening, CONNECT_TIMEOUT_S)
            self.writer.write(records.encode([HELLO, streams.address.key, at.token]))
            for data, entry in self.waiting:
                self.writer.write(data)
                self.unacked.append(entry)
            self.waiting = []
            if self.index in streams.dropped:
                streams.dropped.discard(self.index)
                streams.reattach(self.index)
            await self._read(reader)
            log.warning("member shard %d closed its stream", self.index)
        except asyncio.CancelledError:
            pass
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, records.RecordError) as error:
            log.warning("stream to member shard %d lost: %r", self.index, error)
        except Exception:
            log.exception("stream to member shard %d failed", self.index)
        finally:
            self._lost()

    async def _read(self, reader):
        incoming = records.RecordReader()
        while True:
            data = await reader.read(READ_BYTES)
            if not data:
                return
            messages = []
            for record in incoming.feed(data):
                if record[0] == ACK:
                    for _ in range(record[1]):
                        self.unacked.popleft()
                else:
                    messages.append(message_of(record))
            if messages:
                self.streams.on_messages(messages)

    def _lost(self):
        self._forget()
        streams = self.streams
        if self.writer is not None:
            self.writer.close()
        owed = [entry for entry in self.unacked if entry is not None]
        owed += [entry for _, entry in self.waiting if entry is not None]
        self.unacked.clear()
        self.out = []
        self.waiting = []
        if owed:
            streams.lost(owed)


def message_of(record):
    """The hub's message for a shard's record (the same as Thespian would have carried)."""
    kind = record[0]
    if kind == PUSH:
        return Push([(record[1], record[2])])
    if kind == PRESENCE:
        return Presence(record[1], record[2])
    if kind == ATTACHED:
        return Attached(record[1], record[2], None, record[3], record[4], record[5])
    if kind == LEASE:
        pages = None if record[2] is None else tuple(
            (BridgeRef(key, None, tuple(link) if link else None), conn_id) for key, link, conn_id in record[2])
        return Push([RelayLease(record[1], pages)])
    raise records.RecordError(f"not a shard's record: {str(record)[:80]}")
