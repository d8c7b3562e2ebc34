"""Dollars as PayPal writes them ("15.00", a string) and as we count them (integer cents)."""


def cents_to_value(cents):
    return f"{cents // 100}.{cents % 100:02d}"


def value_to_cents(value):
    whole, _, fraction = value.partition(".")
    return int(whole) * 100 + int((fraction + "00")[:2])
