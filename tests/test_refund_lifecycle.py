"""Refunds as PayPal really treats them, through the whole system (gateway, refunds actor,
SecantusDB, the emulator's refund_outcome switch and its webhooks): a PENDING refund books
nothing until PayPal completes it; a FAILED or CANCELLED one is asked again as a new refund
(new request id) and the failed one is never booked; past the allowance operators are mailed
and ask again by hand; a plan leaves out what was refunded already on PayPal's side.

The system polls a PENDING refund only hourly (the policy's default), so a refund settling
here within seconds was settled by its webhook."""
import os
import signal

import pytest

from rules import ledger
from tests.kit.calls import PAID_LENGTH_S, net, paid_call
from tests.kit.client import Member
from tests.kit.operators import approve, operator
from tests.kit.paypal import arm, control, paypal_api
from tests.kit.system import run, start_system
from tests.kit.waiting import eventually, wait_for
from tests.test_money_faults import requests_to
from tests.test_refunds import mail_subjects, refunds_of


@pytest.fixture(scope="module")
def lifecycle_system(database_url, tmp_path_factory):
    running = start_system(database_url, tmp_path_factory.mktemp("system"), min_length_s=PAID_LENGTH_S,
                           refund_retry_s=1, refund_attempts_max=3)
    yield running
    running.finish()


def host_balances(db, host_id):
    balances = ledger.balances(ledger.Transaction.from_document(t).entries[i] for t in db.ledger.find()
                               for i in range(len(t["entries"])))
    return balances.get(f"member:{host_id}:pending", 0), balances.get(f"member:{host_id}:available", 0)


async def asked_and_approved(system, call, olga):
    """The caller asks, the operator approves; the decision's view."""
    view = (await call.caller.request("POST", f"/api/calls/{call.id}/refund", {"reason": "it froze"})).json()
    decided = await approve(olga, view["id"])
    assert decided.code == 200, decided.body
    return decided.json()


def item_of(db, request_id):
    (item,) = db.refund_requests.find_one({"_id": request_id})["plan"]
    return item


def test_a_pending_refund_books_nothing_until_paypal_completes_it(lifecycle_system):
    system, db = lifecycle_system, lifecycle_system.db

    async def scenario():
        call = await paid_call(system, [1500])
        olga = await operator(system, "Pia Pending")
        arm(system, {"kind": "refund_outcome", "outcome": "PENDING"})
        view = await asked_and_approved(system, call, olga)
        assert view["state"] == "approved"
        item = wait_for(lambda: (i := item_of(db, view["id"]))["refund_status"] == "PENDING" and i, "PENDING stored")
        assert not item["booked"] and refunds_of(db, call.id) == []
        assert host_balances(db, call.host.id)[0] == net(1500)   # the host's earnings are not touched yet
        shown = (await olga.request("GET", f"/api/calls/{call.id}/refund")).json()
        assert shown["state"] == "approved" and shown["refunds"][0]["status"] == "PENDING"
        assert "Your refund was approved" not in mail_subjects(db, call.caller)
        # The eCheck clears: PAYMENT.CAPTURE.REFUNDED reaches the gateway, which has it settled.
        control(system, f"/emulator/refunds/{item['refund_id']}/complete", {})
        wait_for(lambda: db.refund_requests.find_one({"_id": view["id"], "state": "refunded"}), "refunded", timeout_s=15)
        (booked,) = refunds_of(db, call.id)
        assert booked["_id"] == f"refund:{item['refund_id']}" and booked["capture_id"] == item["capture_id"]
        assert host_balances(db, call.host.id)[0] == 0
        wait_for(lambda: "Your refund was approved" in mail_subjects(db, call.caller), "the caller told")
    run(scenario())


