"""A call payment captured after its call was over goes back to the caller in full, once, and
the caller is told by email: the payer's approval racing the payment window (PayPal answers the
capture late), and a PENDING capture that clears after the call ended
(PAYMENT.CAPTURE.COMPLETED for a call that is gone). Through the real path: gateway, node,
payments adapter, the PayPal emulator's fault switches, SecantusDB."""
import asyncio

from rules import call as rules
from rules.call import Call, CallPolicy, Side
from rules.terms import Terms
from interkanect.paypal.payments import PayPal
from tests.kit.calls import NOT_THE_PAYOUT_NOTICE, Call as LiveCall
from tests.kit.operators import operator
from tests.kit.paypal import approve_on_paypal, arm, control
from tests.kit.system import run
from tests.kit.waiting import eventually

POLICY = CallPolicy(ring_timeout_s=60, negotiation_window_s=300, extension_offer_s=60, payment_window_s=600,
                    free_tier_cap_s=1200, reconnect_grace_s=120, min_price_cents=200, max_price_cents=500000,
                    min_length_s=60, max_length_s=28800)


# The rule: a capture the call cannot use is refunded, once ---------------------------------------

def awaiting_payment(now_s=0.0):
    call, _ = Call.ring("c" * 24, Side("h", "Host"), Side("k", "Caller"), "upgraded", True, POLICY, "page", now_s)
    call.accept("host-page", now_s)
    call.agreed(Terms(1, 1, 1500, 600, now_s), now_s)
    return call


def test_a_capture_after_the_payment_window_is_refunded_once_and_a_used_one_never():
    call = awaiting_payment()
    call.timer("payment", call.timers["payment"], 600.0)
    assert call.state == rules.ENDED and call.end_reason == "payment_timeout"
    payment = {"capture_id": "CAP1", "amount_cents": 1500, "fee_cents": 101, "order_id": "ORDER1"}
    assert call.payment_captured(1, payment, 601.0) == [rules.RefundLatePayment(1, "ORDER1", "CAP1")]
    assert call.payment_captured(1, payment, 602.0) == []      # the webhook's repeat: already on its way back
    assert [e["event"] for e in call.log].count("payment_late") == 1

    used = awaiting_payment()
    used.payment_captured(1, payment, 1.0)
    used.hang_up("host", 2.0)
    assert used.payment_captured(1, payment, 3.0) == []         # the call ran on it: a repeat, nothing more


# Through the system ---------------------------------------------------------------------------


def paypal(system):
    s = system.settings
    return PayPal(s.paypal_url, s.paypal_client_id_in_use, s.paypal_client_secret_in_use)


async def assert_refunded_once(system, call):
    """The capture went back whole, once; the caller was told, once; the host was mailed nothing."""
    db = system.db
    refund = await eventually(lambda: db.ledger.find_one({"call_id": call.id, "kind": "late_capture_refund"}), "the late capture's refund in the ledger", timeout_s=30)
    (captured,) = db.ledger.find({"call_id": call.id, "kind": "call_payment"})
    capture_id = captured["_id"].split(":")[1]
    assert refund["_id"] == f"capture:{capture_id}:late-refund"
    totals = {}
    for transaction in db.ledger.find({"call_id": call.id}):
        for entry in transaction["entries"]:
            totals[entry["account"]] = totals.get(entry["account"], 0) + entry["amount_cents"]
    assert totals[f"caller:{call.caller.id}"] == 0 and totals[f"member:{call.host.id}:pending"] == 0
    assert totals["paypal:fees"] == 101 and totals["platform:costs"] == -101
    assert paypal(system).get_capture(capture_id)["status"] == "REFUNDED"
    await eventually(lambda: db.outbox.count_documents({"to": call.caller.email}) == 1, "the refund mail")
    (mail,) = db.outbox.find({"to": call.caller.email})
    assert mail["subject"] == "Refunded: $15.00 for your call with Late Host"
    assert capture_id in mail["body"] and "PayPal's fee is on us" in mail["body"]
    # Asked again (the session's word and the stored call's both lead here): nothing more.
    await asyncio.sleep(3 * system.settings.policy.capture_settle_check_s)  # two settle checks of the payments adapter
    refunds = control(system, "/emulator/webhooks?event_type=PAYMENT.CAPTURE.REFUNDED")["deliveries"]
    assert len(refunds) == 1
    assert db.ledger.count_documents({"call_id": call.id}) == 2
    assert db.outbox.count_documents({"to": {"$in": [call.caller.email, call.host.email]},
                                      **NOT_THE_PAYOUT_NOTICE}) == 1
    assert db.orders.find_one({"call_id": call.id})["capture_state"] == "refunded"
    assert db.calls.find_one({"_id": call.id})["payments"] == []


