"""Links between gateways: a call's signaling, when its two pages are on two gateways, goes
from one gateway's loop straight to the other's under the call's relay lease (RelayLease).

Carried by Thespian (this gateway's bridge thread → the other's), a relay round trip cost
10-12× the bare websocket echo's (scripts/bench_calls.py); a TCP stream between the two
loops costs about one more socket hop each way. Each gateway listens on `actor_host` (the
private address of the actor network, behind the same firewall: docs/operating.md) at
`gateway_link_port` (0: any free port), and says where in its BridgeRef, so a lease names the
link of each page's gateway.

A link is one TCP connection per direction, records framed by a 4-byte length and packed with
msgpack: the opener's hello (its bridge key) first, then signals one way and bounces back. A
link is trusted no further than the receiver's own lease: a signal is delivered only if the
receiver's lease names that pair of pages; otherwise it is bounced, and the sender gives it to
the call's session like any frame (a lease just taken back, or not here yet). A signal that
cannot be sent (the link will not open, or is stalled) goes to the session the same way.
"""
import asyncio
import logging

from actors.records import LENGTH, RECORD_MAX_BYTES, STALLED_BYTES, RecordError, encode
from actors.records import read as _read

log = logging.getLogger(__name__)

HELLO, SIGNAL, BOUNCE = 0, 1, 2
# A peer that reads nothing while STALLED_BYTES wait for it is stalled: its signals go to the
# sessions instead (they refuse or deliver them, and say so to the senders).
CONNECT_TIMEOUT_S = 3


class Links:
    """This gateway's links. `deliver(peer_key, to_conn_id, from_conn_id, frame)` says whether
    a signal from a peer's page was delivered here; `undelivered(from_conn_id, frame)` takes
    back a signal of one of our pages that a link could not deliver."""

    def __init__(self, host, port, key=None, deliver=None, undelivered=None):
        self.host, self.port = host, port
        self.key = key
        self.deliver, self.undelivered = deliver, undelivered
        self.server = None
        self.peers = {}        # (host, port) → _Peer: our side of a link we opened
        self.accepted = set()  # tasks reading links others opened

    async def start(self):
        """Listen; returns (host, port) where other gateways reach this one."""
        self.server = await asyncio.start_server(self._accepted, self.host, self.port,
                                                 limit=RECORD_MAX_BYTES + LENGTH.size)
        return self.server.sockets[0].getsockname()[:2]

    def stop(self):
        if self.server is not None:
            self.server.close()
        for peer in list(self.peers.values()):
            peer.close()
        for task in list(self.accepted):
            task.cancel()

    def send(self, link, from_conn_id, to_conn_id, frame):
        """A signal of our page `from_conn_id` for the page `to_conn_id` of the gateway at `link`."""
        peer = self.peers.get(link)
        if peer is None or peer.closed:
            peer = self.peers[link] = _Peer(self, tuple(link))
        peer.send(from_conn_id, [SIGNAL, to_conn_id, from_conn_id, frame])

    # A link another gateway opened -----------------------------------------------------

    async def _accepted(self, reader, writer):
        task = asyncio.current_task()
        self.accepted.add(task)
        try:
            hello = await _read(reader)
            if not (isinstance(hello, list) and len(hello) == 2 and hello[0] == HELLO and isinstance(hello[1], str)):
                log.warning("gateway link from %s: no hello; closed", writer.get_extra_info("peername"))
                return
            peer_key = hello[1]
            while True:
                record = await _read(reader)
                if not _is_signal(record):
                    log.warning("gateway link from %s: not a signal record; closed", peer_key)
                    return
                _, to_conn_id, from_conn_id, frame = record
                if not self.deliver(peer_key, to_conn_id, from_conn_id, frame):
                    _write(writer, [BOUNCE, from_conn_id, frame])
        except (asyncio.IncompleteReadError, ConnectionError, RecordError, asyncio.LimitOverrunError):
            pass  # the peer went, or sent what is not a record: the link is closed
        except asyncio.CancelledError:
            pass
        finally:
            self.accepted.discard(task)
            writer.close()


class _Peer:
    """Our side of a link to one gateway: signals queue while it opens, bounces come back on it."""

    def __init__(self, links, address):
        self.links, self.address = links, address
        self.writer = None
        self.waiting = []      # (from_conn_id, record) until the link is open
        self.closed = False
        self.task = asyncio.get_running_loop().create_task(self._run())

    def send(self, from_conn_id, record):
        if self.writer is None:
            self.waiting.append((from_conn_id, record))
        elif self.writer.transport.get_write_buffer_size() > STALLED_BYTES:
            log.warning("gateway link to %s:%s stalled; closing it", *self.address)
            self.close()
            self.links.undelivered(from_conn_id, record[3])
        else:
            _write(self.writer, record)

    def close(self):
        if not self.closed:
            self.closed = True
            self.task.cancel()
            if self.writer is not None:
                self.writer.close()

    async def _run(self):
        try:
            opening = asyncio.open_connection(*self.address, limit=RECORD_MAX_BYTES + LENGTH.size)
            reader, writer = await asyncio.wait_for(opening, CONNECT_TIMEOUT_S)
            _write(writer, [HELLO, self.links.key])
            self.writer = writer
            for _, record in self.waiting:
                _write(writer, record)
            self.waiting = []
            while True:
                record = await _read(reader)
                if isinstance(record, list) and len(record) == 3 and record[0] == BOUNCE:
                    self.links.undelivered(record[1], record[2])
        except asyncio.CancelledError:
            pass
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
            log.warning("gateway link to %s:%s lost: %r", *self.address, error)
        finally:
            self.closed = True
            if self.links.peers.get(self.address) is self:
                del self.links.peers[self.address]
            for from_conn_id, record in self.waiting:  # never sent: the sessions decide
                self.links.undelivered(from_conn_id, record[3])
            self.waiting = []
            if self.writer is not None:
                self.writer.close()


def _is_signal(record):
    return (isinstance(record, list) and len(record) == 4 and record[0] == SIGNAL
            and isinstance(record[1], int) and isinstance(record[2], int) and isinstance(record[3], dict))


def _write(writer, record):
    writer.write(encode(record))
