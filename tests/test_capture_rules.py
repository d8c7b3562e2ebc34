"""The capture's life as the payments adapter follows it (rules/capture_rules.py)."""
import pytest
from hypothesis import given, strategies as st

from rules import capture_rules as rules


@pytest.mark.parametrize("issue, name, step", [
    ("ORDER_ALREADY_CAPTURED", "UNPROCESSABLE_ENTITY", rules.FIND),   # an answer we lost: read the order
    ("", "ORDER_ALREADY_CAPTURED", rules.FIND),
    ("INSTRUMENT_DECLINED", "UNPROCESSABLE_ENTITY", rules.FAIL),
    ("PAYER_ACTION_REQUIRED", "UNPROCESSABLE_ENTITY", rules.FAIL),
    ("ORDER_NOT_APPROVED", "UNPROCESSABLE_ENTITY", rules.WAIT),      # the payer's approval asks again
    ("", "INTERNAL_SERVER_ERROR", rules.WAIT)])
def test_a_refused_capture_is_read_again_ends_the_call_or_waits_for_the_payer(issue, name, step):
    assert rules.after_refusal(issue, name) == step


@pytest.mark.parametrize("status, mismatched, step", [
    ("COMPLETED", False, rules.BOOK), ("REFUNDED", False, rules.BOOK), ("PARTIALLY_REFUNDED", False, rules.BOOK),
    ("COMPLETED", True, rules.MISMATCH), ("PENDING", False, rules.FOLLOW), ("DECLINED", False, rules.DECLINE),
    ("FAILED", False, rules.DECLINE), ("SOMETHING_NEW", False, rules.LEAVE)])
def test_what_a_captures_state_at_paypal_means(status, mismatched, step):
    assert rules.after_capture(status, mismatched) == step


def test_a_booked_payment_is_its_calls_when_listed_else_given_back_once_the_call_is_over():
    listed = {"state": "running", "payments": [{"capture_id": "CAP1"}]}
    assert rules.payment_fate("CAP1", listed) == rules.USED
    assert rules.payment_fate("CAP1", dict(listed, state="ended")) == rules.USED   # used, whatever came after
    assert rules.payment_fate("CAP2", {"state": "ended", "payments": [{"capture_id": "CAP1"}]}) == rules.REFUNDING
    assert rules.payment_fate("CAP2", None) == rules.REFUNDING                      # the call is gone
    assert rules.payment_fate("CAP2", {"state": "suspended", "payments": []}) == rules.WAIT
    assert [state for state in (rules.PENDING, rules.BOOKED, rules.USED, rules.REFUNDING, rules.REFUNDED,
                                rules.REFUND_REFUSED, rules.DECLINED) if rules.settling(state)] == [
        rules.BOOKED, rules.REFUNDING]


@given(fates=st.lists(st.sampled_from(["COMPLETED", "PENDING", "FAILED", "CANCELLED"]), min_size=1, max_size=12),
       attempts_max=st.integers(1, 4))
def test_a_late_capture_is_refunded_once_asked_at_most_attempts_max_times_each_under_a_new_request_id(
        fates, attempts_max):
    """PayPal gives each refund it is asked a fate in turn (PENDING reads the same one again)."""
    failed, asked, outcome = 0, [rules.late_refund_request_id("CAP1", 0)], None
    for status in fates:
        step = rules.after_late_refund(status, failed, attempts_max)
        if step in (rules.BOOK, rules.OPERATOR):
            outcome = step
            break
        if step == rules.AGAIN:
            failed += 1
            asked.append(rules.late_refund_request_id("CAP1", failed))
    assert len(asked) == len(set(asked)) <= attempts_max
    if outcome == rules.OPERATOR:
        assert failed + 1 == attempts_max == len(asked)
    if outcome == rules.BOOK:   # booked on the first COMPLETED, before the allowance ran out
        assert failed == fates[:fates.index("COMPLETED")].count("FAILED") + \
            fates[:fates.index("COMPLETED")].count("CANCELLED") < attempts_max
