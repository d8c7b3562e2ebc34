"""The negotiation rules of one round alone: what a host may propose, who may do what, and
what a refusal leaves behind. No actor system, no clock: the time is passed in."""
import dataclasses
import re

import pytest
from hypothesis import given, settings, strategies as st

from rules.negotiation import AGREED, CALLER, DECLINED, EXPIRED, HOST, OPEN, Agreed, Declined, Expired, \
    Negotiation, Proposed, Withdrawn
from rules.terms import FREE, UPGRADED, Limits, Refused, Terms
from interkanect.config import Policy

P = Policy()
T0 = 1_700_000_000.0
DEADLINE_S = T0 + P.negotiation_window_s
CALL_ID = "5f0c0ffee0ddba11c0ffee01"
FEW_SECONDS = settings(max_examples=200, deadline=None)


def limits(tier=UPGRADED, can_charge=True, used_s=0.0):
    cap_left_s = P.free_tier_cap_s - used_s if tier == FREE else float("inf")
    return Limits(tier, can_charge, P.min_price_cents, P.max_price_cents, P.min_length_s, P.max_length_s,
                  cap_left_s)


def open_round(round_number=1, **limit_args):
    return Negotiation(round_number, limits(**limit_args), DEADLINE_S)


def refused(action, *args):
    """Run `action`; it must be refused and leave the negotiation exactly as it was."""
    negotiation = action.__self__
    before = dataclasses.asdict(negotiation)
    with pytest.raises(Refused) as raised:
        action(*args)
    assert dataclasses.asdict(negotiation) == before
    assert raised.value.message  # the participant is told why, not just a code
    return raised.value.code


def violated_rules(limit, price, length_s):
    """Every rule of the product that (price, length) breaks, as the refusal codes that name it."""
    broken = set()
    if price != 0:
        if limit.tier == FREE:
            broken.add("free_tier_price")
        elif not limit.can_charge:
            broken.add("no_payout_email")
        if not P.min_price_cents <= price <= P.max_price_cents:
            broken.add("price_out_of_range")
    if not P.min_length_s <= length_s <= P.max_length_s:
        broken.add("length_out_of_range")
    if limit.tier == FREE and length_s > limit.free_cap_left_s:
        broken.add("free_tier_length")
    return broken


# --- what a host may propose ---------------------------------------------------------------

@pytest.mark.parametrize("price, accepted", [
    (0, True), (1, False), (P.min_price_cents - 1, False), (P.min_price_cents, True), (1500, True),
    (P.max_price_cents, True), (P.max_price_cents + 1, False), (-1, False), (-P.min_price_cents, False)])
def test_a_price_is_zero_or_between_the_minimum_and_the_maximum(price, accepted):
    negotiation = open_round()
    if accepted:
        assert negotiation.propose(HOST, price, 600, T0).terms.price_cents == price
    else:
        assert refused(negotiation.propose, HOST, price, 600, T0) == "price_out_of_range"


@pytest.mark.parametrize("length_s, accepted", [
    (0, False), (59, False), (60, True), (3600, True), (8 * 3600, True), (8 * 3600 + 1, False), (-60, False)])
def test_a_length_is_between_one_minute_and_eight_hours(length_s, accepted):
    negotiation = open_round()
    if accepted:
        assert negotiation.propose(HOST, 1500, length_s, T0).terms.length_s == length_s
    else:
        assert refused(negotiation.propose, HOST, 1500, length_s, T0) == "length_out_of_range"


def test_the_refusal_names_the_bounds_in_dollars_and_hours():
    negotiation = open_round()
    with pytest.raises(Refused) as raised:
        negotiation.propose(HOST, 150, 600, T0)
    assert "$2.00" in raised.value.message and "$5000.00" in raised.value.message
    with pytest.raises(Refused) as raised:
        negotiation.propose(HOST, 1500, 9 * 3600, T0)
    assert "8 hours" in raised.value.message


@pytest.mark.parametrize("price", [True, False, 1500.0, 0.0, "1500", None, [1500]])
def test_a_price_that_is_not_a_whole_number_of_cents_is_refused(price):
    assert refused(open_round().propose, HOST, price, 600, T0) == "invalid_price"


@pytest.mark.parametrize("length_s", [True, 600.0, 600.5, "600", None])
def test_a_length_that_is_not_a_whole_number_of_seconds_is_refused(length_s):
    assert refused(open_round().propose, HOST, 1500, length_s, T0) == "invalid_length"


def test_a_free_host_hosts_free_calls_only():
    negotiation = open_round(tier=FREE, can_charge=False)
    assert refused(negotiation.propose, HOST, P.min_price_cents, 600, T0) == "free_tier_price"
    assert negotiation.propose(HOST, 0, 600, T0).terms.free


