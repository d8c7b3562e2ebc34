"""The call session actor: one per call, a child of the host's member shard.

A thin shell over call.Call. Every change of the call is stored (through the CallStore
actor) before its effects are carried out, so a replacement session started from the
store after a crash carries on from what the participants were last told. Signaling
changes nothing and is relayed at once.
"""
import logging
import os
import time
from collections import defaultdict

from thespian.actors import Actor, ActorExitRequest, ChildActorExited, WakeupMessage

from actors import call as rules
from actors import lifelines, negotiation
from actors.call_record import from_document, to_document
from actors.messages import (CallActive, CallFrame, CallJoined, CallLoaded, CallOver, CallRestore, CallSaved,
                             CallStart, CaptureOrder, ConnectionGone, CreateOrder, LoadCall, NegotiationFrame,
                             NegotiationOutcome, NegotiationRefused, NegotiationStart, OrderApproved, OrderCreated,
                             PaymentCaptured, PaymentFailed, Push, RefundLateCapture, RingPages, SaveCall,
                             TipCaptured, TipFailed)
from actors.messages import CallMissed, MemberBack, ShardsMoved, ToMember
from actors.negotiator import NegotiationActor
from actors.shards import shard_index
from actors.terms import Refused
from actors.turn import ice_servers

log = logging.getLogger(__name__)

# How long an ended call's session still answers frames ("the call has ended") before it exits.
FINISHED_LINGER_S = 2

NEGOTIATION_FRAMES = {"propose", "pay", "renegotiate", "decline_terms"}


