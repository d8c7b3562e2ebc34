"""This gateway's open connections and what they follow, on the asyncio loop.

The hub attaches each websocket to its member (hosted by the member's shard),
forwards frames to that shard over this gateway's stream to it (gateway/shard_streams.py),
counts how many of its sockets watch each member so a shard hears of a gateway once however
many of its viewers look, and delivers what shards (by their streams) and other actors (by
Thespian: call session processes, the directory) send back.

It also keeps the link alive: every `heartbeat_s` it tells each shard this gateway lives
(a silent gateway's connections are closed by the shards) and asks the directory for the
shard addresses; a shard started again elsewhere (its node was lost) gets this gateway's
connections and watches attached again (docs/operating.md).
"""
import asyncio
import itertools
import logging
import time
from collections import defaultdict

from actors import leadership, shard_stream
from rules import frames
from actors.directory import DIRECTORY_NAME, Directory
from rules.shards import shard_index
from actors.messages import (Attached, BridgeRef, DirectoryMoved, GetShards, Ping, Presence, Presences,
                             Push, Resync, Shards, ToCall, WhoAmI)
from actors.messages import RelayLease
from gateway.shard_streams import UNAVAILABLE, ShardStreams

log = logging.getLogger(__name__)

# A page refused by its member's shard (too many pages) is closed with this websocket code.
CLOSE_POLICY = 1008
# Frames that change nothing stored: answered (ping) or relayed (signal) with the database down.
STORELESS_FRAMES = frozenset({"ping", "signal"})


class Unavailable(Exception):
    """The actor system did not answer in time."""


