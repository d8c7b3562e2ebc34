"""The presence rules alone: no actor system, no clock, random event sequences."""
from hypothesis import given, strategies as st

from rules import presence
from rules.presence import Broadcast, MemberPresence, RequestExit, StartExitTimer, Tell, Welcome

BRIDGES = ["gateway-a", "gateway-b"]
connections = st.tuples(st.sampled_from(BRIDGES), st.integers(1, 4))
events = st.one_of(
    st.tuples(st.just("open"), connections),
    st.tuples(st.just("close"), connections),
    st.tuples(st.just("close_bridge"), st.sampled_from(BRIDGES)),
    st.tuples(st.just("watch"), st.sampled_from(BRIDGES)),
    st.tuples(st.just("unwatch"), st.sampled_from(BRIDGES)),
    st.tuples(st.just("call_started"), st.none()),
    st.tuples(st.just("call_ended"), st.none()),
    st.tuples(st.just("exit_timer"), st.integers(0, 20)),
)


def apply(rules, event):
    name, argument = event
    method = getattr(rules, name)
    return method() if argument is None else method(argument)


@given(st.lists(events, max_size=60))
def test_status_follows_open_pages_and_every_change_is_broadcast_once(sequence):
    rules = MemberPresence("m", exit_grace_s=30)
    for event in sequence:
        before = rules.status
        effects = apply(rules, event)
        broadcasts = [e for e in effects if isinstance(e, Broadcast)]
        assert (rules.status == presence.OFFLINE) == (not rules.connections)
        if rules.status != before:
            assert broadcasts == [Broadcast(rules.status)]
        else:
            assert broadcasts == []


@given(st.lists(events, max_size=60))
def test_the_actor_asks_to_exit_only_when_no_page_is_open_and_its_timer_is_current(sequence):
    rules = MemberPresence("m", exit_grace_s=30)
    timers = []
    for event in sequence:
        if event[0] == "exit_timer" and timers:
            event = ("exit_timer", timers[event[1] % len(timers)])
        effects = apply(rules, event)
        timers += [e.token for e in effects if isinstance(e, StartExitTimer)]
        for effect in effects:
            if isinstance(effect, RequestExit):
                assert not rules.connections
                assert event == ("exit_timer", rules.exit_token)
                assert effect.opens_seen == rules.opens_seen


def test_a_refresh_keeps_the_member_online_and_cancels_the_exit():
    rules = MemberPresence("m", exit_grace_s=30)
    rules.watch("viewers")
    assert rules.open(("g", 1)) == [Welcome(("g", 1), "online"), Broadcast("online")]
    effects = rules.close(("g", 1))
    assert effects == [Broadcast("offline"), StartExitTimer(30, rules.exit_token)]
    stale = rules.exit_token
    assert rules.open(("g", 2)) == [Welcome(("g", 2), "online"), Broadcast("online")]
    assert rules.exit_timer(stale) == []


def test_in_call_shows_red_only_while_a_page_is_open():
    rules = MemberPresence("m", exit_grace_s=30)
    assert rules.call_started() == []  # no page open: still offline
    assert rules.open(("g", 1))[-1] == Broadcast("in_call")
    assert rules.call_ended() == [Broadcast("online")]


def test_a_new_watcher_is_told_the_current_status_and_a_lost_gateway_closes_its_pages():
    rules = MemberPresence("m", exit_grace_s=30)
    rules.open(("a", 1))
    rules.open(("b", 1))
    assert rules.watch("a") == [Tell("a", "online")]
    assert rules.close_bridge("b") == []  # still open on gateway a
    assert rules.close_bridge("a")[0] == Broadcast("offline")
    assert "a" not in rules.watchers
