"""PayPal's fee and the member's net, in cents, as a member reading their earnings would check
them; the minimum payment; and `interkanect fees`."""
import json
import os
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings, strategies as st

from rules.fees import (DEFAULT_MIN_PAYMENT_CENTS, SMALLEST_PAYABLE_CENTS, breakdown, check_payment, check_policy,
                         parse_dollars, paypal_fee_cents)
from rules.terms import Refused
from interkanect import cli
from interkanect.config import Policy

FEW_SECONDS = settings(max_examples=300, deadline=None)
AMOUNTS = st.integers(min_value=0, max_value=10**12)
INVERSE_OF_349 = pow(349, -1, 10_000)


def decimal_fee_cents(amount_cents):
    """The published formula, computed independently: dollars as Decimal, rounded half-up."""
    percent = (Decimal(amount_cents) * Decimal("0.0349")).quantize(Decimal("1"), rounding=ROUND_HALF_UP)
    return int(percent) + 49


def amount_whose_percent_ends_in(ten_thousandths, k):
    """The k-th amount whose 3.49% ends in exactly `ten_thousandths`/10000 of a cent."""
    return k * 10_000 + ten_thousandths * INVERSE_OF_349 % 10_000


# --- the formula ----------------------------------------------------------------------------

@pytest.mark.parametrize("amount_cents, fee_cents, net_cents", [
    (1000, 84, 916),        # $10.00: 34.9 -> 35 cents + 49
    (200, 56, 144),         # the minimum: 6.98 -> 7 + 49
    (5000, 224, 4776),      # $50.00: 174.5 -> 175 (exactly half a cent rounds up)
    (500_000, 17_499, 482_501),  # the maximum price: 17450 + 49
    (0, 49, -49),
])
def test_fee_and_net_of_known_amounts(amount_cents, fee_cents, net_cents):
    assert breakdown(amount_cents).view() == {"amount_cents": amount_cents, "fee_cents": fee_cents,
                                              "net_cents": net_cents}


@FEW_SECONDS
@given(AMOUNTS)
def test_fee_matches_an_independent_decimal_computation(amount_cents):
    assert paypal_fee_cents(amount_cents) == decimal_fee_cents(amount_cents)


@FEW_SECONDS
@given(AMOUNTS)
def test_fee_and_net_add_up_to_what_the_payer_paid(amount_cents):
    payment = breakdown(amount_cents)
    assert payment.fee_cents + payment.net_cents == amount_cents
    assert all(type(v) is int for v in payment.view().values())


@FEW_SECONDS
@given(AMOUNTS, AMOUNTS)
def test_paying_more_never_costs_less_fee_nor_earns_less(a, b):
    low, high = sorted((a, b))
    assert paypal_fee_cents(low) <= paypal_fee_cents(high)
    assert breakdown(low).net_cents <= breakdown(high).net_cents


@FEW_SECONDS
@given(st.integers(min_value=0, max_value=10**8))
def test_exactly_half_a_cent_rounds_up_and_just_below_rounds_down(k):
    half = amount_whose_percent_ends_in(5000, k)
    assert half * 349 % 10_000 == 5000
    assert paypal_fee_cents(half) == half * 349 // 10_000 + 1 + 49
    below = amount_whose_percent_ends_in(4999, k)
    assert paypal_fee_cents(below) == below * 349 // 10_000 + 49
    above = amount_whose_percent_ends_in(5001, k)
    assert paypal_fee_cents(above) == above * 349 // 10_000 + 1 + 49


# --- PayPal's reported fee wins --------------------------------------------------------------

def test_the_fee_paypal_reports_is_the_fee():
    assert breakdown(1000, reported_fee_cents=83).view() == {"amount_cents": 1000, "fee_cents": 83, "net_cents": 917}
    assert breakdown(1000, reported_fee_cents=0).net_cents == 1000


@pytest.mark.parametrize("reported", [-1, 1001, 8.4, "84", True])
def test_a_reported_fee_that_cannot_be_one_is_refused(reported):
    with pytest.raises(Refused) as refused:
        breakdown(1000, reported_fee_cents=reported)
    assert refused.value.message


@pytest.mark.parametrize("amount", [10.0, "1000", None, True, -1])
def test_an_amount_is_whole_cents_never_a_float(amount):
    with pytest.raises(Refused):
        paypal_fee_cents(amount)


# --- the minimum -----------------------------------------------------------------------------

def test_the_minimum_payment_is_the_policy_minimum_price():
    assert DEFAULT_MIN_PAYMENT_CENTS == Policy().min_price_cents == 200
    assert check_payment(200).view() == {"amount_cents": 200, "fee_cents": 56, "net_cents": 144}


def test_a_payment_below_the_minimum_is_refused_saying_why():
    with pytest.raises(Refused) as refused:
        check_payment(199)
    assert refused.value.code == "amount_below_minimum"
    assert "$2.00" in refused.value.message and "$0.56" in refused.value.message


def test_no_minimum_lets_through_a_payment_the_fee_would_eat():
    # The least amount that leaves the member anything at all.
    assert breakdown(SMALLEST_PAYABLE_CENTS).net_cents > 0
    assert all(breakdown(cents).net_cents <= 0 for cents in range(SMALLEST_PAYABLE_CENTS))
    with pytest.raises(Refused):
        check_payment(SMALLEST_PAYABLE_CENTS - 1, min_payment_cents=1)
    assert check_payment(SMALLEST_PAYABLE_CENTS, min_payment_cents=1).net_cents == 1


