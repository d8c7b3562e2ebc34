"""Where member actors are found: a directory of shards, each shard supervising the member
actors of the member ids that hash to it.

The directory (one per convention, by global name) creates the shards; each shard creates
and retires its members, so creation is spread over several processes instead of one.
A shard also keeps who watches each of its members, online or not, so a viewer of an
offline member is told the moment that member opens a page.

With several actor nodes (docs/operating.md) the directory runs on the convention leader and
places the shards over the nodes; a shard lost with its node starts again on a survivor and
brings its members' live calls back from the store. Shards also close the connections of a
gateway whose heartbeats stopped.
"""
import logging
import time
from collections import defaultdict

from thespian.actors import (Actor, ActorExitRequest, ActorSystemConventionUpdate, ChildActorExited,
                             WakeupMessage)

from actors import convention, placement, presence
from actors.liveness import BridgeLiveness
from actors.recovery import CallFinder
from actors.shards import shard_index
from actors.adapters import CallStore, Configured, Mailer
from actors.member import MemberActor
from actors.payouts import PAYOUTS_NAME, PayoutScheduler, StartPayouts
from actors.refunds import REFUNDS_NAME, RefundsActor, StartRefunds
from actors.messages import (Batch, CallRefused, Close, Configure, Frame, GetShards, MemberIdle, MemberStart,
                             Open, Ping, Pong, Presence, RingRequest, Services, Shards, ShardStart, ToCall,
                             Unwatch, Watch, WhoAmI, YouAre)
from actors.messages import (BridgeLost, BridgeRef, FindLiveCalls, Heartbeat, LiveCalls, RecoverCalls, Resync,
                             ShardsMoved, ToMember)

log = logging.getLogger(__name__)

DIRECTORY_NAME = "interkanect-directory"
# A recovered shard whose store query failed asks again after this (a replica set election
# takes seconds); the calls wait, their deadlines are data.
RECOVERY_RETRY_S = 2


