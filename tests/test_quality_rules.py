"""Connection quality as evidence, the rules alone (rules/quality.py and the call's side of
it): what a sample may say, how often, and that a timeline stays bounded without hiding a drop."""
import pytest
from hypothesis import given, settings, strategies as st

from rules import quality
from rules.call import RUNNING
from actors.call_record import from_document, to_document
from rules.negotiation import CALLER, HOST
from rules.terms import Refused
from tests.test_call_rules import CALLER_PAGE, HOST_PAGE, Session

GOOD = {"rtt_ms": 42.25, "loss_pct": 0, "kbps": 1800, "freezes": 0, "relayed": False}


def running_call():
    session = Session()
    session.wait(1)
    session.act("accept", HOST_PAGE)
    session.propose_and_pay(0, 600)   # a free round: running at once
    assert session.call.state == RUNNING
    return session


def test_a_sample_is_kept_with_the_servers_time_and_rounded():
    session = running_call()
    session.call.report_quality(CALLER, CALLER_PAGE, dict(GOOD, at_s=1), session.now_s)
    [sample] = session.call.quality[CALLER]
    assert sample == {"rtt_ms": 42.2, "loss_pct": 0, "kbps": 1800, "freezes": 0, "relayed": False,
                      "at_s": round(session.now_s, 3), "until_s": round(session.now_s, 3), "n": 1}
    assert session.call.quality[HOST] == []


@pytest.mark.parametrize("field, value", [("rtt_ms", -1), ("rtt_ms", 60_001), ("loss_pct", 101), ("kbps", "fast"),
                                          ("freezes", True), ("relayed", None), ("relayed", 1)])
def test_a_sample_out_of_bounds_is_refused_and_changes_nothing(field, value):
    session = running_call()
    with pytest.raises(Refused) as refused:
        session.call.report_quality(HOST, HOST_PAGE, dict(GOOD, **{field: value}), session.now_s)
    assert refused.value.code == "invalid_quality" and field in refused.value.message
    assert session.call.quality == {HOST: [], CALLER: []}


def test_a_measure_the_browser_could_not_take_is_null():
    session = running_call()
    session.call.report_quality(HOST, HOST_PAGE, dict(GOOD, rtt_ms=None, freezes=None), session.now_s)
    assert session.call.quality[HOST][0]["rtt_ms"] is None


def test_samples_faster_than_half_the_interval_are_refused():
    session = running_call()
    interval = session.call.policy.quality_interval_s
    session.call.report_quality(HOST, HOST_PAGE, GOOD, session.now_s)
    with pytest.raises(Refused) as refused:
        session.call.report_quality(HOST, HOST_PAGE, GOOD, session.now_s + interval / 2 - 0.01)
    assert refused.value.code == "quality_too_often"
    session.call.report_quality(HOST, HOST_PAGE, GOOD, session.now_s + interval / 2)
    session.call.report_quality(CALLER, CALLER_PAGE, GOOD, session.now_s)  # each side its own pace
    assert [len(session.call.quality[who]) for who in (HOST, CALLER)] == [2, 1]


def test_only_the_sides_current_page_and_only_while_media_flows():
    session = Session()
    with pytest.raises(Refused) as refused:
        session.call.report_quality(CALLER, CALLER_PAGE, GOOD, session.now_s)
    assert refused.value.code == "media_not_allowed"   # still ringing
    session = running_call()
    with pytest.raises(Refused) as refused:
        session.call.report_quality(CALLER, (CALLER, 2), GOOD, session.now_s)
    assert refused.value.code == "not_call_page"


def test_a_full_timeline_halves_its_resolution_keeping_the_worst_of_each_pair():
    timeline, samples_max = [], 8
    for i in range(7):
        quality.add(timeline, dict(GOOD, rtt_ms=10 + i, kbps=1000 - i, freezes=1), 100 + i, 1, samples_max)
    assert len(timeline) == 7
    quality.add(timeline, dict(GOOD, loss_pct=35, kbps=None, relayed=True, freezes=None), 107, 1, samples_max)
    assert len(timeline) == 4
    assert [s["n"] for s in timeline] == [2, 2, 2, 2]
    assert [(s["at_s"], s["until_s"]) for s in timeline] == [(100, 101), (102, 103), (104, 105), (106, 107)]
    assert timeline[0]["rtt_ms"] == 11 and timeline[0]["kbps"] == 999 and timeline[0]["freezes"] == 2
    assert timeline[-1]["loss_pct"] == 35 and timeline[-1]["relayed"] is True
    assert timeline[-1]["kbps"] == 994 and timeline[-1]["freezes"] == 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 60_000), st.floats(0, 100)), min_size=1, max_size=400))
def test_any_number_of_samples_stays_bounded_and_no_drop_is_lost(measures):
    timeline, samples_max = [], 16
    for i, (rtt, loss) in enumerate(measures):
        quality.add(timeline, quality.check(dict(GOOD, rtt_ms=rtt, loss_pct=loss)), 1000 + i * 5, 5, samples_max)
    assert len(timeline) < samples_max
    assert sum(s["n"] for s in timeline) == len(measures)
    assert max(s["loss_pct"] for s in timeline) == round(max(loss for _, loss in measures), 1)
    assert max(s["rtt_ms"] for s in timeline) == round(max(rtt for rtt, _ in measures), 1)
    assert all(a["until_s"] < b["at_s"] for a, b in zip(timeline, timeline[1:]))


def test_the_timelines_are_stored_with_the_call_and_come_back():
    session = running_call()
    session.call.report_quality(HOST, HOST_PAGE, GOOD, session.now_s)
    document = to_document(session.call, session.now_s)
    assert document["quality"][HOST][0]["kbps"] == 1800 and "quality" not in document["rules"]
    assert from_document(document).quality == session.call.quality
    del document["quality"]   # stored before quality timelines existed
    assert from_document(document).quality == {HOST: [], CALLER: []}
