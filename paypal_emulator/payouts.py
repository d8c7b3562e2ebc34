"""Payouts v1 (/v1/payments/payouts, /v1/payments/payouts-item/{id}): batches that PayPal
accepts as PENDING and processes later, items that end SUCCESS or UNCLAIMED, RETURNED,
FAILED, BLOCKED, ONHOLD. Shapes follow payments_payouts_batch_v1.json."""
import dataclasses
import datetime

from paypal_emulator import ids
from paypal_emulator.errors import PayoutsError, payouts_not_found, payouts_validation
from paypal_emulator.events import Event, timestamp
from paypal_emulator.idempotency import PAYOUTS_KEY_TTL_S
from paypal_emulator.money import CURRENCY, AmountError, parse_cents, payouts_money

MAX_ITEMS = 15000  # PayPal: "up to 15,000 individual payouts in one API call"
RECIPIENT_TYPES = ("EMAIL", "PHONE", "PAYPAL_ID")
ITEM_STATUSES = ("SUCCESS", "UNCLAIMED", "RETURNED", "FAILED", "BLOCKED", "ONHOLD")
ITEM_EVENTS = {"SUCCESS": "PAYMENT.PAYOUTS-ITEM.SUCCEEDED", "UNCLAIMED": "PAYMENT.PAYOUTS-ITEM.UNCLAIMED",
               "RETURNED": "PAYMENT.PAYOUTS-ITEM.RETURNED", "FAILED": "PAYMENT.PAYOUTS-ITEM.FAILED",
               "BLOCKED": "PAYMENT.PAYOUTS-ITEM.BLOCKED", "ONHOLD": "PAYMENT.PAYOUTS-ITEM.HELD"}
# The item `errors` PayPal reports with each unhappy status.
ITEM_ERRORS = {"UNCLAIMED": ("RECEIVER_UNREGISTERED", "Receiver is unregistered"),
               "RETURNED": ("RECEIVER_UNREGISTERED", "Receiver is unregistered"),
               "FAILED": ("RECEIVER_ACCOUNT_INVALID", "Receiver account is invalid"),
               "BLOCKED": ("RECEIVER_ACCOUNT_LOCKED", "Receiver account is locked or inactive")}
# Money leaves the sender's balance for these (an unclaimed item waits 30 days, then returns).
MONEY_SENT = ("SUCCESS", "UNCLAIMED", "ONHOLD")


@dataclasses.dataclass
class PayoutItem:
    id: str
    batch_id: str
    sender_batch_id: str
    recipient_type: str
    amount_cents: int
    receiver: str
    sender_item_id: str = None
    note: str = None
    fee_cents: int = 0
    status: str = "PENDING"
    transaction_id: str = None
    time_processed: datetime.datetime = None


@dataclasses.dataclass
class PayoutBatch:
    id: str
    sender_batch_header: dict
    item_ids: list
    time_created: datetime.datetime
    status: str = "PENDING"
    time_completed: datetime.datetime = None


def outcome_for(receiver, rules):
    """The final status a receiver's item reaches: the first rule whose word it contains."""
    lowered = receiver.lower()
    for word, status in rules:
        if word in lowered:
            return status
    return "SUCCESS"


