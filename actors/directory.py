"""Where members are found: a directory of member shards, each hosting the members whose ids
hash to it (actors/member_shard.py).

The directory (one per convention, by global name) starts the adapters and places the shards
over the member-hosting nodes (docs/operating.md): it runs on the convention leader; a shard
lost with its node starts again on a survivor and brings its members' live calls back from
the store; everyone is told the shards' new addresses.
"""
import logging
import pickle
import time

from thespian.system.addressManager import CannotPickleAddress
from thespian.actors import (Actor, ActorExitRequest, ActorSystemConventionUpdate, ChildActorExited, DeadEnvelope,
                             WakeupMessage)

from actors import convention, leadership
from rules import placement
from actors.adapters import CallStore, Configured, Mailer
from actors.followers import FollowersAdapter
from actors.member_shard import MemberShard
from actors.payouts import PAYOUTS_NAME, PayoutScheduler, StartPayouts
from actors.refunds import REFUNDS_NAME, RefundsActor, StartRefunds
from actors.messages import (Adopted, BridgeRef, Configure, GetShards, MailerMoved, Ping, Pong, SavePlacement, Services,
                             Shards, ShardStart, ShardsMoved, WhoAmI, YouAre)

log = logging.getLogger(__name__)

DIRECTORY_NAME = "interkanect-directory"
# The adapters every shard, member and call reaches, in Services' order. The payments adapter
# by name, so PayPal's SDK is imported in its process only: imported here, every shard and
# member forked after it would carry it (README, Performance).
ADAPTERS = (CallStore, Mailer, "actors.payments.PaymentsActor", FollowersAdapter)
# The leader's money singletons, one per convention by global name: (class, name, start message).
SINGLETONS = ((PayoutScheduler, PAYOUTS_NAME, StartPayouts), (RefundsActor, REFUNDS_NAME, StartRefunds))
# Each adapter is sent a no-op this often: one whose process died comes back as a dead letter,
# even when Thespian missed its ChildActorExited (it can, for two children dying at once).
ADAPTER_WATCH_S = 5
PLACEMENT_RETRY_S = 0.2


