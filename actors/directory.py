"""Where member actors are found: a directory of shards, each shard supervising the member
actors of the member ids that hash to it.

The directory (one per convention, by global name) creates the shards; each shard creates
and retires its members, so creation is spread over several processes instead of one.
A shard also keeps who watches each of its members, online or not, so a viewer of an
offline member is told the moment that member opens a page.
"""
from collections import defaultdict

from thespian.actors import Actor, ActorExitRequest, ChildActorExited

from actors import presence
from actors.adapters import CallStore, Configured, Mailer
from actors.member import MemberActor
from actors.payouts import PAYOUTS_NAME, PayoutScheduler, StartPayouts
from actors.messages import (Batch, CallRefused, Close, Configure, Frame, GetShards, MemberIdle, MemberStart,
                             Open, Ping, Pong, Presence, RingRequest, Services, Shards, ShardStart, ToCall,
                             Unwatch, Watch, WhoAmI, YouAre)

DIRECTORY_NAME = "interkanect-directory"


class Directory(Actor):
    def __init__(self):
        super().__init__()
        self.services = None
        self.shards = []

    def receiveMessage(self, message, sender):
        if isinstance(message, Configure):
            if not self.shards:
                self.configure(message.settings)
            self.send(sender, Shards(0, list(self.shards)))
        elif isinstance(message, GetShards):
            self.send(sender, Shards(message.req_id, list(self.shards)))
        elif isinstance(message, Ping):
            self.send(sender, Pong(message.req_id, {"shards": len(self.shards)}))
        elif isinstance(message, WhoAmI):
            self.send(sender, YouAre(message.req_id, sender))
        elif isinstance(message, ChildActorExited) and message.childAddress in self.shards:
            # A shard died (its process was killed): start a fresh one in its place.
            index = self.shards.index(message.childAddress)
            self.shards[index] = self.start_shard(index)

    def configure(self, settings):
        from actors.payments import PaymentsActor  # the PayPal SDK loads only where it is used
        store, mailer, payments = self.createActor(CallStore), self.createActor(Mailer), self.createActor(PaymentsActor)
        for adapter in (store, mailer, payments):
            self.send(adapter, Configured(settings))
        self.send(self.createActor(PayoutScheduler, globalName=PAYOUTS_NAME), StartPayouts(settings, mailer))
        self.shards = [self.createActor(MemberShard) for _ in range(settings.member_shards)]
        self.services = Services(settings, list(self.shards), store, mailer, payments)
        for index, shard in enumerate(self.shards):
            self.send(shard, ShardStart(index, self.services))

    def start_shard(self, index):
        # Its siblings and their members keep the old address until issue 6's failover work.
        shard = self.createActor(MemberShard)
        self.send(shard, ShardStart(index, self.services))
        return shard


class MemberShard(Actor):
    def __init__(self):
        super().__init__()
        self.services = None
        self.members = {}                 # member_id → actor address
        self.opens = defaultdict(int)     # member_id → Open events forwarded to its actor
        self.watchers = defaultdict(set)  # member_id → bridge addresses

    def receiveMessage(self, message, sender):
        if isinstance(message, ShardStart):
            self.services = message.services
        elif isinstance(message, Batch):
            self.route(message.events)
        elif isinstance(message, RingRequest):
            self.ring(message)
        elif isinstance(message, ToCall):
            if message.host_id in self.members:
                self.send(self.members[message.host_id], message)
        elif isinstance(message, MemberIdle):
            self.retire(message)
        elif isinstance(message, ChildActorExited):
            self.lost(message.childAddress)

    def route(self, events):
        forward = defaultdict(list)
        for event in events:
            member_id = event.member_id
            if isinstance(event, Watch):
                self.watchers[member_id].add(event.bridge)
                if member_id not in self.members:
                    self.send(event.bridge.address, Presence(member_id, presence.OFFLINE))
                    continue
            elif isinstance(event, Unwatch):
                self.watchers[member_id].discard(event.bridge)
                if not self.watchers[member_id]:
                    del self.watchers[member_id]
            elif isinstance(event, Open):
                self.opens[member_id] += 1
                if member_id not in self.members:
                    self.members[member_id] = self.createActor(MemberActor)
                    self.send(self.members[member_id],
                              MemberStart(member_id, self.services, set(self.watchers.get(member_id, ()))))
            if member_id in self.members:
                forward[member_id].append(event)
            elif isinstance(event, (Close, Frame)):
                continue  # the member is gone already; nothing holds that connection
        for member_id, member_events in forward.items():
            self.send(self.members[member_id], Batch(member_events))

    def ring(self, request):
        host = self.members.get(request.host_id)
        if host is None:
            self.send(request.caller_member, CallRefused(request.call_id, request.connection, "offline",
                                                         "this member is offline; try again when their dot is green"))
        else:
            self.send(host, request)

    def retire(self, idle):
        """Let an idle member go, unless a page opened since it decided to ask."""
        if self.opens[idle.member_id] != idle.opens_seen or idle.member_id not in self.members:
            return
        self.send(self.members.pop(idle.member_id), ActorExitRequest())
        del self.opens[idle.member_id]

    def lost(self, address):
        for member_id, member in list(self.members.items()):
            if member == address:
                # The member's process died: its pages lost their actor, so it reads as offline.
                del self.members[member_id]
                for bridge in self.watchers.get(member_id, ()):
                    self.send(bridge.address, Presence(member_id, presence.OFFLINE))
