"""A subscription cycle PayPal was paid for (PAYMENT.SALE.COMPLETED of a billing agreement),
booked by the refunds actor as platform revenue, keyed by PayPal's sale id, once
(actors/money_events.py applies it; the gateway only follows the subscription's state).

A sale for another amount or currency than the member's plan (a price changed behind our back)
is not ours: refunded whole (the same request id for every delivery of it), and each operator
told once. In USD it is booked, then its refund, so the books follow the PayPal balance (PayPal
keeps its fee: the platform's cost); in another currency it never reached the USD balance and
nothing is booked."""
import datetime
import logging

import pymongo

from actors import ledger_store
from rules import ledger, receipts
from interkanect.db import object_id
from interkanect.paypal import cents_to_value, value_to_cents

log = logging.getLogger(__name__)

EVENT_TYPE = "PAYMENT.SALE.COMPLETED"


def is_sale(event):
    return event.get("event_type") == EVENT_TYPE and bool((event.get("resource") or {}).get("billing_agreement_id"))


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


class Sales:
    """`refund_sale(sale_id, request_id) -> refund` (PayPal's v1 sale refund, blocking),
    `tell_operators(subject, body)`, `fence` checked before each booking."""

    def __init__(self, db, refund_sale, tell_operators, fence=None):
        self.db, self.refund_sale, self.tell_operators, self.fence = db, refund_sale, tell_operators, fence

    def apply(self, sale):
        member_id = sale.get("custom")
        if object_id(member_id) is None:
            member = self.db.members.find_one({"subscription.id": sale["billing_agreement_id"]}, {"_id": 1})
            member_id = str(member["_id"]) if member else None
        if member_id is None:
            log.warning("sale %s of subscription %s belongs to no member", sale.get("id"),
                        sale["billing_agreement_id"])
            return
        amount = value_to_cents(sale["amount"]["total"])
        fee = value_to_cents((sale.get("transaction_fee") or {}).get("value", "0.00"))
        currency = sale["amount"].get("currency", "USD")
        expected = self.plan_price_cents(member_id, sale["billing_agreement_id"])
        if currency != "USD" or (expected is not None and amount != expected):
            self.refund_mismatch(member_id, sale, amount, fee, currency, expected)
            return
        self.book(ledger.subscription_transaction(member_id, sale["id"], amount, fee), sale)

    def book(self, transaction, sale):
        """Once per key: a repeated delivery books nothing more."""
        try:
            ledger_store.book(self.db, transaction, _now(), fence=self.fence,
                              fields={"subscription_id": sale["billing_agreement_id"]})
        except ledger_store.KeyReused as reused:
            # The sale is PayPal's fact and its first booking stands: an operator is told in the log.
            log.error("subscription sale %s: %s; kept as it was", sale.get("id"), reused)

    def plan_price_cents(self, member_id, subscription_id):
        """What the member's subscription is for, as we created it (None: not known here)."""
        member = self.db.members.find_one({"_id": object_id(member_id)}, {"subscription": 1})
        subscription = (member or {}).get("subscription") or {}
        return subscription.get("price_cents") if subscription.get("id") == subscription_id else None

    def refund_mismatch(self, member_id, sale, amount, fee, currency, expected):
        refund = self.refund_sale(sale["id"], f"sale-mismatch-{sale['id']}")
        if currency == "USD":
            self.book(ledger.subscription_transaction(member_id, sale["id"], amount, fee), sale)
            self.book(ledger.subscription_refund_transaction(member_id, sale["id"], amount, fee), sale)
        try:
            self.db.sale_mismatches.insert_one({"_id": sale["id"], "member_id": member_id, "at": _now(),
                                                "amount_cents": amount, "currency": currency,
                                                "expected_cents": expected, "refund_id": refund["id"]})
        except pymongo.errors.DuplicateKeyError:
            return  # told already: a repeated delivery
        sold = f"{cents_to_value(amount)} {currency}"
        log.error("subscription sale %s was for %s, the plan for %s cents: refunded (%s)", sale["id"], sold, expected,
                  refund["id"])
        self.tell_operators(*receipts.sale_mismatch_alert(member_id, sale["billing_agreement_id"], sale["id"], sold,
                                                          expected, refund["id"]))