class Directory(Actor):
    """Runs on the convention leader. Places the shards over the member-hosting nodes, starts
    them again elsewhere when their node is lost, and tells everyone the new addresses."""
    actorSystemCapabilityCheck = staticmethod(convention.runs_directory)

    def __init__(self):
        super().__init__()
        self.settings = None
        self.services = None
        self.adapters = None          # (store, mailer, payments, followers)
        self.singletons = ()          # (payout scheduler, refunds actor), by global name
        self.shards = []              # index → address
        self.nodes = []               # member-hosting nodes present, in preference order (leader first)
        self.placement = {}           # shard index → node name
        self.awaiting = []            # who sent Configure before the shards were placed
        self.orphans = {}             # node name → shards it held when declared lost
        self.stopping = False
        self.bridges = {}             # BridgeRef → time it last asked for the shards (each heartbeat)
        self.token = None             # the leader's lease this directory runs under (actors/leadership.py)
        self.adopting = False         # taking over a lost leader's shards: nodes are still joining us
        self.lost_leaders = set()     # the nodes whose lead we took: gone, whatever the convention says

    def receiveMessage(self, message, sender):
        if isinstance(message, Configure):
            if self.settings is None:
                self.token = message.token
                self.configure(message.settings, message.takeover)
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
        elif isinstance(message, WakeupMessage) and message.payload == "adopt" and self.adopting:
            self.adopt()
        elif isinstance(message, WakeupMessage) and message.payload == "save_placement":
            self.save_placement()
        elif isinstance(message, WakeupMessage) and message.payload == "adapters" and not self.stopping:
            for adapter in self.adapters + self.singletons:
                self.send(adapter, Ping(0))
            self.wakeupAfter(ADAPTER_WATCH_S, payload="adapters")
        elif isinstance(message, ActorExitRequest):
            self.stopping = True  # the node shuts down: its shards exit too; none start again
        elif isinstance(message, ChildActorExited) and message.childAddress in self.shards and not self.stopping:
            self.shard_died(message.childAddress)
        elif (isinstance(message, ChildActorExited) and message.childAddress in (self.adapters or ())
              and not self.stopping):
            self.adapter_died(message.childAddress)
        elif isinstance(message, DeadEnvelope) and message.deadAddress in self.shards and not self.stopping:
            # Thespian can miss one of two children that die at once (its child list is pruned
            # without a ChildActorExited for the second: seen with two shards SIGKILLed
            # together). A message to a shard whose process is gone comes back here as a dead
            # letter: the same death, noticed by the traffic (ShardsMoved goes to every shard
            # at each restart). A busy shard still accepts connections, so it never lands here.
            log.warning("a message to member shard %s found it dead", message.deadAddress)
            self.shard_died(message.deadAddress)
        elif isinstance(message, DeadEnvelope) and message.deadAddress in (self.adapters or ()) and not self.stopping:
            log.warning("a message to adapter %s found it dead", message.deadAddress)
            self.adapter_died(message.deadAddress)
        elif isinstance(message, DeadEnvelope) and message.deadAddress in self.singletons and not self.stopping:
            # The payout scheduler and the refunds actor are the admin's children (global names):
            # their deaths reach us only as dead letters, from the watch's Ping or any message.
            self.singleton_died(message.deadAddress)

    def shard_died(self, address):
        """A shard's process died, with its members and the calls they host. On a node still
        present it starts again there; a lost node's shards were moved already when the
        convention reported it. Either way the new shard brings the live calls back from the store."""
        index = self.shards.index(address)
        node = self.placement[index]
        self.restart_shards({index: node} if node in self.nodes else
                            placement.rehome({index: node}, node, self.nodes), recovered=True)

    def adapter_died(self, address):
        """An adapter's process died (killed, out of memory): a new one takes its place and picks
        up from the database (the payments adapter its captures on the way, the mailer its
        outbox); every shard, member and call uses it from now on, and each call asks it again
        what the old one had not answered (Adopted, as after a new leader)."""
        index = self.adapters.index(address)
        log.error("adapter %s died; starting a new one", ADAPTERS[index])
        adapters = list(self.adapters)
        adapters[index] = self.createActor(ADAPTERS[index])
        self.adapters = tuple(adapters)
        self.send(self.adapters[index], Configured(self.settings))
        if ADAPTERS[index] is Mailer:   # the payout scheduler and the refunds actor mail through it
            for singleton in self.singletons:
                self.send(singleton, MailerMoved(self.adapters[index]))
        if self.services is not None:
            self.services = Services(self.settings, list(self.shards), *self.adapters)
            for shard in self.shards:
                self.send(shard, Adopted(self.services, self.myAddress, self.token))

    def start_singleton(self, index):
        """The payout scheduler or the refunds actor, by its global name under this lease, told
        to start (it resumes from the database)."""
        actor_class, name, start = SINGLETONS[index]
        address = self.createActor(actor_class, globalName=leadership.global_name(name, self.token))
        self.send(address, start(self.settings, self.adapters[ADAPTERS.index(Mailer)], self.token))
        return address

    def singleton_died(self, address):
        """A money singleton's process died: a new one under the same name resumes from the
        database (a gateway looks the name up for each message, so it finds the new one)."""
        index = self.singletons.index(address)
        log.error("%s died; starting a new one", SINGLETONS[index][0].__name__)
        singletons = list(self.singletons)
        singletons[index] = self.start_singleton(index)
        self.singletons = tuple(singletons)

    def shard_list(self, req_id):
        return Shards(req_id, list(self.shards), self.settings.policy.bridge_heartbeat_s if self.settings else 0)

    def configure(self, settings, takeover=None):
        self.settings = settings
        self.adapters = tuple(self.createActor(kind) for kind in ADAPTERS)
        for adapter in self.adapters:
            self.send(adapter, Configured(settings))
        self.wakeupAfter(ADAPTER_WATCH_S, payload="adapters")
        self.singletons = tuple(self.start_singleton(index) for index in range(len(SINGLETONS)))
        if settings.hosts_members:
            self.nodes.append(convention.node_name(settings))
        # The leader tells us of every node already in the convention, then of each change.
        self.notifyOnSystemRegistrationChanges(True)
        self.handleDeadLetters(True)  # see DeadEnvelope in receiveMessage
        if takeover and takeover.get("shards"):
            self.take_over(takeover)
            return
        self.wakeupAfter(settings.policy.node_wait_s, payload="place")
        self.place()

    def take_over(self, stored):
        """The leader was lost and this node took its lease: the shards it placed are ours now.
        The surviving nodes join us within a lease renewal; after two renewals, the shards on
        nodes still missing start again elsewhere and the others are adopted (new adapters)."""
        self.shards = [pickle.loads(address) for address in stored["shards"]]
        self.placement = {int(index): node for index, node in stored["placement"].items()}
        self.services = Services(self.settings, list(self.shards), *self.adapters)
        self.adopting = True
        # The leaders we replace (the one that placed these shards, the lease's last holder):
        # gone, even if our admin's books, from when it followed them, still list them.
        self.lost_leaders = {stored.get("leader"), stored.get("lost_node")} - {None, convention.node_name(self.settings)}
        self.nodes = [node for node in self.nodes if node not in self.lost_leaders]
        log.warning("taking over %d member shards of the lost leader (lease token %s)", len(self.shards), self.token)
        # The others follow the lease within one renewal (a third of it): two are waited.
        self.wakeupAfter(self.settings.policy.leader_lease_s * 2 / 3, payload="adopt")

    def adopt(self):
        self.adopting = False
        lost = {node for node in self.placement.values() if node not in self.nodes}
        survivors = [index for index, node in self.placement.items() if node in self.nodes]
        for index in survivors:
            self.send(self.shards[index], Adopted(self.services, self.myAddress, self.token))
        for node in lost:
            log.warning("actor node %s did not come back with the new leader; its member shards start elsewhere", node)
            self.restart_shards(placement.rehome(self.placement, node, self.nodes), recovered=True)
        if not lost:
            self.save_placement()
        for waiting in self.awaiting:
            self.send(waiting, self.shard_list(0))
        self.awaiting.clear()

    def save_placement(self):
        """Where the shards are, for a node that may take over from this one. A shard just
        asked for has only a local address until Thespian has made it: stored a moment later."""
        try:
            shards = [pickle.dumps(shard) for shard in self.shards]
        except CannotPickleAddress:
            self.wakeupAfter(PLACEMENT_RETRY_S, payload="save_placement")
            return
        self.send(self.adapters[0], SavePlacement(self.token, shards,
                                                  {str(index): node for index, node in self.placement.items()},
                                                  convention.node_name(self.settings)))

    def place(self, waited=False):
        """Spread the shards once `member_nodes` nodes are in (or the wait is over)."""
        if len(self.nodes) < self.settings.member_nodes and not waited:
            return
        if not self.nodes:
            log.error("no actor node hosts members yet; shards are placed when one joins")
            return
        self.placement = placement.spread(self.settings.member_shards_in_use, self.nodes)
        log.info("member shards placed: %s", self.placement)
        self.shards = [self.create_shard(node) for _, node in sorted(self.placement.items())]
        self.services = Services(self.settings, list(self.shards), *self.adapters)
        for index, shard in enumerate(self.shards):
            # recovered: at a start no call has an actor yet, so any call the store has as live
            # (the whole system was down) carries on, or ends by its deadlines, from the store.
            self.send(shard, ShardStart(index, self.services, recovered=True))
        self.save_placement()
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
            if self.adopting and node in self.lost_leaders:
                return  # the leader we replace, still in our admin's books: it is gone
            if node not in self.nodes:
                self.nodes.append(node)
            if self.adopting:
                return  # a survivor of the lost leader joining us: adopt() decides
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
        self.save_placement()
        for shard in self.shards:
            self.send(shard, ShardsMoved(list(self.shards)))
        # Gateways would learn at their next heartbeat; told now, their pages' connections are
        # attached to the new shards before the recovered calls speak to them.
        recent_s = time.time() - 10 * self.settings.policy.bridge_heartbeat_s
        self.bridges = {bridge: seen_s for bridge, seen_s in self.bridges.items() if seen_s > recent_s}
        for bridge in self.bridges:
            self.send(bridge.address, self.shard_list(0))
