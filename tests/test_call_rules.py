"""The call rules alone, ring to end: scenarios a participant would notice, and invariants over
random event sequences. No actor system, no clock: a small stand-in for the call session
actor runs the round's negotiation rules and delivers timers as time is moved forward.

Not here: "a free host has one call at a time" is the member's rule (actors/member.py) (a free host with
any call it hosts refuses a ring as "busy"), tested with the actors.
"""
import collections
import dataclasses
import heapq

import pytest
from hypothesis import event as note_event, given, settings, strategies as st

import schemas
from rules.call import (AWAITING_PAYMENT, CHATTER_EVENTS, ENDED, EXTENSION_OFFERED, MEDIA_STATES,
                         MONEY_AND_STATE_EVENTS, NEGOTIATING, RINGING, RUNNING, SUMMARISED, AwaitPayment, Broadcast,
                         Call, CallPolicy, CloseNegotiation, Finished, InCall, MissedCall, OpenNegotiation, Relay,
                         RequestTip, RingHostPages, Side, StartTimer)
from actors.call_record import from_document, to_document
from rules.negotiation import CALLER, HOST, Agreed, Declined, Negotiation, Proposed, Withdrawn
from rules.terms import FREE, UPGRADED, Refused
from interkanect.config import Policy

POLICY = CallPolicy.of(Policy())
CALL_ID = "5f0c0ffee0ddba11c0ffee01"
T0 = 1_700_000_000.0
CALLER_PAGE = (CALLER, 1)
HOST_PAGE = (HOST, 1)
PAYMENT = {"order_id": "5O190127TN364715T", "amount_cents": 1500}
FEW_SECONDS = settings(max_examples=200, deadline=None)


# Frames already validated, by shape: the schema constrains types, enums and string patterns,
# never a number's value, so a frame that differs from a valid one only in its numbers is
# valid too. Validating each of the thousands of random frames would take most of a minute.
VALID_SHAPES = set()


def shape(value):
    if isinstance(value, dict):
        return tuple(sorted((key, shape(item)) for key, item in value.items()))
    if isinstance(value, list):
        return tuple(shape(item) for item in value)
    if value is None or isinstance(value, (bool, str)):
        return value
    return type(value).__name__


class Session:
    """What the call session actor does with the rules' effects, minus the actor: it opens and
    closes the round's negotiation, feeds its outcomes back, and delivers every timer it was
    asked for once time passes it (stale ones too: a wakeup cannot be cancelled)."""

    def __init__(self, tier=UPGRADED, can_charge=True, policy=POLICY):
        self.now_s = T0
        self.negotiation = None
        self.timers = []            # every StartTimer asked for, in order
        self.due = []               # heap of (at_s, order, timer) not yet delivered
        self.effects = []           # everything the rules asked for, in order
        self.outcomes = []          # everything the negotiation rules said, in order
        self.awaited = set()        # rounds the money side was asked to take a payment for
        self.captured = set()       # rounds it then said were paid
        host, caller = Side("6a1", "Hana Host"), Side("6c2", "Carl Caller")
        self.call, effects = Call.ring(CALL_ID, host, caller, tier, can_charge, policy, CALLER_PAGE, self.now_s)
        self.take(effects)

    def take(self, effects):
        self.effects += effects
        for effect in effects:
            if isinstance(effect, StartTimer):
                heapq.heappush(self.due, (effect.at_s, len(self.timers), effect))
                self.timers.append(effect)
            elif isinstance(effect, AwaitPayment):
                self.awaited.add(effect.terms.round)
            elif isinstance(effect, OpenNegotiation):
                self.negotiation = Negotiation(effect.round, effect.limits, effect.deadline_s)
            elif isinstance(effect, CloseNegotiation) and self.negotiation and self.negotiation.round == effect.round:
                self.negotiation = None
        return effects

    # Participants and the money side ------------------------------------------------------

    def act(self, method, *args):
        if method == "signal":  # relayed at once: the only rule that takes no time
            who, frame = args
            return self.take(self.call.signal(who, self.call.side(who).connection, frame))
        return self.take(getattr(self.call, method)(*args, self.now_s))

    def frame(self, kind, who, *args):
        """A propose / pay / renegotiate / decline_terms frame, as the session forwards it."""
        self.call.require({NEGOTIATING}, kind)
        method = {"decline_terms": "decline"}.get(kind, kind)
        return self.outcome(getattr(self.negotiation, method)(who, *args, self.now_s))

    def outcome(self, outcome):
        self.outcomes.append(outcome)
        call = self.call
        if isinstance(outcome, Proposed):
            return self.take(call.proposed(outcome.terms, self.now_s))
        if isinstance(outcome, Withdrawn):
            return self.take(call.withdrawn(outcome.round, self.now_s))
        if isinstance(outcome, Agreed):
            return self.take(call.agreed(outcome.terms, self.now_s))
        if isinstance(outcome, Declined):
            return self.take(call.declined(outcome.round, self.now_s))
        return self.take(call.expired(outcome.round, self.now_s))

    def captured_payment(self, round_number):
        """The money side reports a capture (it only captures what it was asked to take)."""
        if round_number in self.awaited:
            self.captured.add(round_number)
        return self.act("payment_captured", round_number, PAYMENT)

    def propose_and_pay(self, price_cents, length_s):
        self.frame("propose", HOST, price_cents, length_s)
        return self.frame("pay", CALLER, self.negotiation.proposals_made)

    # Time -----------------------------------------------------------------------------------

    def wait(self, seconds):
        return self.advance(self.now_s + seconds)

    def advance(self, to_s):
        """Move time to `to_s`, delivering on the way every timer and negotiation deadline due."""
        effects = []
        while True:
            timer_at = self.due[0][0] if self.due else None
            round_at = self.negotiation.deadline_s if self.negotiation and self.negotiation.state == "open" else None
            nexts = [t for t in (timer_at, round_at) if t is not None and t <= to_s]
            if not nexts:
                break
            self.now_s = max(self.now_s, min(nexts))
            if round_at is not None and round_at <= self.now_s and (timer_at is None or round_at <= timer_at):
                effects += self.outcome(self.negotiation.expire(self.now_s))
            else:
                effects += self.deliver(heapq.heappop(self.due)[2])
        self.now_s = max(self.now_s, to_s)
        return effects

    def deliver(self, timer):
        return self.take(self.call.timer(timer.name, timer.token, self.now_s))

    def last_timer(self, name):
        return [t for t in self.timers if t.name == name][-1]

    # What the two pages show ----------------------------------------------------------------

    def view(self, who, event="test"):
        frame = self.call.view(who, self.now_s, event)
        frame["ice_servers"] = []  # added by the actor
        if shape(frame) not in VALID_SHAPES:
            schemas.SERVER.validate(frame)
            VALID_SHAPES.add(shape(frame))
        return frame

    def finished(self):
        return [e for e in self.effects if isinstance(e, Finished)]