class Directory(Actor):
    """Runs on the convention leader. Places the shards over the member-hosting nodes, starts
    them again elsewhere when their node is lost, and tells everyone the new addresses."""

    def __init__(self):
        super().__init__()
        self.settings = None
        self.services = None
        self.adapters = None          # (store, mailer, payments)
        self.shards = []              # index → address
        self.nodes = []               # member-hosting nodes present, in preference order (leader first)
        self.placement = {}           # shard index → node name
        self.awaiting = []            # who sent Configure before the shards were placed
        self.orphans = {}             # node name → shards it held when declared lost
        self.stopping = False
        self.bridges = {}             # BridgeRef → time it last asked for the shards (each heartbeat)

    def receiveMessage(self, message, sender):
        if isinstance(message, Configure):
            if self.settings is None:
                self.configure(message.settings)
            if self.shards:
                self.send(sender, self.shard_list(0))
            else:
                self.awaiting.append(sender)
        elif isinstance(message, GetShards):
            self.bridges[BridgeRef.of(sender)] = time.time()
            self.send(sender, self.shard_list(message.req_id))
        elif isinstance(message, Ping):
            self.send(sender, Pong(message.req_id, {"shards": len(self.shards), "nodes": list(self.nodes),
                                                    "placement": {str(i): n for i, n in self.placement.items()}}))
        elif isinstance(message, WhoAmI):
            self.send(sender, YouAre(message.req_id, sender))
        elif isinstance(message, ActorSystemConventionUpdate):
            self.convention_changed(message)
        elif isinstance(message, WakeupMessage) and message.payload == "place" and not self.shards:
            self.place(waited=True)
        elif isinstance(message, ActorExitRequest):
            self.stopping = True  # the node shuts down: its shards exit too; none start again
        elif isinstance(message, ChildActorExited) and message.childAddress in self.shards and not self.stopping:
            # A shard's process died. On a node still present it starts again there; a lost
            # node's shards were moved already when the convention reported it.
            index = self.shards.index(message.childAddress)
            node = self.placement[index]
            self.restart_shards({index: node} if node in self.nodes else
                                placement.rehome({index: node}, node, self.nodes), recovered=node not in self.nodes)

    def shard_list(self, req_id):
        return Shards(req_id, list(self.shards), self.settings.policy.bridge_heartbeat_s if self.settings else 0)

    def configure(self, settings):
        self.settings = settings
        # By name, so the PayPal SDK is imported in the payments actor's process only: imported
        # here, every shard and member forked after it would carry it (README, Performance).
        store, mailer = self.createActor(CallStore), self.createActor(Mailer)
        payments = self.createActor("actors.payments.PaymentsActor")
        self.adapters = (store, mailer, payments)
        for adapter in (store, mailer, payments):
            self.send(adapter, Configured(settings))
        self.send(self.createActor(PayoutScheduler, globalName=PAYOUTS_NAME), StartPayouts(settings, mailer))
        self.send(self.createActor(RefundsActor, globalName=REFUNDS_NAME), StartRefunds(settings, mailer))
        if settings.hosts_members:
            self.nodes.append(convention.node_name(settings))
        # The leader tells us of every node already in the convention, then of each change.
        self.notifyOnSystemRegistrationChanges(True)
        self.wakeupAfter(settings.policy.node_wait_s, payload="place")
        self.place()

    def place(self, waited=False):
        """Spread the shards once `member_nodes` nodes are in (or the wait is over)."""
        if len(self.nodes) < self.settings.member_nodes and not waited:
            return
        if not self.nodes:
            log.error("no actor node hosts members yet; shards are placed when one joins")
            return
        self.placement = placement.spread(self.settings.member_shards, self.nodes)
        log.info("member shards placed: %s", self.placement)
        self.shards = [self.create_shard(node) for _, node in sorted(self.placement.items())]
        self.services = Services(self.settings, list(self.shards), *self.adapters)
        for index, shard in enumerate(self.shards):
            # recovered: at a start no call has an actor yet, so any call the store has as live
            # (the whole system was down) carries on, or ends by its deadlines, from the store.
            self.send(shard, ShardStart(index, self.services, recovered=True))
        for waiting in self.awaiting:
            self.send(waiting, self.shard_list(0))
        self.awaiting.clear()

    def create_shard(self, node):
        return self.createActor(MemberShard, targetActorRequirements={convention.NODE: node})

    def convention_changed(self, update):
        capabilities = update.remoteCapabilities or {}
        node = capabilities.get(convention.NODE)
        if not node or not capabilities.get(convention.MEMBERS):
            return
        if update.remoteAdded:
            log.info("actor node %s joined", node)
            for stale in self.orphans.pop(node, []):
                # It was declared lost but lived on (a network split): its old shards were
                # replaced elsewhere, so they must go, with their members.
                self.send(stale, ActorExitRequest())
            if node not in self.nodes:
                self.nodes.append(node)
            if not self.shards:
                self.place()
            else:  # shards whose node was lost with no survivor to take them find a home here
                for lost in {n for n in self.placement.values() if n not in self.nodes}:
                    self.restart_shards(placement.rehome(self.placement, lost, self.nodes), recovered=True)
        elif node in self.nodes and not self.stopping:
            log.warning("actor node %s lost; its member shards start elsewhere", node)
            self.nodes.remove(node)
            self.orphans[node] = [self.shards[i] for i, n in self.placement.items() if n == node]
            if self.shards:
                self.restart_shards(placement.rehome(self.placement, node, self.nodes), recovered=True)

    def restart_shards(self, moves, recovered):
        """Start the shards `moves` names ({index: node}) and tell every shard (and through them
        every member) the addresses now; gateways learn them when they next ask (each heartbeat)."""
        if not moves:
            return
        for index, node in moves.items():
            self.placement[index] = node
            self.shards[index] = self.create_shard(node)
        self.services.shards = list(self.shards)
        for index in moves:
            self.send(self.shards[index], ShardStart(index, self.services, recovered))
        log.info("member shards %s now on %s", sorted(moves), sorted(set(moves.values())))
        for shard in self.shards:
            self.send(shard, ShardsMoved(list(self.shards)))
        # Gateways would learn at their next heartbeat; told now, their pages' connections are
        # attached to the new shards before the recovered calls speak to them.
        recent_s = time.time() - 10 * self.settings.policy.bridge_heartbeat_s
        self.bridges = {bridge: seen_s for bridge, seen_s in self.bridges.items() if seen_s > recent_s}
        for bridge in self.bridges:
            self.send(bridge.address, self.shard_list(0))


