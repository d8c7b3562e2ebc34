"""The pure limits on one account's work (rules/limits.py, presence's page limit): time is passed in."""
from hypothesis import given, strategies as st

from rules.limits import DIGEST_NAMES_MAX, DigestAt, MailNow, MissedCallMails, RingWindow
from rules.presence import MemberPresence, TooManyPages, Welcome

T0 = 1_700_000_000.0


def test_a_ring_window_admits_per_minute_rings_and_frees_a_place_a_minute_after_each():
    window = RingWindow(per_minute=2)
    assert window.admit(T0) and window.admit(T0 + 10)
    assert not window.admit(T0 + 59.9)
    assert window.admit(T0 + 60)       # the first ring left the window
    assert not window.admit(T0 + 69)
    assert window.admit(T0 + 70)


@given(st.lists(st.floats(min_value=0, max_value=600), max_size=200), st.integers(min_value=1, max_value=20))
def test_no_minute_ever_holds_more_admitted_rings_than_the_limit(offsets, per_minute):
    window, admitted = RingWindow(per_minute), []
    for offset in sorted(offsets):
        if window.admit(T0 + offset):
            admitted.append(offset)
    for start in admitted:
        assert len([t for t in admitted if start <= t < start + 60]) <= per_minute


def test_the_first_missed_call_is_mailed_at_once_and_the_next_ones_wait_for_one_digest():
    mails = MissedCallMails(interval_s=900)
    assert mails.missed("Ann", T0) == [MailNow(("Ann",))]
    assert mails.missed("Bob", T0 + 5) == [DigestAt(T0 + 900)]
    assert mails.missed("Cy", T0 + 6) == []             # the digest timer is armed already
    assert mails.digest(T0 + 900) == [MailNow(("Bob", "Cy"))]
    assert mails.digest(T0 + 901) == []                 # nothing held: no mail
    assert mails.missed("Dee", T0 + 1000) == [DigestAt(T0 + 1800)]
    assert mails.missed("Eve", T0 + 1801) == [MailNow(("Dee", "Eve"))]  # the interval is over: at once


def test_a_digest_names_a_bounded_number_of_callers_and_counts_the_rest():
    mails = MissedCallMails(interval_s=900)
    mails.missed("first", T0)
    for n in range(DIGEST_NAMES_MAX + 7):
        mails.missed(f"caller {n}", T0 + 1 + n)
    [digest] = mails.digest(T0 + 900)
    assert len(digest.callers) == DIGEST_NAMES_MAX and digest.more == 7


def test_a_member_past_the_page_limit_is_refused_and_nothing_changes():
    rules = MemberPresence("m", exit_grace_s=30, max_connections=2)
    rules.open(("g", 1))
    rules.open(("g", 2))
    assert rules.open(("g", 3)) == [TooManyPages(("g", 3), 2)]
    assert rules.connections == {("g", 1), ("g", 2)}
    rules.close(("g", 1))
    assert isinstance(rules.open(("g", 3))[0], Welcome)