def answered(**host):
    session = Session(**host)
    session.wait(5)
    session.act("accept", HOST_PAGE)
    return session


def running(price_cents=0, length_s=600, **host):
    session = answered(**host)
    session.wait(30)
    session.propose_and_pay(price_cents, length_s)
    if price_cents:
        session.wait(20)
        session.captured_payment(session.call.round)
    assert session.call.state == RUNNING
    return session


def in_state(state, **host):
    if state == RINGING:
        return Session(**host)
    if state == NEGOTIATING:
        return answered(**host)
    if state == AWAITING_PAYMENT:
        session = answered(**host)
        session.propose_and_pay(1500, 600)
        return session
    session = running(1500, 600, **host)
    if state == EXTENSION_OFFERED:
        session.wait(600)
    assert session.call.state == state
    return session


def unchanged_refusal(session, method, *args):
    before = dataclasses.asdict(session.call)
    with pytest.raises(Refused) as raised:
        session.act(method, *args)
    assert dataclasses.asdict(session.call) == before
    return raised.value.code


# --- ring --------------------------------------------------------------------------------

def test_a_ring_shows_on_the_host_pages_until_the_host_accepts_then_the_two_negotiate():
    session = Session()
    assert session.effects == [RingHostPages(True), StartTimer("ring", T0 + POLICY.ring_timeout_s, 1),
                               Broadcast("ringing")]
    assert session.view(CALLER)["state"] == RINGING and not session.view(CALLER)["media"]
    session.wait(5)
    effects = session.act("accept", HOST_PAGE)
    assert effects == [RingHostPages(False, "answered"), InCall(True),
                       OpenNegotiation(1, T0 + 5 + POLICY.negotiation_window_s, session.call.limits()),
                       Broadcast("accepted")]
    for who in (HOST, CALLER):
        view = session.view(who)
        assert (view["state"], view["round"], view["media"]) == (NEGOTIATING, 1, True)
        assert view["deadline_ms"] == int((T0 + 5 + POLICY.negotiation_window_s) * 1000)
        assert view["host"]["connected"] and view["caller"]["connected"]


@pytest.mark.parametrize("method, reason, by", [("decline", "declined", HOST), ("cancel", "cancelled", CALLER)])
def test_declining_or_cancelling_the_ring_ends_the_call(method, reason, by):
    session = Session()
    effects = session.act(method)
    assert effects == [RingHostPages(False, reason), Broadcast("ended"), Finished(reason)]
    assert (session.call.state, session.call.end_reason, session.call.ended_by) == (ENDED, reason, by)
    assert session.view(CALLER)["end_reason"] == reason
    assert session.wait(POLICY.ring_timeout_s) == []  # the ring timer, now stale, changes nothing


def test_an_unanswered_ring_is_a_missed_call_and_the_host_is_told():
    session = Session()
    assert session.wait(POLICY.ring_timeout_s - 0.1) == []
    effects = session.wait(0.1)
    assert effects == [RingHostPages(False, "missed"), Broadcast("ended"), Finished("missed"), MissedCall()]
    assert session.call.end_reason == "missed"
    assert unchanged_refusal(session, "accept", HOST_PAGE) == "wrong_state"


def test_accepting_stops_the_ring_timer():
    session = answered()
    assert session.wait(POLICY.ring_timeout_s) == []
    assert session.call.state == NEGOTIATING and MissedCall() not in session.effects


@pytest.mark.parametrize("method, args", [("accept", (HOST_PAGE,)), ("decline", ()), ("cancel", ())])
def test_ring_answers_are_taken_only_while_ringing(method, args):
    session = answered()
    assert unchanged_refusal(session, method, *args) == "wrong_state"


def test_the_host_cannot_attach_before_accepting():
    assert unchanged_refusal(Session(), "attach", HOST, HOST_PAGE) == "wrong_state"


# --- negotiation and payment ---------------------------------------------------------------

def test_proposals_reach_both_views_with_the_same_fingerprint_and_renegotiating_clears_them():
    session = answered()
    assert session.frame("propose", HOST, 1500, 600) == [Broadcast("proposed")]
    host_view, caller_view = session.view(HOST), session.view(CALLER)
    assert host_view["proposal"] == caller_view["proposal"]
    assert host_view["proposal"]["price_cents"] == 1500 and host_view["agreed"] is None
    assert session.frame("renegotiate", CALLER) == [Broadcast("renegotiate")]
    assert session.view(CALLER)["proposal"] is None
    with pytest.raises(Refused) as raised:
        session.frame("propose", CALLER, 0, 600)
    assert raised.value.code == "not_host"


def test_free_terms_start_the_clock_at_once():
    session = answered()
    session.frame("propose", HOST, 0, 600)
    effects = session.frame("pay", CALLER, 1)
    assert effects == [CloseNegotiation(1), StartTimer("clock", session.now_s + 600, 1), Broadcast("running")]
    assert not any(isinstance(e, AwaitPayment) for e in session.effects)
    view = session.view(CALLER)
    assert (view["state"], view["remaining_s"], view["paused"], view["media"]) == (RUNNING, 600, False, True)
    assert view["ends_at_ms"] == int((session.now_s + 600) * 1000)
    assert session.negotiation is None


def test_paid_terms_suspend_the_call_until_the_payment_is_captured():
    session = answered()
    session.frame("propose", HOST, 1500, 600)
    terms = session.negotiation.proposal
    effects = session.frame("pay", CALLER, 1)
    deadline_s = session.now_s + POLICY.payment_window_s
    assert effects == [CloseNegotiation(1), AwaitPayment(terms, deadline_s), StartTimer("payment", deadline_s, 1),
                       Broadcast("awaiting_payment")]
    for who in (HOST, CALLER):
        view = session.view(who)
        assert (view["state"], view["media"], view["remaining_s"]) == (AWAITING_PAYMENT, False, 0)
        assert view["agreed"] == terms.view(CALL_ID)
    with pytest.raises(Refused) as raised:
        session.act("signal", CALLER, {"type": "signal", "sdp": "offer"})
    assert raised.value.code == "media_not_allowed"

    session.wait(30)
    effects = session.act("payment_captured", 1, PAYMENT)
    assert effects == [StartTimer("clock", session.now_s + 600, 1), Broadcast("payment_captured")]
    assert session.call.payments == [dict(PAYMENT, round=1, at_s=session.now_s)]
    assert session.view(HOST)["remaining_s"] == 600 and session.view(HOST)["media"]
    assert session.wait(POLICY.payment_window_s - 30) == []  # the payment timer is stale now


