"""Followers' rules: when a member's return is news, when a follower may be told again, and
what the mail says.

Pure: times are seconds since the epoch, passed in; the followers adapter (actors/followers.py)
reads and writes the database and carries out what these decide.
"""


def returned_after_away(seen, now_s, away_s):
    """Whether a member coming online at `now_s` is back from being away at least `away_s`.

    `seen` is what was last recorded of them: None when nothing was (they never came online
    while they had followers: news), else {"away_since_s": when they last went away, or None
    while they were online as far as we know (their shard restarted under them, so this page
    is the same presence coming back: not news)}."""
    if seen is None:
        return True
    away_since_s = seen.get("away_since_s")
    if away_since_s is None:
        return False
    return now_s - away_since_s >= away_s


def notice_cutoff_s(now_s, interval_s):
    """A follower last told at or before this may be told again (`notice_due`, and the
    adapter's atomic claim, which asks the database the same question)."""
    return now_s - interval_s


def notice_due(notified_at_s, now_s, interval_s):
    """Whether a follower last told at `notified_at_s` (None: never) may be told at `now_s`."""
    return notified_at_s is None or notified_at_s <= notice_cutoff_s(now_s, interval_s)


def member_url(base_url, member_id):
    return f"{base_url}m/{member_id}"


def unfollow_url(base_url, token):
    return f"{base_url}unfollow/{token}"


def online_mail(member_name, member_id, token, base_url, interval_s):
    """(subject, body) of the mail telling a follower with no page open that a member is back."""
    name = member_name or "A member you follow"
    hours = max(1, round(interval_s / 3600))
    often = "a day" if hours == 24 else f"every {hours} hours" if hours > 1 else "an hour"
    return f"{name} is online on interKanect", (
        f"{name}, whom you follow on interKanect, is online now.\n\n"
        f"Their page, to call them while they are: {member_url(base_url, member_id)}\n\n"
        f"We tell you at most once {often} about {name}.\n"
        f"Stop following {name} (one click, no log-in): {unfollow_url(base_url, token)}\n")
