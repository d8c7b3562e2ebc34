"""PayPal's Payouts API (POST /v1/payments/payouts, GET /v1/payments/payouts/{id}) and the
account's balance (GET /v1/reporting/balances), which PayPal's SDK lacks, over our REST client.
Blocking: used only by the payout scheduler's process and `interkanect ledger reconcile`."""
import logging
import urllib.parse

from interkanect.paypal.errors import PayPalError, PayPalUnavailable
from interkanect.paypal.money import cents_to_value, value_to_cents
from interkanect.paypal.rest import BACKOFF_S, TIMEOUT_S, RestClient

log = logging.getLogger(__name__)

# PayPal's largest page of a batch's items.
PAYOUT_PAGE_SIZE = 1000


class PayPalPayouts:
    """POST /v1/payments/payouts and GET /v1/payments/payouts/{id}, with a client-credentials
    token cached until shortly before it expires. Blocking: used only by the payout scheduler.

    A POST is retried with the same sender_batch_id after a 5xx, a timeout or a lost answer:
    PayPal refuses a second batch with it (for 30 days) and names the first one, which is then
    read and returned as the batch, "already sent"."""

    Refused = PayPalError

    def __init__(self, base_url, client_id, client_secret, timeout_s=TIMEOUT_S, backoff_s=BACKOFF_S):
        self.rest = RestClient(base_url, client_id, client_secret, timeout_s, backoff_s)

    def create_payout(self, sender_batch_id, items):
        """Items are {member_id, receiver, amount_cents}. Returns {payout_batch_id, batch_status,
        items}: `items` is None for a new batch, the batch's items when PayPal had it already."""
        body = {"sender_batch_header": {"sender_batch_id": sender_batch_id,
                                        "email_subject": "You have a payout from interKanect",
                                        "email_message": "Your interKanect earnings have been paid out."},
                "items": [{"recipient_type": "EMAIL", "receiver": item["receiver"], "sender_item_id": item["member_id"],
                           "amount": {"currency": "USD", "value": cents_to_value(item["amount_cents"])},
                           "note": "interKanect earnings"} for item in items]}
        try:
            answer = self.rest.call("create payout", "POST", "/v1/payments/payouts", body)
        except PayPalError as refusal:
            if not _reused_sender_batch_id(refusal):
                raise
            original = _original_batch_id(refusal)
            if original is None:  # PayPal has the batch but did not say which: not a refusal
                raise PayPalUnavailable(f"payout {sender_batch_id} was sent before; PayPal did not name the batch")
            log.info("payout %s was sent before (PayPal batch %s): reading it", sender_batch_id, original)
            try:
                return self.payout_batch(original)
            except PayPalError as error:  # the batch exists: a failed read must not pass for a refusal
                raise PayPalUnavailable(f"cannot read payout batch {original}: {error}") from error
        header = answer["batch_header"]
        return {"payout_batch_id": header["payout_batch_id"], "batch_status": header["batch_status"], "items": None}

    def payout_batch(self, payout_batch_id):
        """{payout_batch_id, batch_status, sender_batch_id, items: [{payout_item_id,
        transaction_status, sender_item_id, receiver, amount_cents}]}, every page read."""
        items, page, pages = [], 1, 1
        while page <= pages:
            answer = self.rest.call("read payout batch", "GET",
                                    f"/v1/payments/payouts/{urllib.parse.quote(payout_batch_id)}"
                                    f"?page={page}&page_size={PAYOUT_PAGE_SIZE}&total_required=true")
            items += [_payout_item(item) for item in answer.get("items", [])]
            pages, page = answer.get("total_pages") or 1, page + 1
        header = answer["batch_header"]
        return {"payout_batch_id": header["payout_batch_id"], "batch_status": header["batch_status"],
                "sender_batch_id": header.get("sender_batch_header", {}).get("sender_batch_id"), "items": items}

    def balance_cents(self):
        """The merchant account's total USD balance (GET /v1/reporting/balances): what
        `interkanect ledger reconcile` compares the ledger with."""
        answer = self.rest.call("read balance", "GET", "/v1/reporting/balances?currency_code=USD")
        for entry in answer.get("balances", []):
            if entry.get("currency") == "USD":
                value = entry["total_balance"]["value"]
                return -value_to_cents(value[1:]) if value.startswith("-") else value_to_cents(value)
        return 0


def _is_reused_sender_batch_id(detail):
    return (detail.get("field", "").upper().endswith("SENDER_BATCH_ID")
            or "sender_batch_id already exists" in detail.get("issue", "").lower())


def _reused_sender_batch_id(refusal):
    return any(map(_is_reused_sender_batch_id, getattr(refusal, "details", None) or []))


def _original_batch_id(refusal):
    """The first batch's id named by PayPal's refusal of a reused sender_batch_id, else None."""
    for detail in getattr(refusal, "details", None) or []:
        if _is_reused_sender_batch_id(detail):
            for link in detail.get("link") or detail.get("links") or []:
                href = link.get("href", "")
                if "/v1/payments/payouts/" in href:
                    return urllib.parse.urlsplit(href).path.rstrip("/").rsplit("/", 1)[-1]
    return None


def _payout_item(item):
    detail = item.get("payout_item", {})
    return {"payout_item_id": item["payout_item_id"], "transaction_status": item.get("transaction_status", "PENDING"),
            "sender_item_id": detail.get("sender_item_id"), "receiver": detail.get("receiver"),
            "amount_cents": value_to_cents(detail["amount"]["value"]),
            "fee_cents": value_to_cents((item.get("payout_item_fee") or {}).get("value") or "0")}
