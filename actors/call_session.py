"""A call session: one call's rules, stored before they act, its negotiation rounds and timers.

`CallSession` is an actor in the model (one message at a time, its own state and timers) that
acts only through its host: by default its host's member shard runs it inside the shard's
process (actors/member_shard.py, like members), and with `call_hosting = "process"` a
`CallSessionActor` runs it as a Thespian actor process of its own, a child of the shard (for
isolation or debugging; README "Decisions"). Both hostings give it the same face:

    host.send(address, message)         to an adapter (the call store, payments, the mailer)
    host.to_member(member_id, message)  to a participant, through its shard
    host.push(connection, frame)        to a page, one Push per gateway per message handled
    host.lease(bridge, relay_lease)     to a gateway, in the same Push as the frames around it
    host.wake_after(delay_s, payload)   a timer: `session.timer(payload)` later
    host.call_ref                       how members reach this call (CallJoined)
    host.exit()                         the session is done
    host.pids                           (session process, its shard's process), for operators

A thin shell over call.Call. Every change of the call is stored (through the CallStore
actor) before its effects are carried out, so a replacement session started from the store
after a crash carries on from what the participants were last told. Signaling changes nothing
and is relayed at once. A negotiation round is part of the session: its rules
(negotiation.Negotiation) and its window's timer live here.
"""
import logging
import os
import time
from collections import defaultdict

from thespian.actors import Actor, ActorExitRequest, WakeupMessage

from rules import call as rules
from actors import lifelines
from rules import frames, negotiation
from actors.call_record import from_document, to_document
from actors.messages import (CallActive, CallFrame, CallJoined, CallLoaded, CallOver, CallRestore, CallSaved,
                             CallStart, CaptureOrder, ConnectionGone, CreateOrder, LoadCall, OrderApproved,
                             OrderCreated, PaymentCaptured, PaymentFailed, Push, RefundLateCapture, RelayLease,
                             RingPages, SaveCall, TipCaptured, TipFailed)
from actors.messages import Adopted, CallMissed, MailCallRecord, MemberBack, ShardsMoved, ToCall, ToMember
from rules.shards import shard_index
from rules.terms import Refused
from rules.turn import ice_servers, turn_config

log = logging.getLogger(__name__)

# How long an ended call's session still answers frames ("the call has ended") before it exits.
FINISHED_LINGER_S = 2

NEGOTIATION_FRAMES = {"propose", "pay", "renegotiate", "decline_terms"}
# Quality samples (one per side every quality_interval_s) are stored once this many are new.
QUALITY_UNSAVED_MAX = 6


def gateways_of(pages):
    """The gateways (BridgeRef) of some pages, each once."""
    return list(dict.fromkeys(bridge for bridge, _ in pages))


