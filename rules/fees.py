"""PayPal's processing fee on a payment or tip, what the member earns from it, and the smallest
payment the platform takes. Pure; integer cents only (no floats anywhere on the way).

Decisions:
- The fee is 3.49% of the amount rounded half-up to the cent, plus 49 cents. Half-up is done in
  integers: (amount * 349 + 5000) // 10000 is exact for amounts >= 0.
- The fee of a payment is PayPal's reported fee (`seller_receivable_breakdown.paypal_fee`)
  where PayPal reports one, else the formula; a reported fee outside 0..amount is refused, as it
  cannot be a fee on that payment.
- The minimum payment is the policy's min_price_cents ($2.00 by default, shared by prices and
  tips). At $2.00 the fee is $0.56 (28%) and the member earns $1.44; the fee alone swallows any
  payment of $0.51 or less, so no configured minimum lets a payment below $0.52 through.
- A refund gives back the payment minus its fee (PayPal keeps the fee): refundable = net.
"""
import dataclasses
import re

from rules.terms import Refused, dollars

FEE_RATE_PER_10000 = 349        # 3.49%, in hundredths of a percent so the arithmetic stays integer
FEE_FIXED_CENTS = 49
DEFAULT_MIN_PAYMENT_CENTS = 200   # Policy.min_price_cents's default (tests/test_layers.py holds them equal)
# Below this the fee is the whole payment or more (51 cents pays a 51-cent fee).
SMALLEST_PAYABLE_CENTS = 52

_DOLLARS = re.compile(r"([0-9]+)(?:\.([0-9]{1,2}))?", re.ASCII)


@dataclasses.dataclass(frozen=True)
class Breakdown:
    """One payment as PayPal settles it: what the payer paid, what PayPal kept, what is left."""
    amount_cents: int
    fee_cents: int

    @property
    def net_cents(self):
        return self.amount_cents - self.fee_cents

    def view(self):
        return {"amount_cents": self.amount_cents, "fee_cents": self.fee_cents, "net_cents": self.net_cents}


def paypal_fee_cents(amount_cents):
    """The fee by PayPal's published formula, for when PayPal has not told us the real one."""
    _require_cents(amount_cents, "amount")
    if amount_cents < 0:
        raise Refused("invalid_amount", "an amount cannot be negative")
    return (amount_cents * FEE_RATE_PER_10000 + 5_000) // 10_000 + FEE_FIXED_CENTS


def breakdown(amount_cents, reported_fee_cents=None):
    """The payment's fee is the one PayPal reports where it reports one, else the formula."""
    if reported_fee_cents is None:
        return Breakdown(amount_cents, paypal_fee_cents(amount_cents))
    _require_cents(amount_cents, "amount")
    _require_cents(reported_fee_cents, "reported fee")
    if not 0 <= reported_fee_cents <= amount_cents:
        raise Refused("invalid_fee", f"a fee of {reported_fee_cents} cents cannot be PayPal's fee on "
                                     f"{dollars(amount_cents)}")
    return Breakdown(amount_cents, reported_fee_cents)


def check_payment(amount_cents, min_payment_cents=DEFAULT_MIN_PAYMENT_CENTS):
    """Refuse a payment or tip so small that PayPal's fee would eat it; return its breakdown."""
    _require_cents(amount_cents, "amount")
    least = max(min_payment_cents, SMALLEST_PAYABLE_CENTS)
    if amount_cents < least:
        raise Refused("amount_below_minimum",
                      f"a payment is at least {dollars(least)}: PayPal's fee is "
                      f"{dollars(paypal_fee_cents(least))} on {dollars(least)} and a larger share of less")
    return breakdown(amount_cents)


def check_policy(policy):
    """Refuse (SystemExit, at start) money settings that contradict each other: a minimum
    price or tip whose fee would leave the member nothing, or earnings released for payout
    before the caller's refund window closes (an approved refund would then take back money
    already paid out, every time)."""
    if policy.min_price_cents < SMALLEST_PAYABLE_CENTS:
        raise SystemExit(f"error: IK_MIN_PRICE_CENTS is {policy.min_price_cents}, but PayPal's fee takes all of a "
                         f"payment under {dollars(SMALLEST_PAYABLE_CENTS)} ({dollars(paypal_fee_cents(51))} on "
                         f"$0.51): set it to {SMALLEST_PAYABLE_CENTS} or more (default {DEFAULT_MIN_PAYMENT_CENTS})")
    if policy.max_price_cents < policy.min_price_cents:
        raise SystemExit(f"error: IK_MAX_PRICE_CENTS ({policy.max_price_cents}) is below IK_MIN_PRICE_CENTS "
                         f"({policy.min_price_cents})")
    if policy.earnings_hold_s < policy.refund_window_s:
        raise SystemExit(f"error: IK_EARNINGS_HOLD_S ({policy.earnings_hold_s:g} s) is shorter than IK_REFUND_WINDOW_S "
                         f"({policy.refund_window_s:g} s): earnings would be paid out while their caller may still "
                         f"ask for a refund; hold them at least as long as the window")


def parse_dollars(text):
    """'10', '10.5', '10.50' -> cents. No sign, exponent, thousands separator or third decimal:
    an amount typed by a person either means exactly some cents or is refused."""
    match = _DOLLARS.fullmatch(text.strip())
    if match is None:
        raise Refused("invalid_amount", f"{text!r} is not an amount in dollars like 10 or 10.50 "
                                        f"(at most two decimals, no sign)")
    whole, fraction = match.groups()
    return int(whole) * 100 + int((fraction or "0").ljust(2, "0"))


def _require_cents(value, what):
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refused("invalid_amount", f"the {what} is a whole number of cents")
