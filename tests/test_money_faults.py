"""PayPal and the database failing in the ways they do, each through the real payments adapter
(gateway, actor node, SecantusDB, the PayPal emulator's fault switches): whatever fails and
however often PayPal tells us, one order, one capture, one ledger transaction, one resumed
call, one set of mails."""
import asyncio
import json
import os
import secrets
import signal
import urllib.request

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from actors import money_events
from actors.payments import DB_SELECTION_TIMEOUT_S
from tests.kit.calls import NOT_THE_PAYOUT_NOTICE, Call
from tests.kit.operators import operator
from tests.kit.paypal import approve_and_never_come_back, approve_on_paypal, arm, control, paypal_api
from tests.kit.system import run
from tests.kit.waiting import eventually
from tests.test_disputes import balances, money_applied
from tests.test_external_refunds import REFUNDED, refund_at_paypal
from tests.test_late_capture import assert_refunded_once, paypal
from tests.test_metrics import scrape, value


def requests_to(system, path):
    with urllib.request.urlopen(f"{system.settings.paypal_url}/emulator/requests?path={path}", timeout=5) as answer:
        return json.load(answer)["requests"]


def answered_at_paypal(system, order_id):
    """The emulator's access log has answered the capture of this order."""
    log = (system.log_dir / "paypal.log").read_text(errors="replace")
    return f"POST /v2/checkout/orders/{order_id}/capture (" in log


def put_webhook_url(system, url):
    request = urllib.request.Request(system.settings.paypal_url + "/emulator/webhook", method="PUT",
                                     data=json.dumps({"url": url}).encode(), headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=5).close()


def captures_at_paypal(system, order_id):
    order = paypal(system).sdk.orders.get_order({"id": order_id}).body
    return [capture.id for unit in order.purchase_units for capture in (unit.payments.captures or [])]


def booked_once(system, call):
    """One ledger transaction, one payment in the call, one resume in its log, two mails."""
    db = system.db
    assert db.ledger.count_documents({"call_id": call.id}) == 1
    stored = db.calls.find_one({"_id": call.id})
    assert len(stored["payments"]) == 1
    assert [entry["event"] for entry in stored["log"]].count("payment_captured") == 1
    (order,) = db.orders.find({"call_id": call.id})
    assert captures_at_paypal(system, order["_id"]) == [stored["payments"][0]["capture_id"]]
    return order


async def mails_settled(system, call):
    """The capture's receipt and earnings notice went out, once each."""
    capture = await eventually(lambda: system.db.ledger.find_one({"call_id": call.id}), "the booking", timeout_s=15)
    mails = {"capture_id": capture["_id"].split(":")[1]}
    await eventually(lambda: system.db.money_mails.count_documents(dict(mails, state="sent")) == 2, "the two mails", timeout_s=15)
    assert system.db.money_mails.count_documents(mails) == 2
    assert system.db.outbox.count_documents({"to": {"$in": [call.host.email, call.caller.email]},
                                             **NOT_THE_PAYOUT_NOTICE}) == 2