class CallSession:
    def __init__(self, host):
        self.host = host
        self.call = None
        self.services = None
        self.negotiation = None    # the current round's rules (negotiation.Negotiation), while one is open
        self.version = 0
        self.queued = []           # (version, effects) waiting for the store
        self.finished = False
        self.loading_frames = []   # CallFrame or MemberBack that came while the call was loading
        self.relay = None          # (host's page, caller's page) of the relay lease granted
        self.quality_unsaved = 0   # quality samples taken since the call was last stored
        self.loading_id = None     # the call being read from the store (a restore)
        self.capturing = {}        # (tip, round) → the CaptureOrder the payments adapter has not answered

    # Messages --------------------------------------------------------------------------

    def on_message(self, message):
        self.handle(message)
        self.lease_relay()

    def handle(self, message):
        now_s = time.time()
        if isinstance(message, ToCall):  # a reply routed by call (payments, PayPal's side)
            message = message.message
        if isinstance(message, CallStart):
            self.start(message, now_s)
        elif isinstance(message, CallRestore):
            self.services = message.services
            self.loading_id = message.call_id
            self.host.send(self.services.store, LoadCall(message.call_id))
        elif isinstance(message, CallLoaded):
            self.restore(message, now_s)
        elif isinstance(message, ShardsMoved):
            if self.services is not None:
                self.services.shards = message.addresses
        elif isinstance(message, Adopted):
            if self.services is not None:   # a session process's own copy (in a shard: shared, set already)
                for name in ("store", "mailer", "payments", "followers", "shards"):
                    setattr(self.services, name, getattr(message.services, name))
            self.services_moved()
        elif self.call is None:
            if isinstance(message, (CallFrame, MemberBack)):
                self.loading_frames.append(message)  # a re-attach racing the restore: after it
            return  # still loading
        elif isinstance(message, CallSaved):
            self.flush(message.version)
        elif isinstance(message, CallFrame):
            self.on_frame(message, now_s)
        elif isinstance(message, MemberBack):
            self.member_back(message)
        elif isinstance(message, ConnectionGone):
            who = self.role(message.member_id)
            if who:
                self.commit(self.call.left(who, message.connection, now_s))
        elif isinstance(message, OrderCreated) and message.tip:
            self.commit(self.call.tip_order_created(message.tip, message.order_id, message.approve_url, now_s))
        elif isinstance(message, OrderCreated):
            self.commit(self.call.order_created(message.round, message.order_id, message.approve_url, now_s))
        elif isinstance(message, OrderApproved):
            call = self.call
            due = (call.awaits_tip(message.tip, message.order_id) if message.tip
                   else call.awaits_order(message.round, message.order_id))
            if due:
                capture = CaptureOrder(call.call_id, message.round, call.host.member_id, call.caller.member_id,
                                       message.order_id, message.tip)
                self.capturing[(message.tip, message.round if not message.tip else 0)] = capture
                self.host.send(self.services.payments, capture)
        elif isinstance(message, TipCaptured):
            self.capturing.pop((message.tip, 0), None)
            self.commit(self.call.tip_captured(message.tip, message.payment, now_s))
        elif isinstance(message, TipFailed):
            self.capturing.pop((message.tip, 0), None)
            self.commit(self.call.tip_failed(message.tip, message.reason, now_s))
        elif isinstance(message, PaymentCaptured):
            self.capturing.pop((0, message.round), None)
            self.commit(self.call.payment_captured(message.round, message.payment, now_s))
        elif isinstance(message, PaymentFailed):
            self.capturing.pop((0, message.round), None)
            self.commit(self.call.payment_failed(message.round, message.reason, now_s))

    def services_moved(self):
        """The leader was lost and a new directory gave our shard new adapters (it updated the
        services object we share): what the old ones had not answered is asked again. Storing
        and creating an order are idempotent (a version; PayPal-Request-Id per call and round)."""
        call = self.call
        if call is None:
            if self.loading_id is not None:
                self.host.send(self.services.store, LoadCall(self.loading_id))
            return
        if self.queued:
            self.commit([])  # a newer version: its CallSaved releases every effect still waiting
        if self.services.payments is None:
            return
        if call.state == rules.AWAITING_PAYMENT and call.order is None and call.pending is not None:
            self.host.send(self.services.payments, CreateOrder(
                call.call_id, call.pending.round, call.host.member_id, call.caller.member_id,
                call.pending.price_cents, terms=call.pending.view(call.call_id)))
        for capture in self.capturing.values():  # the same PayPal-Request-Id: captured once at most
            self.host.send(self.services.payments, capture)

    def timer(self, payload):
        """A timer this session armed (host.wake_after) went off."""
        self.on_timer(payload)
        self.lease_relay()

    def on_timer(self, payload):
        now_s = time.time()
        if payload[0] == "finished":
            self.host.exit()
        elif self.call is None:
            return
        elif payload[0] == "negotiation":
            self.negotiation_timer(payload[1], now_s)
        else:
            name, token = payload
            self.commit(self.call.timer(name, token, now_s))

    def start(self, message, now_s):
        self.services = message.services
        host, caller = message.host, message.caller
        policy = rules.CallPolicy.of(self.services.settings.policy)
        self.call, effects = rules.Call.ring(
            message.call_id, rules.Side(host["id"], host["name"]), rules.Side(caller["id"], caller["name"]),
            host["tier"], host["can_charge"], policy, message.connection, now_s)
        self.tell_member("caller", CallJoined(message.call_id, self.host.call_ref))
        self.commit(effects)

    def restore(self, message, now_s):
        if message.document is None:
            log.error("call %s is not in the store; it cannot go on", message.call_id)
            self.host.exit()
            return
        self.call = from_document(message.document)
        self.version = message.document.get("version", 0)
        # A relay lease the former session granted may still stand: take it back, lease anew.
        for bridge in {side.connection[0] for side in (self.call.host, self.call.caller) if side.connection}:
            self.host.lease(bridge, RelayLease(self.call.call_id))
        self.tell_member("caller", CallJoined(self.call.call_id, self.host.call_ref))
        if self.call.answered_at_s is not None and self.call.state != rules.ENDED:
            for who in rules.SIDES:  # a member brought back with its shard counts the call again
                self.tell_member(who, CallActive(self.call.call_id, True))
        # Deadlines are data: re-arm every timer that may still fire, with its current token.
        effects = [rules.StartTimer(name, self.deadline_of(name), token) for name, token in self.call.timers.items()
                   if self.deadline_of(name) is not None]
        if self.call.state == rules.NEGOTIATING:
            self.open_negotiation(self.call.round, self.call.deadline_s, self.call.proposal)
        if self.call.state == rules.ENDED:
            effects.append(rules.Finished(self.call.end_reason))
        self.commit(effects + [rules.Broadcast("restored")])
        for frame in self.loading_frames:
            self.handle(frame)
        self.loading_frames.clear()

    def deadline_of(self, name):
        call = self.call
        if name in ("ring", "payment", "offer"):
            return call.deadline_s
        if name == "cap" and call.answered_at_s is not None:
            return call.answered_at_s + call.policy.free_tier_cap_s
        if name == "clock" and call.clock_running:
            return call.clock_since_s + call.paid_s - call.used_s
        if name.startswith("grace_"):
            side = call.side(name[len("grace_"):])
            return side.away_since_s + call.policy.reconnect_grace_s if side.away_since_s is not None else None
        return None

    def role(self, member_id):
        if member_id == self.call.host.member_id:
            return negotiation.HOST
        if member_id == self.call.caller.member_id:
            return negotiation.CALLER
        return None

    def on_frame(self, message, now_s):
        frame, connection = message.frame, message.connection
        who = self.role(message.member_id)
        call = self.call
        try:
            if who is None:  # only the two participants may do anything in a call
                raise Refused("no_such_call", "you take part in no call with this id")
            kind = frame["type"]
            if kind == "signal":
                # Changes nothing: relayed at once, never stored.
                self.perform(call.signal(who, connection, {k: v for k, v in frame.items() if k != "id"}), now_s)
            elif kind in NEGOTIATION_FRAMES:
                call.require({rules.NEGOTIATING}, kind.replace("_", " "))
                self.negotiate(who, frame, now_s)
            elif kind == "accept":
                self.only(who, negotiation.HOST, "accept")
                self.commit(call.accept(connection, now_s))
            elif kind == "decline":
                self.only(who, negotiation.HOST, "decline")
                self.commit(call.decline(now_s))
            elif kind == "cancel":
                self.only(who, negotiation.CALLER, "cancel")
                self.commit(call.cancel(now_s))
            elif kind == "extend":
                self.commit(call.extend(who, frame["yes"], now_s))
            elif kind == "hang_up":
                self.commit(call.hang_up(who, now_s))
            elif kind == "tip":
                self.commit(call.tip(who, frame["amount_cents"], now_s))
            elif kind == "attach_call":
                self.commit(call.attach(who, connection, now_s))
            elif kind == "quality":
                # Evidence, not a change anyone acts on: stored with the call's next change, or
                # after a few samples, so a crash loses at most those (README, "Decisions").
                call.report_quality(who, connection, frame, now_s)
                self.quality_unsaved += 1
                if self.quality_unsaved >= QUALITY_UNSAVED_MAX:
                    self.commit([])
        except Refused as refused:
            self.refuse(connection, frame.get("id"), refused)

    @staticmethod
    def only(who, role, action):
        if who != role:
            raise Refused("not_" + role, f"only the {role} can {action}")

    # The negotiation round ------------------------------------------------------------

    def open_negotiation(self, round_number, deadline_s, proposal, limits=None):
        self.negotiation = negotiation.Negotiation(round_number, limits or self.call.limits(), deadline_s)
        if proposal is not None:  # carried over by a restored session
            self.negotiation.proposal = proposal
            self.negotiation.proposals_made = proposal.proposal
        self.host.wake_after(max(0.0, deadline_s - time.time()), ("negotiation", round_number))

    def negotiate(self, who, frame, now_s):
        """A participant's propose / pay / renegotiate / decline_terms; raises Refused."""
        if self.negotiation is None:
            raise Refused("negotiation_closed", "no negotiation is open")
        round_rules, kind = self.negotiation, frame["type"]
        if kind == "propose":
            outcome = round_rules.propose(who, frame["price_cents"], frame["length_s"], now_s)
        elif kind == "pay":
            outcome = round_rules.pay(who, frame["proposal"], now_s)
        elif kind == "renegotiate":
            outcome = round_rules.renegotiate(who, now_s)
        else:
            outcome = round_rules.decline(who, now_s)
        self.on_outcome(outcome, now_s)

    def negotiation_timer(self, round_number, now_s):
        round_rules = self.negotiation
        if round_rules is None or round_rules.round != round_number:
            return  # that round is over
        if now_s < round_rules.deadline_s:  # woken a little early
            self.host.wake_after(round_rules.deadline_s - now_s, ("negotiation", round_number))
            return
        outcome = round_rules.expire(now_s)
        if outcome is not None:
            self.on_outcome(outcome, now_s)

    def on_outcome(self, outcome, now_s):
        call = self.call
        if isinstance(outcome, negotiation.Proposed):
            self.commit(call.proposed(outcome.terms, now_s))
        elif isinstance(outcome, negotiation.Withdrawn):
            self.commit(call.withdrawn(outcome.round, now_s))
        elif isinstance(outcome, negotiation.Agreed):
            self.commit(call.agreed(outcome.terms, now_s))
        elif isinstance(outcome, negotiation.Declined):
            self.commit(call.declined(outcome.round, now_s))
        elif isinstance(outcome, negotiation.Expired):
            self.commit(call.expired(outcome.round, now_s))

    # Store, then act -------------------------------------------------------------------

    def commit(self, effects):
        """Store the call as it is now; carry out `effects` once the store confirms.

        Effects nobody outside sees (the round's actor, timers) happen at once, so a frame
        that follows at once (a propose right after accept) finds its negotiation there."""
        internal = (rules.OpenNegotiation, rules.CloseNegotiation, rules.StartTimer)
        now_s = time.time()
        self.version += 1
        self.quality_unsaved = 0
        document = to_document(self.call, now_s)
        # For operators (and tests) looking for the processes that run the call.
        document["session_pid"], document["shard_pid"] = self.host.pids
        self.host.send(self.services.store, SaveCall(self.call.call_id, self.version, document))
        self.perform([e for e in effects if isinstance(e, internal)], now_s)
        self.queued.append((self.version, [e for e in effects if not isinstance(e, internal)]))

    def flush(self, version):
        now_s = time.time()
        while self.queued and self.queued[0][0] <= version:
            self.perform(self.queued.pop(0)[1], now_s)

    def perform(self, effects, now_s):
        for effect in effects:
            self.carry_out(effect, now_s)

    def carry_out(self, effect, now_s):
        call = self.call
        if isinstance(effect, rules.Broadcast):
            for who in rules.SIDES:
                self.push(call.side(who).connection, self.view(who, now_s, effect.event))
        elif isinstance(effect, rules.Relay):
            self.push(call.side(effect.to).connection, dict(effect.frame, call_id=call.call_id))
        elif isinstance(effect, rules.StartTimer):
            self.host.wake_after(max(0.0, effect.at_s - now_s), (effect.name, effect.token))
        elif isinstance(effect, rules.RingHostPages):
            self.tell_member("host", RingPages(call.call_id, self.ring_frame(effect)))
        elif isinstance(effect, rules.OpenNegotiation):
            self.open_negotiation(effect.round, effect.deadline_s, None, effect.limits)
        elif isinstance(effect, rules.CloseNegotiation):
            self.negotiation = None
        elif isinstance(effect, rules.InCall):
            for who in rules.SIDES:
                self.tell_member(who, CallActive(call.call_id, effect.active))
        elif isinstance(effect, rules.MissedCall):
            # The host's member mails them, at most once per interval (rules/limits.py).
            self.tell_member("host", CallMissed(call.call_id, call.caller.name))
        elif isinstance(effect, rules.Finished) and not self.finished:
            self.finished = True
            for who in rules.SIDES:
                self.tell_member(who, CallOver(call.call_id))
            if call.payments:  # both sides get the record's head (once, however often it ends here)
                self.host.send(self.services.mailer, MailCallRecord(call.call_id))
            # Linger: a frame already on its way (an accept racing the caller's hang-up) is
            # refused as too late instead of vanishing with this session.
            self.host.wake_after(FINISHED_LINGER_S, ("finished", 0))
        elif isinstance(effect, rules.RequestTip) and self.services.payments is not None:
            self.host.send(self.services.payments, CreateOrder(call.call_id, call.round, call.host.member_id,
                                                          call.caller.member_id, effect.amount_cents, effect.tip))
        elif isinstance(effect, rules.AwaitPayment) and self.services.payments is not None:
            self.host.send(self.services.payments, CreateOrder(call.call_id, effect.terms.round, call.host.member_id,
                                                          call.caller.member_id, effect.terms.price_cents,
                                                          terms=effect.terms.view(call.call_id)))
        elif isinstance(effect, rules.RefundLatePayment) and self.services.payments is not None:
            self.host.send(self.services.payments, RefundLateCapture(call.call_id, effect.round, effect.order_id,
                                                                effect.capture_id))

    def lease_relay(self):
        """Let the gateways of both pages relay their signaling by themselves while the call
        allows it (what call.signal checks), and take that back at the first change: signaling
        then never crosses the shard (within one gateway, or from one gateway to the other)."""
        call, wanted = self.call, None
        if call is not None and call.state in rules.MEDIA_STATES and call.host.connected and call.caller.connected:
            if call.host.connection and call.caller.connection:
                wanted = (call.host.connection, call.caller.connection)
        if wanted == self.relay:
            return
        if self.relay is not None:
            for bridge in gateways_of(self.relay):
                self.host.lease(bridge, RelayLease(call.call_id))
        if wanted is not None:
            for bridge in gateways_of(wanted):
                self.host.lease(bridge, RelayLease(call.call_id, wanted))
        self.relay = wanted

    def tell_member(self, who, message):
        """To a participant, through the shard that hosts them (wherever it runs now)."""
        self.host.to_member(self.call.side(who).member_id, message)

    def member_back(self, message):
        who = self.role(message.member_id)
        if who is None:
            return
        self.tell_member(who, CallJoined(self.call.call_id, self.host.call_ref))
        if self.call.answered_at_s is not None and self.call.state != rules.ENDED:
            self.tell_member(who, CallActive(self.call.call_id, True))

    # Frames ----------------------------------------------------------------------------

    def view(self, who, now_s, event):
        frame = self.call.view(who, now_s, event)
        frame["ice_servers"] = self.ice_servers(now_s) if frame["media"] else []
        return frame

    def ice_servers(self, now_s):
        """Short-lived TURN credentials for this call, valid at most until the call could end."""
        settings, call = self.services.settings, self.call
        bound_s = call.deadline_s or (now_s + call.remaining_s(now_s) + call.policy.negotiation_window_s)
        return ice_servers(turn_config(settings), call.call_id, now_s, bound_s + call.policy.reconnect_grace_s)

    def ring_frame(self, effect):
        call = self.call
        if effect.ringing:
            return frames.incoming_call(call.call_id, call.caller.member_id, call.caller.name,
                                        int(call.deadline_s * 1000))
        return frames.ring_stopped(call.call_id, effect.reason)

    def push(self, connection, frame):
        if connection is not None:
            self.host.push(connection, frame)

    def refuse(self, connection, request_id, refused):
        self.push(connection, frames.error(request_id, refused.code, refused.message))