class MemberShard(Actor):
    # Placed only on member-hosting nodes, on the very node the directory asks for.
    actorSystemCapabilityCheck = staticmethod(convention.hosts_shard)

    def __init__(self):
        super().__init__()
        self.services = None
        self.index = None
        self.members = {}                 # member_id → actor address
        self.opens = defaultdict(int)     # member_id → Open events forwarded to its actor
        self.watchers = defaultdict(set)  # member_id → bridge addresses
        self.bridges = None               # BridgeLiveness: which gateways still send heartbeats
        self.ticking = False
        self.early = []                   # batches that came before ShardStart

    def receiveMessage(self, message, sender):
        if isinstance(message, ShardStart):
            self.start(message)
        elif isinstance(message, Heartbeat):
            self.heartbeat(message.bridge)
        elif isinstance(message, WakeupMessage) and message.payload == "liveness":
            self.check_bridges()
        elif isinstance(message, ShardsMoved):
            self.services.shards = message.addresses
            for member in self.members.values():
                self.send(member, message)
        elif isinstance(message, ToMember):
            if message.member_id in self.members:
                self.send(self.members[message.member_id], message.message)
        elif isinstance(message, LiveCalls) and message.calls is None:
            self.wakeupAfter(RECOVERY_RETRY_S, payload="recover")  # the store did not answer: ask again
        elif isinstance(message, LiveCalls):
            self.recover(message.calls)
        elif isinstance(message, WakeupMessage) and message.payload == "recover":
            self.find_live_calls()
        elif isinstance(message, Batch) and self.services is None:
            self.early.append(message)  # a gateway told of this new shard before its start arrived
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

    def start(self, message):
        self.services, self.index = message.services, message.index
        policy = self.services.settings.policy
        self.bridges = BridgeLiveness(policy.bridge_heartbeat_s * policy.bridge_missed_heartbeats)
        if message.recovered:
            # This shard replaces one lost with its node: the calls of its members died there too.
            self.find_live_calls()
        for batch in self.early:
            self.route(batch.events)
        self.early.clear()

    def find_live_calls(self):
        self.send(self.createActor(CallFinder), FindLiveCalls(self.index, len(self.services.shards),
                                                              self.services.settings))

    def recover(self, calls):
        """Bring back the member actors of live calls (even with no page open: a call's
        deadlines and money must not wait for a page); each restores its calls from the store."""
        count = len(self.services.shards)
        mine = defaultdict(list)
        for call in calls:
            if shard_index(call["host_id"], count) == self.index:
                mine[call["host_id"]].append((call["_id"], "host", call["caller_id"]))
            if shard_index(call["caller_id"], count) == self.index:
                mine[call["caller_id"]].append((call["_id"], "caller", call["host_id"]))
        log.info("shard %d recovers %d live calls of %d members", self.index, len(calls), len(mine))
        for member_id, member_calls in mine.items():
            self.send(self.member(member_id), RecoverCalls(member_calls))

    def member(self, member_id):
        """The member's actor, started if there is none."""
        if member_id not in self.members:
            self.members[member_id] = self.createActor(MemberActor)
            self.send(self.members[member_id],
                      MemberStart(member_id, self.services, set(self.watchers.get(member_id, ()))))
        return self.members[member_id]

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
            for member_id in list(self.watchers):
                self.watchers[member_id].discard(bridge)
                if not self.watchers[member_id]:
                    del self.watchers[member_id]
            for member in self.members.values():
                self.send(member, BridgeLost(bridge))
        if self.bridges.watching:
            self.ticking = True
            self.wakeupAfter(self.services.settings.policy.bridge_heartbeat_s, payload="liveness")

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
                self.member(member_id)
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
