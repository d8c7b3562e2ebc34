"""Refunds made outside the platform (an operator on PayPal's dashboard: here a direct POST to
the emulator's refund API) reach the ledger through PayPal's signed PAYMENT.CAPTURE.REFUNDED
webhook, once, whatever duplicates and replays arrive; a refund the platform made itself, which
PayPal reports by the same webhook, is not booked twice."""
from rules import ledger
from tests.kit.calls import paid_call
from tests.kit.client import Member
from tests.kit.operators import approve, operator
from tests.kit.paypal import arm, paypal_api
from tests.kit.system import run
from tests.kit.waiting import wait_for
from tests.test_disputes import acknowledged, balances, capture_of, deliver

REFUNDED = "PAYMENT.CAPTURE.REFUNDED"


def refund_at_paypal(system, capture_id, cents=None):
    """What the operator does on PayPal's dashboard: no PayPal-Request-Id of ours, no ledger."""
    body = {} if cents is None else {"amount": {"currency_code": "USD", "value": f"{cents // 100}.{cents % 100:02d}"}}
    status, refund = paypal_api(system.settings.paypal_url, "POST", f"/v2/payments/captures/{capture_id}/refund", body)
    assert status == 201, refund
    return refund["id"]


def refund_keys(db, call_id):
    return sorted(t["_id"] for t in db.ledger.find({"call_id": call_id, "kind": ledger.REFUND}))


def test_a_refund_made_on_paypal_is_booked_once_from_pending_then_available_and_a_tips_from_available(system):
    db = system.db

    async def scenario():
        return await paid_call(system, [1500], tip_cents=500, caller=await Member(system.url).sign_up("Refunded Rita"),
                               length_s=600)
    call = run(scenario())
    capture_id = capture_of(db, call.id)
    (tip,) = db.ledger.find({"call_id": call.id, "kind": ledger.TIP})
    tip_capture_id = tip["_id"].split(":", 1)[1]
    # $15.00 nets 13.99 (held); the $5.00 tip nets 4.34 (available at once).
    assert balances(db, call) == {"caller": -2000, "pending": 1399, "available": 434, "frozen": 0}

    # $5.00 of the call payment back, and PayPal delivers the webhook twice at once.
    arm(system, {"kind": "webhook_duplicate"})
    first = refund_at_paypal(system, capture_id, 500)
    wait_for(lambda: acknowledged(system, REFUNDED, first, 2), "both deliveries taken")
    assert refund_keys(db, call.id) == [f"refund:{first}"]
    assert balances(db, call) == {"caller": -1500, "pending": 899, "available": 434, "frozen": 0}

    # The tip refunded whole: PayPal keeps its fee, so the member's available goes below zero.
    tip_refund = refund_at_paypal(system, tip_capture_id)
    wait_for(lambda: acknowledged(system, REFUNDED, tip_refund, 1), "the tip's refund taken")
    assert balances(db, call) == {"caller": -1000, "pending": 899, "available": -66, "frozen": 0}

    # The rest of the call payment ($10.00): the call's 8.99 pending first, 1.01 from available.
    last = refund_at_paypal(system, capture_id)
    wait_for(lambda: acknowledged(system, REFUNDED, last, 1), "the last refund taken")
    assert refund_keys(db, call.id) == sorted(f"refund:{r}" for r in (first, tip_refund, last))
    # The caller has everything back; the member owes PayPal's two kept fees (1.01 + 0.66).
    assert balances(db, call) == {"caller": 0, "pending": 0, "available": -167, "frozen": 0}

    # A replay of a delivery taken before books nothing more.
    status, resource = paypal_api(system.settings.paypal_url, "GET", f"/v2/payments/refunds/{first}")
    assert status == 200
    assert deliver(system, {"id": "WH-REFUND-REPLAY", "event_type": REFUNDED, "resource": resource}) == 200
    assert len(refund_keys(db, call.id)) == 3
    assert balances(db, call) == {"caller": 0, "pending": 0, "available": -167, "frozen": 0}


def test_a_refund_of_a_capture_that_is_not_ours_is_acknowledged_and_books_nothing(system):
    db = system.db
    before = db.ledger.count_documents({})
    stranger = {"id": "PP-R-STRANGER", "status": "COMPLETED", "amount": {"currency_code": "USD", "value": "9.00"},
                "links": [{"href": "https://api-m.paypal.com/v2/payments/captures/NOT-OURS", "rel": "up"}]}
    assert deliver(system, {"id": "WH-R-STRANGER", "event_type": REFUNDED, "resource": stranger}) == 200
    assert deliver(system, {"id": "WH-R-EMPTY", "event_type": REFUNDED, "resource": {}}) == 200
    assert db.ledger.count_documents({}) == before


def test_a_refund_the_platform_made_is_booked_once_though_paypal_reports_it_too(system):
    db = system.db

    async def scenario():
        call = await paid_call(system, [1500], caller=await Member(system.url).sign_up("Asking Abe"), length_s=600)
        olga = await operator(system)
        asked = await call.caller.request("POST", f"/api/calls/{call.id}/refund", {"reason": "No sound at all."})
        assert asked.code == 201, asked.body
        decided = await approve(olga, asked.json()["id"])
        assert decided.code == 200, decided.body
        return call, asked.json()["id"]
    call, request_id = run(scenario())
    done = wait_for(lambda: db.refund_requests.find_one({"_id": request_id, "state": "refunded"}), "refunded")
    refund_id = done["plan"][0]["refund_id"]
    wait_for(lambda: acknowledged(system, REFUNDED, refund_id, 1), "PayPal's report of our refund taken")
    assert refund_keys(db, call.id) == [f"refund:{refund_id}"]
    # The caller gets the payment minus PayPal's kept fee, once.
    assert balances(db, call) == {"caller": -101, "pending": 0, "available": 0, "frozen": 0}
