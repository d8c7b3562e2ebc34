"""One negotiation round: the host proposes terms, the caller pays, declines or asks to
renegotiate, all before the window closes.

Pure: methods take the time and return what happened, or raise terms.Refused.
"""
import dataclasses

from rules.terms import Limits, Refused, Terms

HOST = "host"
CALLER = "caller"

OPEN = "open"
AGREED = "agreed"
DECLINED = "declined"
EXPIRED = "expired"


@dataclasses.dataclass(frozen=True)
class Proposed:
    terms: Terms


@dataclasses.dataclass(frozen=True)
class Withdrawn:
    """The caller asked to renegotiate: back to talking, the host may propose again."""
    round: int


@dataclasses.dataclass(frozen=True)
class Agreed:
    terms: Terms


@dataclasses.dataclass(frozen=True)
class Declined:
    round: int


@dataclasses.dataclass(frozen=True)
class Expired:
    round: int


@dataclasses.dataclass
class Negotiation:
    round: int
    limits: Limits
    deadline_s: float
    state: str = OPEN
    proposal: Terms = None
    proposals_made: int = 0

    def _require(self, who, role, action, now_s):
        if self.state != OPEN:
            raise Refused("negotiation_closed", f"cannot {action}: this negotiation is {self.state}")
        if now_s >= self.deadline_s:
            raise Refused("negotiation_closed", f"cannot {action}: the negotiation window has closed")
        if who != role:
            raise Refused("not_" + role, f"only the {role} can {action}")

    def propose(self, who, price_cents, length_s, now_s):
        self._require(who, HOST, "propose terms", now_s)
        self.limits.check(price_cents, length_s, now_s)
        self.proposals_made += 1
        self.proposal = Terms(self.round, self.proposals_made, price_cents, length_s, now_s)
        return Proposed(self.proposal)

    def pay(self, who, proposal, now_s):
        """The caller takes proposal number `proposal` (what they saw, not a newer one)."""
        self._require(who, CALLER, "pay", now_s)
        if self.proposal is None:
            raise Refused("no_terms", "the host has not proposed terms yet")
        if proposal != self.proposal.proposal:
            raise Refused("terms_changed", "the host changed the terms; look at the new ones")
        self.state = AGREED
        return Agreed(self.proposal)

    def renegotiate(self, who, now_s):
        self._require(who, CALLER, "ask to renegotiate", now_s)
        if self.proposal is None:
            raise Refused("no_terms", "there are no terms to renegotiate yet")
        self.proposal = None
        return Withdrawn(self.round)

    def decline(self, who, now_s):
        self._require(who, CALLER, "decline", now_s)
        self.state = DECLINED
        return Declined(self.round)

    def expire(self, now_s):
        if self.state != OPEN or now_s < self.deadline_s:
            return None
        self.state = EXPIRED
        return Expired(self.round)
