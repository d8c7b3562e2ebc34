"""A paid call paid for real through the PayPal emulator: the caller gets PayPal's approval
link, approves on PayPal's page, comes back to us, the capture is booked in the ledger once,
and the call resumes."""
import base64
import html.parser
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.conftest import run
from tests.test_calls_live import Call


class _Form(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.action, self.fields = None, {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.action = attrs["action"]
        if tag == "input" and attrs.get("name"):
            self.fields[attrs["name"]] = attrs.get("value", "")


def approve_on_paypal(approve_url, payer_email="payer@example.com"):
    """What the payer's browser does: open PayPal's page, press Approve, follow PayPal back to
    our return page and on to the call page. Returns the final URL."""
    with urllib.request.urlopen(approve_url, timeout=10) as page:
        form = _Form()
        form.feed(page.read().decode())
    fields = dict(form.fields, payer_email=payer_email, action="approve")
    target = urllib.parse.urljoin(approve_url, form.action)
    with urllib.request.urlopen(target, data=urllib.parse.urlencode(fields).encode(), timeout=10) as landed:
        return landed.url


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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def approve_and_never_come_back(approve_url):
    """The payer approves on PayPal, then closes the window before PayPal's redirect to us."""
    with urllib.request.urlopen(approve_url, timeout=10) as page:
        form = _Form()
        form.feed(page.read().decode())
    fields = dict(form.fields, payer_email="payer@example.com", action="approve")
    target = urllib.parse.urljoin(approve_url, form.action)
    try:
        urllib.request.build_opener(_NoRedirect).open(target, data=urllib.parse.urlencode(fields).encode(),
                                                      timeout=10)
    except urllib.error.HTTPError as redirect:
        assert redirect.code in (302, 303)


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