def test_a_repeated_capture_for_the_same_round_adds_no_time():
    session = running(1500, 600)
    session.wait(100)
    before = dataclasses.asdict(session.call)
    assert session.act("payment_captured", 1, PAYMENT) == []
    assert dataclasses.asdict(session.call) == before
    assert session.call.paid_s == 600 and len(session.call.payments) == 1


def test_a_capture_for_another_round_is_ignored():
    session = answered()
    session.propose_and_pay(1500, 600)
    assert session.act("payment_captured", 2, PAYMENT) == []
    assert session.call.state == AWAITING_PAYMENT and session.call.paid_s == 0


def test_a_failed_payment_ends_the_call_and_adds_nobody_time():
    session = answered()
    session.propose_and_pay(1500, 600)
    effects = session.act("payment_failed", 1, "INSTRUMENT_DECLINED")
    assert effects[-2:] == [Broadcast("ended"), Finished("payment_failed")] and InCall(False) in effects
    assert session.call.paid_s == 0 and session.call.payments == []
    assert {"event": "payment_failed", "round": 1, "reason": "INSTRUMENT_DECLINED"}.items() <= \
        session.call.log[-2].items()
    assert session.act("payment_captured", 1, PAYMENT) == []
    assert session.call.paid_s == 0


def test_no_payment_within_the_window_ends_the_call_and_adds_nobody_time():
    session = answered()
    session.propose_and_pay(1500, 600)
    assert session.wait(POLICY.payment_window_s - 1) == []
    effects = session.wait(1)
    assert effects[-1] == Finished("payment_timeout")
    assert session.call.paid_s == 0 and session.view(CALLER)["end_reason"] == "payment_timeout"
    assert session.act("payment_captured", 1, PAYMENT) == []  # too late: the call is over
    assert session.call.paid_s == 0


def test_declining_the_terms_or_letting_the_window_run_out_ends_the_call_unpaid():
    declined = answered()
    declined.frame("propose", HOST, 1500, 600)
    assert declined.frame("decline_terms", CALLER)[-1] == Finished("declined_terms")
    assert declined.call.ended_by == CALLER and declined.call.paid_s == 0

    silent = answered()
    silent.frame("propose", HOST, 1500, 600)
    effects = silent.wait(POLICY.negotiation_window_s)
    assert effects[-1] == Finished("no_agreement") and CloseNegotiation(1) in effects
    assert silent.call.paid_s == 0 and silent.negotiation is None


# --- the clock and extensions ----------------------------------------------------------------

def test_when_time_is_up_the_host_is_offered_an_extension_and_no_ends_the_call_completed():
    session = running(1500, 600)
    assert session.wait(599) == []
    assert session.view(CALLER)["remaining_s"] == 1
    effects = session.wait(1)
    offer_at_s = session.now_s + POLICY.extension_offer_s
    assert effects == [StartTimer("offer", offer_at_s, 1), Broadcast("extension_offer")]
    view = session.view(HOST)
    assert (view["state"], view["remaining_s"], view["media"]) == (EXTENSION_OFFERED, 0, True)
    assert view["deadline_ms"] == int(offer_at_s * 1000) and view["ends_at_ms"] is None
    assert not session.call.clock_running  # time up: nothing more runs until new terms
    assert unchanged_refusal(session, "extend", CALLER, True) == "not_host"
    assert session.act("extend", HOST, False)[-1] == Finished("completed")
    assert session.call.ended_by == HOST


def test_an_unanswered_extension_offer_ends_the_call_completed():
    session = running(0, 600)
    session.wait(600)
    assert session.wait(POLICY.extension_offer_s)[-1] == Finished("completed")


def test_an_extension_is_a_new_round_whose_time_runs_on_its_own():
    session = running(1500, 600)
    session.wait(600)
    session.wait(POLICY.extension_offer_s / 3)  # the host thinks about it
    effects = session.act("extend", HOST, True)
    assert effects == [OpenNegotiation(2, session.now_s + POLICY.negotiation_window_s, session.call.limits()),
                       Broadcast("extension_negotiation")]
    assert session.view(CALLER)["state"] == NEGOTIATING and session.view(CALLER)["round"] == 2
    assert session.wait(POLICY.extension_offer_s) == []  # the old offer timer is stale
    session.propose_and_pay(1000, 300)
    session.wait(10)
    session.act("payment_captured", 2, PAYMENT)
    view = session.view(HOST)
    assert (view["state"], view["round"], view["remaining_s"], view["paused"]) == (RUNNING, 2, 300, False)
    assert view["agreed"]["round"] == 2 and view["agreed"]["price_cents"] == 1000
    assert session.call.paid_s == 900
    assert session.wait(299) == [] and session.view(HOST)["remaining_s"] == 1
    assert session.wait(1)[-1] == Broadcast("extension_offer")


def test_time_spent_deciding_on_an_extension_is_not_billed_to_it():
    session = running(0, 60)
    session.wait(60)
    session.wait(POLICY.extension_offer_s - 1)  # deciding on the extension: not paid time
    session.act("extend", HOST, True)
    session.wait(200)
    session.propose_and_pay(0, 120)
    assert session.view(CALLER)["remaining_s"] == 120
    assert session.last_timer("clock").at_s == session.now_s + 120


def test_a_free_session_ends_at_the_cap_counted_from_the_answer_whatever_its_rounds():
    session = answered(tier=FREE, can_charge=False)
    answered_at_s = session.now_s
    session.wait(4 * 60)  # four minutes of talking terms count against the cap too
    with pytest.raises(Refused) as refused:
        session.frame("propose", HOST, 0, 17 * 60)
    assert refused.value.code == "free_tier_length"
    session.frame("propose", HOST, 0, 16 * 60)
    session.frame("pay", CALLER, session.negotiation.proposal.proposal)
    session.wait(5 * 60)
    session.act("left", CALLER, CALLER_PAGE)  # a minute away: the clock pauses, the cap does not
    session.wait(60)
    session.act("attach", CALLER, CALLER_PAGE)
    effects = session.wait(answered_at_s + 20 * 60 - session.now_s)
    assert effects[-1] == Finished("free_cap_reached")
    assert session.call.log[-1]["unused_paid_s"] == 60


