"""Refunds through the whole system: the caller asks within the window, an operator reviews
(notes, decision), PayPal refunds every call payment of the call (extensions included, tips
never) minus its fee, once, whatever PayPal's faults; the ledger books one refund per capture;
both sides are mailed; a refund after the payout leaves a debt that later earnings repay."""
import datetime

import pytest

from rules import ledger, payout_calendar, refund_rules
from tests.kit.calls import PAID_LENGTH_S, Call, net, paid_call, upgraded_host
from tests.kit.client import Member
from tests.kit.operators import approve, operator
from tests.kit.paypal import arm, paypal_api
from tests.kit.system import run, start_system
from tests.kit.waiting import wait_for
from tests.test_payouts import run_payout

UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def refund_system(database_url, tmp_path_factory):
    """Short paid lengths, quick refund retries."""
    running = start_system(database_url, tmp_path_factory.mktemp("system"), min_length_s=PAID_LENGTH_S,
                           refund_retry_s=1)
    yield running
    running.finish()


def refunds_of(db, call_id):
    return sorted(db.ledger.find({"call_id": call_id, "kind": ledger.REFUND}), key=lambda t: t["_id"])


def mail_subjects(db, member):
    return [m["subject"] for m in db.outbox.find({"to": member.email}).sort("created_at", 1)]


def paypal_total_refunded(system, refund_id):
    status, refund = paypal_api(system.settings.paypal_url, "GET", f"/v2/payments/refunds/{refund_id}")
    assert status == 200, refund
    return refund["seller_payable_breakdown"]["total_refunded_amount"]["value"]


