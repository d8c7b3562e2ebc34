"""The member actor: one per online member, holding their connections, status and watchers.

A thin shell over `presence.MemberPresence`: it turns messages and timers into rule calls
and carries out the effects the rules return.
"""
from collections import defaultdict

from thespian.actors import Actor, WakeupMessage

from actors import presence
from actors.messages import (Attached, Batch, Close, Frame, MemberIdle, MemberStart, Open,
                             Presence, Push, Unwatch, Watch)


class MemberActor(Actor):
    def __init__(self):
        super().__init__()
        self.rules = None
        self.shard = None
        self.outbox = defaultdict(list)  # BridgeRef → [(conn_ids, frame)]

    def receiveMessage(self, message, sender):
        if isinstance(message, MemberStart):
            self.shard = sender
            self.rules = presence.MemberPresence(message.member_id, message.policy.member_exit_grace_s,
                                                 watchers=set(message.watchers))
        elif isinstance(message, Batch):
            for event in message.events:
                self.perform(self.on_event(event))
        elif isinstance(message, WakeupMessage) and message.payload[0] == "exit":
            self.perform(self.rules.exit_timer(message.payload[1]))
        self.flush()

    def on_event(self, event):
        if isinstance(event, Open):
            return self.rules.open((event.bridge, event.conn_id))
        if isinstance(event, Close):
            return self.rules.close((event.bridge, event.conn_id))
        if isinstance(event, Watch):
            return self.rules.watch(event.bridge)
        if isinstance(event, Unwatch):
            return self.rules.unwatch(event.bridge)
        if isinstance(event, Frame):
            return self.on_frame(event)
        return []

    def on_frame(self, event):
        frame = event.frame
        if frame["type"] == "ping":
            self.push(event.bridge, [event.conn_id], {"type": "pong", "id": frame["id"]})
        return []

    def push(self, bridge, conn_ids, frame):
        self.outbox[bridge].append((conn_ids, frame))

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
