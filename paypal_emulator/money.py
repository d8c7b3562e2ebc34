"""PayPal money values ({"currency_code", "value"} strings) to and from integer cents, and
the processing fee. Pure functions: no I/O, no floats."""
import re

CURRENCY = "USD"
# PayPal's documented upper bound for an amount value.
MAX_CENTS = 99999999999999999
# PayPal's U.S. commercial rate the product is priced on: 3.49% (in basis points) + $0.49.
FEE_RATE_BASIS_POINTS = 349
FEE_FIXED_CENTS = 49

_VALUE = re.compile(r"^-?([0-9]+)?(\.[0-9]+)?$")


class AmountError(ValueError):
    """A value PayPal would refuse; `issue` is PayPal's issue code for it."""

    def __init__(self, issue, status):
        super().__init__(issue)
        self.issue = issue
        self.status = status


def parse_cents(value):
    """'10.00' -> 1000. Raises AmountError with the issue PayPal answers for bad values."""
    if not isinstance(value, str) or not value or not _VALUE.match(value) or value in ("-", ".", "-."):
        raise AmountError("INVALID_PARAMETER_SYNTAX", 400)
    negative = value.startswith("-")
    whole, _, fraction = value.lstrip("-").partition(".")
    if len(fraction) > 2:
        raise AmountError("DECIMAL_PRECISION", 422)
    cents = int(whole or "0") * 100 + int((fraction + "00")[:2])
    if negative or cents == 0:
        raise AmountError("CANNOT_BE_ZERO_OR_NEGATIVE", 422)
    if cents > MAX_CENTS:
        raise AmountError("MAX_VALUE_EXCEEDED", 422)
    return cents


def format_cents(cents):
    """1000 -> '10.00'."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def money(cents, currency=CURRENCY):
    """The Orders/Payments v2 money object."""
    return {"currency_code": currency, "value": format_cents(cents)}


def payouts_money(cents):
    """The Payouts v1 currency object (its key is `currency`, not `currency_code`)."""
    return {"currency": CURRENCY, "value": format_cents(cents)}


def fee_cents(amount_cents):
    """3.49% of the amount rounded half-up to the cent, plus 49 cents; never more than the amount."""
    percentage = (amount_cents * FEE_RATE_BASIS_POINTS + 5000) // 10000
    return min(amount_cents, percentage + FEE_FIXED_CENTS)