def test_a_free_host_reaching_the_cap_ends_the_call_instead_of_offering_more():
    session = running(0, 20 * 60 - 30, tier=FREE, can_charge=False)  # 30 s went on talking terms
    effects = session.wait(20 * 60 - 30)
    assert effects[-1] == Finished("free_cap_reached")
    assert not any(isinstance(e, Broadcast) and e.event == "extension_offer" for e in effects)


def test_a_free_host_extending_gets_what_is_left_of_the_cap():
    session = running(0, 15 * 60, tier=FREE, can_charge=False)  # answered 30 s before it ran
    session.wait(15 * 60)
    assert session.call.state == EXTENSION_OFFERED
    session.act("extend", HOST, True)
    left_s = 5 * 60 - 30  # the cap counts from the answer, talk included
    assert session.negotiation.limits.free_cap_left_s == 5 * 60
    assert session.negotiation.limits.free_cap_ends_at_s - session.now_s == left_s
    with pytest.raises(Refused) as raised:
        session.frame("propose", HOST, 0, left_s + 1)
    assert raised.value.code == "free_tier_length"
    with pytest.raises(Refused) as raised:
        session.frame("propose", HOST, 200, 60)
    assert raised.value.code == "free_tier_price"
    session.propose_and_pay(0, left_s)
    assert session.wait(left_s)[-1] == Finished("free_cap_reached")
    assert session.call.paid_s == 20 * 60 - 30


def test_a_free_host_with_less_than_a_minute_of_the_cap_left_is_not_offered_an_extension():
    # No term could be agreed for less than the shortest length: offering one would only
    # open a window in which every proposal is refused.
    session = running(0, 20 * 60 - 30, tier=FREE, can_charge=False)
    assert session.wait(20 * 60 - 30)[-1] == Finished("free_cap_reached")


@pytest.mark.parametrize("state", [RINGING, NEGOTIATING, AWAITING_PAYMENT, RUNNING, EXTENSION_OFFERED])
@pytest.mark.parametrize("who", [HOST, CALLER])
def test_either_side_can_hang_up_at_any_time(state, who):
    session = in_state(state)
    session.wait(3)
    effects = session.act("hang_up", who)
    reason = {(RINGING, HOST): "declined", (RINGING, CALLER): "cancelled"}.get((state, who), "hung_up")
    assert effects[-2:] == [Broadcast("ended"), Finished(reason)]
    assert (InCall(False) in effects) == (state != RINGING)
    assert (CloseNegotiation(1) in effects) == (state == NEGOTIATING)
    assert session.call.ended_by == who and not session.call.clock_running
    for side in (HOST, CALLER):
        view = session.view(side)
        assert (view["state"], view["media"], view["end_reason"]) == (ENDED, False, reason)
        assert not view["host"]["connected"] and not view["caller"]["connected"]
    assert unchanged_refusal(session, "hang_up", session.call.other(who)) == "wrong_state"
    assert session.wait(3 * 3600) == []  # every timer left behind is stale
    assert len(session.finished()) == 1


def test_unused_paid_time_is_recorded_when_the_caller_hangs_up_early():
    session = running(1500, 600)
    session.wait(200)
    session.act("hang_up", CALLER)
    ended = session.call.log[-1]
    assert ended["event"] == "ended" and ended["unused_paid_s"] == 400


def test_the_log_both_sides_see_holds_every_round_its_terms_and_its_payment():
    session = running(1500, 600)
    session.wait(600)
    session.act("extend", HOST, True)
    session.propose_and_pay(0, 120)
    session.wait(120)
    session.act("extend", HOST, False)
    call = session.call
    assert [entry["event"] for entry in call.log] == [
        "ringing", "accepted", "proposed", "agreed", "payment_captured", "running", "time_up",
        "extension", "proposed", "agreed", "running", "time_up", "ended"]
    assert [(r["round"], r["price_cents"], r["length_s"]) for r in call.rounds] == [(1, 1500, 600), (2, 0, 120)]
    assert [p["round"] for p in call.payments] == [1]  # the free extension took no payment
    assert call.rounds[0]["fingerprint"] == [e for e in call.log if e["event"] == "agreed"][0]["terms"]["fingerprint"]
    assert call.log[-1]["unused_paid_s"] == 0 and call.paid_s == 720


# --- connections ------------------------------------------------------------------------

def test_a_side_away_pauses_the_clock_and_both_see_the_grace_countdown():
    session = running(1500, 600)
    session.wait(100)
    left_at_s = session.now_s
    effects = session.act("left", HOST, HOST_PAGE)
    assert effects == [StartTimer("grace_host", left_at_s + POLICY.reconnect_grace_s, 1), Broadcast("peer_left")]
    session.wait(90)
    for who in (HOST, CALLER):
        view = session.view(who)
        assert view["grace_deadline_ms"] == int((left_at_s + POLICY.reconnect_grace_s) * 1000)
        assert (view["paused"], view["remaining_s"], view["ends_at_ms"]) == (True, 500, None)
        assert not view["host"]["connected"]
    with pytest.raises(Refused) as raised:
        session.act("signal", CALLER, {"type": "signal", "sdp": "offer"})
    assert raised.value.code == "peer_away"

    effects = session.act("attach", HOST, (HOST, 2))
    assert effects == [StartTimer("clock", session.now_s + 500, 3), Broadcast("peer_back")]
    view = session.view(CALLER)
    assert (view["paused"], view["remaining_s"], view["grace_deadline_ms"]) == (False, 500, None)
    assert session.wait(POLICY.reconnect_grace_s) == []  # the grace timer is stale
    assert session.view(HOST)["remaining_s"] == 500 - POLICY.reconnect_grace_s
    assert session.wait(500 - POLICY.reconnect_grace_s)[-1] == Broadcast("extension_offer")


def test_a_side_away_past_the_grace_ends_the_call_with_the_unused_paid_time_recorded():
    session = running(1500, 600)
    session.wait(240)
    session.act("left", CALLER, CALLER_PAGE)
    assert session.wait(POLICY.reconnect_grace_s - 1) == []
    effects = session.wait(1)
    assert effects[-1] == Finished("away_too_long")
    assert (session.call.end_reason, session.call.ended_by) == ("away_too_long", CALLER)
    ended = session.call.log[-1]
    assert ended["event"] == "ended" and ended["unused_paid_s"] == 360
    # The log keeps who was there for how long: the caller from the ring, the host from accepting.
    assert session.call.caller.connected_time(session.now_s) == 5 + 30 + 20 + 240
    assert session.call.host.connected_time(session.now_s) == 30 + 20 + 240 + POLICY.reconnect_grace_s