def test_a_5xx_on_order_create_is_retried_with_the_same_request_id_into_one_order(system):
    async def scenario():
        call = await Call.answered(system)
        arm(system, {"kind": "error", "path": "/v2/checkout/orders", "method": "POST", "status": 503})
        await call.agree(1500, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        creates = [r for r in requests_to(system, "/v2/checkout/orders") if r["method"] == "POST"
                   and r["paypal_request_id"].startswith(f"order-{call.id}")]
        assert [r["paypal_request_id"] for r in creates] == [f"order-{call.id}-1"] * 2   # refused, then made
        assert [o["_id"] for o in system.db.orders.find({"call_id": call.id})] == [ready["payment"]["order_id"]]
        approve_on_paypal(ready["payment"]["approve_url"])
        await call.host_page.expect("call_state", state="running", event="payment_captured")
        booked_once(system, call)
        await call.host_page.request("hang_up", call_id=call.id)
    run(scenario())


def test_a_capture_that_times_out_is_asked_again_and_captured_once(system_with):
    system = system_with(paypal_timeout_s=2)

    async def scenario():
        call = await Call.answered(system)
        await call.agree(1500, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        # PayPal captures at once and answers after 5 s: our 2 s timeout fires first.
        arm(system, {"kind": "timeout", "path": "/v2/checkout/orders/*/capture", "method": "POST", "delay_s": 5})
        approve_on_paypal(ready["payment"]["approve_url"])
        await call.host_page.expect("call_state", state="running", event="payment_captured", timeout_s=20)
        order = booked_once(system, call)
        asked = requests_to(system, f"/v2/checkout/orders/{order['_id']}/capture")
        assert len(asked) >= 2 and {r["paypal_request_id"] for r in asked} == {f"capture-{call.id}-1"}
        await mails_settled(system, call)
        await call.host_page.request("hang_up", call_id=call.id)
    run(scenario())


def test_a_capture_answer_lost_after_the_commit_is_retried_into_one_capture_and_one_resume(system):
    async def scenario():
        call = await Call.answered(system)
        await call.agree(1500, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        arm(system, {"kind": "lost_response", "path": "/v2/checkout/orders/*/capture", "method": "POST"})
        approve_on_paypal(ready["payment"]["approve_url"])
        await call.caller_page.expect("call_state", state="running", event="payment_captured", timeout_s=15)
        await mails_settled(system, call)
        order = booked_once(system, call)
        assert len(requests_to(system, f"/v2/checkout/orders/{order['_id']}/capture")) >= 2
        await call.host_page.request("hang_up", call_id=call.id)
        ended = await call.caller_page.expect("call_state", state="ended")
        assert ended["end_reason"] == "hung_up"
    run(scenario())


def test_a_capture_whose_every_answer_is_lost_is_read_from_the_order_and_booked_once(system_with):
    system = system_with(paypal_backoff_s=0.01)

    async def scenario():
        # No webhook to ask again: only the payments adapter can find out what PayPal did.
        put_webhook_url(system, "")
        call = await Call.answered(system)
        await call.agree(1500, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        arm(system, {"kind": "lost_response", "path": "/v2/checkout/orders/*/capture", "method": "POST", "count": 5})
        approve_on_paypal(ready["payment"]["approve_url"])
        await call.caller_page.expect("call_state", state="running", event="payment_captured", timeout_s=15)
        order_id = ready["payment"]["order_id"]
        assert len(requests_to(system, f"/v2/checkout/orders/{order_id}/capture")) == 5
        assert [r["method"] for r in requests_to(system, f"/v2/checkout/orders/{order_id}")] == ["GET"]  # read once
        booked_once(system, call)
        await mails_settled(system, call)
        await call.host_page.request("hang_up", call_id=call.id)
    run(scenario())


def test_a_lost_capture_found_after_its_call_ended_is_refunded_in_full(system_with):
    system = system_with(paypal_backoff_s=0.01, payment_window_s=3)

    async def scenario():
        put_webhook_url(system, "")
        call = await Call.answered(system, "Late Host", "Lost Caller")
        await call.agree(1500, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        # Every capture answer lost, and PayPal's order unreadable for a while: by the time the
        # adapter reads it again the call's payment window is over.
        arm(system, {"kind": "lost_response", "path": "/v2/checkout/orders/*/capture", "method": "POST", "count": 5})
        arm(system, {"kind": "error", "path": "/v2/checkout/orders/*", "method": "GET", "status": 503, "count": 5})
        approve_on_paypal(ready["payment"]["approve_url"])
        ended = await call.caller_page.expect("call_state", state="ended", timeout_s=10)
        assert ended["end_reason"] == "payment_timeout"
        await assert_refunded_once(system, call)
    run(scenario())


def test_duplicated_webhooks_and_a_capture_event_before_the_approval_book_once(system):
    async def scenario():
        call = await Call.answered(system)
        await call.agree(1500, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        # The next two events (the approval, then the capture) are each sent twice, held, and
        # delivered in reverse: PAYMENT.CAPTURE.COMPLETED before CHECKOUT.ORDER.APPROVED.
        arm(system, {"kind": "webhook_duplicate", "count": 2})
        arm(system, {"kind": "webhook_out_of_order", "count": 2, "hold_s": 10})
        order_id = ready["payment"]["order_id"]
        approve_on_paypal(ready["payment"]["approve_url"])
        await call.host_page.expect("call_state", state="running", event="payment_captured")

        capture_id = system.db.ledger.find_one({"call_id": call.id})["_id"].split(":")[1]

        def delivered():
            ours = [d for d in control(system, "/emulator/webhooks")["deliveries"]
                    if d["resource_id"] in (order_id, capture_id)]
            return len(ours) == 4 and all(d["status"] == "SUCCESS" for d in ours)
        await eventually(delivered, "four deliveries of two events", timeout_s=20)
        mine = list(system.db.webhook_events.find({"resource.id": {"$in": [order_id, capture_id]}}))
        assert sorted(e["event_type"] for e in mine) == ["CHECKOUT.ORDER.APPROVED", "PAYMENT.CAPTURE.COMPLETED"]
        completed, approved = sorted(mine, key=lambda e: e["received_at"])
        assert completed["event_type"] == "PAYMENT.CAPTURE.COMPLETED"     # it came first
        booked_once(system, call)
        await mails_settled(system, call)
        await call.host_page.request("hang_up", call_id=call.id)
    run(scenario())


def test_the_same_webhook_posted_twice_at_once_has_one_effect(system):
    async def scenario():
        call = await Call.answered(system)
        await call.agree(1500, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        order_id = ready["payment"]["order_id"]
        put_webhook_url(system, "")  # PayPal's own deliveries off: only ours reach the gateway
        try:
            approve_and_never_come_back(ready["payment"]["approve_url"])
        finally:
            put_webhook_url(system, f"{system.url}/paypal/webhook")
        event = {"id": "WH-" + secrets.token_hex(8).upper(), "event_version": "1.0",
                 "create_time": "2026-11-26T10:00:00Z", "resource_type": "checkout-order",
                 "event_type": "CHECKOUT.ORDER.APPROVED", "summary": "An order has been approved by buyer",
                 "resource": {"id": order_id, "status": "APPROVED", "intent": "CAPTURE"}, "links": []}
        body = json.dumps(event, separators=(",", ":"))
        headers = control(system, "/emulator/webhooks/sign", {"body": body})["headers"]
        request = HTTPRequest(f"{system.url}/paypal/webhook", method="POST", body=body,
                              headers=dict(headers, **{"Content-Type": "application/json"}))
        client = AsyncHTTPClient()
        answers = await asyncio.gather(*(client.fetch(request, raise_error=False) for _ in range(2)))
        assert [answer.code for answer in answers] == [200, 200]
        await call.host_page.expect("call_state", state="running", event="payment_captured")
        await mails_settled(system, call)
        booked_once(system, call)
        assert system.db.webhook_events.count_documents({"_id": event["id"]}) == 1
        await call.host_page.request("hang_up", call_id=call.id)
    run(scenario())


# The database restarting between the capture and its booking -------------------------------

def test_a_database_restart_between_capture_and_booking_books_once(system_on_own_database, own_database):
    system = system_on_own_database

    async def scenario():
        call = await Call.answered(system)
        await call.agree(1500, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        order_id = ready["payment"]["order_id"]
        # PayPal captures at once and answers after 4 s; meanwhile the database goes away.
        arm(system, {"kind": "timeout", "path": "/v2/checkout/orders/*/capture", "method": "POST", "delay_s": 4})
        put_webhook_url(system, "")  # the payer's return alone asks for the capture
        approve_on_paypal(ready["payment"]["approve_url"])
        await eventually(lambda: requests_to(system, f"/v2/checkout/orders/{order_id}/capture"), "the capture request")
        await asyncio.to_thread(own_database.stop)
        # PayPal answers at 4 s; the database stays away until the adapter's first read of that
        # answer has failed (it waits DB_SELECTION_TIMEOUT_S, then says so in the node's log), so
        # what brings the money into the books is the adapter retrying, not the database coming
        # back in time. Its warning is in the log while it waits, not only once the database is back.
        await eventually(lambda: answered_at_paypal(system, order_id), "PayPal's answer to the capture", timeout_s=30)
        await eventually(lambda: f"database unavailable to read order {order_id}" in (
            system.log_dir / "node.log").read_text(errors="replace"), "the payments adapter's warning",
            timeout_s=DB_SELECTION_TIMEOUT_S * 4)
        assert captures_at_paypal(system, order_id)   # the money is in at PayPal, not yet in our books
        await asyncio.to_thread(own_database.start)
        await call.host_page.expect("call_state", state="running", event="payment_captured", timeout_s=60)
        booked_once(system, call)
        await mails_settled(system, call)
        put_webhook_url(system, f"{system.url}/paypal/webhook")
        await call.host_page.request("hang_up", call_id=call.id)
    run(scenario())


async def mismatched_payment(system, fault):
    """A call whose caller approves a $15.00 order that PayPal captures as `fault` says; an
    operator is there to be told. Returns the call and the operator."""
    olga = await operator(system, "Mona Mismatch")
    call = await Call.answered(system, "Matching Host", "Mismatched Caller")
    await call.agree(1500, 600)
    ready = await call.caller_page.expect("call_state", event="payment_ready")
    arm(system, dict(fault, kind="capture_mismatch"))
    approve_on_paypal(ready["payment"]["approve_url"])
    ended = await call.caller_page.expect("call_state", state="ended", timeout_s=15)
    assert ended["end_reason"] == "payment_failed"
    return call, olga


def operator_alerts(system, olga):
    return [m for m in system.db.outbox.find({"to": olga.email}) if "did not match its terms" in m["subject"]]


def test_a_capture_for_another_amount_is_refunded_in_full_never_the_hosts_and_operators_are_told(system):
    async def scenario():
        call, olga = await mismatched_payment(system, {"amount": "25.00"})
        db = system.db
        refund = await eventually(lambda: db.ledger.find_one({"call_id": call.id, "kind": "late_capture_refund"}), "the whole refund booked", timeout_s=15)
        (captured,) = db.ledger.find({"call_id": call.id, "kind": "call_payment"})
        assert captured["entries"][0] == {"account": f"caller:{call.caller.id}", "amount_cents": -2500}
        assert refund["entries"][-1]["amount_cents"] + refund["entries"][1]["amount_cents"] == 2500
        capture_id = captured["_id"].split(":")[1]
        assert paypal(system).get_capture(capture_id)["status"] == "REFUNDED"
        assert db.calls.find_one({"_id": call.id})["payments"] == []
        mail = await eventually(lambda: db.outbox.find_one({"to": call.caller.email, "subject": {"$regex": "^Refunded"}}), "the caller told")
        assert "USD 25.00" in mail["body"] and "$15.00" in mail["body"]
        (alert,) = await eventually(lambda: operator_alerts(system, olga), "the operators told")
        assert capture_id in alert["body"]
        answer = system.cli("ledger", "reconcile", "--json")
        assert answer.returncode == 0, answer.stdout
    run(scenario())


def test_a_capture_in_another_currency_is_refunded_in_full_and_never_booked(system):
    async def scenario():
        call, olga = await mismatched_payment(system, {"currency": "EUR"})
        db = system.db
        order = await eventually(lambda: db.orders.find_one({"call_id": call.id, "capture_state": "refunded"}), "the capture refunded", timeout_s=15)
        assert order["mismatch"] == {"captured_cents": 1500, "currency": "EUR", "expected_cents": 1500}
        assert paypal(system).get_capture(order["capture_id"])["status"] == "REFUNDED"
        assert db.ledger.count_documents({"call_id": call.id}) == 0
        await eventually(lambda: operator_alerts(system, olga), "the operators told")
        answer = system.cli("ledger", "reconcile", "--json")
        assert answer.returncode == 0, answer.stdout
    run(scenario())


def test_a_refund_told_before_its_capture_is_booked_waits_and_is_booked_once_the_capture_is(system_with):
    system = system_with(paypal_backoff_s=0.01, refund_retry_s=0.5)
    db = system.db

    async def scenario():
        call = await Call.answered(system, "Early Host", "Early Refund")
        await call.agree(1500, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        order_id = ready["payment"]["order_id"]
        # PayPal captures but every answer is lost and the order cannot be read: the capture is
        # PayPal's, not yet in our ledger. Its own webhook goes nowhere (so it nudges nothing).
        faults = capture_unanswered(system, order_id)
        put_webhook_url(system, "")
        approve_on_paypal(ready["payment"]["approve_url"])
        capture_id = (await eventually(lambda: deliveries(system, "PAYMENT.CAPTURE.COMPLETED"), "the capture"))[0][
            "resource_id"]
        put_webhook_url(system, f"{system.url}/paypal/webhook")

        # An operator refunds $5.00 on PayPal's dashboard: its webhook is taken and recorded, and
        # waits for the capture (the refunds actor tries it again, backing off); nothing booked.
        refund_id = refund_at_paypal(system, capture_id, 500)
        (told,) = await eventually(lambda: [d for d in deliveries(system, REFUNDED)
                                            if d["resource_id"] == refund_id and d["status"] == "SUCCESS"],
                                   "the refund's delivery taken")
        waiting = await eventually(lambda: db.webhook_events.find_one({"_id": told["event_id"], "tries": {"$gte": 2}}),
                                   "the event tried twice")
        assert waiting["money"] == money_events.DUE and "not booked yet" in waiting["waiting"]
        # Operators see it waiting.
        assert value(scrape(system.url + "/metrics"), "interkanect_money_events", state="waiting") == 1
        assert db.ledger.count_documents({"call_id": call.id}) == 0

        # PayPal answers again; the payer comes back from PayPal: the capture is booked, the call
        # runs, and the waiting refund is booked by the refunds actor's next try: PayPal was
        # asked for nothing again (it delivered once).
        disarm(system, faults)
        with urllib.request.urlopen(f"{system.url}/paypal/return?token={order_id}", timeout=10):
            pass
        await call.caller_page.expect("call_state", state="running", event="payment_captured", timeout_s=15)
        await eventually(lambda: db.ledger.find_one({"_id": f"refund:{refund_id}"}), "the refund booked")
        assert len([d for d in deliveries(system, REFUNDED) if d["resource_id"] == refund_id]) == 1
        assert balances(db, call) == {"caller": -1000, "pending": 899, "available": 0, "frozen": 0}
        assert value(scrape(system.url + "/metrics"), "interkanect_money_events", state="waiting") == 0
        # PayPal delivering the same event again (its resend API) books nothing twice.
        assert paypal_api(system.settings.paypal_url, "POST",
                          f"/v1/notifications/webhooks-events/{told['event_id']}/resend")[0] == 202
        await eventually(lambda: len([d for d in deliveries(system, REFUNDED) if d["resource_id"] == refund_id
                                      and d["status"] == "SUCCESS"]) == 2 and money_applied(db), "the resend taken")
        assert balances(db, call) == {"caller": -1000, "pending": 899, "available": 0, "frozen": 0}
        await call.host_page.request("hang_up", call_id=call.id)
    run(scenario())


def deliveries(system, event_type):
    return control(system, f"/emulator/webhooks?event_type={event_type}")["deliveries"]


def test_a_payments_adapter_killed_before_a_capture_answer_is_replaced_and_the_next_finds_and_refunds_it(
        system_with):
    system = system_with(paypal_backoff_s=0.01, payment_window_s=3)
    db = system.db

    async def scenario():
        put_webhook_url(system, "")   # no webhook to ask again: only the payments adapter can find out
        call = await Call.answered(system, "Late Host", "Killed Adapter")
        await call.agree(1500, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        order_id = ready["payment"]["order_id"]
        faults = capture_unanswered(system, order_id)
        approve_on_paypal(ready["payment"]["approve_url"])
        await eventually(lambda: deliveries(system, "PAYMENT.CAPTURE.COMPLETED"), "PayPal's capture")
        assert db.orders.find_one({"_id": order_id})["capture_unanswered"] is True
        ended = await call.caller_page.expect("call_state", state="ended", timeout_s=10)
        assert ended["end_reason"] == "payment_timeout"
        # Then the process that asked dies, PayPal's answer still unknown to us, and no call is
        # left to ask again: the host's shard (where the ended session lingers a moment) dies too.
        os.kill(db.calls.find_one({"_id": call.id})["shard_pid"], signal.SIGKILL)
        first = db.platform.find_one({"_id": "adapter:PaymentsActor"})["pid"]
        os.kill(first, signal.SIGKILL)
        disarm(system, faults)   # PayPal answers again: the new adapter reads the order it marked
        await eventually(lambda: db.platform.find_one({"_id": "adapter:PaymentsActor"})["pid"] != first,
                         "a new payments adapter", timeout_s=15)
        await assert_refunded_once(system, call)
    run(scenario())


def capture_unanswered(system, order_id):
    """PayPal captures but every answer is lost and the order cannot be read, until disarmed."""
    return [arm(system, {"kind": "lost_response", "path": "/v2/checkout/orders/*/capture", "method": "POST",
                         "count": 1000}),
            arm(system, {"kind": "error", "path": f"/v2/checkout/orders/{order_id}", "method": "GET",
                         "status": 503, "count": 1000})]


def disarm(system, faults):
    for fault in faults:
        urllib.request.urlopen(urllib.request.Request(
            f"{system.settings.paypal_url}/emulator/faults/{fault['id']}", method="DELETE"), timeout=5).close()