def test_an_approved_refund_returns_every_call_payment_minus_its_fee_once_and_tells_both_sides(refund_system):
    system, db = refund_system, refund_system.db

    async def scenario():
        call = await paid_call(system, [1500, 2000], tip_cents=500)
        caller, host = call.caller, call.host
        stranger, olga = await Member(system.url).sign_up("Stranger"), await operator(system)
        path = f"/api/calls/{call.id}/refund"

        # Who may ask, and with what.
        assert (await Member(system.url).request("POST", path, {"reason": "x"})).error_code == "not_logged_in"
        assert (await stranger.request("POST", path, {"reason": "x"})).error_code == "no_such_call"
        assert (await host.request("POST", path, {"reason": "x"})).error_code == "not_caller"
        for body, code in (({}, "reason_required"), ({"reason": "   "}, "reason_required"),
                           ({"reason": "x" * 2001}, "reason_too_long")):
            answer = await caller.request("POST", path, body)
            assert (answer.code, answer.error_code) == (400, code)
        assert (await caller.request("GET", path)).error_code == "no_refund_request"
        assert db.refund_requests.count_documents({"call_id": call.id}) == 0

        asked = await caller.request("POST", path, {"reason": "The video froze for most of the call."})
        assert asked.code == 201, asked.body
        view = asked.json()
        assert view["state"] == "open" and view["paid_cents"] == 3500          # the tip is not part of it
        assert view["refund_cents"] == net(1500) + net(2000) and "notes" not in view
        assert view["caller"] == {"id": caller.id, "name": "Carl Caller"} and view["host"]["id"] == host.id
        deadline = datetime.datetime.fromisoformat(view["deadline"])
        assert deadline == payout_calendar.refund_review_deadline(datetime.datetime.fromisoformat(view["requested_at"]))
        again = await caller.request("POST", path, {"reason": "again"})
        assert (again.code, again.error_code) == (409, "refund_already_requested")
        assert (await host.request("GET", path)).json()["id"] == view["id"]
        assert (await stranger.request("GET", path)).error_code == "no_such_call"
        wait_for(lambda: "A caller asked for a refund of your call" in mail_subjects(db, host), "the host told")

        # The review queue is the operators'.
        assert (await Member(system.url).request("GET", "/api/refunds")).code == 401
        refused = await caller.request("GET", "/api/refunds")
        assert (refused.code, refused.error_code) == (403, "not_operator")
        queue = (await olga.request("GET", "/api/refunds")).json()["refunds"]
        assert view["id"] in [r["id"] for r in queue]
        assert [r["deadline"] for r in queue] == sorted(r["deadline"] for r in queue)
        assert (await olga.request("GET", "/api/refunds?state=later")).error_code == "invalid_state"
        log = await olga.request("GET", f"/api/calls/{call.id}")   # the evidence: the call's log
        assert log.code == 200 and len(log.json()["call"]["payments"]) == 2
        notes = f"/api/refunds/{view['id']}/notes"
        assert (await olga.request("POST", notes, {"text": " "})).error_code == "note_required"
        assert (await host.request("POST", notes, {"text": "my side"})).error_code == "not_operator"
        noted = await olga.request("POST", notes, {"text": "Called Hana: the caller's network dropped."})
        assert noted.code == 201
        assert [(n["by"]["name"], n["text"]) for n in noted.json()["notes"]] == [
            ("Olga Operator", "Called Hana: the caller's network dropped.")]

        decision = f"/api/refunds/{view['id']}/decision"
        assert (await olga.request("POST", decision, {"decision": "refund"})).error_code == "invalid_decision"
        assert (await caller.request("POST", decision, {"decision": "approve"})).error_code == "not_operator"
        assert db.refund_requests.find_one({"_id": view["id"]})["decision"] is None
        # PayPal refunds the first capture and the answer is lost: the retry gets the same refund.
        arm(system, {"kind": "lost_response", "path": "/v2/payments/captures/*/refund", "method": "POST"})
        decided = await olga.request("POST", decision, {"decision": "approve", "note": "Network trouble, not hers."})
        assert decided.code == 200, decided.body
        if decided.json()["state"] == "approved":  # PayPal was slow: the refunds actor goes on
            wait_for(lambda: db.refund_requests.find_one({"_id": view["id"], "state": "refunded"}), "refunded")
        twice = await olga.request("POST", decision, {"decision": "deny"})
        assert (twice.code, twice.error_code) == (409, "already_decided")
        final = (await caller.request("GET", path)).json()
        assert final["state"] == "refunded" and final["decision_note"] == "Network trouble, not hers."
        assert final["decided_at"] and "notes" not in final
        return call, view
    call, view = run(scenario())

    refunds = refunds_of(db, call.id)
    assert len(refunds) == 2
    caller_account, host_pending = f"caller:{call.caller.id}", f"member:{call.host.id}:pending"
    back = sorted(e["amount_cents"] for t in refunds for e in t["entries"] if e["account"] == caller_account)
    assert back == sorted([net(1500), net(2000)])
    for refund in refunds:   # one PayPal refund per capture: its total refunded is just this one
        refund_id = refund["_id"].split(":", 1)[1]
        cents = next(e["amount_cents"] for e in refund["entries"] if e["account"] == caller_account)
        assert paypal_total_refunded(system, refund_id) == f"{cents // 100}.{cents % 100:02d}"
    balances = ledger.balances(ledger.Transaction.from_document(t).entries[i]
                               for t in db.ledger.find({"call_id": call.id})
                               for i in range(len(t["entries"])))
    assert balances[host_pending] == 0 and balances[f"member:{call.host.id}:available"] == net(500)  # the tip stays
    assert balances[caller_account] == -3500 - 500 + net(1500) + net(2000)
    wait_for(lambda: "Your refund was approved" in mail_subjects(db, call.caller), "the caller told")
    wait_for(lambda: "A refund of your call was approved" in mail_subjects(db, call.host), "the host told")
    assert mail_subjects(db, call.caller).count("Your refund was approved") == 1


def test_a_refund_is_asked_only_after_the_call_within_the_window_and_for_a_payment(refund_system):
    system, db = refund_system, refund_system.db

    async def scenario():
        # A free call: nothing to refund (and while it runs, it has not ended).
        call = await Call.answered(system, "Free Talker", "Free Caller")
        await call.agree(0, 600)
        path = f"/api/calls/{call.id}/refund"
        running = await call.caller.request("POST", path, {"reason": "too short"})
        assert (running.code, running.error_code) == (409, "call_not_ended")
        await call.host_page.request("hang_up", call_id=call.id)
        await call.caller_page.expect("call_state", state="ended")
        wait_for(lambda: db.calls.find_one({"_id": call.id, "ended_at": {"$ne": None}}), "the call stored")
        free = await call.caller.request("POST", path, {"reason": "too short"})
        assert (free.code, free.error_code) == (409, "nothing_to_refund")

        # A paid call ended 24 hours and a second ago: too late.
        paid = await paid_call(system, [1000])
        ended = db.calls.find_one({"_id": paid.id})["ended_at"]
        # A version far ahead, so a last write of the ended session (its log) cannot put it back.
        db.calls.update_one({"_id": paid.id}, {"$set": {"ended_at": ended - datetime.timedelta(hours=24, seconds=1)},
                                               "$inc": {"version": 1_000_000}})
        late = await paid.caller.request("POST", f"/api/calls/{paid.id}/refund", {"reason": "too short"})
        assert (late.code, late.error_code) == (409, "refund_window_closed")
        assert db.refund_requests.count_documents({"call_id": {"$in": [call.id, paid.id]}}) == 0
    run(scenario())