class Payouts:
    def __init__(self, urls, request_ids, item_fee_cents=0, rules=()):
        self.urls = urls
        self.request_ids = request_ids
        self.item_fee_cents = item_fee_cents
        self.rules = tuple(rules)
        self.batches = {}
        self.items = {}
        self.by_sender_batch_id = {}

    def batch(self, batch_id):
        if batch_id not in self.batches:
            raise payouts_not_found()
        return self.batches[batch_id]

    def item(self, item_id):
        if item_id not in self.items:
            raise payouts_not_found()
        return self.items[item_id]

    def create(self, body, request_id, now):
        """POST /v1/payments/payouts: a new PENDING batch, or PayPal's refusal."""
        key = ("payouts.create", request_id)
        known = request_id and self.request_ids.lookup(key, now)
        if known:
            return self.batches[known], False
        header, items = _parse_request(body)
        sender_batch_id = header.get("sender_batch_id")
        if sender_batch_id is not None and sender_batch_id in self.by_sender_batch_id:
            raise self._duplicate(self.by_sender_batch_id[sender_batch_id])
        batch = PayoutBatch(ids.payout_batch_id(), header, [], now)
        for parsed in items:
            item = PayoutItem(ids.payout_item_id(), batch.id, sender_batch_id, fee_cents=self.item_fee_cents, **parsed)
            self.items[item.id] = item
            batch.item_ids.append(item.id)
        self.batches[batch.id] = batch
        if sender_batch_id is not None:
            self.by_sender_batch_id[sender_batch_id] = batch.id
        if request_id:
            self.request_ids.remember(key, batch.id, now, PAYOUTS_KEY_TTL_S)
        return batch, True

    def _duplicate(self, batch_id):
        """PayPal's answer to a sender_batch_id used within 30 days: it names the original batch."""
        return PayoutsError(400, "USER_BUSINESS_ERROR", "User business error.", [{
            "field": "SENDER_BATCH_ID", "location": "body", "issue": "Batch with given sender_batch_id already exists",
            "link": [{"href": self.urls.payout_batch(batch_id), "rel": "self", "method": "GET",
                      "encType": "application/json"}]}])

    def process(self, batch_id, now, forced_outcome=lambda: None):
        """The batch runs: every item reaches its final status. `forced_outcome()` is the
        fault switch for the next item (None: the receiver rules decide)."""
        batch = self.batch(batch_id)
        if batch.status != "PENDING":
            return []
        events = [Event("PAYMENT.PAYOUTSBATCH.PROCESSING", "payouts", "Payouts batch is getting processed",
                        self.batch_json(batch, with_items=False), "1.0")]
        for item_id in batch.item_ids:
            item = self.items[item_id]
            item.status = forced_outcome() or outcome_for(item.receiver, self.rules)
            item.time_processed = now
            if item.status in MONEY_SENT or item.status == "RETURNED":
                item.transaction_id = ids.transaction_id()
            events.append(self._item_event(item))
        failed = all(self.items[i].status in ("FAILED", "BLOCKED") for i in batch.item_ids)
        batch.status, batch.time_completed = ("DENIED" if failed else "SUCCESS"), now
        events.append(Event(f"PAYMENT.PAYOUTSBATCH.{batch.status}", "payouts",
                            "Payouts batch got denied" if failed else "Payouts batch completed successfully",
                            self.batch_json(batch, with_items=False), "1.0"))
        return events

    def return_unclaimed(self, item_id, now):
        """An UNCLAIMED item's 30 days ran out: the money comes back (RETURNED)."""
        item = self.item(item_id)
        if item.status != "UNCLAIMED":
            raise ValueError(f'Cannot return payout item {item_id} in status "{item.status}"')
        item.status, item.time_processed = "RETURNED", now
        return [self._item_event(item)]

    def _item_event(self, item):
        summaries = {"SUCCESS": "Payout item was successful", "UNCLAIMED": "A payout item is unclaimed",
                     "RETURNED": "A payout item was returned", "FAILED": "A payout item has failed",
                     "BLOCKED": "A payout item was blocked", "ONHOLD": "A payout item is on hold"}
        return Event(ITEM_EVENTS[item.status], "payouts_item", summaries[item.status], self.item_json(item), "1.0")

    def batch_json(self, batch, with_items=True):
        header = {"payout_batch_id": batch.id, "batch_status": batch.status,
                  "time_created": timestamp(batch.time_created)}
        if batch.time_completed:
            header["time_completed"] = timestamp(batch.time_completed)
        header["sender_batch_header"] = batch.sender_batch_header
        items = [self.items[i] for i in batch.item_ids]
        header["amount"] = payouts_money(sum(item.amount_cents for item in items))
        header["fees"] = payouts_money(sum(item.fee_cents for item in items))
        body = {"batch_header": header}
        if with_items:
            body["items"] = [self.item_json(item, in_batch=True) for item in items]
            body["total_items"] = len(items)
            body["total_pages"] = 1
        body["links"] = [{"href": self.urls.payout_batch(batch.id), "rel": "self", "method": "GET",
                          "encType": "application/json"}]
        return body

    def created_json(self, batch):
        """The 201 answer to create: the header only (batch_status PENDING)."""
        return {"batch_header": {"payout_batch_id": batch.id, "batch_status": batch.status,
                                 "sender_batch_header": batch.sender_batch_header},
                "links": [{"href": self.urls.payout_batch(batch.id), "rel": "self", "method": "GET",
                           "encType": "application/json"}]}

    def item_json(self, item, in_batch=False):
        body = {"payout_item_id": item.id}
        if item.transaction_id:
            body["transaction_id"] = item.transaction_id
        body["transaction_status"] = item.status
        body["payout_item_fee"] = payouts_money(item.fee_cents)
        body["payout_batch_id"] = item.batch_id
        if not in_batch and item.sender_batch_id is not None:
            body["sender_batch_id"] = item.sender_batch_id
        detail = {"recipient_type": item.recipient_type, "amount": payouts_money(item.amount_cents),
                  "receiver": item.receiver, "recipient_wallet": "PAYPAL"}
        if item.note is not None:
            detail["note"] = item.note
        if item.sender_item_id is not None:
            detail["sender_item_id"] = item.sender_item_id
        body["payout_item"] = detail
        if item.time_processed:
            body["time_processed"] = timestamp(item.time_processed)
        if item.status in ITEM_ERRORS:
            name, message = ITEM_ERRORS[item.status]
            body["errors"] = {"name": name, "message": message,
                              "information_link": PayoutsError.INFORMATION_LINK, "details": [], "links": []}
        body["links"] = [{"href": self.urls.payout_item(item.id), "rel": "item" if in_batch else "self",
                          "method": "GET", "encType": "application/json"},
                         {"href": self.urls.payout_batch(item.batch_id), "rel": "batch", "method": "GET",
                          "encType": "application/json"}]
        return body