def test_only_the_current_page_of_a_side_leaving_counts():
    session = running(0, 600)
    session.wait(10)
    session.act("attach", CALLER, (CALLER, 2))  # a second tab, or a refresh before the old socket closed
    assert session.act("left", CALLER, CALLER_PAGE) == []
    assert session.call.clock_running and session.view(HOST)["grace_deadline_ms"] is None
    assert session.act("left", CALLER, (CALLER, 2))[-1] == Broadcast("peer_left")
    assert session.act("left", CALLER, (CALLER, 2)) == []  # already away


def test_a_side_may_be_away_while_negotiating_or_paying_and_the_clock_waits_for_it():
    session = answered()
    session.frame("propose", HOST, 1500, 600)
    session.frame("pay", CALLER, 1)
    session.act("left", CALLER, CALLER_PAGE)  # off to PayPal in the same tab
    session.wait(30)
    session.act("payment_captured", 1, PAYMENT)
    view = session.view(HOST)
    assert (view["state"], view["paused"], view["remaining_s"]) == (RUNNING, True, 600)
    session.wait(30)
    session.act("attach", CALLER, (CALLER, 2))
    assert session.view(HOST)["paused"] is False and session.view(HOST)["remaining_s"] == 600


def test_stale_timer_tokens_change_nothing():
    session = running(1500, 600)
    first_clock = session.last_timer("clock")
    session.wait(50)
    session.act("left", HOST, HOST_PAGE)
    first_grace = session.last_timer("grace_host")
    session.wait(10)
    session.act("attach", HOST, HOST_PAGE)
    before = dataclasses.asdict(session.call)
    for stale in (first_clock, first_grace, session.timers[0]):  # clock, grace, ring
        assert session.act("timer", stale.name, stale.token) == []
    assert session.act("timer", "payment", session.last_timer("payment").token) == []
    assert session.act("timer", "no_such_timer", 1) == []
    assert dataclasses.asdict(session.call) == before


def test_a_clock_timer_that_wakes_early_sleeps_the_rest():
    session = running(0, 600)
    clock = session.last_timer("clock")
    session.now_s += 599.5
    effects = session.act("timer", "clock", clock.token)
    assert effects == [StartTimer("clock", session.now_s + 0.5, clock.token + 1)]
    assert session.call.state == RUNNING


@pytest.mark.parametrize("state", [RINGING, AWAITING_PAYMENT, ENDED])
def test_signaling_is_refused_outside_the_media_states(state):
    session = in_state(state if state != ENDED else RUNNING)
    if state == ENDED:
        session.act("hang_up", HOST)
    assert unchanged_refusal(session, "signal", CALLER, {"type": "signal"}) == "media_not_allowed"


@pytest.mark.parametrize("state", [NEGOTIATING, RUNNING, EXTENSION_OFFERED])
def test_signaling_is_relayed_to_the_other_side_while_media_flows(state):
    session = in_state(state)
    frame = {"type": "signal", "candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host"}
    assert session.act("signal", HOST, frame) == [Relay(CALLER, frame)]
    assert session.act("signal", CALLER, frame) == [Relay(HOST, frame)]
    # A page that is not the side's call page any more (re-attached elsewhere) is refused.
    stale_page = (CALLER, 99)
    with pytest.raises(Refused) as refused:
        session.call.signal(CALLER, stale_page, frame)
    assert refused.value.code == "not_call_page"


# --- random event sequences ---------------------------------------------------------------

sides = st.sampled_from([HOST, CALLER])
pages = st.integers(1, 3)
waits = st.one_of(st.sampled_from([0, 0.5, 1, 5, 30]), st.sampled_from([59, 61, 119, 121, 299, 301, 601]),
                  st.floats(0, 1500))


