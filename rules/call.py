"""The rules of one call, from ring to end: states, deadlines, the paid clock, reconnect grace.

Pure: every method takes the time (seconds since the epoch) and returns effects for the
call session actor to carry out; a refused action raises terms.Refused. The negotiation of
each round runs in its own actor (rules in negotiation.py); this module only opens and
closes rounds and hears their outcome.

The paid clock runs only while the call is running and both sides are connected. A side
that goes away pauses it; both see a grace deadline; past it the call ends with the unused
paid time recorded.

What a call stores stays bounded whatever a participant sends: a few tips, one of them
pending at a time, and a log whose chatter past its cap is counted, not listed.
"""
import dataclasses
import math

from rules import quality
from rules.negotiation import CALLER, HOST
from rules.terms import FREE, Limits, Refused, Terms, dollars

RINGING = "ringing"
NEGOTIATING = "negotiating"
AWAITING_PAYMENT = "awaiting_payment"
RUNNING = "running"
EXTENSION_OFFERED = "extension_offered"
ENDED = "ended"
# Media (and so signaling) flows while the two talk terms, run, or decide on more time.
MEDIA_STATES = frozenset({NEGOTIATING, RUNNING, EXTENSION_OFFERED})
SIDES = (HOST, CALLER)

# A tip awaits the caller's approval until it is captured, fails, or lapses after the payment
# window (EXPIRED: approved late all the same, it is still captured and the host's).
PENDING_TIPS = frozenset({"requested", "awaiting_approval"})
EXPIRED = "expired"

# The log's events. Money and state changes are bounded by money and time and always kept
# (_late_payment reads payment_late back); chatter, which a participant can repeat at will,
# is counted in one SUMMARISED entry once the log is full.
MONEY_AND_STATE_EVENTS = frozenset({
    "ringing", "accepted", "agreed", "running", "order_created", "payment_captured", "payment_late",
    "payment_failed", "tip_captured", "time_up", "extension", "missed", "ended"})
CHATTER_EVENTS = frozenset({"joined", "left", "proposed", "renegotiate", "tip_requested", "tip_failed"})
SUMMARISED = "summarised"


# Effects ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Broadcast:
    """Send each connected side its current view of the call; `event` says what happened."""
    event: str


@dataclasses.dataclass(frozen=True)
class RingHostPages:
    """Every open page of the host shows (ringing=True) or drops (False) the incoming call."""
    ringing: bool
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class Relay:
    to: str
    frame: dict


@dataclasses.dataclass(frozen=True)
class StartTimer:
    name: str
    at_s: float
    token: int


@dataclasses.dataclass(frozen=True)
class OpenNegotiation:
    round: int
    deadline_s: float
    limits: Limits


@dataclasses.dataclass(frozen=True)
class CloseNegotiation:
    round: int


@dataclasses.dataclass(frozen=True)
class AwaitPayment:
    """The caller agreed to paid terms: the money side takes the payment for this round."""
    terms: Terms
    deadline_s: float


@dataclasses.dataclass(frozen=True)
class RequestTip:
    """The caller wants to tip: the money side makes a PayPal order for it."""
    tip: int
    amount_cents: int


@dataclasses.dataclass(frozen=True)
class RefundLatePayment:
    """A round's payment was captured when the call could no longer use it: the money side
    gives it back to the caller in full."""
    round: int
    order_id: str
    capture_id: str


@dataclasses.dataclass(frozen=True)
class InCall:
    active: bool


@dataclasses.dataclass(frozen=True)
class MissedCall:
    """Nobody answered: the host is told by email."""


@dataclasses.dataclass(frozen=True)
class Finished:
    reason: str


# State --------------------------------------------------------------------------------

