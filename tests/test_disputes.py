"""PayPal disputes through the whole system: the emulator's buyer opens and PayPal resolves a
dispute on a paid call, its signed CUSTOMER.DISPUTE.* webhooks reach the gateway, and the
ledger freezes the call's earnings, then unfreezes them (won) or gives the caller the money
back (lost), once, whatever duplicates, replays and reorderings PayPal delivers. The gateway
records each event and the refunds actor applies it (actors/money_events.py): the tests wait for
PayPal's delivery to be taken and then for every recorded money event to be applied."""
import json
import urllib.request

from actors import money_events
from rules import ledger
from tests.kit.calls import paid_call
from tests.kit.client import Member
from tests.kit.paypal import arm, control
from tests.kit.system import run
from tests.kit.waiting import wait_for


def capture_of(db, call_id):
    (payment,) = db.ledger.find({"call_id": call_id, "kind": ledger.CALL_PAYMENT})
    return payment["_id"].split(":", 1)[1]


def balances(db, call):
    host = call.host.id
    moves = ledger.balances(ledger.Entry(e["account"], e["amount_cents"])
                            for t in db.ledger.find({"call_id": call.id}) for e in t["entries"])
    return {name: moves.get(account, 0) for name, account in (
        ("caller", f"caller:{call.caller.id}"), ("pending", ledger.pending(host)),
        ("available", ledger.available(host)), ("frozen", ledger.frozen(host)))}


def dispute_keys(db, call_id):
    return sorted(t["_id"] for t in db.ledger.find({"call_id": call_id, "kind": {"$regex": "^dispute"}}))


def deliver(system, event):
    """A delivery signed by PayPal (the emulator's key), as a replay or an event it never sends:
    its answer's status, once the refunds actor has applied it."""
    raw = json.dumps(event)
    headers = control(system, "/emulator/webhooks/sign", {"body": raw})["headers"]
    request = urllib.request.Request(system.url + "/paypal/webhook", data=raw.encode(),
                                     headers=dict(headers, **{"Content-Type": "application/json"}))
    with urllib.request.urlopen(request, timeout=10) as answer:
        status = answer.status
    wait_for(lambda: money_applied(system.db), "the event applied")
    return status


def money_applied(db):
    """Every money event recorded has been applied (none due: waiting ones count as due)."""
    return db.webhook_events.count_documents({"money": money_events.DUE}) == 0


def acknowledged(system, event_type, resource_id, count):
    """PayPal's delivery of this event taken `count` times, and every money event applied."""
    deliveries = control(system, f"/emulator/webhooks?event_type={event_type}")["deliveries"]
    taken = len([d for d in deliveries if d["resource_id"] == resource_id and d["status"] == "SUCCESS"]) >= count
    return taken and money_applied(system.db)


def test_a_dispute_freezes_the_calls_earnings_once_and_a_won_dispute_gives_them_back(system):
    db = system.db

    async def scenario():
        return await paid_call(system, [1500], caller=await Member(system.url).sign_up("Disputing Dee"), length_s=600)
    call = run(scenario())
    capture_id = capture_of(db, call.id)
    assert balances(db, call) == {"caller": -1500, "pending": 1399, "available": 0, "frozen": 0}

    arm(system, {"kind": "webhook_duplicate"})   # CUSTOMER.DISPUTE.CREATED comes twice
    dispute = control(system, "/emulator/disputes", {"capture_id": capture_id})
    dispute_id = dispute["dispute_id"]
    wait_for(lambda: acknowledged(system, "CUSTOMER.DISPUTE.CREATED", dispute_id, 2), "both deliveries taken")
    assert dispute_keys(db, call.id) == [f"dispute:{dispute_id}:freeze"]
    assert balances(db, call) == {"caller": -1500, "pending": 0, "available": 0, "frozen": 1399}

    # A replayed creation and an update PayPal sends later change nothing more.
    assert deliver(system, {"id": "WH-REPLAY-1", "event_type": "CUSTOMER.DISPUTE.CREATED", "resource": dispute}) == 200
    assert deliver(system, {"id": "WH-UPDATE-1", "event_type": "CUSTOMER.DISPUTE.UPDATED",
                            "resource": dict(dispute, status="WAITING_FOR_SELLER_RESPONSE")}) == 200
    assert dispute_keys(db, call.id) == [f"dispute:{dispute_id}:freeze"]

    resolved = control(system, f"/emulator/disputes/{dispute_id}/resolve", {"outcome": "RESOLVED_SELLER_FAVOUR"})
    booked = wait_for(lambda: db.ledger.find_one({"_id": f"dispute:{dispute_id}:resolved"}), "the resolution")
    assert booked["kind"] == ledger.DISPUTE_WON
    assert balances(db, call) == {"caller": -1500, "pending": 1399, "available": 0, "frozen": 0}
    # The resolution, and then the creation, delivered once more: nothing moves again.
    replayed = {"id": "WH-REPLAY-2", "event_type": "CUSTOMER.DISPUTE.RESOLVED", "resource": resolved}
    assert deliver(system, replayed) == 200
    assert deliver(system, {"id": "WH-REPLAY-3", "event_type": "CUSTOMER.DISPUTE.CREATED", "resource": dispute}) == 200
    assert dispute_keys(db, call.id) == [f"dispute:{dispute_id}:freeze", f"dispute:{dispute_id}:resolved"]
    assert db.ledger.find_one({"_id": f"dispute:{dispute_id}:fee"}) is None   # no fee when the seller wins
    assert balances(db, call) == {"caller": -1500, "pending": 1399, "available": 0, "frozen": 0}


