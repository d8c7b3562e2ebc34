"""The bridge between this gateway's asyncio loop and the actor system.

Thespian's external contexts are not thread-safe and block, so one thread owns a private
context: it sends what the loop queued and listens for what actors send back, handing it to
the loop in one call per burst. Pages' events and what shards say to pages do not come this
way: they travel on this gateway's stream to each shard (gateway/shard_streams.py); the
bridge carries the rest (the directory, heartbeat answers, call session processes, money).
"""
import asyncio
import itertools
import logging
import queue
import threading

from actors import actor_transport

log = logging.getLogger(__name__)

# How long the thread listens before looking at the outbound queue again: the worst-case
# extra latency of a frame going to an actor when nothing comes back meanwhile. Each listen
# costs Thespian a pass over every socket the bridge holds (one per actor it talks
# to), so an idle bridge polling every 2 ms with 1,000 members online used 60-80% of a core
# (scripts/loadgen.py): while nothing moves the slice doubles up to IDLE_LISTEN_SLICE_S, and
# the first frame in or out brings it back to LISTEN_SLICE_S.
LISTEN_SLICE_S = 0.002
IDLE_LISTEN_SLICE_S = 0.016


class ActorBridge:
    def __init__(self, settings, on_messages):
        """`on_messages(list)` runs on the loop with every message actors sent this gateway."""
        self.settings = settings  # where the node's admin is (actor_host, admin_port)
        self.on_messages = on_messages
        self.loop = None
        self.outbound = queue.SimpleQueue()
        self.pending = {}  # req_id → future, for request/response messages
        self.req_ids = itertools.count(1)
        self.stopping = threading.Event()
        self.thread = None
        self.address = None
        self.slice_s = LISTEN_SLICE_S  # how long the next listen waits (see IDLE_LISTEN_SLICE_S)

    def start(self):
        self.loop = asyncio.get_running_loop()
        ready = self.loop.create_future()
        self.thread = threading.Thread(target=self._run, args=(ready,), name="actor-bridge", daemon=True)
        self.thread.start()
        return ready

    def stop(self):
        self.stopping.set()
        if self.thread:
            self.thread.join(timeout=5)

    def tell(self, address, message):
        self.outbound.put((address, message))

    def call(self, function):
        """Run function(context) on the bridge thread (e.g. createActor); await its result."""
        future = self.loop.create_future()
        self.outbound.put((None, (function, future)))
        return future

    def request(self, address, make_message, timeout_s=5.0):
        """Send make_message(req_id) and await the reply carrying the same req_id."""
        req_id = next(self.req_ids)
        future = self.loop.create_future()
        self.pending[req_id] = future
        self.tell(address, make_message(req_id))

        async def answer():
            try:
                return await asyncio.wait_for(future, timeout_s)
            finally:
                self.pending.pop(req_id, None)
        return answer()

    def _resolve_or_forward(self, messages):
        rest = []
        for message in messages:
            req_id = getattr(message, "req_id", None)
            future = self.pending.get(req_id) if req_id is not None else None
            if future is not None:
                if not future.done():
                    future.set_result(message)
            else:
                rest.append(message)
        if rest:
            self.on_messages(rest)

    def _run(self, ready):
        try:
            system = actor_transport.outside_system(self.settings)
            private = system.private()
            context = private.__enter__()
        except Exception as error:  # reported to start()'s caller, which fails loudly
            self.loop.call_soon_threadsafe(_set_exception, ready, error)
            return
        self.loop.call_soon_threadsafe(_set_result, ready, True)
        try:
            while not self.stopping.is_set():
                try:
                    self._exchange(context)
                except Exception:
                    log.exception("actor bridge: one exchange failed; going on")
        finally:
            try:
                private.__exit__(None, None, None)
            except Exception:
                log.exception("leaving the actor context")

    def _exchange(self, context):
        sent = self._send_queued(context)
        received = []
        message = context.listen(self.slice_s)
        while message is not None:
            received.append(message)
            message = context.listen(0)
        if received:
            self.loop.call_soon_threadsafe(self._resolve_or_forward, received)
        busy = sent or received or not self.outbound.empty()
        self.slice_s = LISTEN_SLICE_S if busy else min(2 * self.slice_s, IDLE_LISTEN_SLICE_S)

    def _send_queued(self, context):
        sent = False
        while True:
            try:
                address, item = self.outbound.get_nowait()
            except queue.Empty:
                return sent
            sent = True
            if address is None:
                self._call(context, *item)
            else:
                self._tell(context, address, item)

    def _call(self, context, function, future):
        try:
            result = function(context)
        except Exception as error:
            self.loop.call_soon_threadsafe(_set_exception, future, error)
        else:
            self.loop.call_soon_threadsafe(_set_result, future, result)

    def _tell(self, context, address, message):
        """Queue a send; the next listen() runs the transport for every queued send at once.

        Thespian's public tell() runs the transport until that one message is taken, one
        destination after another; with a frame for each of fifty members that serialised
        the bridge (scripts/bench_presence.py). A send that fails (a dead actor) is logged
        by Thespian and dropped; the hub learns of lost members through presence."""
        try:
            context._systemBase._tx_to_actor(address, message)
        except Exception:
            log.warning("could not queue %s for %s", type(message).__name__, address, exc_info=True)


def _set_result(future, value):
    if not future.done():
        future.set_result(value)


def _set_exception(future, error):
    if not future.done():
        future.set_exception(error)
