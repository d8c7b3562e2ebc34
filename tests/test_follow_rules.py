"""Followers' rules (rules/follow_rules.py): when a member's return is news, when a follower
may be told again, and the mail's words and links. Pure: times are passed in."""
from hypothesis import given, strategies as st

from rules import follow_rules
from interkanect.config import Policy

AWAY_S, DAY_S = 3600, 86400
NOW_S = 1_800_000_000.0
BASE = "https://ik.example/"


def test_a_member_never_seen_with_followers_is_news():
    assert follow_rules.returned_after_away(None, NOW_S, AWAY_S)


def test_a_member_online_when_last_seen_is_no_news():
    """Their shard restarted under them: the page that attaches again is the same presence."""
    assert not follow_rules.returned_after_away({"away_since_s": None}, NOW_S, AWAY_S)


def test_a_return_is_news_from_the_away_time_on_and_not_a_second_before():
    assert follow_rules.returned_after_away({"away_since_s": NOW_S - AWAY_S}, NOW_S, AWAY_S)
    assert follow_rules.returned_after_away({"away_since_s": NOW_S - 5 * AWAY_S}, NOW_S, AWAY_S)
    assert not follow_rules.returned_after_away({"away_since_s": NOW_S - AWAY_S + 1}, NOW_S, AWAY_S)
    assert not follow_rules.returned_after_away({"away_since_s": NOW_S - 30}, NOW_S, AWAY_S)


def test_a_follower_never_told_is_due_and_one_told_is_due_again_after_the_interval():
    assert follow_rules.notice_due(None, NOW_S, DAY_S)
    assert not follow_rules.notice_due(NOW_S - 60, NOW_S, DAY_S)
    assert not follow_rules.notice_due(NOW_S - DAY_S + 1, NOW_S, DAY_S)
    assert follow_rules.notice_due(NOW_S - DAY_S, NOW_S, DAY_S)


@given(told_s=st.integers(0, 10 * DAY_S), since_s=st.integers(0, 10 * DAY_S))
def test_at_most_one_notice_per_interval_however_the_returns_fall(told_s, since_s):
    """Told at some instant, a follower is due again exactly when the interval has passed."""
    assert follow_rules.notice_due(told_s, told_s + since_s, DAY_S) == (since_s >= DAY_S)


def test_the_policy_defaults_announce_a_return_after_an_hour_at_most_once_a_day():
    policy = Policy()
    assert policy.follow_away_s == 3600
    assert policy.follow_notice_interval_s == 86400
    assert policy.follow_away_s > policy.member_exit_grace_s  # a refresh is never a return


def test_the_mail_names_the_member_links_their_page_and_a_one_click_unfollow():
    subject, body = follow_rules.online_mail("Dr. Ada", "a" * 24, "tok-EN_1", BASE, DAY_S)
    assert subject == "Dr. Ada is online on interKanect"
    assert f"{BASE}m/{'a' * 24}" in body
    assert f"{BASE}unfollow/tok-EN_1" in body
    assert "at most once a day" in body


def test_the_mail_says_how_often_under_another_interval():
    _, body = follow_rules.online_mail("Bo", "b" * 24, "t", BASE, 6 * 3600)
    assert "at most once every 6 hours" in body