# --- amounts typed in dollars ------------------------------------------------------------------

@pytest.mark.parametrize("text, cents", [("10", 1000), ("10.5", 1050), ("10.50", 1050), ("0.01", 1), (" 7.05 ", 705),
                                         ("1234567", 123_456_700)])
def test_dollars_parse_to_exact_cents(text, cents):
    assert parse_dollars(text) == cents


@pytest.mark.parametrize("text", ["10.505", "-1", "abc", "1e3", "", ".5", "10.", "1,000", "+5", "inf", "nan", "١٠",
                                  "10.5.0", "$10"])
def test_anything_but_plain_dollars_and_cents_is_refused(text):
    with pytest.raises(Refused) as refused:
        parse_dollars(text)
    assert refused.value.code == "invalid_amount" and repr(text) in refused.value.message


@FEW_SECONDS
@given(st.integers(min_value=0, max_value=10**12))
def test_dollars_printed_with_cents_parse_back_to_the_same_cents(cents):
    assert parse_dollars(f"{cents // 100}.{cents % 100:02d}") == cents


# --- `interkanect fees` ----------------------------------------------------------------------

def test_fees_json(capsys):
    cli.main(["fees", "10.00", "--json"])
    assert json.loads(capsys.readouterr().out) == {"amount_cents": 1000, "fee_cents": 84, "net_cents": 916}


def test_fees_readable(capsys):
    cli.main(["fees", "50"])
    assert capsys.readouterr().out.strip() == "$50.00: PayPal keeps $2.24, the member earns $47.76"


@pytest.mark.parametrize("text", ["10.505", "-1", "abc", "1e3", "1.99"])
def test_fees_refuses_bad_amounts_with_a_message(text):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["fees", text, "--json"])
    assert str(exit_.value.code).startswith("error: ")


def test_fees_command_exits_non_zero_on_stderr():
    done = subprocess.run([sys.executable, "-m", "interkanect.cli", "fees", "10.505", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and done.stdout == ""
    assert "'10.505' is not an amount in dollars" in done.stderr


@pytest.mark.parametrize("environ, words", [
    ({"IK_MIN_PRICE_CENTS": "40"}, "IK_MIN_PRICE_CENTS is 40, but PayPal's fee takes all of a payment under $0.52"),
    ({"IK_MIN_PRICE_CENTS": "500", "IK_MAX_PRICE_CENTS": "400"}, "IK_MAX_PRICE_CENTS (400) is below IK_MIN_PRICE_CENTS"),
    ({"IK_EARNINGS_HOLD_S": "3600"}, "IK_EARNINGS_HOLD_S (3600 s) is shorter than IK_REFUND_WINDOW_S (86400 s)"),
    ({"IK_PAYPAL_PAYOUT_BATCH_ITEMS": "20000"}, "IK_PAYPAL_PAYOUT_BATCH_ITEMS is 1 to 15000 (PayPal's limit per batch)")])
def test_money_settings_that_contradict_each_other_stop_every_command(environ, words):
    # `fees` stands for every command: node, gateway and serve read the same settings first.
    done = subprocess.run([sys.executable, "-m", "interkanect.cli", "fees", "10"], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, **environ))
    assert done.returncode != 0 and done.stdout == "" and words in done.stderr


def test_the_smallest_minimum_price_lets_the_member_earn_something():
    ok = Policy(min_price_cents=SMALLEST_PAYABLE_CENTS)
    check_policy(ok)
    assert breakdown(SMALLEST_PAYABLE_CENTS).net_cents > 0 and breakdown(SMALLEST_PAYABLE_CENTS - 1).net_cents <= 0


def test_the_pages_ask_the_servers_fee_rule_and_bad_amounts_are_refused_in_words(system):
    """GET /api/fees, what the terms form and the tip dialog show as an amount is typed: the
    same figures as `interkanect fees`, refusals with the CLI's codes."""
    import urllib.error
    import urllib.request

    def ask(amount):
        try:
            with urllib.request.urlopen(f"{system.url}/api/fees?amount={amount}", timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
    for amount in ("15", "15.50", "2", "4999.99"):
        status, body = ask(amount)
        cli_answer = subprocess.run([sys.executable, "-m", "interkanect.cli", "fees", amount, "--json"],
                                    capture_output=True, text=True, timeout=60)
        assert status == 200 and {k: body[k] for k in ("amount_cents", "fee_cents", "net_cents")} == json.loads(
            cli_answer.stdout) and body["free"] is False
    assert ask("0") == (200, {"amount_cents": 0, "fee_cents": 0, "net_cents": 0, "free": True})
    for amount, code in (("0.40", "amount_below_minimum"), ("1.99", "amount_below_minimum"),
                         ("ten", "invalid_amount"), ("10.005", "invalid_amount"), ("", "invalid_amount"),
                         ("5000.01", "amount_above_maximum"), ("-3", "invalid_amount")):
        status, body = ask(amount)
        assert (status, body["error"]["code"]) == (400, code), (amount, body)
        assert body["error"]["message"]