def weighted(*choices):
    """One of the (weight, strategy) choices; st.one_of would merge repeated or nested branches
    back into equal odds, and few sequences would then get past the ring."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(pool) - 1).flatmap(lambda i: pool[i])


events = weighted(
    (8, st.tuples(st.just("progress"), st.sampled_from([0, 1500]), st.sampled_from([60, 90, 300, 1200]))),
    (3, st.tuples(st.just("wait"), waits)),
    (2, st.tuples(st.just("fire"), st.integers(0, 60))),
    (1, st.tuples(st.just("outcome"), st.integers(0, 30))),
    (1, st.tuples(st.just("accept"), pages)),
    (2, st.tuples(st.just("attach"), sides, pages)),
    (2, st.tuples(st.just("left"), sides, pages)),
    (1, st.tuples(st.just("signal"), sides)),
    (2, st.tuples(st.just("propose"), sides, st.sampled_from([0, 150, 1500, 500_001]),
                  st.sampled_from([30, 60, 90, 300, 1200, 28_801]))),
    (2, st.tuples(st.just("pay"), sides, st.sampled_from([0, 0, -1, 1]))),
    (1, st.tuples(st.just("renegotiate"), sides)),
    (2, st.tuples(st.just("payment_captured"), st.sampled_from([0, 0, -1, 1]))),
    (1, st.one_of(  # the ways to end a call, together no likelier than one other event
        st.tuples(st.just("decline")),
        st.tuples(st.just("cancel")),
        st.tuples(st.just("hang_up"), sides),
        st.tuples(st.just("decline_terms"), sides),
        st.tuples(st.just("payment_failed"), st.sampled_from([0, -1, 1])),
        st.tuples(st.just("extend"), sides, st.booleans()))),
)
hosts = st.sampled_from([dict(tier=FREE, can_charge=False), dict(tier=UPGRADED, can_charge=True),
                         dict(tier=UPGRADED, can_charge=False)])


def play(session, event):
    """Carry out one random event, as the participants, the money side or time would."""
    kind, *args = event
    call = session.call
    if kind == "progress":
        return progress(session, *args)
    if kind == "wait":
        return session.wait(args[0])
    if kind == "fire":  # a timer delivered (again): current or stale, never before its time
        if not session.timers:
            return []
        timer = session.timers[args[0] % len(session.timers)]
        return session.advance(timer.at_s) + session.deliver(timer)
    if kind == "outcome":  # the round's actor repeats itself, or speaks after the call moved on
        return session.outcome(session.outcomes[args[0] % len(session.outcomes)]) if session.outcomes else []
    if kind == "accept":
        return session.act("accept", (HOST, args[0]))
    if kind in ("attach", "left"):
        return session.act(kind, args[0], (args[0], args[1]))
    if kind == "signal":
        return session.act("signal", args[0], {"type": "signal", "sdp": "v=0"})
    if kind == "pay":
        number = (session.negotiation.proposals_made if session.negotiation else 1) + args[1]
        return session.frame("pay", args[0], number)
    if kind in ("propose", "renegotiate", "decline_terms"):
        return session.frame(kind, *args)
    if kind == "payment_captured":
        return session.captured_payment(call.round + args[0])
    if kind == "payment_failed":
        return session.act(kind, call.round + args[0], "DECLINED")
    return session.act(kind, *args)


def progress(session, price_cents, length_s):
    """The natural next step of the call, so that random sequences also get to payments,
    running clocks and extensions."""
    call = session.call
    away = [who for who in (HOST, CALLER) if call.side(who).away_since_s is not None]
    if call.state == RINGING:
        return session.act("accept", HOST_PAGE)
    if away and call.state != ENDED:
        return session.act("attach", away[0], (away[0], 1))
    if call.state == NEGOTIATING and session.negotiation.proposal is None:
        limits = session.negotiation.limits
        if limits.tier == FREE or not limits.can_charge:
            price_cents = 0
        length_s = max(POLICY.min_length_s, int(min(length_s, limits.free_cap_left_s)))
        return session.frame("propose", HOST, price_cents, length_s)
    if call.state == NEGOTIATING:
        return session.frame("pay", CALLER, session.negotiation.proposals_made)
    if call.state == AWAITING_PAYMENT:
        return session.captured_payment(call.round)
    if call.state == RUNNING:
        return session.wait(call.remaining_s(session.now_s))
    if call.state == EXTENSION_OFFERED:
        return session.act("extend", HOST, True)
    return []


class Ledger:
    """What the test itself saw: which terms were agreed and which rounds began running."""

    def __init__(self):
        self.agreed = {}       # round → Terms the negotiation rules agreed
        self.started = []      # rounds that began running, in order

    def saw(self, session, paid_before_s):
        for outcome in session.outcomes:
            if isinstance(outcome, Agreed):
                self.agreed.setdefault(outcome.terms.round, outcome.terms)
        grown_s = session.call.paid_s - paid_before_s
        if grown_s:
            # Time is added only by starting the current round, by exactly its agreed length.
            round_number = session.call.round
            assert round_number not in self.started
            assert grown_s == self.agreed[round_number].length_s
            self.started.append(round_number)


def check(session, ledger):
    call, now_s = session.call, session.now_s
    # Never running on unpaid terms (unless they are free).
    for round_number in ledger.started:
        terms = ledger.agreed[round_number]
        assert terms.free or round_number in session.captured
    if call.state == RUNNING:
        assert call.round in ledger.started
    assert call.paid_s == sum(ledger.agreed[r].length_s for r in ledger.started)
    # The clock runs only while running with both sides there, never past the paid time.
    if call.clock_running:
        assert call.state == RUNNING and call.host.connected and call.caller.connected
    used_s = call.used_s + (now_s - call.clock_since_s if call.clock_running else 0)
    assert used_s <= call.paid_s + 1e-3
    assert 0 <= call.remaining_s(now_s) <= call.paid_s
    if call.host_tier == FREE or not call.host_can_charge:
        assert all(terms.free for terms in ledger.agreed.values())
    if call.host_tier == FREE:
        assert call.paid_s <= POLICY.free_tier_cap_s
    # Finished exactly once, and exactly when ended.
    assert len(session.finished()) == (1 if call.state == ENDED else 0)
    assert (MissedCall() in session.effects) == (call.end_reason == "missed")
    # Both pages: valid frames that agree with each other.
    host_view, caller_view = session.view(HOST), session.view(CALLER)
    shared = ("state", "round", "proposal", "agreed", "deadline_ms", "media", "remaining_s", "paused",
              "ends_at_ms", "grace_deadline_ms", "end_reason", "host", "caller")
    assert {k: host_view[k] for k in shared} == {k: caller_view[k] for k in shared}
    if host_view["agreed"] is not None:
        agreed = ledger.agreed[host_view["agreed"]["round"]]
        assert host_view["agreed"] == agreed.view(CALL_ID)
    # A caller away while the call waits for their payment is at PayPal: no grace runs for them.
    someone_away = call.state != ENDED and any(
        side.away_since_s is not None and not (who == CALLER and call.state == AWAITING_PAYMENT)
        for who, side in ((HOST, call.host), (CALLER, call.caller)))
    assert (host_view["grace_deadline_ms"] is not None) == someone_away
    assert host_view["media"] == (call.state in MEDIA_STATES)
    assert host_view["paused"] == (call.state == RUNNING and not call.clock_running)
    # Every deadline the pages count down to has a live timer (or the open round) behind it:
    # no call is left waiting for something that will never come.
    if call.state == ENDED:
        return
    expected = {RINGING: "ring", AWAITING_PAYMENT: "payment", EXTENSION_OFFERED: "offer"}.get(call.state)
    if expected:
        assert live_timer(session, expected).at_s == call.deadline_s
    if call.state == NEGOTIATING:
        assert session.negotiation.state == "open" and session.negotiation.deadline_s == call.deadline_s
    if call.clock_running:
        assert abs(live_timer(session, "clock").at_s - (now_s + call.remaining_s(now_s))) < 1e-3
    for who in (HOST, CALLER):
        away_since_s = call.side(who).away_since_s
        if away_since_s is not None and not (who == CALLER and call.state == AWAITING_PAYMENT):
            assert live_timer(session, "grace_" + who).at_s == away_since_s + POLICY.reconnect_grace_s


def live_timer(session, name):
    [timer] = [t for t in session.timers if t.name == name and t.token == session.call.timers.get(name)]
    return timer


@FEW_SECONDS
@given(host=hosts, answer_at_once=st.booleans(), sequence=st.lists(events, min_size=20, max_size=80))
def test_random_sequences_keep_every_rule_of_the_call(host, answer_at_once, sequence):
    session, ledger = Session(**host), Ledger()
    if answer_at_once:
        session.act("accept", HOST_PAGE)
    check(session, ledger)
    for event in sequence:
        was_ended = session.call.state == ENDED
        before = repr(session.call)  # every field, nested; much cheaper than dataclasses.asdict
        paid_before_s = session.call.paid_s
        try:
            effects = play(session, event)
        except Refused:
            assert repr(session.call) == before, event
            effects = []
        if was_ended:  # once over, nothing changes and nothing happens
            assert effects == [] and repr(session.call) == before, event
        ledger.saw(session, paid_before_s)
        check(session, ledger)
    # Shown by --hypothesis-show-statistics: how far the sequences got.
    note_event(f"rounds started: {len(ledger.started)}")
    note_event(f"end: {session.call.end_reason}")


def test_the_callers_page_closing_while_ringing_cancels_the_call():
    session = Session()
    effects = session.act("left", CALLER, CALLER_PAGE)
    assert effects[-1] == Finished("cancelled") and RingHostPages(False, "cancelled") in effects
    assert session.call.ended_by == CALLER


def test_a_tip_is_its_own_payment_and_never_suspends_the_call():
    session = running(1500, 600)
    with pytest.raises(Refused) as refused:
        session.call.tip(HOST, 500, session.now_s)
    assert refused.value.code == "not_caller"
    assert session.act("tip", CALLER, 500) == [RequestTip(1, 500)]
    assert session.call.state == RUNNING and session.call.clock_running
    assert session.act("tip_order_created", 1, "ORDER-T1", "https://paypal.example/approve") == \
        [Broadcast("tip_ready")]
    assert session.view(CALLER)["tips"][0]["approve_url"] and session.view(HOST)["tips"] == []
    assert session.call.awaits_tip(1, "ORDER-T1") and not session.call.awaits_tip(1, "OTHER")
    assert session.act("tip_captured", 1, {"capture_id": "T1"}) == [Broadcast("tip_received")]
    assert session.act("tip_captured", 1, {"capture_id": "T1"}) == []  # told twice: once
    assert session.view(HOST)["tips"] == [{"tip": 1, "amount_cents": 500, "state": "captured", "approve_url": None}]


def test_free_hosts_take_no_tips():
    session = running(0, 600, tier=FREE, can_charge=False)
    with pytest.raises(Refused) as refused:
        session.call.tip(CALLER, 500, session.now_s)
    assert refused.value.code == "no_tips"


def test_a_caller_off_to_paypal_in_the_same_tab_is_bounded_by_the_payment_window_not_the_grace():
    session = answered()
    session.wait(10)
    session.propose_and_pay(1500, 600)
    assert session.call.state == AWAITING_PAYMENT
    effects = session.act("left", CALLER, CALLER_PAGE)  # the tab went to PayPal
    assert not any(isinstance(e, StartTimer) and e.name == "grace_caller" for e in effects)
    assert session.view(HOST)["grace_deadline_ms"] is None
    session.wait(POLICY.reconnect_grace_s + 60)  # longer than the grace: still waiting for payment
    assert session.call.state == AWAITING_PAYMENT
    effects = session.captured_payment(session.call.round)
    grace = session.last_timer("grace_caller")
    assert grace.at_s == session.now_s + POLICY.reconnect_grace_s  # back from PayPal: the grace starts now
    assert session.view(HOST)["paused"]
    session.act("attach", CALLER, CALLER_PAGE)
    assert session.view(HOST)["paused"] is False and session.call.clock_running


# --- bounded: tips and the stored log ----------------------------------------------------------

APPROVE_URL = "https://paypal.example/approve"


def tipping(**policy):
    """A long running paid call whose caller can tip, under the test policy changed by `policy`."""
    return running(1500, 3600, policy=dataclasses.replace(POLICY, **policy))


def ready_tip(session, number, amount_cents=500):
    """The caller starts a tip and PayPal's order for it is made: it awaits their approval."""
    assert session.act("tip", CALLER, amount_cents) == [RequestTip(number, amount_cents)]
    session.act("tip_order_created", number, f"ORDER-T{number}", APPROVE_URL)