def test_paypal_down_at_the_decision_leaves_it_approved_until_the_refunds_actor_finishes_it_once(refund_system):
    system, db = refund_system, refund_system.db

    async def scenario():
        call, olga = await paid_call(system, [1200]), await operator(system, "Otto Operator")
        view = (await call.caller.request("POST", f"/api/calls/{call.id}/refund", {"reason": "no show"})).json()
        # Every attempt of the decision's refund call fails (the SDK tries 5 times), and so do
        # those of the refunds actor's next sweep (refund_retry_s after): the approval stays
        # approved while the test reads it, however slowly the machine answers.
        arm(system, {"kind": "error", "path": "/v2/payments/captures/*/refund", "method": "POST",
                                "status": 503, "count": 10})
        decided = (await approve(olga, view["id"])).json()
        assert decided["state"] == "approved"
        assert refunds_of(db, call.id) == []
        listed = (await olga.request("GET", "/api/refunds?state=approved")).json()["refunds"]
        assert view["id"] in [r["id"] for r in listed]
        wait_for(lambda: db.refund_requests.find_one({"_id": view["id"], "state": "refunded"}),
                 "the refunds actor to finish the approval", timeout_s=60)
        (refund,) = refunds_of(db, call.id)
        assert paypal_total_refunded(system, refund["_id"].split(":", 1)[1]) == "11.09"   # once: $12.00 - $0.91
        shown = (await olga.request("GET", f"/api/calls/{call.id}/refund")).json()
        assert shown["refunds"][0]["done"] is True and shown["refunds"][0]["error"] is None
    run(scenario())


def test_a_denied_request_moves_no_money_and_tells_both_sides(refund_system):
    system, db = refund_system, refund_system.db

    async def scenario():
        call, olga = await paid_call(system, [1000]), await operator(system, "Ona Operator")
        view = (await call.caller.request("POST", f"/api/calls/{call.id}/refund", {"reason": "meh"})).json()
        denied = await olga.request("POST", f"/api/refunds/{view['id']}/decision",
                                    {"decision": "deny", "note": "The call ran its full length."})
        assert denied.code == 200 and denied.json()["state"] == "denied"
        assert db.refund_requests.find_one({"_id": view["id"]})["state"] == "denied"   # payouts no longer hold it
        wait_for(lambda: "Your refund request was declined" in mail_subjects(db, call.caller), "the caller told")
        wait_for(lambda: "A refund request on your call was declined" in mail_subjects(db, call.host), "host told")
        assert refunds_of(db, call.id) == []
        listed = (await olga.request("GET", "/api/refunds?state=denied")).json()["refunds"]
        assert [r["id"] for r in listed if r["id"] == view["id"]] == [view["id"]]
    run(scenario())


