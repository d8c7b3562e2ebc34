"""A member's calls placed one after another, in process (issue 13's "already calling" limit):
a call placed while the last one is being ended waits for that end instead of being refused.
The member object runs as its shard runs it (actors/member.py), on a shard that records what
it is asked to do; the order of the messages is what is tested, so it is chosen here, where
the real system decides it by timing (tests/test_account_limits.py runs the same through it)."""
import types

from actors.member import HELD_CALL_S, Member
from actors.messages import CallOver, Frame, Open, RingRequest
from interkanect.config import Policy, Settings

class RecordingShard:
    """What a member asks of its shard, kept in order."""

    def __init__(self, **policy):
        self.services = types.SimpleNamespace(settings=Settings(policy=Policy(**policy)), followers=None,
                                              mailer="mailer")
        self.done = []

    def push(self, connection, frame):
        self.done.append(("push", frame))

    def to_member(self, member_id, message):
        self.done.append(("to_member", message))

    def wakeupAfter(self, delay_s, payload):
        self.done.append(("wakeup", delay_s, payload))

    def send(self, address, message):
        self.done.append(("send", message))

    def __getattr__(self, name):   # the rest of the shard's face: nothing of it is asked here
        return lambda *args, **kwargs: self.done.append((name, args))

    def rings(self):
        return [m for kind, m, *_ in self.done if kind == "to_member" and isinstance(m, RingRequest)]

    def errors(self):
        return [f["code"] for kind, f, *_ in self.done if kind == "push" and f.get("type") == "error"]


def caller(shard):
    member = Member("caller", shard, (), incarnation=1)
    member.on_event(Open("caller", 1, "gateway", {"name": "Quick Redialer"}))
    return member


def call(member, request_id, host="host"):
    member.on_event(Frame("caller", 1, "gateway", {"type": "call", "id": request_id, "member_id": host}))


def test_a_call_placed_before_the_last_ones_end_reached_the_member_rings_once_it_does():
    shard = RecordingShard(ringing_calls_per_caller_max=1)
    member = caller(shard)
    call(member, 1)
    (first,) = shard.rings()
    call(member, 2)                      # the page heard "ended"; the member has not yet
    assert len(shard.rings()) == 1 and shard.errors() == []
    member.on_message(CallOver(first.call_id))
    assert len(shard.rings()) == 2 and shard.errors() == []


def test_a_call_placed_while_the_last_one_still_rings_is_refused_once_the_hold_is_over():
    shard = RecordingShard(ringing_calls_per_caller_max=1)
    member = caller(shard)
    call(member, 1)
    call(member, 2)
    (_, delay_s, payload), = [d for d in shard.done if d[0] == "wakeup" and d[2][0] == "held_call"]
    assert delay_s == HELD_CALL_S
    call(member, 3)                      # one call is held at most: a third is refused at once
    assert shard.errors() == ["already_calling"]
    member.held_call_timer(payload[3])
    assert shard.errors() == ["already_calling", "already_calling"] and len(shard.rings()) == 1
