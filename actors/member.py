"""The member actor: one per online member, holding their connections, status and watchers,
and the calls they take part in.

A thin shell over `presence.MemberPresence`: it turns messages and timers into rule calls
and carries out the effects the rules return. As a host it rings and creates the call
session actors (its children, restarted from the store if one dies); as either side it
forwards its pages' call frames to the right session.
"""
import secrets
from collections import defaultdict

from thespian.actors import Actor, ChildActorExited, WakeupMessage

from actors import presence
from actors.call_session import CallSessionActor
from actors.shards import shard_index
from actors.messages import (Attached, Batch, CallActive, CallFrame, CallJoined, CallOver, CallRefused, CallRestore,
                             CallStart, Close, ConnectionGone, Frame, MemberIdle, MemberStart, Open, Presence, Push,
                             RingPages, RingRequest, ToCall, Unwatch, Watch)
from actors.messages import BridgeLost, MemberBack, ProfileChanged, RecoverCalls, ShardsMoved
from actors.terms import FREE


class MemberActor(Actor):
    def __init__(self):
        super().__init__()
        self.rules = None
        self.shard = None
        self.services = None
        self.profile = {}
        self.calls = {}            # call_id → call session address (None until it is known)
        self.placed = {}           # call_id → (connection, request id) of a call this member placed
        self.hosting = {}          # call_id → caller member address, for calls this member hosts
        self.outbox = defaultdict(list)  # BridgeRef → [(conn_ids, frame)]
        self.active = set()        # call_ids counted as in progress (a restored session may say so again)
        self.early_frames = defaultdict(list)  # call_id → CallFrames that came before its session's address

    def receiveMessage(self, message, sender):
        if isinstance(message, MemberStart):
            self.shard = sender
            self.services = message.services
            self.rules = presence.MemberPresence(message.member_id, self.services.settings.policy.member_exit_grace_s,
                                                 watchers=set(message.watchers))
        elif isinstance(message, Batch):
            for event in message.events:
                self.perform(self.on_event(event))
        elif isinstance(message, WakeupMessage) and message.payload[0] == "exit":
            self.perform(self.rules.exit_timer(message.payload[1]))
        else:
            self.on_call_message(message, sender)
        self.flush()

    # Pages and watchers ----------------------------------------------------------------

    def on_event(self, event):
        if isinstance(event, Open):
            self.profile = event.profile
            return self.rules.open((event.bridge, event.conn_id))
        if isinstance(event, Close):
            connection = (event.bridge, event.conn_id)
            for call in self.calls.values():
                if call is not None:
                    self.send(call, ConnectionGone(self.rules.member_id, connection))
            return self.rules.close(connection)
        if isinstance(event, Watch):
            return self.rules.watch(event.bridge)
        if isinstance(event, Unwatch):
            return self.rules.unwatch(event.bridge)
        if isinstance(event, Frame):
            return self.on_frame(event)
        return []

    def on_frame(self, event):
        frame, connection = event.frame, (event.bridge, event.conn_id)
        if frame["type"] == "ping":
            self.push(connection, {"type": "pong", "id": frame["id"]})
        elif frame["type"] == "call":
            return self.place_call(connection, frame)
        elif self.calls.get(frame["call_id"]) is not None:
            self.send(self.calls[frame["call_id"]], CallFrame(self.rules.member_id, connection, frame))
        elif frame["call_id"] in self.calls:
            # Its session is on its way (placed, or restored after a node was lost): CallJoined sends these.
            self.early_frames[frame["call_id"]].append(CallFrame(self.rules.member_id, connection, frame))
        else:
            self.error(connection, frame["id"], "no_such_call", "you take part in no call with this id")
        return []

    # Calls -----------------------------------------------------------------------------

    def place_call(self, connection, frame):
        host_id = frame["member_id"]
        if host_id == self.rules.member_id:
            self.error(connection, frame["id"], "self_call", "you cannot call yourself")
            return []
        call_id = secrets.token_hex(12)
        self.calls[call_id] = None
        self.placed[call_id] = (connection, frame["id"])
        shards = self.services.shards
        caller = {"id": self.rules.member_id, "name": self.profile.get("name", "")}
        self.send(shards[shard_index(host_id, len(shards))],
                  RingRequest(call_id, host_id, caller, self.myAddress, connection))
        return self.rules.hold_call()

    def on_call_message(self, message, sender):
        if isinstance(message, RingRequest):
            self.ring(message)
        elif isinstance(message, CallRefused):
            self.calls.pop(message.call_id, None)
            self.early_frames.pop(message.call_id, None)
            connection, request_id = self.placed.pop(message.call_id, (message.connection, None))
            self.error(connection, request_id, message.code, message.message)
            self.perform(self.rules.release_call())
        elif isinstance(message, CallJoined):
            if message.call_id not in self.calls:  # a restored call this actor did not know
                self.perform(self.rules.hold_call())
            self.calls[message.call_id] = message.call
            for early in self.early_frames.pop(message.call_id, []):
                self.send(message.call, early)
            self.placed.pop(message.call_id, None)
        elif isinstance(message, RingPages):
            for connection in self.rules.connections:
                self.push(connection, message.frame)
        elif isinstance(message, CallActive):
            self.call_active(message.call_id, message.active)
        elif isinstance(message, CallOver):
            self.early_frames.pop(message.call_id, None)
            if self.calls.pop(message.call_id, "gone") != "gone":
                self.hosting.pop(message.call_id, None)
                self.perform(self.rules.release_call())
        elif isinstance(message, ToCall):
            if self.calls.get(message.call_id) is not None:
                self.send(self.calls[message.call_id], message.message)
        elif isinstance(message, ChildActorExited):
            self.restart_call(message.childAddress)
        elif isinstance(message, RecoverCalls):
            self.recover(message.calls)
        elif isinstance(message, BridgeLost):
            self.bridge_lost(message.bridge)
        elif isinstance(message, ProfileChanged):
            # Tier, payout email or name changed while pages are open: the next ring uses it
            # (a call already started keeps the terms' limits it rang with).
            self.profile = message.profile
        elif isinstance(message, ShardsMoved):
            self.services.shards = message.addresses
            for call_id, call in self.calls.items():
                if call is not None and call_id in self.hosting:
                    self.send(call, message)

    def ring(self, request):
        refusal = None
        if self.rules.status == presence.OFFLINE:
            refusal = ("offline", "this member is offline; try again when their dot is green")
        elif self.profile.get("tier") == FREE and self.hosting:
            refusal = ("busy", "this member is in a call; free hosts take one call at a time")
        if refusal:
            self.send(request.caller_member, CallRefused(request.call_id, request.connection, *refusal))
            return
        call = self.createActor(CallSessionActor)
        host = {"id": self.rules.member_id, "name": self.profile.get("name", ""),
                "tier": self.profile.get("tier", FREE), "can_charge": bool(self.profile.get("can_charge"))}
        self.send(call, CallStart(request.call_id, host, request.caller, self.myAddress, request.caller_member,
                                  request.connection, self.services))
        self.calls[request.call_id] = call
        self.hosting[request.call_id] = request.caller_member
        self.perform(self.rules.hold_call())

    def restart_call(self, address):
        """A call session died before its call was over: a new one carries on from the store."""
        for call_id, call in self.calls.items():
            if call == address and call_id in self.hosting:
                replacement = self.createActor(CallSessionActor)
                self.calls[call_id] = replacement
                self.send(replacement, CallRestore(call_id, self.myAddress, self.hosting[call_id], self.services))
                return

    def call_active(self, call_id, active):
        """Count each call once for the red dot: a restored session says so again."""
        if active and call_id not in self.active:
            self.active.add(call_id)
            self.perform(self.rules.call_started())
        elif not active and call_id in self.active:
            self.active.discard(call_id)
            self.perform(self.rules.call_ended())

    def recover(self, calls):
        """Calls whose actors died with their node: a host restores the session from the store;
        a caller tells the (restored or surviving) session where it is now."""
        for call_id, role, other_id in calls:
            if self.calls.get(call_id) is not None:
                continue  # known already: a surviving or restored session reached us first
            if call_id not in self.calls:
                self.perform(self.rules.hold_call())
            if role == "host":
                self.hosting[call_id] = None  # the caller's member announces itself (MemberBack)
                self.calls[call_id] = self.createActor(CallSessionActor)
                self.send(self.calls[call_id], CallRestore(call_id, self.myAddress, None, self.services))
            else:
                self.calls[call_id] = None
                shards = self.services.shards
                self.send(shards[shard_index(other_id, len(shards))],
                          ToCall(other_id, call_id, MemberBack(call_id, self.rules.member_id, self.myAddress)))

    def bridge_lost(self, bridge):
        """A gateway fell silent: its pages are gone, for presence and for calls (their grace starts)."""
        for connection in [c for c in self.rules.connections if c[0] == bridge]:
            for call in self.calls.values():
                if call is not None:
                    self.send(call, ConnectionGone(self.rules.member_id, connection))
        self.outbox.pop(bridge, None)
        self.perform(self.rules.close_bridge(bridge))

    # Effects ---------------------------------------------------------------------------

    def push(self, connection, frame):
        bridge, conn_id = connection
        self.outbox[bridge].append(([conn_id], frame))

    def error(self, connection, request_id, code, message):
        self.push(connection, {"type": "error", "id": request_id, "code": code, "message": message})

    def perform(self, effects):
        rules = self.rules
        for effect in effects:
            if isinstance(effect, presence.Welcome):
                bridge, conn_id = effect.connection
                self.send(bridge.address, Attached(rules.member_id, conn_id, self.myAddress, effect.status))
            elif isinstance(effect, presence.Broadcast):
                for watcher in rules.watchers:
                    self.send(watcher.address, Presence(rules.member_id, effect.status))
            elif isinstance(effect, presence.Tell):
                self.send(effect.watcher.address, Presence(rules.member_id, effect.status))
            elif isinstance(effect, presence.StartExitTimer):
                self.wakeupAfter(effect.delay_s, payload=("exit", effect.token))
            elif isinstance(effect, presence.RequestExit):
                self.send(self.shard, MemberIdle(rules.member_id, effect.opens_seen))

    def flush(self):
        for bridge, items in self.outbox.items():
            self.send(bridge.address, Push(items))
        self.outbox.clear()