def tip_states(session):
    return [(tip["tip"], tip["state"]) for tip in session.view(CALLER)["tips"]]


def test_a_second_tip_waits_until_the_first_is_captured_or_fails():
    session = tipping()
    session.act("tip", CALLER, 500)
    assert unchanged_refusal(session, "tip", CALLER, 700) == "tip_pending"   # PayPal is making its order
    session.act("tip_order_created", 1, "ORDER-T1", APPROVE_URL)
    assert unchanged_refusal(session, "tip", CALLER, 700) == "tip_pending"   # awaiting the caller's approval
    with pytest.raises(Refused) as refused:
        session.call.tip(CALLER, 700, session.now_s)
    assert refused.value.message.endswith("or let it lapse: unapproved, it is dropped in 10 min")
    session.act("tip_captured", 1, {"capture_id": "T1", "amount_cents": 500})
    assert session.act("tip", CALLER, 700) == [RequestTip(2, 700)]
    session.act("tip_failed", 2, "DECLINED")
    assert session.act("tip", CALLER, 900) == [RequestTip(3, 900)]
    assert tip_states(session) == [(1, "captured"), (2, "failed"), (3, "requested")]


def test_a_tip_not_approved_within_the_payment_window_lapses_when_the_caller_starts_another():
    session = tipping()
    ready_tip(session, 1)
    session.wait(POLICY.payment_window_s - 1)
    assert unchanged_refusal(session, "tip", CALLER, 700) == "tip_pending"
    session.wait(1)
    assert session.act("tip", CALLER, 700) == [RequestTip(2, 700)]
    assert tip_states(session) == [(1, "expired"), (2, "requested")]
    assert session.view(CALLER)["tips"][0]["approve_url"] is None   # no longer offered for approval
    assert session.view(HOST)["tips"] == []


def test_a_lapsed_tip_the_caller_approves_after_all_is_captured_and_shown_to_the_host():
    session = tipping()
    ready_tip(session, 1)
    session.wait(POLICY.payment_window_s)
    session.act("tip", CALLER, 700)
    assert tip_states(session) == [(1, "expired"), (2, "requested")]
    # The payer approved on PayPal's page still open: the money is taken, not left approved.
    assert session.call.awaits_tip(1, "ORDER-T1") and not session.call.awaits_tip(1, "OTHER")
    assert session.act("tip_captured", 1, {"capture_id": "T1", "amount_cents": 500}) == [Broadcast("tip_received")]
    assert session.view(HOST)["tips"] == [{"tip": 1, "amount_cents": 500, "state": "captured", "approve_url": None}]
    assert session.call.log[-1] == {"at_s": session.now_s, "event": "tip_captured", "tip": 1, "capture_id": "T1",
                                    "amount_cents": 500}
    # A tip that lapsed before PayPal made its order was never offered: no order of it is taken.
    session.wait(POLICY.payment_window_s)
    session.act("tip", CALLER, 900)
    assert session.act("tip_order_created", 2, "ORDER-T2", APPROVE_URL) == []
    assert not session.call.awaits_tip(2, "ORDER-T2")
    assert tip_states(session) == [(1, "captured"), (2, "expired"), (3, "requested")]


def test_a_call_takes_at_most_tips_per_call_max_tips():
    session = tipping(tips_per_call_max=3)
    for number in (1, 2, 3):
        session.act("tip", CALLER, 500)
        session.act("tip_failed", number, "DECLINED")
    assert unchanged_refusal(session, "tip", CALLER, 500) == "too_many_tips"


