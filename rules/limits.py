"""How much work one account may cause a member: rings a host takes a minute, missed-call mails.

Pure: each method takes the time and answers what to do; a member (actors/member.py) keeps one
of each and carries the answer out. Without these, one caller could ring a host without end
(each ring a call and a "missed call" mail) and stall the host's shard and inbox.
"""
import dataclasses
from collections import deque

RING_WINDOW_S = 60  # the policy counts rings per host per minute
# A digest names this many callers, then says how many more.
DIGEST_NAMES_MAX = 20


@dataclasses.dataclass
class RingWindow:
    """The rings a host took in the last minute, at most `per_minute` (policy rings_per_host_per_minute)."""
    per_minute: int
    rings_s: deque = dataclasses.field(default_factory=deque)

    def admit(self, now_s):
        """True (and counted) if one more ring fits in the last minute."""
        while self.rings_s and self.rings_s[0] <= now_s - RING_WINDOW_S:
            self.rings_s.popleft()
        if len(self.rings_s) >= self.per_minute:
            return False
        self.rings_s.append(now_s)
        return True


@dataclasses.dataclass(frozen=True)
class MailNow:
    """Mail the host about these missed calls (callers' names; `more` not named)."""
    callers: tuple
    more: int = 0


@dataclasses.dataclass(frozen=True)
class DigestAt:
    """Missed calls are held: mail them at `at_s` (or when the member goes, if sooner)."""
    at_s: float


@dataclasses.dataclass
class MissedCallMails:
    """At most one missed-call mail per `interval_s` (policy missed_call_mail_interval_s); the
    calls missed meanwhile go in one digest at the end of the interval."""
    interval_s: float
    last_sent_s: float = None
    held: list = dataclasses.field(default_factory=list)  # callers' names, at most DIGEST_NAMES_MAX
    held_more: int = 0                                     # held calls past those names

    def missed(self, caller_name, now_s):
        if self.last_sent_s is None or now_s - self.last_sent_s >= self.interval_s:
            self.hold(caller_name)
            return [self.release(now_s)]
        self.hold(caller_name)
        first_held = len(self.held) + self.held_more == 1
        return [DigestAt(self.last_sent_s + self.interval_s)] if first_held else []

    def digest(self, now_s):
        """The digest timer fired, or the member is going: mail what is held, if anything."""
        return [self.release(now_s)] if self.held or self.held_more else []

    def hold(self, caller_name):
        if len(self.held) < DIGEST_NAMES_MAX:
            self.held.append(caller_name)
        else:
            self.held_more += 1

    def release(self, now_s):
        mail = MailNow(tuple(self.held), self.held_more)
        self.last_sent_s, self.held, self.held_more = now_s, [], 0
        return mail