def _parse_request(body):
    if not isinstance(body, dict):
        raise PayoutsError(400, "MALFORMED_REQUEST", "Incoming JSON request does not map to API request")
    header = body.get("sender_batch_header")
    if not isinstance(header, dict):
        raise payouts_validation("sender_batch_header", "Required field missing")
    sender_batch_id = header.get("sender_batch_id")
    if sender_batch_id is not None and (not isinstance(sender_batch_id, str) or not 1 <= len(sender_batch_id) <= 256):
        raise payouts_validation("sender_batch_header.sender_batch_id", "Invalid sender_batch_id")
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise payouts_validation("items", "Required field missing")
    if len(items) > MAX_ITEMS:
        raise payouts_validation("items", f"Maximum number of items ({MAX_ITEMS}) exceeded")
    return header, [_parse_item(item, index, header) for index, item in enumerate(items)]


def _parse_item(item, index, header):
    where = f"items[{index}]"
    if not isinstance(item, dict):
        raise payouts_validation(where, "Invalid item")
    recipient_type = item.get("recipient_type") or header.get("recipient_type")
    if recipient_type not in RECIPIENT_TYPES:
        raise payouts_validation(f"{where}.recipient_type", "Required field missing" if recipient_type is None
                                 else "Invalid recipient_type")
    receiver = item.get("receiver")
    if not isinstance(receiver, str) or not receiver.strip():
        raise payouts_validation(f"{where}.receiver", "Required field missing")
    if recipient_type == "EMAIL" and "@" not in receiver:
        raise payouts_validation(f"{where}.receiver", "Receiver is invalid or does not match with type")
    amount = item.get("amount")
    if not isinstance(amount, dict) or "value" not in amount or "currency" not in amount:
        raise payouts_validation(f"{where}.amount", "Required field missing")
    if amount["currency"] != CURRENCY:
        raise payouts_validation(f"{where}.amount.currency", "Currency is not supported")
    try:
        cents = parse_cents(amount["value"])
    except AmountError:
        raise payouts_validation(f"{where}.amount.value", "Invalid amount") from None
    return {"recipient_type": recipient_type, "amount_cents": cents, "receiver": receiver,
            "sender_item_id": item.get("sender_item_id"), "note": item.get("note")}