def test_an_approval_racing_the_payment_window_is_refunded_in_full(system_with):
    system = system_with(payment_window_s=3)

    async def scenario():
        call = await LiveCall.answered(system, "Late Host", "Late Caller")
        await call.agree(1500, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        # PayPal captures at once but answers 6 s later: by then the window is over.
        arm(system, {"kind": "timeout", "path": "/v2/checkout/orders/*/capture", "method": "POST", "delay_s": 6})
        approve_on_paypal(ready["payment"]["approve_url"])
        ended = await call.caller_page.expect("call_state", state="ended", timeout_s=10)
        assert ended["end_reason"] == "payment_timeout"
        await assert_refunded_once(system, call)
    run(scenario())


def test_a_pending_capture_that_clears_after_the_call_ended_is_refunded_in_full(system_with):
    system = system_with(payment_window_s=3)

    async def scenario():
        call = await LiveCall.answered(system, "Late Host", "Pending Caller")
        await call.agree(1500, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        arm(system, {"kind": "capture_outcome", "outcome": "PENDING"})
        approve_on_paypal(ready["payment"]["approve_url"])
        ended = await call.caller_page.expect("call_state", state="ended", timeout_s=10)
        assert ended["end_reason"] == "payment_timeout"
        order = await eventually(lambda: system.db.orders.find_one({"call_id": call.id, "capture_state": "pending"}), "the pending capture")
        assert system.db.ledger.count_documents({"call_id": call.id}) == 0   # no money in hand yet
        # The eCheck clears: PAYMENT.CAPTURE.COMPLETED, for a call that is over.
        control(system, f"/emulator/captures/{order['capture_id']}/complete", {})
        await assert_refunded_once(system, call)
    run(scenario())


def test_a_late_capture_whose_refunds_all_fail_is_left_to_operators_and_they_are_told_once(system_with):
    system = system_with(payment_window_s=3)

    async def scenario():
        olga = await operator(system, "Ona Operator")
        call = await LiveCall.answered(system, "Late Host", "Unrefundable Caller")
        await call.agree(1500, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        arm(system, {"kind": "timeout", "path": "/v2/checkout/orders/*/capture", "method": "POST", "delay_s": 6})
        arm(system, {"kind": "refund_outcome", "outcome": "FAILED", "count": 3})
        approve_on_paypal(ready["payment"]["approve_url"])
        await call.caller_page.expect("call_state", state="ended", timeout_s=10)
        order = await eventually(lambda: system.db.orders.find_one({"call_id": call.id, "capture_state": "refund_refused"}),
                                 "the late capture left to operators", timeout_s=30)
        assert len(order["failed_refunds"]) == 3 and order["refund_refusal"] == "REFUND_FAILED"
        mail = await eventually(lambda: system.db.outbox.find_one({"to": olga.email}), "the operators' alert")
        assert mail["subject"] == f"A late payment could not be refunded (call {call.id})"
        assert order["capture_id"] in mail["body"] and "$15.00" in mail["body"]
        assert system.db.ledger.count_documents({"call_id": call.id, "kind": "late_capture_refund"}) == 0
    run(scenario())


def test_a_late_capture_refund_paypal_fails_is_asked_again_as_a_new_refund(system_with):
    system = system_with(payment_window_s=3)

    async def scenario():
        call = await LiveCall.answered(system, "Late Host", "Failed Refund Caller")
        await call.agree(1500, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        arm(system, {"kind": "timeout", "path": "/v2/checkout/orders/*/capture", "method": "POST", "delay_s": 6})
        arm(system, {"kind": "refund_outcome", "outcome": "FAILED"})
        approve_on_paypal(ready["payment"]["approve_url"])
        await call.caller_page.expect("call_state", state="ended", timeout_s=10)
        await assert_refunded_once(system, call)
        order = system.db.orders.find_one({"call_id": call.id})
        (failed,) = order["failed_refunds"]
        assert failed["status"] == "FAILED" and failed["refund_id"] != order["refund_id"]
        failures = control(system, "/emulator/webhooks?event_type=PAYMENT.REFUND.FAILED")["deliveries"]
        assert [d["resource_id"] for d in failures] == [failed["refund_id"]]
    run(scenario())
