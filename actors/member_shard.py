"""A member shard: the actor that hosts the online members whose ids hash to it, and the calls
they host.

Each member is a `member.Member` object living here, not a process: a Thespian actor process
costs 3–4 MB before it holds anything, over the product's 3 MB per online member (README,
Performance). Each call a member hosts is a `call_session.CallSession` living here too (unless
settings.call_hosting is "process": then a call session process, a child of this shard). The
shard gives its members and calls what an actor has, one message at a time: events from the
gateways (Batch), messages for them (ToMember, ToCall; the adapters' answers to a call), their
timers, and a way to act (`send`, `create_call`, `tell_call`, `wakeupAfter`). Gateways reach it
over a stream each (actors/shard_stream.py, watched by Thespian's select loop), each record
handled like one event of a Batch (still the way in for Thespian clients). Messages between
members and calls of the same shard are queued and handled after the current one, as a mailbox
would, never in the middle of it. A member or call whose handler fails is logged and left as it
was; the shard and the others go on.

A shard also keeps who watches each of its members, online or not, so a viewer of an offline
member is told the moment that member opens a page; it closes the connections of a gateway
whose heartbeats stopped; started in place of one lost with its node, it brings its members'
live calls back from the store.
"""
import itertools
import logging
import os
import secrets
import time
from collections import defaultdict, deque

from thespian.actors import Actor, ActorExitRequest, ChildActorExited, ThespianWatch, WakeupMessage, WatchMessage

from actors import convention
from rules import frames, presence
from actors.call_session import CallSession, CallSessionActor
from actors.call_writer import CallWriter
from rules.liveness import BridgeLiveness
from actors.member import Member, missed_call_mail
from actors.messages import (Batch, CallLoaded, CallMissed, CallRef, CallRefused, CallSaved, Heartbeat, LiveCalls, Open, Presence, Presences, ProfileChanged,
                             Push, RecoverCalls, Resync, RingRequest, SendMail, ShardsMoved, ShardStart, ToCall,
                             ToMember, Unwatch, Watch)
from actors.messages import Adopted, DirectoryMoved, FindLiveCalls, FollowedOnline, MailFollower, TellFollowers
from actors.messages import CallsSaved, SaveCall, SaveCalls, StreamAt, StreamWhere
from actors.recovery import CallFinder
from actors.shard_stream import RETRY_WRITE_S, ShardStreams
from rules.shards import shard_index

log = logging.getLogger(__name__)

# A recovered shard whose store query failed asks again after this (a replica set election
# takes seconds); the calls wait, their deadlines are data.
RECOVERY_RETRY_S = 2