class PageRefused(Exception):
    """The member's shard would not take this page; `code` and the message say why."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class WatchRefused(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class Hub:
    def __init__(self, bridge, database_answers=lambda: True, policy=None, metrics=None, links=None):
        self.bridge = bridge
        self.links = links                    # gateway.links.Links: signaling to other gateways' pages
        self.metrics = metrics                # gateway.metrics.GatewayMetrics, or None
        self.policy = policy                  # watched_per_page_max, watched_per_member_max
        self.database_answers = database_answers  # a call's every change is stored before it acts
        self.address = None
        self.directory = None
        self.shards = []
        self.connections = {}                 # conn_id → Connection
        self.conn_ids = itertools.count(1)
        self.attaching = {}                   # conn_id → future of Attached
        self.viewers = defaultdict(set)       # member_id → conn_ids watching it
        self.watched_by = defaultdict(int)    # member_id → members their pages here follow, in all
        self.relays = {}                      # (conn_id, call_id) → the other page, (BridgeRef, conn_id) (RelayLease)
        self.relay_pairs = {}                 # call_id → this gateway's conn_ids its lease names
        self.statuses = {}                    # member_id → last known status, while watched
        self.heartbeat_s = 1.0                # the directory says (policy bridge_heartbeat_s)
        self.keeper = None                    # the heartbeat task
        self.lease_token = None               # the leader's lease (actors/leadership.py): its singletons' names
        self.refreshing = None                # the shard list asked of a new directory (held: not collected)
        self.streams = None                   # ShardStreams: this gateway's stream to each shard

    async def start(self, lease_token=None, timeout_s=30):
        await self.bridge.start()
        self.lease_token = lease_token
        name = leadership.global_name(DIRECTORY_NAME, lease_token)
        self.directory = await self.bridge.call(lambda context: context.createActor(Directory, globalName=name))
        link = await self.links.start() if self.links else None
        self.address = BridgeRef.of((await self.bridge.request(self.directory, WhoAmI)).address, link)
        self.streams = ShardStreams(self.bridge, self.address, self.on_messages, self.stream_lost,
                                    lambda index: self.resync({index}))
        if self.links:
            self.links.key = self.address.key
            self.links.deliver, self.links.undelivered = self.link_signal, self.undelivered
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not self.shards:  # the node configures the directory; wait until it has
            answer = await self.bridge.request(self.directory, GetShards)
            self.shards, self.heartbeat_s = answer.addresses, answer.heartbeat_s or self.heartbeat_s
            if not self.shards:
                if asyncio.get_running_loop().time() > deadline:
                    raise Unavailable("the actor node never configured the member directory")
                await asyncio.sleep(0.1)
        self.keeper = asyncio.get_running_loop().create_task(self.keep_alive())

    def stop(self):
        if self.keeper is not None:
            self.keeper.cancel()
        if self.links:
            self.links.stop()
        if self.streams:
            self.streams.stop()
        self.bridge.stop()

    async def keep_alive(self):
        """Heartbeats to every shard, and the shard addresses from the directory, each interval."""
        while True:
            for index in range(len(self.shards)):
                self.to_shard(index, shard_stream.HEARTBEAT_RECORD)
            try:
                asked = time.monotonic()
                answer = await self.bridge.request(self.directory, GetShards, max(2.0, 2 * self.heartbeat_s))
                if self.metrics:
                    self.metrics.directory_roundtrip.observe(time.monotonic() - asked)
                self.shards_now(answer.addresses)
            except asyncio.TimeoutError:
                log.warning("the member directory did not answer a heartbeat; asking again")
            except Exception:  # a bug here must not stop the heartbeats: shards would drop our pages
                log.exception("hub heartbeat failed; going on")
            await asyncio.sleep(self.heartbeat_s)

    async def refresh_shards(self):
        try:
            self.shards_now((await self.bridge.request(self.directory, GetShards, max(2.0, 2 * self.heartbeat_s)))
                            .addresses)
        except asyncio.TimeoutError:
            pass  # the heartbeat asks again

    def shards_now(self, addresses):
        if len(addresses) != len(self.shards):
            return  # a directory being configured; shard counts never change while running
        moved = {index for index, (old, new) in enumerate(zip(self.shards, addresses)) if str(old) != str(new)}
        if moved:
            log.warning("member shards %s started again elsewhere; attaching their members again", sorted(moved))
            self.shards = list(addresses)
            for index in moved:
                self.streams.moved(index)
            self.resync(moved)

    def resync(self, indexes):
        """Attach again, on the shards `indexes`, every open connection and every watch: their
        shards are new (their node or process was lost) or forgot this gateway (it was silent too long)."""
        count = len(self.shards)
        for connection in self.connections.values():
            index = shard_index(connection.member_id, count)
            if index in indexes and connection.conn_id not in self.attaching:
                self.to_shard(index, shard_stream.open_record(connection.member_id, connection.conn_id,
                                                              connection.profile))
        for member_id in self.viewers:
            index = shard_index(member_id, count)
            if index in indexes:
                self.to_shard(index, shard_stream.watch_record(member_id))

    async def health(self, timeout_s=2):
        try:
            pong = await self.bridge.request(self.directory, Ping, timeout_s)
        except asyncio.TimeoutError:
            return {"ok": False, "error": "the member directory did not answer"}
        return {"ok": True, "shards": pong.detail["shards"], "connections": len(self.connections),
                "nodes": pong.detail.get("nodes", []), "placement": pong.detail.get("placement", {})}

    def shard_of(self, member_id):
        return self.shards[shard_index(member_id, len(self.shards))]

    def to_shard(self, index, record, entry=None):
        """A record for shard `index`, on this gateway's stream to it (entry: what is owed if
        the stream drops before the shard handled it, gateway/shard_streams.py)."""
        self.streams.send(index, self.shards[index], record, entry)

    def to_member_shard(self, member_id, record, entry=None):
        self.to_shard(shard_index(member_id, len(self.shards)), record, entry)

    def stream_lost(self, owed):
        """A shard stream dropped before the shard handled these: pages' frames are answered
        `unavailable` (nothing is known to have happened), attaches waiting fail."""
        for entry in owed:
            if entry[0] == "frame":
                connection = self.connections.get(entry[1])
                if connection is not None:
                    connection.send_frame(frames.error(entry[2], "unavailable", UNAVAILABLE))
            else:
                future = self.attaching.get(entry[1])
                if future is not None and not future.done():
                    future.set_exception(Unavailable(UNAVAILABLE))

    async def open(self, connection, timeout_s=20):
        """Attach a new websocket to its member, in the member's shard; returns the member's status."""
        connection.conn_id = next(self.conn_ids)
        self.connections[connection.conn_id] = connection
        future = asyncio.get_running_loop().create_future()
        self.attaching[connection.conn_id] = future
        self.to_member_shard(connection.member_id, shard_stream.open_record(
            connection.member_id, connection.conn_id, connection.profile), ("open", connection.conn_id))
        asked = time.monotonic()
        try:
            attached = await asyncio.wait_for(future, timeout_s)
            if self.metrics:
                self.metrics.shard_roundtrip.observe(time.monotonic() - asked)
        except asyncio.TimeoutError:
            raise Unavailable("the member's shard did not answer") from None
        finally:
            self.attaching.pop(connection.conn_id, None)
        if attached.refused:
            self.connections.pop(connection.conn_id, None)
            raise PageRefused(attached.refused, attached.message)
        return attached.status

    def frame(self, connection, frame):
        if frame["type"] == "signal" and self.relay(connection, frame):
            return
        self.route(connection, frame)

    def route(self, connection, frame):
        """A page's frame to the actor that decides: the call's session, or the page's member."""
        if frame["type"] not in STORELESS_FRAMES and not self.database_answers():
            # Refused here, with no effect, rather than held by the call for as long as the outage lasts.
            connection.send_frame(frames.error(frame.get("id"), "unavailable",
                                               "the database is not answering; the call goes on, "
                                               "try this again in a few seconds"))
            return
        host_id = connection.call_hosts.get(frame.get("call_id"))
        if host_id is not None:
            # Straight to the call's session, in its host's shard: one hop less than through this
            # member's shard (the session checks that the sender takes part in the call).
            self.to_member_shard(host_id, shard_stream.call_frame_record(
                host_id, frame["call_id"], connection.member_id, connection.conn_id, frame),
                ("frame", connection.conn_id, frame.get("id")))
            return
        self.to_member_shard(connection.member_id, shard_stream.frame_record(
            connection.member_id, connection.conn_id, frame), ("frame", connection.conn_id, frame.get("id")))

    def relay(self, connection, frame):
        """A signal frame under the call's relay lease goes straight to the other page: on this
        gateway, or over the link to the other page's gateway (never through the shard).
        False when no lease covers it: the call's session decides."""
        peer = self.relays.get((connection.conn_id, frame["call_id"]))
        if peer is None:
            return False
        bridge, conn_id = peer
        if bridge == self.address:
            other = self.connections.get(conn_id)
            if other is None:
                return False   # the page just went: the session knows what to say
            other.send_frame(relayed(frame))
            return True
        if bridge.link is None or self.links is None:
            return False
        self.links.send(bridge.link, connection.conn_id, conn_id, frame)
        return True

    def link_signal(self, peer_key, to_conn_id, from_conn_id, frame):
        """Another gateway's page signals one of ours: delivered if our own lease names the
        pair (True), else bounced back to be given to the call's session."""
        connection = self.connections.get(to_conn_id)
        peer = self.relays.get((to_conn_id, frame.get("call_id")))
        if connection is None or peer is None or (peer[0].key, peer[1]) != (peer_key, from_conn_id):
            return False
        connection.send_frame(relayed(frame))
        return True

    def undelivered(self, conn_id, frame):
        """A signal of our page that the other gateway did not take: to the call's session."""
        connection = self.connections.get(conn_id)
        if connection is not None:
            self.route(connection, frame)

    def to_call(self, host_id, call_id, message):
        """Deliver a message to a call (from PayPal's side), through its host's shard."""
        self.bridge.tell(self.shard_of(host_id), ToCall(host_id, call_id, message))

    def profile_changed(self, member_id, profile):
        """The member's tier, payout email or name changed: their live actor (if any) uses it now,
        and this gateway's pages attach with it again after a resync."""
        for connection in self.connections.values():
            if connection.member_id == member_id:
                connection.profile = profile
        # On the stream this gateway's frames take: a call placed from the page right after the
        # change (a new name) cannot overtake it. The shard passes it on if the member is there.
        self.to_member_shard(member_id, shard_stream.profile_record(member_id, profile))

    def close(self, connection):
        if self.connections.pop(connection.conn_id, None) is None:
            return
        self.unwatch(connection, list(connection.watching))
        self.to_member_shard(connection.member_id, shard_stream.close_record(connection.member_id, connection.conn_id))

    def check_watch(self, connection, member_ids):
        """Raise WatchRefused if following `member_ids` too would pass this page's or this
        account's limit (policy watched_per_page_max, watched_per_member_max on this gateway)."""
        fresh = len(set(member_ids) - connection.watching)
        page_max, member_max = self.policy.watched_per_page_max, self.policy.watched_per_member_max
        if len(connection.watching) + fresh > page_max:
            raise WatchRefused("too_many_watched", f"one page follows at most {page_max} members; "
                                                   f"unwatch some first")
        if self.watched_by[connection.member_id] + fresh > member_max:
            raise WatchRefused("too_many_watched", f"your open pages follow at most {member_max} members "
                                                   f"together; close a page or unwatch some first")

    def watch(self, connection, member_ids):
        """Follow these members (checked with check_watch first)."""
        for member_id in member_ids:
            if connection.conn_id in self.viewers[member_id]:
                continue
            connection.watching.add(member_id)
            self.watched_by[connection.member_id] += 1
            first = not self.viewers[member_id]
            self.viewers[member_id].add(connection.conn_id)
            if first:
                self.to_member_shard(member_id, shard_stream.watch_record(member_id))
            elif member_id in self.statuses:
                connection.send_frame(presence_frame(member_id, self.statuses[member_id]))

    def unwatch(self, connection, member_ids):
        for member_id in member_ids:
            connection.watching.discard(member_id)
            viewers = self.viewers.get(member_id)
            if viewers is None or connection.conn_id not in viewers:
                continue
            viewers.discard(connection.conn_id)
            self.watched_by[connection.member_id] -= 1
            if not self.watched_by[connection.member_id]:
                del self.watched_by[connection.member_id]
            if not viewers:
                del self.viewers[member_id]
                self.statuses.pop(member_id, None)
                self.to_member_shard(member_id, shard_stream.watch_record(member_id, watch=False))

    def connections_of_sessions(self):
        sessions = defaultdict(list)
        for connection in self.connections.values():
            sessions[connection.session_id].append(connection)
        return sessions

    def on_messages(self, messages):
        for message in messages:
            if isinstance(message, Push):
                for item in message.items:
                    if isinstance(item, RelayLease):
                        self.relay_lease(item)
                        continue
                    conn_ids, frame = item
                    for conn_id in conn_ids:
                        connection = self.connections.get(conn_id)
                        if connection is not None:
                            if frame["type"] == "call_state":
                                learn_call_host(connection, frame)
                            connection.send_frame(frame)
            elif isinstance(message, Presence):
                self.on_presence(message)
            elif isinstance(message, Presences):
                for one in message.items:
                    self.on_presence(one)
            elif isinstance(message, Attached):
                future = self.attaching.get(message.conn_id)
                if future is not None and not future.done():
                    future.set_result(message)
                elif message.conn_id in self.connections and message.refused:  # attached again, now one too many
                    self.connections[message.conn_id].close(CLOSE_POLICY, message.message)
            elif isinstance(message, Resync):
                self.resync({message.index})
            elif isinstance(message, Shards):
                self.shards_now(message.addresses)  # the directory moved shards (a node was lost)
            elif isinstance(message, DirectoryMoved):
                # The leader was lost; another node leads and a shard told us its directory.
                if str(message.directory) != str(self.directory):
                    log.warning("the member directory moved to %s (a new leader); asking it for the shards",
                                message.directory)
                    self.directory, self.lease_token = message.directory, message.token
                    self.refreshing = asyncio.ensure_future(self.refresh_shards())  # not at the next heartbeat
            else:
                log.warning("unexpected message from the actors: %r", message)

    def relay_lease(self, lease):
        for conn_id in self.relay_pairs.pop(lease.call_id, ()):
            self.relays.pop((conn_id, lease.call_id), None)
        if lease.pages is not None:
            host_page, caller_page = lease.pages
            ours = []
            for page, other in ((host_page, caller_page), (caller_page, host_page)):
                if page[0] == self.address:
                    self.relays[(page[1], lease.call_id)] = other
                    ours.append(page[1])
            self.relay_pairs[lease.call_id] = ours

    def on_presence(self, message):
        viewers = self.viewers.get(message.member_id)
        if not viewers:
            return  # nobody here watches any more; the Unwatch is on its way
        self.statuses[message.member_id] = message.status
        frame = presence_frame(message.member_id, message.status)
        for conn_id in viewers:
            self.connections[conn_id].send_frame(frame)


presence_frame = frames.presence


def relayed(frame):
    """A signal frame as the other page gets it: the sender's request id is the sender's."""
    return {k: v for k, v in frame.items() if k != "id"}


def learn_call_host(connection, frame):
    """Remember which member hosts a call this page is in, so its frames go to that member's
    shard directly; forget it when the call ends."""
    if frame["state"] == "ended":
        connection.call_hosts.pop(frame["call_id"], None)
    else:
        connection.call_hosts[frame["call_id"]] = frame["host"]["id"]
