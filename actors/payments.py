"""The payments adapter: the one actor that talks to PayPal (in its own process, since the
SDK blocks) and writes the ledger for what PayPal confirmed.

A call session asks for an order when the caller agrees to paid terms, and for a capture
once the payer has approved (we learn that from PayPal's return to our site or from its
webhook, whichever comes first: both reach the session, and the capture's request id makes
the second one return the first capture). A completed capture is written to the ledger,
keyed by the capture id, before the session is told, so a repeat books nothing twice.
"""
import datetime
import logging

import pymongo
from thespian.actors import Actor

from actors import fees, ledger
from actors.adapters import Configured
from actors.messages import (CaptureOrder, CreateOrder, OrderCreated, PaymentCaptured, PaymentFailed, TipCaptured,
                             TipFailed)
from actors.paypal import PayPal, PayPalError

log = logging.getLogger(__name__)

# PayPal's word that the payer's money will not come: the call ends.
FINAL_REFUSALS = {"INSTRUMENT_DECLINED", "PAYER_ACTION_REQUIRED", "ORDER_ALREADY_CAPTURED"}


class PaymentsActor(Actor):
    def __init__(self):
        super().__init__()
        self.settings = None
        self.paypal = None
        self.db = None

    def receiveMessage(self, message, sender):
        if isinstance(message, Configured):
            s = self.settings = message.settings
            self.paypal = PayPal(s.paypal_url, s.paypal_client_id_in_use, s.paypal_client_secret_in_use)
            self.db = pymongo.MongoClient(s.database_url, tz_aware=True, serverSelectionTimeoutMS=5000)[s.db_name]
        elif isinstance(message, CreateOrder):
            self.create(message, sender)
        elif isinstance(message, CaptureOrder):
            self.capture(message, sender)

    @staticmethod
    def purpose(request):
        """What an order pays for, as PayPal request ids and references name it."""
        return f"{request.call_id}-tip-{request.tip}" if request.tip else f"{request.call_id}-{request.round}"

    def failed(self, request, reason):
        return TipFailed(request.tip, reason) if request.tip else PaymentFailed(request.round, reason)

    def create(self, request, call):
        base = self.settings.url
        purpose = self.purpose(request)
        try:
            order_id, approve_url = self.paypal.create_order(
                request.amount_cents, request_id=f"order-{purpose}", custom_id=purpose,
                return_url=f"{base}paypal/return", cancel_url=f"{base}call/{request.call_id}?paypal=cancelled")
        except Exception as error:  # PayPal down after every retry, or a refusal
            log.error("no order for %s: %s", purpose, error)
            self.send(call, self.failed(request, "paypal_unavailable"))
            return
        # Our return page and the webhook find the call from the order.
        self.db.orders.replace_one({"_id": order_id}, {
            "_id": order_id, "call_id": request.call_id, "round": request.round, "tip": request.tip,
            "host_id": request.host_id, "caller_id": request.caller_id, "amount_cents": request.amount_cents,
            "created_at": datetime.datetime.now(datetime.timezone.utc)}, upsert=True)
        self.send(call, OrderCreated(request.round, order_id, approve_url, request.tip))

    def capture(self, request, call):
        try:
            captured = self.paypal.capture(request.order_id, request_id=f"capture-{self.purpose(request)}")
        except PayPalError as refusal:
            if refusal.issue in FINAL_REFUSALS or refusal.name in FINAL_REFUSALS:
                self.send(call, self.failed(request, refusal.issue.lower() or "declined"))
            else:  # e.g. ORDER_NOT_APPROVED: the payer is not done yet; their approval will come back
                log.info("capture of %s not possible yet: %s", request.order_id, refusal.issue)
            return
        except Exception as error:
            log.error("capture of order %s failed after retries: %s", request.order_id, error)
            return  # the webhook or the payer's return will ask again; the window bounds it
        if captured["status"] == "DECLINED":
            self.send(call, self.failed(request, "declined"))
        elif captured["status"] == "COMPLETED":
            self.book(request, captured)
            payment = {"capture_id": captured["capture_id"], "amount_cents": captured["amount_cents"],
                       "fee_cents": captured["fee_cents"], "order_id": request.order_id}
            self.send(call, TipCaptured(request.tip, payment) if request.tip else PaymentCaptured(request.round, payment))
        # PENDING: money not in hand; PAYMENT.CAPTURE.COMPLETED will bring the call back here.

    def book(self, request, captured):
        split = fees.breakdown(captured["amount_cents"], captured["fee_cents"])
        captured["fee_cents"] = split.fee_cents
        builder = ledger.tip_transaction if request.tip else ledger.capture_transaction
        transaction = builder(request.call_id, request.host_id, request.caller_id, captured["capture_id"],
                              split.amount_cents, split.fee_cents)
        try:
            self.db.ledger.insert_one(dict(transaction.document(),
                                           at=datetime.datetime.now(datetime.timezone.utc)))
        except pymongo.errors.DuplicateKeyError:
            pass  # booked already (a retried capture, or the webhook came first)
