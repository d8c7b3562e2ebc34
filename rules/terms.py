"""Terms of a call round: price and length, the limits they must respect, and the short
fingerprint both sides see (and receipts print) once they are agreed.

Pure: no I/O. Money is integer cents.
"""
import dataclasses
import hashlib

FREE = "free"
UPGRADED = "upgraded"


class Refused(Exception):
    """A participant asked for something the rules do not allow; told to them, nothing changes."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclasses.dataclass(frozen=True)
class Limits:
    """What the host of this call may propose."""
    tier: str
    can_charge: bool            # upgraded with a payout email on file
    min_price_cents: int
    max_price_cents: int
    min_length_s: int
    max_length_s: int
    free_cap_left_s: float      # free hosts: what is left of the free-tier cap in this call
    free_cap_ends_at_s: float = float("inf")  # free hosts: when the session must be over

    def check(self, price_cents, length_s, now_s=None):
        if isinstance(price_cents, bool) or not isinstance(price_cents, int):
            raise Refused("invalid_price", "the price is a whole number of cents")
        if isinstance(length_s, bool) or not isinstance(length_s, int):
            raise Refused("invalid_length", "the length is a whole number of seconds")
        if self.tier == FREE:
            if price_cents != 0:
                raise Refused("free_tier_price", "free hosts host free calls only; upgrade to set a price")
            left_s = self.free_cap_left_s if now_s is None else min(self.free_cap_left_s,
                                                                    self.free_cap_ends_at_s - now_s)
            if length_s > left_s:
                minutes = int(left_s // 60)
                raise Refused("free_tier_length", f"a free call lasts at most {minutes} more "
                                                  f"minute{'' if minutes == 1 else 's'}")
        elif price_cents != 0 and not self.can_charge:
            raise Refused("no_payout_email", "add a PayPal payout email to your account to set a price")
        if price_cents != 0 and not self.min_price_cents <= price_cents <= self.max_price_cents:
            raise Refused("price_out_of_range", f"a price is 0 (free) or between {dollars(self.min_price_cents)} "
                                                f"and {dollars(self.max_price_cents)}")
        if not self.min_length_s <= length_s <= self.max_length_s:
            raise Refused("length_out_of_range", f"a length is between {self.min_length_s // 60} minute(s) "
                                                 f"and {self.max_length_s // 3600} hours")


@dataclasses.dataclass(frozen=True)
class Terms:
    round: int
    proposal: int        # which proposal of the round; the caller pays for exactly this one
    price_cents: int
    length_s: int
    proposed_at_s: float

    @property
    def free(self):
        return self.price_cents == 0

    def fingerprint(self, call_id):
        """Short enough to read aloud, long enough that a changed term shows."""
        text = f"{call_id}|{self.round}|{self.price_cents}|{self.length_s}|{self.proposed_at_s:.3f}"
        digest = hashlib.sha256(text.encode()).hexdigest()[:12].upper()
        return "-".join(digest[i:i + 4] for i in range(0, 12, 4))

    def view(self, call_id):
        return {"round": self.round, "proposal": self.proposal, "price_cents": self.price_cents,
                "length_s": self.length_s, "fingerprint": self.fingerprint(call_id)}


def dollars(cents):
    return f"${cents // 100}.{cents % 100:02d}"
