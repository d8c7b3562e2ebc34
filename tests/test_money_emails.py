"""Receipts and earnings notices over SMTP (aiosmtpd on loopback): a real paid call and a tip
through the PayPal emulator, each capture confirmed twice (the payer's return and PayPal's
webhook, then the return followed again), and exactly one receipt and one earnings notice
per capture."""
import asyncio
import json
import time
import urllib.request

import pytest
from aiosmtpd.controller import Controller

from tests.kit.calls import PAYOUT_NOTICE, Call
from tests.kit.client import Member
from tests.kit.paypal import approve_on_paypal
from tests.kit.system import free_port, run
from tests.kit.waiting import eventually
from tests.test_accounts import RecordingSMTP


@pytest.fixture
def smtp_server():
    controller = Controller(RecordingSMTP(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller
    controller.stop()





def deliveries(system, event_type=None):
    query = f"?event_type={event_type}" if event_type else ""
    with urllib.request.urlopen(f"{system.settings.paypal_url}/emulator/webhooks{query}", timeout=5) as answer:
        return json.load(answer)["deliveries"]


def money_mails(handler):
    """(recipients, message) the SMTP server got, but the host's payout-email notice
    (upgraded_host sets a payout email)."""
    return [(to, message) for to, message in handler.messages if message["Subject"] != PAYOUT_NOTICE]


def mails_to(handler, address):
    return [message for recipients, message in money_mails(handler) if address in recipients]


def record_mails(handler):
    return [message for _, message in money_mails(handler) if message["Subject"].startswith("The record of")]


def body_of(message):
    return message.get_payload(decode=True).decode()


def test_each_capture_mails_one_receipt_and_one_earnings_notice(system_with, smtp_server):
    system = system_with(smtp_host="127.0.0.1", smtp_port=smtp_server.port)
    handler = smtp_server.handler

    async def scenario():
        call = await Call.answered(system, "Mona Host", "Carl Caller")
        terms = await call.agree(1500, 600)
        ready = await call.caller_page.expect("call_state", event="payment_ready")
        approve_on_paypal(ready["payment"]["approve_url"])   # return + CHECKOUT.ORDER.APPROVED: two asks
        await call.host_page.expect("call_state", state="running", event="payment_captured")

        await call.caller_page.request("tip", call_id=call.id, amount_cents=500)
        tip_ready = await call.caller_page.expect("call_state", event="tip_ready")
        approve_on_paypal(tip_ready["tips"][0]["approve_url"])
        await call.host_page.expect("call_state", event="tip_received")

        # Confirmed again: PayPal's return followed once more for each order.
        for order in system.db.orders.find({"call_id": call.id}):
            with urllib.request.urlopen(f"{system.url}/paypal/return?token={order['_id']}", timeout=10):
                pass
        # Every webhook PayPal sent (approvals, captures) has been taken by the gateway...
        await eventually(lambda: len(deliveries(system)) >= 4 and all(d["status"] == "SUCCESS" for d in deliveries(system)), "PayPal's webhooks to be delivered", timeout_s=20)
        # ... and every mail those captures make has gone out.
        await eventually(lambda: system.db.money_mails.count_documents({"state": "sent"}) == 4
                    and len(money_mails(handler)) == 4, "four mails over SMTP", timeout_s=20)
        await call.host_page.request("hang_up", call_id=call.id)
        await call.caller_page.expect("call_state", state="ended")

        # The call over, each side gets the head of its record: the downloaded record's own head.
        await eventually(lambda: len(record_mails(handler)) == 2, "the record's head to both sides", timeout_s=20)
        head = (await call.caller.request("GET", f"/api/calls/{call.id}/record")).json()["head"]
        for address, subject in ((call.caller.email, "The record of your call with Mona Host"),
                                 (call.host.email, "The record of Carl Caller's call to you")):
            [mailed] = [m for m in mails_to(handler, address) if m in record_mails(handler)]
            assert mailed["Subject"] == subject
            assert f"Record head:  {head}" in body_of(mailed) and f"/history/{call.id}" in body_of(mailed)

        assert system.db.ledger.count_documents({"call_id": call.id}) == 2
        assert system.db.money_mails.count_documents({}) == 4 and system.db.outbox.count_documents({}) == 0
        payment_receipt, tip_receipt = sorted([m for m in mails_to(handler, call.caller.email)
                                               if m not in record_mails(handler)],
                                              key=lambda m: "tip" in m["Subject"])
        assert payment_receipt["Subject"] == "Receipt: $15.00 for your call with Mona Host"
        text = body_of(payment_receipt)
        for shown in (call.id, "10 minutes for $15.00", terms["fingerprint"], "$15.00 USD", "24 hours after the call"):
            assert shown in text
        assert "fee" not in text.lower() and "$1.01" not in text          # PayPal's fee is not the caller's business
        assert tip_receipt["Subject"] == "Receipt: your $5.00 tip to Mona Host"
        assert "not refunded" in body_of(tip_receipt)

        payment_notice, tip_notice = sorted([m for m in mails_to(handler, call.host.email)
                                             if m not in record_mails(handler)],
                                            key=lambda m: "$4.34" in m["Subject"])
        assert payment_notice["Subject"] == "You earned $13.99 from Carl Caller"
        text = body_of(payment_notice)
        for shown in ("Paid:               $15.00", "PayPal fee:         $1.01", "Your earnings:      $13.99",
                      "payable 24 hours after the call ends", "asks for a refund"):
            assert shown in text
        assert tip_notice["Subject"] == "You earned $4.34 from Carl Caller"
        assert "PayPal fee:         $0.66" in body_of(tip_notice) and "available now" in body_of(tip_notice)
    run(scenario())