def test_a_free_host_gets_at_most_twenty_minutes_minus_what_the_call_already_used():
    fresh = open_round(tier=FREE, can_charge=False)
    assert refused(fresh.propose, HOST, 0, 20 * 60 + 1, T0) == "free_tier_length"
    assert fresh.propose(HOST, 0, 20 * 60, T0).terms.length_s == 20 * 60

    extension = open_round(round_number=2, tier=FREE, can_charge=False, used_s=5 * 60)
    with pytest.raises(Refused) as raised:
        extension.propose(HOST, 0, 15 * 60 + 1, T0)
    assert raised.value.code == "free_tier_length" and "15 more minutes" in raised.value.message
    assert extension.propose(HOST, 0, 15 * 60, T0).terms.length_s == 15 * 60


def test_a_host_without_a_payout_email_cannot_set_a_price_but_can_host_for_free():
    negotiation = open_round(tier=UPGRADED, can_charge=False)
    assert refused(negotiation.propose, HOST, 1500, 600, T0) == "no_payout_email"
    assert negotiation.propose(HOST, 0, 600, T0).terms.free


@FEW_SECONDS
@given(tier=st.sampled_from([(FREE, False), (UPGRADED, False), (UPGRADED, True)]),
       used_s=st.sampled_from([0, 60, 15 * 60, 19 * 60 + 30]),
       price=st.one_of(st.integers(-10, 10 ** 7), st.sampled_from([0, 199, 200, 500_000, 500_001])),
       length_s=st.one_of(st.integers(-10, 10 ** 5), st.sampled_from([59, 60, 300, 1200, 1201, 28800, 28801])))
def test_a_proposal_is_taken_exactly_when_it_breaks_no_rule_and_a_refusal_names_a_broken_one(
        tier, used_s, price, length_s):
    negotiation = open_round(tier=tier[0], can_charge=tier[1], used_s=used_s)
    broken = violated_rules(negotiation.limits, price, length_s)
    if broken:
        assert refused(negotiation.propose, HOST, price, length_s, T0) in broken
    else:
        outcome = negotiation.propose(HOST, price, length_s, T0)
        assert outcome == Proposed(Terms(1, 1, price, length_s, T0))


# --- who may do what, and when --------------------------------------------------------------

def test_only_the_host_proposes():
    negotiation = open_round()
    assert refused(negotiation.propose, CALLER, 1500, 600, T0) == "not_host"


def test_only_the_caller_pays_renegotiates_or_declines():
    negotiation = open_round()
    negotiation.propose(HOST, 1500, 600, T0)
    assert refused(negotiation.pay, HOST, 1, T0) == "not_caller"
    assert refused(negotiation.renegotiate, HOST, T0) == "not_caller"
    assert refused(negotiation.decline, HOST, T0) == "not_caller"
    assert negotiation.state == OPEN


def test_the_caller_pays_for_exactly_the_terms_they_saw():
    negotiation = open_round()
    first = negotiation.propose(HOST, 1500, 600, T0).terms
    second = negotiation.propose(HOST, 3000, 600, T0 + 10).terms
    assert (first.proposal, second.proposal) == (1, 2)
    assert refused(negotiation.pay, CALLER, first.proposal, T0 + 11) == "terms_changed"
    assert negotiation.pay(CALLER, second.proposal, T0 + 12) == Agreed(second)
    assert negotiation.state == AGREED


def test_paying_before_any_terms_or_after_asking_to_renegotiate_is_refused():
    negotiation = open_round()
    assert refused(negotiation.pay, CALLER, 1, T0) == "no_terms"
    assert refused(negotiation.renegotiate, CALLER, T0) == "no_terms"
    negotiation.propose(HOST, 1500, 600, T0)
    assert negotiation.renegotiate(CALLER, T0 + 1) == Withdrawn(1)
    assert refused(negotiation.pay, CALLER, 1, T0 + 2) == "no_terms"
    # The host enters new terms; they get a new number, so the withdrawn one cannot be paid.
    again = negotiation.propose(HOST, 1000, 900, T0 + 3).terms
    assert again.proposal == 2
    assert refused(negotiation.pay, CALLER, 1, T0 + 4) == "terms_changed"
    assert negotiation.pay(CALLER, 2, T0 + 5) == Agreed(again)


def test_the_caller_may_decline_with_or_without_terms_on_the_table():
    assert open_round().decline(CALLER, T0) == Declined(1)
    negotiation = open_round(round_number=3)
    negotiation.propose(HOST, 1500, 600, T0)
    assert negotiation.decline(CALLER, T0 + 1) == Declined(3)
    assert negotiation.state == DECLINED