class CallSessionActor(Actor):
    def __init__(self):
        super().__init__()
        lifelines.die_with_parent()  # with its creator, whose replacement restores it
        self.call = None
        self.settings = None
        self.services = None
        self.negotiation = None    # the current round's actor
        self.version = 0
        self.queued = []           # (version, effects) waiting for the store
        self.finished = False
        self.loading_frames = []   # (CallFrame or MemberBack, sender) that came while the call was loading
        self.outbox = defaultdict(list)  # BridgeRef → [(conn_ids, frame)], sent after each message

    # Messages --------------------------------------------------------------------------

    def receiveMessage(self, message, sender):
        self.on_message(message, sender)
        # One Push per gateway for all this message produced (a broadcast to two pages on one
        # gateway is one message, not two): fewer messages through the gateway's bridge.
        for bridge, items in self.outbox.items():
            self.send(bridge.address, Push(items))
        self.outbox.clear()

    def on_message(self, message, sender):
        now_s = time.time()
        if isinstance(message, CallStart):
            self.start(message, now_s)
        elif isinstance(message, CallRestore):
            self.services = message.services
            self.send(self.services.store, LoadCall(message.call_id))
        elif isinstance(message, CallLoaded):
            self.restore(message, now_s)
        elif isinstance(message, ShardsMoved):
            if self.services is not None:
                self.services.shards = message.addresses
        elif self.call is None:
            if isinstance(message, (CallFrame, MemberBack)):
                self.loading_frames.append((message, sender))  # a re-attach racing the restore: after it
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
        elif isinstance(message, NegotiationOutcome):
            self.on_outcome(message.outcome, now_s)
        elif isinstance(message, NegotiationRefused):
            self.refuse(message.connection, message.request_id, Refused(message.code, message.message))
        elif isinstance(message, OrderCreated) and message.tip:
            self.commit(self.call.tip_order_created(message.tip, message.order_id, message.approve_url, now_s))
        elif isinstance(message, OrderCreated):
            self.commit(self.call.order_created(message.round, message.order_id, message.approve_url, now_s))
        elif isinstance(message, OrderApproved):
            call = self.call
            due = (call.awaits_tip(message.tip, message.order_id) if message.tip
                   else call.awaits_order(message.round, message.order_id))
            if due:
                self.send(self.services.payments, CaptureOrder(call.call_id, message.round, call.host.member_id,
                                                               call.caller.member_id, message.order_id, message.tip))
        elif isinstance(message, TipCaptured):
            self.commit(self.call.tip_captured(message.tip, message.payment, now_s))
        elif isinstance(message, TipFailed):
            self.commit(self.call.tip_failed(message.tip, message.reason, now_s))
        elif isinstance(message, PaymentCaptured):
            self.commit(self.call.payment_captured(message.round, message.payment, now_s))
        elif isinstance(message, PaymentFailed):
            self.commit(self.call.payment_failed(message.round, message.reason, now_s))
        elif isinstance(message, WakeupMessage) and message.payload[0] == "finished":
            self.send(self.myAddress, ActorExitRequest())
        elif isinstance(message, WakeupMessage):
            name, token = message.payload
            self.commit(self.call.timer(name, token, now_s))
        elif isinstance(message, ChildActorExited) and message.childAddress == self.negotiation:
            self.negotiation = None
            if self.call.state == rules.NEGOTIATING:  # the round's actor died: start it again
                self.open_negotiation(self.call.round, self.call.deadline_s, self.call.proposal)

    def start(self, message, now_s):
        self.services = message.services
        host, caller = message.host, message.caller
        policy = rules.CallPolicy.of(self.services.settings.policy)
        self.call, effects = rules.Call.ring(
            message.call_id, rules.Side(host["id"], host["name"]), rules.Side(caller["id"], caller["name"]),
            host["tier"], host["can_charge"], policy, message.connection, now_s)
        self.tell_member("caller", CallJoined(message.call_id, self.myAddress))
        self.commit(effects)

    def restore(self, message, now_s):
        if message.document is None:
            log.error("call %s is not in the store; it cannot go on", message.call_id)
            self.send(self.myAddress, ActorExitRequest())
            return
        self.call = from_document(message.document)
        self.version = message.document.get("version", 0)
        self.tell_member("caller", CallJoined(self.call.call_id, self.myAddress))
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
        for frame, sender in self.loading_frames:
            self.on_message(frame, sender)
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
            kind = frame["type"]
            if kind == "signal":
                # Changes nothing: relayed at once, never stored.
                self.perform(call.signal(who, connection, {k: v for k, v in frame.items() if k != "id"}), now_s)
            elif kind in NEGOTIATION_FRAMES:
                call.require({rules.NEGOTIATING}, kind.replace("_", " "))
                if self.negotiation is None:
                    raise Refused("unavailable", "the negotiation is restarting; try again in a moment")
                self.send(self.negotiation, NegotiationFrame(who, connection, frame))
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
        except Refused as refused:
            self.refuse(connection, frame.get("id"), refused)

    @staticmethod
    def only(who, role, action):
        if who != role:
            raise Refused("not_" + role, f"only the {role} can {action}")

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
        document = to_document(self.call, now_s)
        document["session_pid"] = os.getpid()  # for operators (and tests) looking for the process
        # The store's write first: it overlaps with starting a round's actor (a process fork).
        self.send(self.services.store, SaveCall(self.call.call_id, self.version, document))
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
            self.wakeupAfter(max(0.0, effect.at_s - now_s), payload=(effect.name, effect.token))
        elif isinstance(effect, rules.RingHostPages):
            self.tell_member("host", RingPages(call.call_id, self.ring_frame(effect)))
        elif isinstance(effect, rules.OpenNegotiation):
            self.open_negotiation(effect.round, effect.deadline_s, None, effect.limits)
        elif isinstance(effect, rules.CloseNegotiation):
            if self.negotiation is not None:
                self.send(self.negotiation, ActorExitRequest())
                self.negotiation = None
        elif isinstance(effect, rules.InCall):
            for who in rules.SIDES:
                self.tell_member(who, CallActive(call.call_id, effect.active))
        elif isinstance(effect, rules.MissedCall):
            # The host's member mails them, at most once per interval (actors/limits.py).
            self.tell_member("host", CallMissed(call.call_id, call.caller.name))
        elif isinstance(effect, rules.Finished) and not self.finished:
            self.finished = True
            for who in rules.SIDES:
                self.tell_member(who, CallOver(call.call_id))
            # Linger: a frame already on its way (an accept racing the caller's hang-up) is
            # refused as too late instead of vanishing with this process.
            self.wakeupAfter(FINISHED_LINGER_S, payload=("finished", 0))
        elif isinstance(effect, rules.RequestTip) and self.services.payments is not None:
            self.send(self.services.payments, CreateOrder(call.call_id, call.round, call.host.member_id,
                                                          call.caller.member_id, effect.amount_cents, effect.tip))
        elif isinstance(effect, rules.AwaitPayment) and self.services.payments is not None:
            self.send(self.services.payments, CreateOrder(call.call_id, effect.terms.round, call.host.member_id,
                                                          call.caller.member_id, effect.terms.price_cents,
                                                          terms=effect.terms.view(call.call_id)))
        elif isinstance(effect, rules.RefundLatePayment) and self.services.payments is not None:
            self.send(self.services.payments, RefundLateCapture(call.call_id, effect.round, effect.order_id,
                                                                effect.capture_id))

    def tell_member(self, who, message):
        """To a participant, through the shard that hosts them (wherever it runs now)."""
        member_id = self.call.side(who).member_id
        shards = self.services.shards
        self.send(shards[shard_index(member_id, len(shards))], ToMember(member_id, message))

    def member_back(self, message):
        who = self.role(message.member_id)
        if who is None:
            return
        self.tell_member(who, CallJoined(self.call.call_id, self.myAddress))
        if self.call.answered_at_s is not None and self.call.state != rules.ENDED:
            self.tell_member(who, CallActive(self.call.call_id, True))

    def open_negotiation(self, round_number, deadline_s, proposal, limits=None):
        self.negotiation = self.createActor(NegotiationActor)
        self.send(self.negotiation, NegotiationStart(self.call.call_id, round_number, deadline_s,
                                                     limits or self.call.limits(), proposal))

    # Frames ----------------------------------------------------------------------------

    def view(self, who, now_s, event):
        frame = self.call.view(who, now_s, event)
        frame["ice_servers"] = self.ice_servers(now_s) if frame["media"] else []
        return frame

    def ice_servers(self, now_s):
        """Short-lived TURN credentials for this call, valid at most until the call could end."""
        settings, call = self.services.settings, self.call
        bound_s = call.deadline_s or (now_s + call.remaining_s(now_s) + call.policy.negotiation_window_s)
        return ice_servers(settings.turn, call.call_id, now_s, bound_s + call.policy.reconnect_grace_s)

    def ring_frame(self, effect):
        call = self.call
        if effect.ringing:
            return {"type": "incoming_call", "call_id": call.call_id,
                    "caller": {"id": call.caller.member_id, "name": call.caller.name},
                    "deadline_ms": int(call.deadline_s * 1000)}
        return {"type": "ring_stopped", "call_id": call.call_id, "reason": effect.reason}

    def push(self, connection, frame):
        if connection is None:
            return
        bridge, conn_id = connection
        self.outbox[bridge].append(([conn_id], frame))

    def refuse(self, connection, request_id, refused):
        self.push(connection, {"type": "error", "id": request_id if isinstance(request_id, int) else None,
                               "code": refused.code, "message": refused.message})