def test_a_refund_that_fails_after_pending_is_asked_again_as_a_new_refund_and_only_that_one_is_booked(
        lifecycle_system):
    system, db = lifecycle_system, lifecycle_system.db

    async def scenario():
        call = await paid_call(system, [2000])
        olga = await operator(system, "Fay Failed")
        arm(system, {"kind": "refund_outcome", "outcome": "PENDING_FAILED", "settle_s": 0.5})
        view = await asked_and_approved(system, call, olga)
        wait_for(lambda: db.refund_requests.find_one({"_id": view["id"], "state": "refunded"}), "refunded", timeout_s=15)
        item = item_of(db, view["id"])
        (failed,) = item["failed_refunds"]
        assert failed["status"] == "FAILED" and failed["refund_id"] != item["refund_id"]
        (booked,) = refunds_of(db, call.id)
        assert booked["_id"] == f"refund:{item['refund_id']}"
        asked = [r["paypal_request_id"] for r in requests_to(system, f"/v2/payments/captures/{item['capture_id']}/refund")]
        assert asked == [f"refund-{view['id']}-{item['capture_id']}", f"refund-{view['id']}-{item['capture_id']}-retry1"]
        status, capture = paypal_api(system.settings.paypal_url, "GET", f"/v2/payments/captures/{item['capture_id']}")
        assert status == 200 and capture["status"] == "PARTIALLY_REFUNDED"   # the fee stays with PayPal
        assert host_balances(db, call.host.id)[0] == 0
        # The failed refund's webhook, delivered again, changes nothing.
        (failure,) = [d for d in control(system, "/emulator/webhooks?event_type=PAYMENT.REFUND.FAILED")["deliveries"]
                      if d["resource_id"] == failed["refund_id"]]
        status, _ = paypal_api(system.settings.paypal_url, "POST",
                               f"/v1/notifications/webhooks-events/{failure['event_id']}/resend")
        assert status == 202
        wait_for(lambda: len([d for d in control(system, "/emulator/webhooks?event_type=PAYMENT.REFUND.FAILED")[
            "deliveries"] if d["event_id"] == failure["event_id"] and d["status"] == "SUCCESS"]) == 2,
            "the resend delivered")
        assert len(refunds_of(db, call.id)) == 1 and item_of(db, view["id"]) == item
    run(scenario())


def test_refunds_paypal_fails_too_often_go_to_operators_who_ask_again(lifecycle_system):
    system, db = lifecycle_system, lifecycle_system.db

    async def scenario():
        call = await paid_call(system, [1800])
        olga = await operator(system, "Ola Oncall")
        arm(system, {"kind": "refund_outcome", "outcome": "FAILED", "count": 3})
        view = await asked_and_approved(system, call, olga)
        subject = "A refund needs you: PayPal failed it 3 times"
        wait_for(lambda: subject in mail_subjects(db, olga), "the operators told", timeout_s=15)
        shown = (await olga.request("GET", f"/api/calls/{call.id}/refund")).json()
        assert shown["state"] == "approved" and shown["needs_operator"]
        assert len(shown["refunds"][0]["failed_refunds"]) == 3 and shown["refunds"][0]["needs_operator"]
        assert refunds_of(db, call.id) == [] and host_balances(db, call.host.id)[0] == net(1800)
        assert (await call.caller.request("GET", f"/api/calls/{call.id}/refund")).json()["state"] == "approved"
        # Only an operator asks again; then the next refund completes.
        retry = f"/api/refunds/{view['id']}/retry"
        assert (await call.caller.request("POST", retry, {})).error_code == "not_operator"
        again = await olga.request("POST", retry, {})
        assert again.code == 200, again.body
        wait_for(lambda: db.refund_requests.find_one({"_id": view["id"], "state": "refunded"}), "refunded", timeout_s=15)
        assert len(refunds_of(db, call.id)) == 1 and host_balances(db, call.host.id)[0] == 0
        refused = await olga.request("POST", retry, {})
        assert (refused.code, refused.error_code) == (409, "nothing_to_retry")
        assert mail_subjects(db, olga).count(subject) == 1
    run(scenario())