def test_nothing_is_taken_once_the_window_has_closed():
    negotiation = open_round()
    negotiation.propose(HOST, 1500, 600, T0)
    assert refused(negotiation.propose, HOST, 1500, 600, DEADLINE_S) == "negotiation_closed"
    assert refused(negotiation.pay, CALLER, 1, DEADLINE_S) == "negotiation_closed"
    assert refused(negotiation.renegotiate, CALLER, DEADLINE_S + 1) == "negotiation_closed"
    assert refused(negotiation.decline, CALLER, DEADLINE_S + 1) == "negotiation_closed"


def test_the_window_expires_once_and_only_at_its_deadline():
    negotiation = open_round(round_number=2)
    assert negotiation.expire(DEADLINE_S - 0.001) is None
    assert negotiation.state == OPEN
    assert negotiation.expire(DEADLINE_S) == Expired(2)
    assert negotiation.expire(DEADLINE_S + 1) is None
    assert refused(negotiation.pay, CALLER, 1, DEADLINE_S - 1) == "negotiation_closed"


@pytest.mark.parametrize("close", ["agree", "decline"])
def test_a_closed_round_takes_nothing_more_and_never_expires(close):
    negotiation = open_round()
    negotiation.propose(HOST, 1500, 600, T0)
    if close == "agree":
        negotiation.pay(CALLER, 1, T0 + 1)
    else:
        negotiation.decline(CALLER, T0 + 1)
    assert refused(negotiation.propose, HOST, 2000, 600, T0 + 2) == "negotiation_closed"
    assert refused(negotiation.pay, CALLER, 1, T0 + 2) == "negotiation_closed"
    assert refused(negotiation.decline, CALLER, T0 + 2) == "negotiation_closed"
    assert negotiation.expire(DEADLINE_S) is None


def test_the_fingerprint_is_short_readable_and_changes_with_any_term():
    terms = Terms(1, 1, 1500, 600, T0)
    fingerprint = terms.fingerprint(CALL_ID)
    assert re.fullmatch(r"[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}", fingerprint)
    assert Terms(1, 1, 1500, 600, T0).fingerprint(CALL_ID) == fingerprint
    changed = [Terms(1, 1, 1501, 600, T0), Terms(1, 1, 1500, 660, T0), Terms(2, 1, 1500, 600, T0),
               Terms(1, 1, 1500, 600, T0 + 1)]
    assert all(other.fingerprint(CALL_ID) != fingerprint for other in changed)
    assert terms.fingerprint("5f0c0ffee0ddba11c0ffee02") != fingerprint
    assert terms.view(CALL_ID) == {"round": 1, "proposal": 1, "price_cents": 1500, "length_s": 600,
                                   "fingerprint": fingerprint}


# --- random sequences ----------------------------------------------------------------------

who = st.sampled_from([HOST, CALLER])
actions = st.one_of(
    st.tuples(st.just("propose"), who, st.sampled_from([0, 0, 150, 200, 1500, 500_000, 500_001, 2.5, True]),
              st.sampled_from([30, 60, 600, 1200, 1201, 28_800, 28_801])),
    st.tuples(st.just("pay"), who, st.integers(-1, 1)),
    st.tuples(st.just("renegotiate"), who),
    st.tuples(st.just("decline"), who),
    st.tuples(st.just("expire"),),
)


@FEW_SECONDS
@given(tier=st.sampled_from([(FREE, False), (UPGRADED, False), (UPGRADED, True)]),
       steps=st.lists(st.tuples(actions, st.sampled_from([0, 0.5, 5, 60, 200])), max_size=40))
def test_a_round_ends_at_most_once_and_the_caller_only_ever_agrees_to_terms_the_host_proposed(tier, steps):
    negotiation = open_round(tier=tier[0], can_charge=tier[1])
    now_s, proposed, closing = T0, [], []
    for (action, *args), step_s in steps:
        now_s += step_s
        if action == "pay":
            args[1] = negotiation.proposals_made + args[1]  # the one shown, a stale one, or one not yet made
        before = dataclasses.asdict(negotiation)
        try:
            outcome = getattr(negotiation, action)(*args, now_s)
        except Refused as refusal:
            assert dataclasses.asdict(negotiation) == before, refusal.code
            continue
        if outcome is None:
            assert action == "expire" and dataclasses.asdict(negotiation) == before
            continue
        assert now_s < DEADLINE_S or isinstance(outcome, Expired)
        if isinstance(outcome, Proposed):
            assert not violated_rules(negotiation.limits, outcome.terms.price_cents, outcome.terms.length_s)
            assert outcome.terms.proposal == len(proposed) + 1 and outcome.terms.round == 1
            proposed.append(outcome.terms)
        elif isinstance(outcome, Agreed):
            assert outcome.terms == proposed[-1] and args[1] == proposed[-1].proposal
        if isinstance(outcome, (Agreed, Declined, Expired)):
            closing.append(outcome)
    assert len(closing) <= 1
    final = {Agreed: AGREED, Declined: DECLINED, Expired: EXPIRED}
    assert negotiation.state == (final[type(closing[0])] if closing else OPEN)