class MemberShard(Actor):
    # Placed only on member-hosting nodes, on the very node the directory asks for.
    actorSystemCapabilityCheck = staticmethod(convention.hosts_shard)

    def __init__(self, capabilities=None):
        super().__init__()
        # Our writer says what it stored through a socket our select loop watches; a system
        # base that watches nothing (simpleSystemBase: the actor tests) saves by the call store.
        self.can_watch = bool((capabilities or {}).get("Thespian Watch Supported"))
        self.services = None
        self.index = None
        self.members = {}                 # member_id → Member, while online or in a call
        self.incarnations = itertools.count(1)
        self.watchers = defaultdict(set)  # member_id → bridges watching it
        self.calls = []                   # [(call session process address, its host's member_id)]
        self.sessions = {}                # call_id → CallSession hosted here
        self.bridges = None               # BridgeLiveness: which gateways still send heartbeats
        self.ticking = False
        self.early = []                   # messages that came before ShardStart
        self.local = deque()              # (deliver, member_id or call_id, message) inside this shard
        self.outbox = defaultdict(list)   # BridgeRef → [(conn_ids, frame)], sent once per message
        self.answers = defaultdict(list)  # BridgeRef → [Attached], sent before the outbox
        self.streams = None               # ShardStreams: the gateways' streams, once started
        self.acks = []                    # (stream, records handled) of this message, after its answers
        self.retrying = False             # a wakeup to write what a stream's kernel buffer refused
        self.statuses = defaultdict(list)  # BridgeRef → [Presence], sent once per message
        self.writer = None                # CallWriter: our calls' saves, written by a thread of ours
        self.saves = []                   # [(store, SaveCall)] of this message, handed over once

    def receiveMessage(self, message, sender):
        # The watch goes back with every message, or Thespian stops watching the streams: a
        # failure here (a bug: members and calls are guarded one by one) is logged and that
        # message dropped, not retried.
        try:
            self.receive(message, sender)
        except Exception:
            log.exception("shard %s failed on %s", self.index, type(message).__name__)
        if self.streams is None:
            return None
        return ThespianWatch(self.streams.filenos() + ([self.writer.fileno()] if self.writer else []))

    def receive(self, message, sender):
        if isinstance(message, ShardStart):
            self.start(message)
        elif self.services is None:
            # A gateway or another shard told of this new shard before its start arrived.
            self.early.append((message, sender))
        elif isinstance(message, WatchMessage):
            if self.writer is not None and self.writer.fileno() in message.ready:
                self.calls_stored()
            self.streams_ready(message.ready)
        else:
            self.handle(message, sender)
        self.deliver_local()
        self.flush()

    def deliver_local(self):
        while self.local:
            deliver, key, queued = self.local.popleft()
            deliver(key, queued)

    def handle(self, message, sender):
        if isinstance(message, Batch):
            self.route(message.events)
        elif isinstance(message, StreamWhere):
            self.stream_where(message, sender)
        elif isinstance(message, ToMember):
            self.deliver(message.member_id, message.message)
        elif isinstance(message, ProfileChanged):  # a gateway's, straight here like its frames
            self.deliver(message.member_id, message)
        elif isinstance(message, ToCall) and message.call_id in self.sessions:
            self.deliver_to_call(message.call_id, message.message)
        elif isinstance(message, ToCall):  # for a call session process, through its host
            self.deliver(message.host_id, message)
        elif isinstance(message, (CallSaved, CallLoaded)):  # the call store's answer to one of our calls
            self.deliver_to_call(message.call_id, message)
        elif isinstance(message, CallsSaved):
            for saved in message.saved:
                self.deliver_to_call(saved.call_id, saved)
        elif isinstance(message, WakeupMessage):
            self.timer(message.payload)
        elif isinstance(message, ActorExitRequest) and self.streams is not None:
            self.streams.close_all()
            if self.writer is not None:
                self.writer.close()
        elif isinstance(message, Heartbeat):
            self.heartbeat(message.bridge)
        elif isinstance(message, ShardsMoved):
            self.services.shards = message.addresses  # the members share this services object
            for call, _ in self.calls:
                self.send(call, message)
        elif isinstance(message, LiveCalls) and message.calls is None:
            self.wakeupAfter(RECOVERY_RETRY_S, payload="recover")  # the store did not answer: ask again
        elif isinstance(message, LiveCalls):
            self.recover(message.calls)
        elif isinstance(message, ChildActorExited):
            self.call_exited(message.childAddress)
        elif isinstance(message, Adopted):
            self.adopted(message)
        elif isinstance(message, TellFollowers):  # the followers adapter: one of ours is back
            for follower_id in message.follower_ids:
                self.to_member(follower_id, FollowedOnline(follower_id, message.member_id, message.name))

    def start(self, message):
        self.services, self.index = message.services, self.position(message)
        settings = self.services.settings
        self.streams = ShardStreams(settings.actor_host,
                                    settings.shard_stream_port + self.index if settings.shard_stream_port else 0)
        self.writer = CallWriter(settings) if self.can_watch else None
        policy = self.services.settings.policy
        self.bridges = BridgeLiveness(policy.bridge_heartbeat_s * policy.bridge_missed_heartbeats)
        if message.recovered:
            # This shard replaces one lost with its node: the calls of its members died there too.
            self.find_live_calls()
        for early, sender in self.early:
            self.handle(early, sender)
        self.early.clear()

    def position(self, start):
        """This shard's index: where its own address is in the shard list. The gateways route
        by that list, so it is the truth even if a start message reached the wrong shard
        (Thespian resolving several remote creations at once under load)."""
        for index, address in enumerate(start.services.shards):
            if address == self.myAddress:
                if index != start.index:
                    log.warning("shard started as %d is %d in the shard list; it serves %d", start.index, index, index)
                return index
        return start.index

    def timer(self, payload):
        if payload == "liveness":
            self.check_bridges()
        elif payload == "stream_write":
            self.retrying = False  # flush() writes, and asks again if the kernel still refuses
        elif payload == "recover":
            self.find_live_calls()
        elif payload[0] == "call":
            _, call_id, incarnation, inner = payload
            session = self.sessions.get(call_id)
            if session is not None and session.host.incarnation == incarnation:
                self.guarded_call(session, session.timer, inner)
        elif payload[0] in ("exit", "missed_mails", "held_call"):
            kind, member_id, incarnation, token = payload
            member = self.members.get(member_id)
            if member is not None and member.incarnation == incarnation:
                if kind == "exit":
                    self.guarded(member, member.exit_timer, token)
                elif kind == "held_call":
                    self.guarded(member, member.held_call_timer, token)
                else:
                    self.guarded(member, lambda _: member.missed_mail_timer(), None)

    # What members use ------------------------------------------------------------------

    def to_member(self, member_id, message):
        """A message for a member, wherever its shard runs; for one of ours, after this message."""
        shards = self.services.shards
        index = shard_index(member_id, len(shards))
        if shards[index] == self.myAddress:
            self.local.append((self.deliver, member_id, message))
        else:
            self.send(shards[index], ToMember(member_id, message))

    def create_call(self, host_id, call_id):
        """A call session for `call_id`, which `host_id` hosts: here (returns its CallRef), or as
        a process of its own whose exit is reported here (returns its address)."""
        if self.services.settings.call_hosting == "process":
            call = self.createActor(CallSessionActor)
            # A list: addresses are not hashable, and a new child's is a local one until Thespian
            # resolves it (equal to the real one, but not the same string).
            self.calls.append((call, host_id))
            return call
        self.sessions[call_id] = CallSession(ShardCallHost(self, host_id, call_id, next(self.incarnations)))
        return CallRef(host_id, call_id)

    def tell_call(self, call, message):
        """A message for a call: after this message if the call is hosted here."""
        if not isinstance(call, CallRef):
            self.send(call, message)  # a call session process
            return
        shards = self.services.shards
        index = shard_index(call.host_id, len(shards))
        if shards[index] == self.myAddress:
            self.local.append((self.deliver_to_call, call.call_id, message))
        else:
            self.send(shards[index], ToCall(call.host_id, call.call_id, message))

    def end_session(self, call_id, incarnation):
        session = self.sessions.get(call_id)
        if session is not None and session.host.incarnation == incarnation:
            del self.sessions[call_id]

    def push(self, connection, frame):
        bridge, conn_id = connection
        self.outbox[bridge].append(([conn_id], frame))

    def tell_status(self, bridge, member_id, status):
        """A member's status for a gateway that watches it, sent with the others of this message."""
        self.statuses[bridge].append(Presence(member_id, status))

    def attached(self, bridge, answer):
        """A page's attach answer (Attached), sent before this message's frames."""
        self.answers[bridge].append(answer)

    def forget_pushes(self, bridge):
        self.outbox.pop(bridge, None)
        self.statuses.pop(bridge, None)
        self.answers.pop(bridge, None)

    def retire(self, member_id):
        """The member has had no page and no call for its exit grace: it goes."""
        self.members.pop(member_id, None)

    # Members ---------------------------------------------------------------------------

    def member(self, member_id):
        """The member, brought online if it was not."""
        if member_id not in self.members:
            self.members[member_id] = Member(member_id, self, self.watchers.get(member_id, ()),
                                             next(self.incarnations))
        return self.members[member_id]

    def guarded(self, member, handler, argument):
        """One member's bug must not stop the others: logged, and that message dropped."""
        try:
            handler(argument)
        except Exception:
            log.exception("shard %s: member %s failed on %r", self.index, member.member_id, argument)

    def guarded_call(self, session, handler, argument):
        """One call's bug must not stop the others: logged, and that message dropped."""
        try:
            handler(argument)
        except Exception:
            log.exception("shard %s: call %s failed on %r", self.index, session.host.call_id, argument)

    def deliver_to_call(self, call_id, message):
        session = self.sessions.get(call_id)
        if session is not None:
            self.guarded_call(session, session.on_message, message)
        # Else the call ended and its session went: what was on its way concerned it only.

    def deliver(self, member_id, message):
        member = self.members.get(member_id)
        if member is not None:
            self.guarded(member, member.on_message, message)
        elif isinstance(message, RingRequest):
            self.to_member(message.caller["id"], CallRefused(message.call_id, message.connection, "offline",
                                                             "this member is offline; try again when their dot is green"))
        elif isinstance(message, FollowedOnline):  # a follower with no page open here: mailed instead
            self.send(self.services.followers, MailFollower(member_id, message.member_id, message.name))
        elif isinstance(message, CallMissed):  # the host went (or its shard restarted): nothing held to throttle by
            self.send(self.services.mailer, SendMail(member_id, *missed_call_mail(
                (message.caller_name,), 0, self.services.settings.policy.ring_timeout_s)))
        # Anything else for a member no longer here concerned a page or call that is gone.

    def route(self, events):
        for event in events:
            if isinstance(event, ToCall):  # a page's frame for a call hosted here, straight from its gateway
                self.call_frame(event)
                continue
            member_id = event.member_id
            if isinstance(event, Watch):
                self.watchers[member_id].add(event.bridge)
                if member_id not in self.members:
                    self.tell_status(event.bridge, member_id, presence.OFFLINE)
                    continue
            elif isinstance(event, Unwatch):
                self.watchers[member_id].discard(event.bridge)
                if not self.watchers[member_id]:
                    del self.watchers[member_id]
            elif isinstance(event, Open):
                self.member(member_id)
            member = self.members.get(member_id)
            if member is not None:  # else a Close or Frame of a member gone already: nothing holds it
                self.guarded(member, member.on_event, event)

    def call_frame(self, event):
        if event.call_id in self.sessions:
            self.deliver_to_call(event.call_id, event.message)
            return
        host = self.members.get(event.host_id)
        if host is not None and host.calls.get(event.call_id) is not None:
            self.guarded(host, host.on_message, event)  # a call session process: its host forwards
            return
        frame = event.message.frame
        self.push(event.message.connection, frames.error(frame.get("id"), "no_such_call",
                                                         "you take part in no call with this id"))

    def call_exited(self, address):
        """A call session exited: over (its member let it go), or died (its member restarts it)."""
        host_id = next((host for call, host in self.calls if call == address), None)
        self.calls = [(call, host) for call, host in self.calls if call != address]
        member = self.members.get(host_id)
        if member is not None:
            self.guarded(member, member.restart_call, address)

    def save_call(self, store, save):
        """A call's change to store, handed over with the others this message made (flush)."""
        self.saves.append((store, save))

    def calls_stored(self):
        """Our writer stored some calls' changes: each call carries out what waited for it."""
        for saved in self.writer.take():
            self.deliver_to_call(saved.call_id, saved)

    def flush_saves(self):
        """This message's saves to our writer, or in one message to the call store."""
        if not self.saves:
            return
        saves = [save for _, save in self.saves]
        if self.writer is not None:
            self.writer.save(saves)
        else:
            self.send(self.saves[0][0], saves[0] if len(saves) == 1 else SaveCalls(saves))
        self.saves = []

    def flush(self):
        """What this message made for the gateways: over each one's stream, or by Thespian to
        those with none (a gateway reconnecting, Thespian clients, actor tests)."""
        self.flush_saves()
        for bridge in {**self.answers, **self.outbox, **self.statuses}:
            answers, items, statuses = self.answers.get(bridge, ()), self.outbox.get(bridge, ()), self.statuses.get(bridge, ())
            if self.streams is not None and self.streams.send(bridge, [*answers, *items, *statuses]):
                continue
            for answer in answers:
                self.send(bridge.address, answer)
            if items:
                self.send(bridge.address, Push(items))
            if statuses:
                self.send(bridge.address, statuses[0] if len(statuses) == 1 else Presences(statuses))
        self.answers.clear()
        self.outbox.clear()
        self.statuses.clear()
        if self.streams is not None:
            for stream, count in self.acks:
                self.streams.ack(stream, count)
            self.acks.clear()
            self.write_streams()

    def write_streams(self):
        if self.streams.flush() and not self.retrying:
            self.retrying = True
            self.wakeupAfter(RETRY_WRITE_S, payload="stream_write")
        for bridge in self.streams.stalled:
            self.lose_bridge(bridge)
        self.streams.stalled.clear()

    # Gateways --------------------------------------------------------------------------

    def adopted(self, message):
        """The leader was lost and a new directory adopted this shard, or an adapter died and the
        directory started a new one. Our members and calls share this services object: they use
        the new adapters from now on, and each call asks again what the old ones had not
        answered. The gateways we hear from are told where the directory is now (they ask it
        for the shards each heartbeat; the same directory changes nothing for them)."""
        for name in ("store", "mailer", "payments", "followers", "shards"):
            setattr(self.services, name, getattr(message.services, name))
        log.warning("shard %d: new adapters from the member directory (a new leader, or an adapter restarted)",
                    self.index)
        for session in list(self.sessions.values()):
            self.guarded_call(session, session.on_message, message)
        for call, _ in self.calls:  # call session processes hold their own copy
            self.send(call, message)
        for bridge in self.bridges.last_seen_s if self.bridges else ():
            self.send(bridge.address, DirectoryMoved(message.directory, message.token))

    def heartbeat(self, bridge):
        if self.bridges is None:
            return  # not started yet; the next heartbeat counts
        if self.bridges.heard(bridge, time.time()):
            self.send(bridge.address, Resync(self.index))  # we gave it up too soon: attach again
        if not self.ticking:
            self.ticking = True
            self.wakeupAfter(self.services.settings.policy.bridge_heartbeat_s, payload="liveness")

    def check_bridges(self):
        self.ticking = False
        for bridge in self.bridges.silent(time.time()):
            log.warning("shard %d: gateway bridge %s fell silent; closing its connections", self.index, bridge.key)
            self.drop_bridge(bridge)
        if self.bridges.watching:
            self.ticking = True
            self.wakeupAfter(self.services.settings.policy.bridge_heartbeat_s, payload="liveness")

    def lose_bridge(self, bridge):
        """A gateway whose stream stalled: given up like a silent one (its pages closed here, and
        nothing more sent to it) until its next heartbeat, which tells it to attach again."""
        log.warning("shard %d: gateway bridge %s reads nothing; closing its connections", self.index, bridge.key)
        self.bridges.give_up(bridge)
        self.drop_bridge(bridge)

    def drop_bridge(self, bridge):
        for member_id in list(self.watchers):
            self.watchers[member_id].discard(bridge)
            if not self.watchers[member_id]:
                del self.watchers[member_id]
        for member in list(self.members.values()):
            self.guarded(member, member.bridge_lost, bridge)
        self.deliver_local()

    # Streams ---------------------------------------------------------------------------

    def stream_where(self, message, sender):
        """A gateway asks where this shard's stream is: listening from now on."""
        token = secrets.token_hex(16)
        self.streams.invite(message.bridge, token)
        self.send(sender, StreamAt(message.req_id, self.streams.listen(), token))

    def streams_ready(self, filenos):
        """Records from the gateways' streams, each handled like one event of a Batch (the
        messages it makes for members and calls of this shard before the next), then one
        ACK per stream for its gateway."""
        for stream, events in self.streams.ready(filenos):
            for event in events:
                self.stream_event(event)
                self.deliver_local()
            self.acks.append((stream, len(events)))

    def stream_event(self, event):
        if isinstance(event, Heartbeat):
            self.heartbeat(event.bridge)
        elif isinstance(event, ProfileChanged):
            self.deliver(event.member_id, event)
        else:
            self.route([event])

    # Recovery --------------------------------------------------------------------------

    def find_live_calls(self):
        self.send(self.createActor(CallFinder), FindLiveCalls(self.index, len(self.services.shards),
                                                              self.services.settings))

    def recover(self, calls):
        """Bring back the members of live calls (even with no page open: a call's deadlines and
        money must not wait for a page); each restores its calls from the store."""
        count = len(self.services.shards)
        mine = defaultdict(list)
        for call in calls:
            if shard_index(call["host_id"], count) == self.index:
                mine[call["host_id"]].append((call["_id"], "host", call["caller_id"]))
            if shard_index(call["caller_id"], count) == self.index:
                mine[call["caller_id"]].append((call["_id"], "caller", call["host_id"]))
        log.info("shard %d recovers %d live calls of %d members", self.index, len(calls), len(mine))
        for member_id, member_calls in mine.items():
            member = self.member(member_id)
            self.guarded(member, member.on_message, RecoverCalls(member_calls))


class ShardCallHost:
    """What a call session hosted in a shard acts through (call_session's host face)."""

    def __init__(self, shard, host_id, call_id, incarnation):
        self.shard, self.host_id, self.call_id = shard, host_id, call_id
        self.incarnation = incarnation  # tells this session's timers from a former one's (same call)

    @property
    def call_ref(self):
        return CallRef(self.host_id, self.call_id)

    @property
    def pids(self):
        return os.getpid(), os.getpid()

    def send(self, address, message):
        if isinstance(message, SaveCall):  # stored by the shard's own writer (or with its others)
            self.shard.save_call(address, message)
        else:
            self.shard.flush_saves()  # what goes to the call store keeps its order
            self.shard.send(address, message)

    def to_member(self, member_id, message):
        self.shard.to_member(member_id, message)

    def push(self, connection, frame):
        self.shard.push(connection, frame)

    def lease(self, bridge, relay_lease):
        self.shard.outbox[bridge].append(relay_lease)

    def wake_after(self, delay_s, payload):
        self.shard.wakeupAfter(delay_s, payload=("call", self.call_id, self.incarnation, payload))

    def exit(self):
        self.shard.end_session(self.call_id, self.incarnation)