@dataclasses.dataclass
class Side:
    member_id: str
    name: str
    connection: object = None       # opaque to the rules: where this side's call page is
    connected: bool = False
    connected_since_s: float = None
    connected_s: float = 0.0        # time connected to the call, for the log
    away_since_s: float = None

    def join(self, connection, now_s):
        self.connection = connection
        if not self.connected:
            self.connected = True
            self.connected_since_s = now_s
        self.away_since_s = None

    def leave(self, now_s):
        if self.connected:
            self.connected_s += now_s - self.connected_since_s
        self.connected = False
        self.connected_since_s = None
        self.away_since_s = now_s

    def connected_time(self, now_s):
        return self.connected_s + (now_s - self.connected_since_s if self.connected else 0)


@dataclasses.dataclass(frozen=True)
class CallPolicy:
    ring_timeout_s: float
    negotiation_window_s: float
    extension_offer_s: float
    payment_window_s: float
    free_tier_cap_s: float
    reconnect_grace_s: float
    min_price_cents: int
    max_price_cents: int
    min_length_s: int
    max_length_s: int
    # With defaults: a call stored before these limits existed loads with the product's (the
    # policy's defaults; a rules module imports no settings, and a test checks they agree).
    tips_pending_per_call_max: int = 1
    tips_per_call_max: int = 50
    call_log_max_entries: int = 300
    quality_interval_s: float = 5
    quality_samples_max: int = 120

    @classmethod
    def of(cls, policy):
        return cls(**{f.name: getattr(policy, f.name) for f in dataclasses.fields(cls)})