def test_a_call_stored_before_the_tip_and_log_limits_loads_with_the_products_limits():
    session = tipping()
    ready_tip(session, 1)
    document = to_document(session.call, session.now_s)
    for name in ("tips_pending_per_call_max", "tips_per_call_max", "call_log_max_entries"):
        del document["rules"]["policy"][name]
    del document["rules"]["tips"][0]["requested_at_s"]
    call = from_document(document)
    assert call.policy == POLICY
    # Its tip has no time: it counts from the call's start, T0, not from 55 s later.
    with pytest.raises(Refused) as refused:
        call.tip(CALLER, 700, T0 + POLICY.payment_window_s - 1)
    assert refused.value.code == "tip_pending"
    assert call.tip(CALLER, 700, T0 + POLICY.payment_window_s) == [RequestTip(2, 700)]
    assert call.tips[0]["state"] == "expired"


def test_past_its_cap_the_log_counts_chatter_in_one_summary_and_keeps_every_money_and_state_change():
    session = tipping(call_log_max_entries=12)
    assert [entry["event"] for entry in session.call.log] == [
        "ringing", "accepted", "proposed", "agreed", "payment_captured", "running"]
    times = []
    for _ in range(10):  # the caller's page reloaded over and over
        session.wait(1)
        session.act("left", CALLER, CALLER_PAGE)
        session.act("attach", CALLER, CALLER_PAGE)
        times.append(session.now_s)
    ready_tip(session, 1)
    session.act("tip_captured", 1, {"capture_id": "T1", "amount_cents": 500})
    session.wait(1)
    session.act("attach", HOST, HOST_PAGE)
    last_s = session.now_s
    session.act("hang_up", HOST)
    log = session.call.log
    # Chatter is listed while there is room for it and the summary: 11 entries, then the summary.
    assert [entry["event"] for entry in log] == [
        "ringing", "accepted", "proposed", "agreed", "payment_captured", "running",
        "left", "joined", "left", "joined", "left", SUMMARISED, "tip_captured", "ended"]
    assert log[11] == {"at_s": times[2], "event": SUMMARISED, "counts": {"joined": 9, "left": 7, "tip_requested": 1},
                       "until_s": last_s}
    assert session.call.tips[0]["state"] == "captured" and log[-1]["reason"] == "hung_up"


def check_bounded_log(bounded, full, cap):
    """`bounded` is `full` (the same call's log with no cap) with the chatter past the cap counted in
    one summary; every money and state change is in both."""
    assert {entry["event"] for entry in full} <= MONEY_AND_STATE_EVENTS | CHATTER_EVENTS
    assert [e for e in bounded if e["event"] in MONEY_AND_STATE_EVENTS] == \
        [e for e in full if e["event"] in MONEY_AND_STATE_EVENTS]
    listed = [e for e in bounded if e["event"] in CHATTER_EVENTS]
    chatter = [e for e in full if e["event"] in CHATTER_EVENTS]
    assert listed == chatter[:len(listed)]
    # Listed only while the log had room for it and the summary.
    assert all(index < cap - 1 for index, e in enumerate(bounded) if e["event"] in CHATTER_EVENTS)
    summaries = [index for index, e in enumerate(bounded) if e["event"] == SUMMARISED]
    omitted = chatter[len(listed):]
    if not omitted:
        assert bounded == full
        return
    [at] = summaries
    assert bounded[at] == {"at_s": omitted[0]["at_s"], "event": SUMMARISED,
                           "counts": dict(collections.Counter(e["event"] for e in omitted)),
                           "until_s": omitted[-1]["at_s"]}
    assert all(e["event"] in MONEY_AND_STATE_EVENTS for e in bounded[at + 1:])


@FEW_SECONDS
@given(cap=st.integers(7, 40), sequence=st.lists(st.tuples(st.sampled_from(["attach", "left"]), sides, pages),
                                                 max_size=120))
def test_any_attaches_and_drops_keep_the_log_within_its_cap_and_every_money_change(cap, sequence):
    session, full = tipping(call_log_max_entries=cap), tipping(call_log_max_entries=10**9)
    for kind, who, page in sequence:
        for each in (session, full):
            each.act(kind, who, (who, page))
        assert len(session.call.log) <= cap
    for each in (session, full):
        each.act("hang_up", CALLER)
    assert session.call.log[-1]["event"] == "ended"
    check_bounded_log(session.call.log, full.call.log, cap)


tip_events = st.one_of(
    st.tuples(st.just("tip"), st.just(CALLER), st.sampled_from([500, 700])),
    st.tuples(st.sampled_from(["tip_ready", "tip_captured", "tip_failed"]), st.integers(1, 4)))


def play_with_tips(session, event):
    kind, *args = event
    if kind == "tip_ready":
        return session.act("tip_order_created", args[0], f"ORDER-T{args[0]}", APPROVE_URL)
    if kind == "tip_captured":
        return session.act("tip_captured", args[0], {"capture_id": f"T{args[0]}", "amount_cents": 500})
    if kind == "tip_failed":
        return session.act("tip_failed", args[0], "DECLINED")
    return play(session, event)


@FEW_SECONDS
@given(host=hosts, cap=st.integers(1, 16),
       sequence=st.lists(weighted((3, events), (2, tip_events)), min_size=20, max_size=80))
def test_a_capped_log_changes_nothing_else_the_call_does_and_loses_no_money_change(host, cap, sequence):
    session = Session(policy=dataclasses.replace(POLICY, call_log_max_entries=cap), **host)
    full = Session(policy=dataclasses.replace(POLICY, call_log_max_entries=10**9), **host)
    for each in (session, full):  # answered at once: more of the sequence is spent in the call
        each.act("accept", HOST_PAGE)
    for event in sequence:
        outcomes = []
        for each in (session, full):
            try:
                outcomes.append(play_with_tips(each, event))
            except Refused as refused:
                outcomes.append(refused.code)
        assert outcomes[0] == outcomes[1], event
        check_bounded_log(session.call.log, full.call.log, cap)
    note_event(f"summarised: {any(entry['event'] == SUMMARISED for entry in session.call.log)}")
    note_event(f"tips captured: {sum(tip['state'] == 'captured' for tip in session.call.tips)}")


def test_a_stored_calls_default_limits_are_the_policys_defaults():
    import dataclasses
    from interkanect.config import Policy
    for field in dataclasses.fields(CallPolicy):
        if field.default is not dataclasses.MISSING:
            assert field.default == getattr(Policy, field.name), field.name