class CallSessionActor(Actor):
    """A call session as a Thespian actor process of its own, a child of its host's shard
    (`call_hosting = "process"`): the same CallSession, with this actor as its host."""

    def __init__(self):
        super().__init__()
        lifelines.die_with_parent()  # with its creator, whose replacement restores it
        self.session = CallSession(self)
        self.outbox = defaultdict(list)  # BridgeRef → [(conn_ids, frame)], sent after each message

    def receiveMessage(self, message, sender):
        if isinstance(message, WakeupMessage):
            self.session.timer(message.payload)
        elif not isinstance(message, ActorExitRequest):
            self.session.on_message(message)
        # One Push per gateway for all this message produced (a broadcast to two pages on one
        # gateway is one message, not two): fewer messages through the gateway's bridge.
        for bridge, items in self.outbox.items():
            self.send(bridge.address, Push(items))
        self.outbox.clear()

    # The host's face (see the module's docstring).

    @property
    def call_ref(self):
        return self.myAddress

    @property
    def pids(self):
        return os.getpid(), os.getppid()

    def to_member(self, member_id, message):
        shards = self.session.services.shards
        self.send(shards[shard_index(member_id, len(shards))], ToMember(member_id, message))

    def push(self, connection, frame):
        bridge, conn_id = connection
        self.outbox[bridge].append(([conn_id], frame))

    def lease(self, bridge, relay_lease):
        self.outbox[bridge].append(relay_lease)

    def wake_after(self, delay_s, payload):
        self.wakeupAfter(delay_s, payload=payload)

    def exit(self):
        self.send(self.myAddress, ActorExitRequest())
