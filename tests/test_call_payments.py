"""A paid call paid for real through the PayPal emulator: the caller gets PayPal's approval
link, approves on PayPal's page, comes back to us, the capture is booked in the ledger once,
and the call resumes."""
import base64
import json
import urllib.error
import urllib.request

import pytest

from tests.kit.calls import Call, ring
from tests.kit.client import Member
from tests.kit.paypal import approve_and_never_come_back, approve_on_paypal
from tests.kit.system import run


def test_the_caller_pays_on_paypal_and_the_call_resumes_with_the_payment_booked_once(system):
    async def scenario():
        call = await Call.answered(system, "Paid Host", "Paying Caller")
        await call.agree(1500, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        assert ready["state"] == "awaiting_payment" and ready["media"] is False
        approve_url = ready["payment"]["approve_url"]
        host_view = await call.host_page.expect("call_state", event="payment_ready")
        assert host_view["payment"] is None  # only the payer gets the link

        landed = approve_on_paypal(approve_url)
        assert landed.endswith(f"/call/{call.id}")
        for page in (call.host_page, call.caller_page):
            running = await page.expect("call_state", state="running", event="payment_captured")
            assert running["media"] and 599 < running["remaining_s"] <= 600

        # PayPal's return followed again (a reload, or the webhook) captures nothing more.
        order = system.db.orders.find_one({"call_id": call.id})
        with urllib.request.urlopen(f"{system.url}/paypal/return?token={order['_id']}", timeout=10):
            pass
        await call.host_page.request("hang_up", call_id=call.id)
        await call.caller_page.expect("call_state", state="ended")

        booked = list(system.db.ledger.find({"call_id": call.id}))
        assert len(booked) == 1 and booked[0]["kind"] == "call_payment"
        moves = {entry["account"]: entry["amount_cents"] for entry in booked[0]["entries"]}
        # $15.00: PayPal keeps 3.49% (52.35 → 52 cents) + 49 cents; the host's 13.99 is held.
        assert moves == {f"caller:{call.caller.id}": -1500, "paypal:fees": 101,
                         f"member:{call.host.id}:pending": 1399}
        stored = system.db.calls.find_one({"_id": call.id})
        assert len(stored["payments"]) == 1 and stored["payments"][0]["fee_cents"] == 101
    run(scenario())


def test_paypals_webhook_resumes_the_call_when_the_payer_never_comes_back(system):
    async def scenario():
        call = await Call.answered(system)
        await call.agree(2000, 300)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        approve_and_never_come_back(ready["payment"]["approve_url"])
        # CHECKOUT.ORDER.APPROVED, signed by PayPal (the emulator), verified by the gateway.
        running = await call.host_page.expect("call_state", state="running", timeout_s=15)
        assert running["event"] == "payment_captured"
        assert system.db.webhook_events.find_one({"event_type": "CHECKOUT.ORDER.APPROVED"})
        assert system.db.ledger.count_documents({"call_id": call.id}) == 1
        await call.host_page.request("hang_up", call_id=call.id)
    run(scenario())


def test_a_forged_webhook_is_refused_and_changes_nothing(system):
    async def scenario():
        call = await Call.answered(system)
        await call.agree(2000, 300)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        event = {"id": "WH-FORGED", "event_type": "CHECKOUT.ORDER.APPROVED",
                 "resource": {"id": ready["payment"]["order_id"]}}
        body = json.dumps(event).encode()
        forged = {"PAYPAL-TRANSMISSION-ID": "x", "PAYPAL-TRANSMISSION-TIME": "2026-11-26T10:00:00Z",
                  "PAYPAL-TRANSMISSION-SIG": base64.b64encode(b"not a signature").decode(),
                  "PAYPAL-CERT-URL": "https://evil.example/cert.pem", "PAYPAL-AUTH-ALGO": "SHA256withRSA",
                  "Content-Type": "application/json"}
        for headers in (forged, {"Content-Type": "application/json"}):
            request = urllib.request.Request(f"{system.url}/paypal/webhook", data=body, headers=headers)
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert refused.value.code in (400, 401)
        assert system.db.webhook_events.find_one({"_id": "WH-FORGED"}) is None
        await call.caller_page.request("ping")
        await call.caller_page.expect("pong")
        state = system.db.calls.find_one({"_id": call.id})["state"]
        assert state == "awaiting_payment" and system.db.ledger.count_documents({"call_id": call.id}) == 0
        await call.host_page.request("hang_up", call_id=call.id)
    run(scenario())


def test_the_caller_tips_during_the_call_and_the_host_sees_it_arrive(system):
    async def scenario():
        call = await Call.answered(system, "Tipped Host", "Generous Caller")
        await call.agree(0, 600)  # a free call; tips are still welcome on an upgraded host
        for amount, code in ((50, "tip_out_of_range"), (10**9, "tip_out_of_range")):
            request_id = await call.caller_page.request("tip", call_id=call.id, amount_cents=amount)
            assert (await call.caller_page.expect("error", id=request_id))["code"] == code
        request_id = await call.host_page.request("tip", call_id=call.id, amount_cents=500)
        assert (await call.host_page.expect("error", id=request_id))["code"] == "not_caller"

        await call.caller_page.request("tip", call_id=call.id, amount_cents=500)
        ready = await call.caller_page.expect("call_state", event="tip_ready")
        assert ready["state"] == "running" and ready["media"]  # a tip never suspends the call
        (tip,) = ready["tips"]
        assert tip["state"] == "awaiting_approval" and tip["amount_cents"] == 500
        approve_on_paypal(tip["approve_url"])
        received = await call.host_page.expect("call_state", event="tip_received")
        assert received["tips"] == [{"tip": 1, "amount_cents": 500, "state": "captured", "approve_url": None}]

        (booked,) = list(system.db.ledger.find({"call_id": call.id}))
        moves = {entry["account"]: entry["amount_cents"] for entry in booked["entries"]}
        # $5.00: fee 3.49% (17.45 → 17) + 49 = 66 cents; a tip is never refunded, so no hold.
        assert booked["kind"] == "tip" and moves[f"member:{call.host.id}:available"] == 434
        await call.host_page.request("hang_up", call_id=call.id)
        listed = (await call.host.request("GET", f"/api/calls/{call.id}")).json()["call"]
        assert [t["amount_cents"] for t in listed["tips"]] == [500]
    run(scenario())


def test_a_free_host_cannot_be_tipped(system):
    async def scenario():
        host = await Member(system.url).sign_up("Free Host")
        caller = await Member(system.url).sign_up()
        host_page, caller_page = await host.socket(), await caller.socket()
        call_id = await ring(caller_page, [host_page], host.id)
        await host_page.request("accept", call_id=call_id)
        await caller_page.expect("call_state", state="negotiating")
        request_id = await caller_page.request("tip", call_id=call_id, amount_cents=500)
        assert (await caller_page.expect("error", id=request_id))["code"] == "no_tips"
        await caller_page.request("hang_up", call_id=call_id)
    run(scenario())