def test_a_refund_after_the_payout_leaves_a_debt_that_the_next_earnings_repay(system_with):
    # Earnings are held as long as the caller may ask (the start refuses a shorter hold), so a
    # refund after the payout is one made on PayPal's dashboard, booked from its webhook. Here
    # no hold and no window: a call is payable at once.
    system = system_with(earnings_hold_s=0, refund_window_s=0, min_length_s=PAID_LENGTH_S)
    db = system.db
    first_payout, next_payout = payout_calendar.next_payouts(datetime.datetime.now(UTC), 2)

    async def scenario():
        host, caller = await upgraded_host(system, "Paid Pat"), await Member(system.url).sign_up("Refunded Rae")
        call = await paid_call(system, [1500], host=host, caller=caller)
        report = run_payout(system, first_payout)
        assert {i["member_id"]: i["amount_cents"] for i in report["items"]}[host.id] == net(1500)
        (capture,) = db.ledger.find({"call_id": call.id, "kind": ledger.CALL_PAYMENT})
        cents = net(1500)
        status, _ = paypal_api(system.settings.paypal_url, "POST", f"/v2/payments/captures/{capture['_id'][8:]}/refund",
                               {"amount": {"currency_code": "USD", "value": f"{cents // 100}.{cents % 100:02d}"}})
        assert status == 201
        wait_for(lambda: refunds_of(db, call.id), "the dashboard refund booked from its webhook")
        earnings = (await host.request("GET", "/api/earnings")).json()
        assert earnings["available_cents"] == -net(1500) and earnings["paid_out_cents"] == net(1500)
        # The next call's earnings first repay the refund; only the rest is paid out.
        await paid_call(system, [2000], host=host, caller=caller)
        report = run_payout(system, next_payout)
        assert {i["member_id"]: i["amount_cents"] for i in report["items"]}[host.id] == net(2000) - net(1500)
        earnings = (await host.request("GET", "/api/earnings")).json()
        assert earnings["available_cents"] == 0 and earnings["paid_out_cents"] == net(2000)
    run(scenario())


def test_a_decision_stored_by_a_gateway_that_died_before_telling_the_refunds_actor_is_carried_out(refund_system):
    system, db = refund_system, refund_system.db

    async def scenario():
        call = await paid_call(system, [1800])
        return call, (await call.caller.request("POST", f"/api/calls/{call.id}/refund", {"reason": "lag"})).json()
    call, view = run(scenario())
    # What the decision handler stores first; its process dies before the actor hears of it.
    payments = refund_rules.call_payments(db.ledger.find({"call_id": call.id}))
    db.refund_requests.update_one({"_id": view["id"], "decision": None}, {"$set": refund_rules.decision_fields(
        "approve", None, {"id": "op", "name": "Gone Gateway"}, payments, view["id"], datetime.datetime.now(UTC))})
    wait_for(lambda: db.refund_requests.find_one({"_id": view["id"], "state": "refunded"}),
             "the refunds actor's sweep to carry it out", timeout_s=20)
    assert [t["entries"][-1]["amount_cents"] for t in refunds_of(db, call.id)] == [net(1800)]
    wait_for(lambda: "Your refund was approved" in mail_subjects(db, call.caller), "the caller told")


def test_an_approval_needs_an_interview_note_and_overdue_requests_are_mailed_to_operators_once_a_day(refund_system):
    system, db = refund_system, refund_system.db

    async def scenario():
        call, olga = await paid_call(system, [1300]), await operator(system, "Iris Interviewer")
        view = (await call.caller.request("POST", f"/api/calls/{call.id}/refund", {"reason": "cut off"})).json()
        decision = f"/api/refunds/{view['id']}/decision"
        refused = await olga.request("POST", decision, {"decision": "approve"})
        assert (refused.code, refused.error_code) == (409, "interview_required")
        assert "note" in refused.json()["error"]["message"]
        assert db.refund_requests.find_one({"_id": view["id"]})["decision"] is None and refunds_of(db, call.id) == []
        # Past its deadline: marked in the queue, and every operator gets one reminder that day.
        db.refund_requests.update_one({"_id": view["id"]}, {"$set": {
            "deadline": datetime.datetime.now(UTC) - datetime.timedelta(hours=1)}})
        listed = {r["id"]: r for r in (await olga.request("GET", "/api/refunds")).json()["refunds"]}
        assert listed[view["id"]]["overdue"] is True
        subject = wait_for(lambda: next((s for s in mail_subjects(db, olga) if "past the review deadline" in s), None),
                           "the operators reminded", timeout_s=20)
        body = db.outbox.find_one({"to": olga.email, "subject": subject})["body"]
        assert call.id in body and "Carl Caller asks Hana Host's call back" in body
        wait_for(lambda: db.refund_reminders.count_documents({}) == 1, "the reminder claimed")
        sweeps_later = datetime.datetime.now(UTC) + datetime.timedelta(seconds=3)   # refund_retry_s is 1
        wait_for(lambda: datetime.datetime.now(UTC) > sweeps_later, "three more sweeps")
        assert [s for s in mail_subjects(db, olga) if "past the review deadline" in s] == [subject]
        # A denial needs no note; an approval after a note goes through.
        decided = await approve(olga, view["id"])
        assert decided.code == 200 and decided.json()["overdue"] is False
    run(scenario())