def test_a_refund_paypal_refuses_for_good_goes_to_operators_after_the_allowance(lifecycle_system):
    system, db = lifecycle_system, lifecycle_system.db

    async def scenario():
        call = await paid_call(system, [1800])
        olga = await operator(system, "Rex Refused")
        arm(system, {"kind": "refusal", "path": "/v2/payments/captures/*/refund", "method": "POST",
                     "issue": "PERMISSION_DENIED", "count": 3})
        view = await asked_and_approved(system, call, olga)
        wait_for(lambda: "A refund needs you: PayPal failed it 3 times" in mail_subjects(db, olga), "the operators told",
                 timeout_s=15)
        item = item_of(db, view["id"])
        assert item["escalated"] and [f["status"] for f in item["failed_refunds"]] == ["REFUSED PERMISSION_DENIED"] * 3
        assert item["error"] == "PayPal REFUSED PERMISSION_DENIED"
        shown = (await olga.request("GET", f"/api/calls/{call.id}/refund")).json()["refunds"][0]
        assert shown["needs_operator"] and shown["failed_refunds"] == [
            {"refund_id": None, "status": "REFUSED PERMISSION_DENIED"}] * 3
        assert refunds_of(db, call.id) == [] and host_balances(db, call.host.id)[0] == net(1800)
        assert len([r for r in requests_to(system, f"/v2/payments/captures/{item['capture_id']}/refund")
                    if r["method"] == "POST"]) == 3   # asked three times, not daily forever
        again = await olga.request("POST", f"/api/refunds/{view['id']}/retry", {})
        assert again.code == 200, again.body
        wait_for(lambda: db.refund_requests.find_one({"_id": view["id"], "state": "refunded"}), "refunded", timeout_s=15)
        assert len(refunds_of(db, call.id)) == 1
    run(scenario())


def test_a_killed_mailer_is_replaced_and_the_refunds_actor_mails_its_decisions_through_the_new_one(lifecycle_system):
    system, db = lifecycle_system, lifecycle_system.db

    async def scenario():
        call = await paid_call(system, [1500])
        olga = await operator(system, "Mo Mailer")
        first = db.platform.find_one({"_id": "adapter:Mailer"})["pid"]
        os.kill(first, signal.SIGKILL)
        await eventually(lambda: db.platform.find_one({"_id": "adapter:Mailer"})["pid"] != first, "a new mailer",
                         timeout_s=15)
        view = await asked_and_approved(system, call, olga)
        wait_for(lambda: db.refund_requests.find_one({"_id": view["id"], "state": "refunded"}), "refunded", timeout_s=15)
        wait_for(lambda: "Your refund was approved" in mail_subjects(db, call.caller), "the caller told", timeout_s=15)
        wait_for(lambda: "A refund of your call was approved" in mail_subjects(db, call.host), "the host told",
                 timeout_s=15)
    run(scenario())


def test_a_killed_refunds_actor_is_replaced_and_the_new_one_books_what_paypal_told_meanwhile(lifecycle_system):
    system, db = lifecycle_system, lifecycle_system.db

    async def scenario():
        call = await paid_call(system, [1500])
        olga = await operator(system, "Rex Restart")
        (payment,) = db.ledger.find({"call_id": call.id, "kind": ledger.CALL_PAYMENT})
        first = db.platform.find_one({"_id": "adapter:RefundsActor"})["pid"]
        os.kill(first, signal.SIGKILL)
        # At once, $3.00 refunded on PayPal's dashboard: its webhook is taken and recorded with
        # no refunds actor to apply it.
        status, refund = paypal_api(system.settings.paypal_url, "POST",
                                    f"/v2/payments/captures/{payment['_id'].split(':')[1]}/refund",
                                    {"amount": {"currency_code": "USD", "value": "3.00"}})
        assert status == 201
        await eventually(lambda: db.platform.find_one({"_id": "adapter:RefundsActor"})["pid"] != first,
                         "a new refunds actor", timeout_s=15)
        wait_for(lambda: db.ledger.find_one({"_id": f"refund:{refund['id']}"}), "the dashboard refund booked",
                 timeout_s=15)
        # And the new one carries out decisions.
        view = await asked_and_approved(system, call, olga)
        wait_for(lambda: db.refund_requests.find_one({"_id": view["id"], "state": "refunded"}), "refunded", timeout_s=15)
        assert len(refunds_of(db, call.id)) == 2
    run(scenario())