def test_a_lost_dispute_whose_resolution_arrives_first_gives_the_caller_the_money_back_once(system):
    db = system.db

    async def scenario():
        return await paid_call(system, [1500], caller=await Member(system.url).sign_up("Chargeback Chad"), length_s=600)
    call = run(scenario())
    capture_id = capture_of(db, call.id)
    # PayPal holds the creation and the resolution, then delivers them in reverse order.
    arm(system, {"kind": "webhook_out_of_order", "count": 2, "hold_s": 5})
    dispute_id = control(system, "/emulator/disputes", {"capture_id": capture_id})["dispute_id"]
    control(system, f"/emulator/disputes/{dispute_id}/resolve", {"outcome": "RESOLVED_BUYER_FAVOUR"})
    wait_for(lambda: acknowledged(system, "CUSTOMER.DISPUTE.CREATED", dispute_id, 1)
             and acknowledged(system, "CUSTOMER.DISPUTE.RESOLVED", dispute_id, 1), "both deliveries taken")
    assert dispute_keys(db, call.id) == [f"dispute:{dispute_id}:freeze", f"dispute:{dispute_id}:resolved"]
    assert db.ledger.find_one({"_id": f"dispute:{dispute_id}:resolved"})["kind"] == ledger.DISPUTE_LOST
    # PayPal's dispute fee (its money_movements: DISPUTE_FEE, $15.00 in the emulator) is booked
    # once, as the platform's cost, not the member's.
    fee = wait_for(lambda: db.ledger.find_one({"_id": f"dispute:{dispute_id}:fee"}), "the dispute fee booked")
    assert fee["kind"] == ledger.DISPUTE_FEE and fee["entries"] == [
        {"account": ledger.PLATFORM_COSTS, "amount_cents": -1500}, {"account": ledger.PAYPAL_FEES, "amount_cents": 1500}]
    assert db.ledger.count_documents({"_id": {"$regex": f"^dispute:{dispute_id}:fee"}}) == 1
    # PayPal gave the caller the gross back: the 13.99 earned and 1.01 more, owed by the member.
    assert balances(db, call) == {"caller": 0, "pending": 0, "available": -101, "frozen": 0}


def test_a_dispute_on_a_capture_that_is_not_ours_is_acknowledged_and_books_nothing(system):
    db = system.db
    before = db.ledger.count_documents({})
    event = {"id": "WH-STRANGER", "event_type": "CUSTOMER.DISPUTE.CREATED",
             "resource": {"dispute_id": "PP-D-STRANGER", "status": "OPEN",
                          "dispute_amount": {"currency_code": "USD", "value": "9.00"},
                          "disputed_transactions": [{"seller_transaction_id": "NOT-OURS"}]}}
    assert deliver(system, event) == 200
    assert deliver(system, dict(event, id="WH-EMPTY", resource={})) == 200
    assert db.ledger.count_documents({}) == before