@dataclasses.dataclass
class Call:
    call_id: str
    host: Side
    caller: Side
    host_tier: str
    host_can_charge: bool
    policy: CallPolicy
    created_at_s: float
    state: str = RINGING
    round: int = 0
    deadline_s: float = None        # of the ring, negotiation, payment or extension offer
    proposal: Terms = None          # on the table in the current round
    pending: Terms = None           # agreed, awaiting payment
    order: dict = None              # the PayPal order for the pending terms: {round, order_id, approve_url}
    rounds: list = dataclasses.field(default_factory=list)   # agreed terms, as views
    payments: list = dataclasses.field(default_factory=list)
    tips: list = dataclasses.field(default_factory=list)     # {tip, amount_cents, state, order_id, approve_url,
                                                             #  requested_at_s}
    paid_s: float = 0.0             # length of every round started (paid or free)
    used_s: float = 0.0             # paid clock consumed up to clock_since_s
    clock_since_s: float = None     # when the running clock last started
    answered_at_s: float = None
    ended_at_s: float = None
    end_reason: str = None
    ended_by: str = None
    timers: dict = dataclasses.field(default_factory=dict)
    log: list = dataclasses.field(default_factory=list)
    # Each side's connection quality over the call (rules/quality.py): never media or content.
    quality: dict = dataclasses.field(default_factory=lambda: {HOST: [], CALLER: []})

    # Starting --------------------------------------------------------------------------

    @classmethod
    def ring(cls, call_id, host, caller, host_tier, host_can_charge, policy, caller_connection, now_s):
        call = cls(call_id, host, caller, host_tier, host_can_charge, policy, now_s)
        call.caller.join(caller_connection, now_s)
        call.deadline_s = now_s + policy.ring_timeout_s
        call.note(now_s, "ringing", by=CALLER)
        return call, [RingHostPages(True), call.arm("ring", call.deadline_s), Broadcast("ringing")]

    # Helpers ---------------------------------------------------------------------------

    def side(self, who):
        return self.host if who == HOST else self.caller

    def other(self, who):
        return CALLER if who == HOST else HOST

    def arm(self, name, at_s):
        self.timers[name] = self.timers.get(name, 0) + 1
        return StartTimer(name, at_s, self.timers[name])

    def disarm(self, name):
        self.timers[name] = self.timers.get(name, 0) + 1

    def note(self, now_s, event, **details):
        """Log what happened. Chatter is listed while the log has room for it and for the summary
        that follows: the stored call must stay far below MongoDB's 16 MB document limit."""
        if event in CHATTER_EVENTS and len(self.log) >= self.policy.call_log_max_entries - 1:
            self._summarise(event, now_s)
        else:
            self.log.append(dict(at_s=now_s, event=event, **details))

    def _summarise(self, event, now_s):
        # The summary stays where the first chatter left out would have been: the last chatter
        # entry of the log, after it only money and state changes, so the log reads in order.
        summary = next((entry for entry in reversed(self.log) if entry["event"] == SUMMARISED), None)
        if summary is None:
            summary = {"at_s": now_s, "event": SUMMARISED, "counts": {}, "until_s": now_s}
            self.log.append(summary)
        summary["counts"][event] = summary["counts"].get(event, 0) + 1
        summary["until_s"] = now_s

    def require(self, states, action):
        if self.state not in states:
            raise Refused("wrong_state", f"cannot {action} while the call is {self.state}")

    def limits(self, now_s=None):
        """What the host may propose. A free host's session ends at most the free-tier cap after
        it was answered, talk included, whatever rounds it is made of."""
        cap_left, cap_ends_at = float("inf"), float("inf")
        if self.host_tier == FREE:
            cap_left = self.policy.free_tier_cap_s - self.paid_s
            if self.answered_at_s is not None:
                cap_ends_at = self.answered_at_s + self.policy.free_tier_cap_s
        p = self.policy
        return Limits(self.host_tier, self.host_can_charge, p.min_price_cents, p.max_price_cents,
                      p.min_length_s, p.max_length_s, cap_left, cap_ends_at)

    @property
    def clock_running(self):
        return self.clock_since_s is not None

    def remaining_s(self, now_s):
        used = self.used_s + (now_s - self.clock_since_s if self.clock_running else 0)
        return max(0.0, self.paid_s - used)

    def reconcile_clock(self, now_s):
        """Run the clock exactly while running with both sides connected; arm its expiry."""
        should_run = self.state == RUNNING and self.host.connected and self.caller.connected
        if self.clock_running and not should_run:
            self.used_s += now_s - self.clock_since_s
            self.clock_since_s = None
            self.disarm("clock")
        elif should_run and not self.clock_running:
            self.clock_since_s = now_s
            return [self.arm("clock", now_s + self.paid_s - self.used_s)]
        return []

    def open_round(self, now_s):
        self.round += 1
        self.state = NEGOTIATING
        self.proposal = None
        self.deadline_s = now_s + self.policy.negotiation_window_s
        return OpenNegotiation(self.round, self.deadline_s, self.limits())

    def end(self, now_s, reason, by=None):
        was = self.state
        self.state = ENDED
        effects = self.reconcile_clock(now_s)
        self.ended_at_s, self.end_reason, self.ended_by = now_s, reason, by
        self.deadline_s = None
        for side in (self.host, self.caller):
            if side.connected:
                side.leave(now_s)
            side.away_since_s = None
        self.note(now_s, "ended", reason=reason, by=by, unused_paid_s=round(self.remaining_s(now_s), 3))
        if was == RINGING:
            effects.append(RingHostPages(False, reason))
        if was == NEGOTIATING:
            effects.append(CloseNegotiation(self.round))
        if self.answered_at_s is not None:
            effects.append(InCall(False))
        return effects + [Broadcast("ended"), Finished(reason)]

    # Ring ------------------------------------------------------------------------------

    def accept(self, connection, now_s):
        self.require({RINGING}, "accept")
        self.host.join(connection, now_s)
        self.answered_at_s = now_s
        self.disarm("ring")
        self.note(now_s, "accepted", by=HOST)
        effects = [RingHostPages(False, "answered"), InCall(True), self.open_round(now_s), Broadcast("accepted")]
        if self.host_tier == FREE:
            effects.insert(0, self.arm("cap", now_s + self.policy.free_tier_cap_s))
        return effects

    def decline(self, now_s):
        self.require({RINGING}, "decline")
        return self.end(now_s, "declined", HOST)

    def cancel(self, now_s):
        self.require({RINGING}, "cancel")
        return self.end(now_s, "cancelled", CALLER)

    # Negotiation outcomes (from the round's actor) -------------------------------------

    def _current(self, round_number):
        return self.state == NEGOTIATING and round_number == self.round

    def proposed(self, terms, now_s):
        if not self._current(terms.round):
            return []
        self.proposal = terms
        self.note(now_s, "proposed", terms=terms.view(self.call_id))
        return [Broadcast("proposed")]

    def withdrawn(self, round_number, now_s):
        if not self._current(round_number):
            return []
        self.proposal = None
        self.note(now_s, "renegotiate", by=CALLER)
        return [Broadcast("renegotiate")]

    def agreed(self, terms, now_s):
        if not self._current(terms.round):
            return []
        self.proposal = None
        self.rounds.append(dict(terms.view(self.call_id), agreed_at_s=now_s))
        self.note(now_s, "agreed", terms=terms.view(self.call_id))
        effects = [CloseNegotiation(terms.round)]
        if terms.free:
            return effects + self._start_round(terms, now_s) + [Broadcast("running")]
        self.state = AWAITING_PAYMENT
        self.pending = terms
        self.deadline_s = now_s + self.policy.payment_window_s
        return effects + [AwaitPayment(terms, self.deadline_s), self.arm("payment", self.deadline_s),
                          Broadcast("awaiting_payment")]

    def declined(self, round_number, now_s):
        if not self._current(round_number):
            return []
        return self.end(now_s, "declined_terms", CALLER)

    def expired(self, round_number, now_s):
        if not self._current(round_number):
            return []
        return self.end(now_s, "no_agreement")

    # Payment (messages from the money side) --------------------------------------------

    def order_created(self, round_number, order_id, approve_url, now_s):
        """The payer can approve now: the caller's page shows PayPal's approval link."""
        if self.state != AWAITING_PAYMENT or self.pending is None or self.pending.round != round_number:
            return []
        self.order = {"round": round_number, "order_id": order_id, "approve_url": approve_url}
        self.note(now_s, "order_created", round=round_number, order_id=order_id)
        return [Broadcast("payment_ready")]

    def awaits_order(self, round_number, order_id):
        """Is this the order the call is waiting on (so capturing it is due)?"""
        return (self.state == AWAITING_PAYMENT and self.order is not None
                and self.order["round"] == round_number and self.order["order_id"] == order_id)

    def payment_captured(self, round_number, payment, now_s):
        """`payment` describes the capture for the log; a repeat of the same round is a no-op.
        A capture the call cannot use (it is over: the payment window ran out as the payer
        approved, or the capture cleared late) is refunded, once."""
        if self.state != AWAITING_PAYMENT or self.pending is None or self.pending.round != round_number:
            return self._late_payment(round_number, payment, now_s)
        terms, self.pending, self.order = self.pending, None, None
        self.disarm("payment")
        self.payments.append(dict(payment, round=round_number, at_s=now_s))
        self.note(now_s, "payment_captured", round=round_number, **payment)
        effects = self._start_round(terms, now_s)
        if not self.caller.connected:  # back from PayPal soon: the grace starts now
            self.caller.away_since_s = now_s
            effects.append(self.arm("grace_" + CALLER, now_s + self.policy.reconnect_grace_s))
        return effects + [Broadcast("payment_captured")]

    def _late_payment(self, round_number, payment, now_s):
        capture_id = payment.get("capture_id")
        known = [p.get("capture_id") for p in self.payments] + [
            entry.get("capture_id") for entry in self.log if entry["event"] == "payment_late"]
        if capture_id is None or capture_id in known:
            return []  # a repeat of a capture the call used (or is refunding already)
        self.note(now_s, "payment_late", round=round_number, capture_id=capture_id,
                  amount_cents=payment.get("amount_cents"))
        return [RefundLatePayment(round_number, payment.get("order_id"), capture_id)]

    def payment_failed(self, round_number, reason, now_s):
        if self.state != AWAITING_PAYMENT or self.pending is None or self.pending.round != round_number:
            return []
        self.note(now_s, "payment_failed", round=round_number, reason=reason)
        return self.end(now_s, "payment_failed")

    def _start_round(self, terms, now_s):
        self.state = RUNNING
        self.paid_s += terms.length_s
        self.deadline_s = None
        self.note(now_s, "running", round=terms.round, length_s=terms.length_s)
        return self.reconcile_clock(now_s)

    # Running and extending -------------------------------------------------------------

    def clock_expired(self, now_s):
        if self.state != RUNNING:
            return []
        remaining = self.remaining_s(now_s)
        if remaining > 0.001:  # woken a little early: sleep the rest
            return [self.arm("clock", now_s + remaining)]
        # Stop the clock here: reconcile_clock would leave it running (the state is still
        # RUNNING), and an extension would then start with no clock timer, billed from the
        # old start.
        self.clock_since_s = None
        self.disarm("clock")
        self.used_s = self.paid_s
        # A free host with less than the shortest length left could agree to nothing more.
        limits = self.limits()
        if self.host_tier == FREE and min(limits.free_cap_left_s,
                                          limits.free_cap_ends_at_s - now_s) < self.policy.min_length_s:
            return self.end(now_s, "free_cap_reached")
        self.state = EXTENSION_OFFERED
        self.deadline_s = now_s + self.policy.extension_offer_s
        self.note(now_s, "time_up")
        return [self.arm("offer", self.deadline_s), Broadcast("extension_offer")]

    def extend(self, who, yes, now_s):
        self.require({EXTENSION_OFFERED}, "extend")
        if who != HOST:
            raise Refused("not_host", "only the host can extend the call")
        self.disarm("offer")
        if not yes:
            return self.end(now_s, "completed", HOST)
        self.note(now_s, "extension", by=HOST)
        return [self.open_round(now_s), Broadcast("extension_negotiation")]

    # Tips ------------------------------------------------------------------------------

    def tip(self, who, amount_cents, now_s):
        """A tip never suspends the call; it is its own PayPal order, approved by the caller."""
        if who != CALLER:
            raise Refused("not_caller", "only the caller can tip")
        self.require({NEGOTIATING, RUNNING, EXTENSION_OFFERED}, "tip")
        if self.host_tier == FREE or not self.host_can_charge:
            raise Refused("no_tips", "this host cannot receive tips")
        self._refuse_past_tip_limits(now_s)
        if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) \
                or not self.policy.min_price_cents <= amount_cents <= self.policy.max_price_cents:
            raise Refused("tip_out_of_range", f"a tip is between {dollars(self.policy.min_price_cents)} and "
                                              f"{dollars(self.policy.max_price_cents)}")
        for tip in self.tips:
            if tip["state"] in PENDING_TIPS and not self._tip_pending(tip, now_s):
                tip.update(state=EXPIRED, approve_url=None)
        number = len(self.tips) + 1
        self.tips.append({"tip": number, "amount_cents": amount_cents, "state": "requested",
                          "order_id": None, "approve_url": None, "requested_at_s": now_s})
        self.note(now_s, "tip_requested", tip=number, amount_cents=amount_cents)
        return [RequestTip(number, amount_cents)]

    def _refuse_past_tip_limits(self, now_s):
        if len(self.tips) >= self.policy.tips_per_call_max:
            raise Refused("too_many_tips", f"a call takes at most {self.policy.tips_per_call_max} tips")
        pending = [tip for tip in self.tips if self._tip_pending(tip, now_s)]
        if len(pending) >= self.policy.tips_pending_per_call_max:
            left_s = min(self._tip_lapses_at_s(tip) for tip in pending) - now_s
            raise Refused("tip_pending", "finish the tip you started first (approve it on PayPal), or let it lapse: "
                                         f"unapproved, it is dropped in {_duration_words(left_s)}")

    def _tip_pending(self, tip, now_s):
        return tip["state"] in PENDING_TIPS and now_s < self._tip_lapses_at_s(tip)

    def _tip_lapses_at_s(self, tip):
        # A tip stored before tips had a time counts from the call's start.
        return tip.get("requested_at_s", self.created_at_s) + self.policy.payment_window_s

    def _tip(self, number):
        return self.tips[number - 1] if 0 < number <= len(self.tips) else None

    def tip_order_created(self, number, order_id, approve_url, now_s):
        tip = self._tip(number)
        if tip is None or tip["state"] != "requested" or self.state == ENDED:
            return []
        tip.update(state="awaiting_approval", order_id=order_id, approve_url=approve_url)
        return [Broadcast("tip_ready")]

    def awaits_tip(self, number, order_id):
        """Is capturing this tip's order due? Also for a lapsed tip the payer approved after all:
        their money is taken and the host's, never left approved and uncaptured."""
        tip = self._tip(number)
        return (tip is not None and tip["state"] in ("awaiting_approval", EXPIRED)
                and tip["order_id"] == order_id)

    def tip_captured(self, number, payment, now_s):
        """Booked by the money side already; a repeat changes nothing. A tip captured after the
        call ended, or after it lapsed, is still the host's: it is shown in the call and the
        history."""
        tip = self._tip(number)
        if tip is None or tip["state"] == "captured":
            return []
        tip.update(state="captured", approve_url=None)
        self.note(now_s, "tip_captured", tip=number, **payment)
        return [] if self.state == ENDED else [Broadcast("tip_received")]

    def tip_failed(self, number, reason, now_s):
        tip = self._tip(number)
        if tip is None or tip["state"] == "captured":
            return []
        tip.update(state="failed", approve_url=None)
        self.note(now_s, "tip_failed", tip=number, reason=reason)
        return [] if self.state == ENDED else [Broadcast("tip_failed")]

    def hang_up(self, who, now_s):
        if self.state == ENDED:
            raise Refused("wrong_state", "the call has already ended")
        if self.state == RINGING:
            return self.decline(now_s) if who == HOST else self.cancel(now_s)
        return self.end(now_s, "hung_up", who)

    # Connections -----------------------------------------------------------------------

    def attach(self, who, connection, now_s):
        """A participant's page (re)joins the call, e.g. after a refresh or a dropped socket."""
        if self.state == ENDED:
            raise Refused("wrong_state", "the call has already ended")
        if who == HOST and self.state == RINGING:
            raise Refused("wrong_state", "accept the call first")
        side = self.side(who)
        returning = side.away_since_s is not None
        side.join(connection, now_s)
        self.disarm("grace_" + who)
        self.note(now_s, "joined", side=who)
        return self.reconcile_clock(now_s) + [Broadcast("peer_back" if returning else "joined")]

    def left(self, who, connection, now_s):
        """A participant's call page closed; only their current page counts."""
        side = self.side(who)
        if self.state == ENDED or not side.connected or side.connection != connection:
            return []
        side.leave(now_s)
        self.note(now_s, "left", side=who)
        if self.state == RINGING:
            # The caller's page closed before anyone answered: stop ringing rather than let the
            # host pick up a call nobody is on.
            return self.end(now_s, "cancelled", CALLER)
        effects = self.reconcile_clock(now_s)
        if self._paying_elsewhere(who):
            return effects + [Broadcast("peer_left")]
        return effects + [self.arm("grace_" + who, now_s + self.policy.reconnect_grace_s), Broadcast("peer_left")]

    def _paying_elsewhere(self, who):
        """A caller whose page left while the call waits for their payment is most likely on
        PayPal's page in the same tab: the payment window bounds that, not the grace."""
        return who == CALLER and self.state == AWAITING_PAYMENT

    def grace_deadline_s(self):
        aways = [s.away_since_s for who, s in ((HOST, self.host), (CALLER, self.caller))
                 if s.away_since_s is not None and not self._paying_elsewhere(who)]
        return min(aways) + self.policy.reconnect_grace_s if aways and self.state != ENDED else None

    # Timers ----------------------------------------------------------------------------

    def timer(self, name, token, now_s):
        if self.timers.get(name) != token or self.state == ENDED:
            return []
        if name == "ring":
            self.note(now_s, "missed")
            return self.end(now_s, "missed") + [MissedCall()]
        if name == "payment":
            return self.end(now_s, "payment_timeout")
        if name == "clock":
            return self.clock_expired(now_s)
        if name == "offer":
            return self.end(now_s, "completed")
        if name == "cap":
            return self.end(now_s, "free_cap_reached")
        if name.startswith("grace_"):
            who = name[len("grace_"):]
            if self._paying_elsewhere(who):
                return []  # the payment window decides; a capture restarts the grace
            return self.end(now_s, "away_too_long", who)
        return []

    # Signaling -------------------------------------------------------------------------

    def signal(self, who, connection, frame):
        if connection != self.side(who).connection:
            # An older page still open after a re-attach must not talk over the current one.
            raise Refused("not_call_page", "another page of yours has the call now; reload to take it back")
        if self.state not in MEDIA_STATES:
            raise Refused("media_not_allowed", f"no media while the call is {self.state}")
        if not self.side(self.other(who)).connected:
            raise Refused("peer_away", "the other side is not connected; wait for them to come back")
        return [Relay(self.other(who), frame)]

    def report_quality(self, who, connection, frame, now_s):
        """A side's page measured its connection: kept in that side's timeline (no effects)."""
        if connection != self.side(who).connection:
            raise Refused("not_call_page", "another page of yours has the call now; reload to take it back")
        if self.state not in MEDIA_STATES:
            raise Refused("media_not_allowed", f"no media while the call is {self.state}")
        quality.add(self.quality[who], quality.check(frame), now_s, self.policy.quality_interval_s,
                    self.policy.quality_samples_max)

    # Views -----------------------------------------------------------------------------

    def last_round(self):
        if not self.rounds:
            return None
        return {k: v for k, v in self.rounds[-1].items() if k != "agreed_at_s"}

    def view(self, who, now_s, event):
        """What `who` sees of the call now: the `call_state` frame."""
        def person(side):
            return {"id": side.member_id, "name": side.name, "connected": side.connected}
        running = self.state == RUNNING
        remaining = self.remaining_s(now_s)
        return {
            "type": "call_state", "call_id": self.call_id, "role": who, "state": self.state, "event": event,
            "host": person(self.host), "caller": person(self.caller), "round": self.round,
            "proposal": self.proposal.view(self.call_id) if self.proposal else None,
            "agreed": self.pending.view(self.call_id) if self.pending else self.last_round(),
            "deadline_ms": _ms(self.deadline_s), "media": self.state in MEDIA_STATES,
            "remaining_s": round(remaining, 3), "paused": running and not self.clock_running,
            "ends_at_ms": _ms(now_s + remaining) if self.clock_running else None,
            "grace_deadline_ms": _ms(self.grace_deadline_s()), "end_reason": self.end_reason,
            "ended_by": self.ended_by,
            # Only the payer gets PayPal's approval link.
            "payment": ({"order_id": self.order["order_id"], "approve_url": self.order["approve_url"]}
                        if self.order and who == CALLER else None),
            # The host sees tips once the money is in; the caller also sees where to approve theirs.
            "tips": [{"tip": t["tip"], "amount_cents": t["amount_cents"], "state": t["state"],
                      "approve_url": t["approve_url"] if who == CALLER else None}
                     for t in self.tips if who == CALLER or t["state"] == "captured"],
            "limits": self.limits_view(),
        }

    def limits_view(self):
        """The policy's bounds the page words its forms with (the tip dialog's minimum, hints);
        the server still checks every proposal and tip itself."""
        p = self.policy
        return {"min_price_cents": p.min_price_cents, "max_price_cents": p.max_price_cents,
                "min_length_s": p.min_length_s, "max_length_s": p.max_length_s,
                "free_tier_cap_s": int(p.free_tier_cap_s),
                # A tip is bounded like a price: below it PayPal's fee would eat most of it.
                "tip_min_cents": p.min_price_cents, "tip_max_cents": p.max_price_cents,
                # How often the page sends its connection's quality (a `quality` frame).
                "quality_interval_ms": int(p.quality_interval_s * 1000)}


def _ms(seconds):
    return None if seconds is None else int(seconds * 1000)


def _duration_words(seconds):
    if seconds < 90:
        return f"{max(1, math.ceil(seconds))} s"
    return f"{math.ceil(seconds / 60)} min"