def test_a_refund_plan_leaves_out_what_was_refunded_on_paypal_already(lifecycle_system):
    system, db = lifecycle_system, lifecycle_system.db

    async def scenario():
        call = await paid_call(system, [1500, 2000])
        olga = await operator(system, "Dee Dashboard")
        captures = sorted(t["_id"].split(":")[1] for t in db.ledger.find({"call_id": call.id, "kind": "call_payment"}))
        amounts = {t["_id"].split(":")[1]: -t["entries"][0]["amount_cents"]
                   for t in db.ledger.find({"call_id": call.id, "kind": "call_payment"})}
        whole, part = captures
        # Someone refunds on PayPal's dashboard: one capture whole, $3.00 of the other.
        for capture_id, body in ((whole, {}), (part, {"amount": {"currency_code": "USD", "value": "3.00"}})):
            status, _ = paypal_api(system.settings.paypal_url, "POST", f"/v2/payments/captures/{capture_id}/refund", body)
            assert status == 201
        wait_for(lambda: len(refunds_of(db, call.id)) == 2, "the dashboard refunds booked from their webhooks")
        view = await asked_and_approved(system, call, olga)
        left = amounts[part] - (amounts[part] - net(amounts[part])) - 300
        assert view["refund_cents"] == left
        assert [(r["capture_id"], r["refund_cents"]) for r in view["refunds"]] == [(part, left)]
        wait_for(lambda: db.refund_requests.find_one({"_id": view["id"], "state": "refunded"}), "refunded", timeout_s=15)
        assert len(refunds_of(db, call.id)) == 3
    run(scenario())


def test_a_dashboard_refund_the_plan_did_not_know_of_makes_ours_refunded_for_what_is_left(lifecycle_system):
    system, db = lifecycle_system, lifecycle_system.db

    async def scenario():
        call = await paid_call(system, [1500])
        olga = await operator(system, "Rita Race")
        (capture,) = db.ledger.find({"call_id": call.id, "kind": "call_payment"})
        capture_id = capture["_id"].split(":")[1]
        # $5.00 refunded on PayPal's dashboard; its webhook is held back a few seconds, so the
        # approval plans the whole 13.99 and PayPal refuses it (only 10.00 is left).
        arm(system, {"kind": "webhook_out_of_order", "count": 2, "hold_s": 4})
        status, dashboard = paypal_api(system.settings.paypal_url, "POST", f"/v2/payments/captures/{capture_id}/refund",
                                       {"amount": {"currency_code": "USD", "value": "5.00"}})
        assert status == 201
        view = await asked_and_approved(system, call, olga)
        assert view["refund_cents"] == net(1500)
        wait_for(lambda: (item_of(db, view["id"])["error"] or "").startswith("REFUND_AMOUNT_EXCEEDED"), "refused")
        # Once the dashboard refund is booked, ours is planned again for what is left: 8.99.
        done = wait_for(lambda: db.refund_requests.find_one({"_id": view["id"], "state": "refunded"}), "refunded",
                        timeout_s=20)
        assert done["refund_cents"] == net(1500) - 500 == item_of(db, view["id"])["refund_cents"]
        assert item_of(db, view["id"])["request_id"].endswith("-after500")
        assert len(refunds_of(db, call.id)) == 2
        assert f"refund:{dashboard['id']}" in [r["_id"] for r in refunds_of(db, call.id)]
        shown = (await call.caller.request("GET", f"/api/calls/{call.id}/refund")).json()
        assert shown["state"] == "refunded" and shown["refund_cents"] == net(1500) - 500
    run(scenario())


def test_a_call_refunded_whole_on_paypal_has_nothing_left_to_ask(lifecycle_system):
    system, db = lifecycle_system, lifecycle_system.db

    async def scenario():
        call = await paid_call(system, [1500])
        (capture,) = db.ledger.find({"call_id": call.id, "kind": "call_payment"})
        status, _ = paypal_api(system.settings.paypal_url, "POST",
                               f"/v2/payments/captures/{capture['_id'].split(':')[1]}/refund", {})
        assert status == 201
        wait_for(lambda: refunds_of(db, call.id), "the dashboard refund booked")
        answer = await call.caller.request("POST", f"/api/calls/{call.id}/refund", {"reason": "again"})
        assert (answer.code, answer.error_code) == (409, "nothing_to_refund")
    run(scenario())


def test_a_forged_refund_retry_needs_an_operator_and_a_request(lifecycle_system):
    system = lifecycle_system

    async def scenario():
        olga = await operator(system, "Rita Retry")
        missing = await olga.request("POST", "/api/refunds/" + "0" * 24 + "/retry", {})
        assert (missing.code, missing.error_code) == (404, "no_refund_request")
        anonymous = await Member(system.url).request("POST", "/api/refunds/" + "0" * 24 + "/retry", {})
        assert anonymous.code == 401
    run(scenario())
