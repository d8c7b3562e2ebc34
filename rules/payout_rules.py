"""The weekly payout's decisions, free of I/O: which held earnings a run releases, what one
payout batch pays and to whom, what each PayPal item status means for the ledger, and when the
scheduler wakes. `PayoutRun` carries one run out in order over injected ports (a store, the
PayPal Payouts client, a mail function), so the scheduler actor, the operator's
`interkanect payouts run` (which asks that actor) and the tests all go through the same steps.

Decisions:
- A run for payout instant P looks at cutoff C = min(now, P): a call's pending earnings are
  released (one `release:<call_id>` transaction) when the call ended at or before C minus the
  hold (`Policy.earnings_hold_s`, 24 h), no refund request on it is open and no PayPal dispute
  on it is open. A catch-up run for a past instant therefore pays what was payable at P, and an
  early run (an operator, P still ahead) only what is payable now.
- Refund requests are a hook for the refunds work: a document of the `refund_requests`
  collection `{call_id, state}` holds its call's earnings while `state` is "open". Whoever
  decides a request sets another state once the decision's money has moved (the refund booked).
- An open dispute is read from the ledger itself: a `dispute:<id>:freeze` transaction of the
  call without its `dispute:<id>:resolved`.
- One plan per instant, in as many batches as PayPal's item limit needs (15,000 items each):
  part 1 is sender_batch_id `payout_calendar.payout_batch_id(P)`, part k that id with `-k`.
  Every part's items are fixed in its `payouts` document (state "intent"), all parts written in
  one database transaction, before PayPal hears of any; every retry, restart or operator run
  sends exactly those items with that sender_batch_id, and PayPal refuses a second batch with
  it and names the first (which is then read: "already sent"). An item is booked
  (`payout:<batch_id>:<member>`, a unique ledger key) only once PayPal has its batch.
- Nothing new is planned while an earlier batch is unconfirmed: that one is sent (or found
  sent) and booked first, so available balances always reflect every batch PayPal may have.
- PayPal forgets a sender_batch_id after 30 days: an intent older than 29 days that was never
  confirmed is not sent again (a resend could pay twice); the run stops and says so.
- A plan pays each member's positive available balance (`ledger.payout_amounts`). Members
  without a usable payout email are skipped, kept in the first part's document and emailed once
  per instant; their money waits for a later payout. Members are split into parts in the order
  of their ids, so a part's members never depend on amounts.
- Item statuses: SUCCESS is paid; FAILED, RETURNED, BLOCKED, REFUNDED, REVERSED and CANCELED
  put the money back in available (one `payout-item:<id>:returned` each, whatever reported it);
  UNCLAIMED and ONHOLD wait (an unclaimed item can still be claimed for 30 days: it is booked
  back only once PayPal returns it). A DENIED batch paid nothing: all its items come back.
- A run with nothing to pay records an "empty" document (so the start-up catch-up does not
  repeat it); a later run for that instant may still plan a batch. So may a run after PayPal
  refused a part with a 4xx (nothing of it was sent; the error is kept in the document): once
  an operator has fixed the cause, `interkanect payouts run --at` plans again what is available
  then (the parts PayPal took were booked, so their members are not paid again) under the ids
  of the refused or empty parts first, then new part numbers. No answer at all (5xx, timeouts
  after every retry) is not a refusal: the intent stays and the scheduler tries again.
- Catch-up: on start, the latest payout instant that has passed runs if no document records
  it. Earlier missed instants need no run of their own: balances accumulate and the latest
  run pays all of it.
"""
import dataclasses
import datetime
import logging
import re
import time

from rules import ledger, payout_calendar
from rules.terms import dollars

log = logging.getLogger(__name__)

# The states of a `payouts` document (one per payout instant, _id = sender_batch_id).
EMPTY = "empty"          # planned, nothing to pay
INTENT = "intent"        # items fixed; PayPal may or may not have the batch yet
SENT = "sent"            # PayPal has the batch and the ledger has `payout:<batch_id>`; items being followed
FINAL = "final"          # every item reached a final status (and those that came back are booked)
REFUSED = "refused"      # PayPal refused the batch (a 4xx): nothing was sent
# PayPal never had a batch for these: a later run for the instant plans afresh.
REPLANNABLE = (EMPTY, REFUSED)

OPEN_REFUND_STATE = "open"
# PayPal: "up to 15,000 individual payouts in one API call".
MAX_BATCH_ITEMS = 15_000
# A sender_batch_id is refused as a duplicate for 30 days; a day's margin for clocks and queues.
SENDER_BATCH_ID_MEMORY_S = 29 * 24 * 3600

PAID = "paid"
BACK = "back"
WAITING = "waiting"
ITEM_PAID = frozenset({"SUCCESS"})
ITEM_BACK = frozenset({"FAILED", "RETURNED", "BLOCKED", "REFUNDED", "REVERSED", "CANCELED"})
BATCH_DONE = frozenset({"SUCCESS", "DENIED", "CANCELED"})
BATCH_PAID_NOTHING = frozenset({"DENIED", "CANCELED"})

# Scheduler timing. A sleep is capped so that a suspended machine or a clock step is noticed
# within the hour (a wakeup that comes early just sleeps again).
MAX_SLEEP_S = 3600
# A run that failed (PayPal or the database down after their own retries) is tried again.
RETRY_S = 5 * 60
# Payout item transactions written per database round trip.
BOOK_CHUNK = 1000
# Following a batch PayPal is processing: 1 s, 2 s, 4 s ... up to 5 minutes (PayPal processes
# most batches within minutes; the emulator within seconds).
POLL_FIRST_S = 1
POLL_MAX_S = 5 * 60
# Items waiting on their payee (UNCLAIMED up to 30 days, ONHOLD): looked at four times a day.
PAYEE_WAIT_POLL_S = 6 * 3600

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


# Releases ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Release:
    call_id: str
    member_id: str
    amount_cents: int


def releases_due(pending_by_call, ended_at_by_call, held_call_ids, hold_s, cutoff):
    """The releases a run at `cutoff` books: {(call_id, member_id): pending cents} of each call,
    when it ended (None: still running), and the calls a refund request or dispute holds."""
    due = []
    for (call_id, member_id), cents in sorted(pending_by_call.items()):
        ended_at = ended_at_by_call.get(call_id)
        if cents <= 0 or ended_at is None or call_id in held_call_ids:
            continue
        if payout_calendar.payable_at(ended_at, hold_s) <= cutoff:
            due.append(Release(call_id, member_id, cents))
    return due


def open_dispute_calls(dispute_keys_by_call):
    """Calls with a dispute frozen and not resolved, from {call_id: ledger keys of its dispute
    transactions} (`dispute:<id>:freeze`, `dispute:<id>:resolved`)."""
    held = set()
    for call_id, keys in dispute_keys_by_call.items():
        keys = set(keys)
        if any(key.endswith(":freeze") and key[:-len("freeze")] + "resolved" not in keys for key in keys):
            held.add(call_id)
    return held


# Planning a batch --------------------------------------------------------------------------

def usable_email(email):
    return isinstance(email, str) and len(email) <= 254 and bool(_EMAIL.fullmatch(email.strip()))


def plan_items(amounts_by_member, payout_email_by_member):
    """(items, skipped) of a payout, in member id order: each member with a positive amount and
    a usable payout email gets an item; the others are skipped with the reason."""
    items, skipped = [], []
    for member_id, cents in sorted(amounts_by_member.items()):
        if cents <= 0:
            continue
        email = payout_email_by_member.get(member_id) or ""
        if not usable_email(email):
            skipped.append({"member_id": member_id, "amount_cents": cents,
                            "reason": "invalid_payout_email" if email else "no_payout_email"})
        else:
            items.append({"member_id": member_id, "receiver": email.strip(), "amount_cents": cents})
    return items, skipped


def part_number(document):
    return document.get("part", 1)   # documents from before parts are part 1


def plan_parts(items, existing_parts, max_items=MAX_BATCH_ITEMS):
    """[(part number, items)] of a plan: PayPal's batches for these items, at most `max_items`
    each, numbered first with the existing parts PayPal never had (empty or refused: their
    sender_batch_ids are free), then after the highest existing part. Every replannable part
    gets a number here, with no items when the plan needs fewer batches (it becomes empty)."""
    chunks = [items[start:start + max_items] for start in range(0, len(items), max_items)] or [[]]
    free = sorted(part_number(p) for p in existing_parts if p["state"] in REPLANNABLE)
    after = max((part_number(p) for p in existing_parts), default=0)
    numbers = free + list(range(after + 1, after + 1 + max(0, len(chunks) - len(free))))
    return [(number, chunks[index] if index < len(chunks) else []) for index, number in enumerate(numbers)]


def instant_state(parts):
    """One word for an instant's parts: what most needs saying first (something not sent yet,
    something refused), else what they all are."""
    states = {part["state"] for part in parts}
    return next(state for state in (INTENT, REFUSED, SENT, FINAL, EMPTY) if state in states)


def amounts_of(items):
    return {item["member_id"]: item["amount_cents"] for item in items}


def same_items(intended, paid):
    return amounts_of(intended) == amounts_of(paid) and len(intended) == len(paid)


# PayPal's item statuses ------------------------------------------------------------------------

def item_outcome(batch_status, item_status):
    """PAID, BACK (the money is the member's again) or WAITING (not final yet)."""
    if item_status in ITEM_PAID:
        return PAID
    if item_status in ITEM_BACK or batch_status in BATCH_PAID_NOTHING:
        return BACK
    return WAITING


def batch_settled(batch):
    """Every item final: nothing more to follow."""
    return batch["batch_status"] in BATCH_DONE and all(
        item_outcome(batch["batch_status"], item["transaction_status"]) != WAITING for item in batch["items"])


def batch_processing(batch):
    """PayPal is still working on it (as opposed to items waiting on their payees)."""
    return batch["batch_status"] not in BATCH_DONE or any(
        item["transaction_status"] in ("PENDING", "NEW", "UNPROCESSED") for item in batch["items"])


# The calendar, for the scheduler ----------------------------------------------------------------

def is_payout_instant(moment):
    return payout_calendar.next_payouts(moment - datetime.timedelta(microseconds=1), 1)[0] == moment


def latest_payout_at_or_before(now):
    """The most recent payout instant that has come (payouts can be 4 to 10 days apart)."""
    passed = [p for p in payout_calendar.next_payouts(now - datetime.timedelta(days=15), 4) if p <= now]
    return passed[-1]


def run_due_at(instant, lead_s):
    """When the run for payout `instant` starts: `lead_s` before it, so the money has left by
    the instant the FAQ promises (Friday 7 PM Pacific)."""
    return instant - datetime.timedelta(seconds=lead_s)


def next_instant_after(instant):
    """The payout instant after `instant`."""
    return payout_calendar.next_payouts(instant + datetime.timedelta(seconds=1), 1)[0]


def wake_delay_s(now, due_at):
    """How long to sleep towards `due_at`: at most MAX_SLEEP_S, so an early wakeup or a clock
    step costs one more sleep, never a missed payout."""
    return min(MAX_SLEEP_S, max(0.0, (due_at - now).total_seconds()))


def payout_wakeup(token, live_token, instant, due_at, now):
    """What a payout timer does when it fires: ("ignore", None) when a later timer replaced it,
    ("sleep", instant) when it came early (sleeps are capped), else ("run", the instant to
    run): a retry that outlived a newer payout instant runs that one, which pays all of it."""
    if token != live_token:
        return "ignore", None
    if now < due_at:
        return "sleep", instant
    return "run", max(instant, latest_payout_at_or_before(now))


def poll_delay_s(polls, processing):
    """When to look at sent batches again: backing off while PayPal processes, then slowly
    while items wait on their payees (unclaimed, on hold)."""
    if processing:
        return min(POLL_MAX_S, POLL_FIRST_S * 2 ** min(polls, 20))
    return PAYEE_WAIT_POLL_S


# What members read --------------------------------------------------------------------------

def member_balances_pipeline(member_id):
    """Aggregation over the `ledger` collection: one row {_id: account, cents} per bucket of
    the member (pending, available, frozen, paid_out)."""
    accounts = [ledger.member_account(member_id, bucket) for bucket in ("pending", "available", "frozen",
                                                                           "paid_out")]
    return [{"$match": {"entries.account": {"$in": accounts}}}, {"$unwind": "$entries"},
            {"$match": {"entries.account": {"$in": accounts}}},
            {"$group": {"_id": "$entries.account", "cents": {"$sum": "$entries.amount_cents"}}}]


# Balances of every member's bucket, for a run: {_id: account, cents}.
def bucket_balances_pipeline(bucket, by_call=False):
    pattern = f"^member:[^:]+:{bucket}$"
    group = {"account": "$entries.account", "call_id": "$call_id"} if by_call else "$entries.account"
    return [{"$match": {"entries.account": {"$regex": pattern}}}, {"$unwind": "$entries"},
            {"$match": {"entries.account": {"$regex": pattern}}},
            {"$group": {"_id": group, "cents": {"$sum": "$entries.amount_cents"}}},
            {"$match": {"cents": {"$ne": 0}}}]


def member_buckets(rows, member_id):
    by_account = {row["_id"]: row["cents"] for row in rows}
    return {f"{bucket}_cents": by_account.get(ledger.member_account(member_id, bucket), 0)
            for bucket in ("pending", "available", "frozen", "paid_out")}


def member_item_row(batch_id, instant, item, skipped=False):
    """A member's `payout_items` document for one batch: their item, or why they were skipped."""
    row = {"_id": f"{batch_id}:{item['member_id']}", "batch_id": batch_id, "member_id": item["member_id"],
           "instant": instant, "amount_cents": item["amount_cents"]}
    if skipped:
        return dict(row, skipped=True, reason=item["reason"])
    return dict(row, receiver=item["receiver"], status=item.get("status"))


def row_statuses(statuses):
    """How a batch's item statuses are kept in the members' rows: (the batch's `items_status`,
    {member_id: the row's own status}) where a row says its status only when it differs from
    the batch's most common one. A whole batch turning SUCCESS is then one small write, not
    15,000 (SecantusDB updates ~2,000 rows a second)."""
    counts = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    common = max(counts, key=lambda status: (counts[status], str(status)), default=None)
    return common, {member_id: None if status == common else status for member_id, status in statuses.items()}


def member_payout_view(row, batch):
    """One payout as its member sees it, from their `payout_items` row and the batch summary
    (a row without a status of its own has the batch's `items_status`)."""
    document = dict(batch, _id=row["batch_id"], instant=row["instant"])
    if row.get("skipped"):
        document["skipped"] = [{"member_id": row["member_id"], "amount_cents": row["amount_cents"],
                                "reason": row["reason"]}]
    else:
        document["items"] = [{"member_id": row["member_id"], "amount_cents": row["amount_cents"],
                              "receiver": row["receiver"], "status": row.get("status") or batch.get("items_status")}]
    return payout_view(document, row["member_id"])


def payout_view(document, member_id):
    """One payout as its member sees it, from a `payouts` document (None: not theirs)."""
    instant = document["instant"].astimezone(payout_calendar.LOS_ANGELES).isoformat()
    for item in document.get("items", ()):
        if item["member_id"] == member_id:
            status = item.get("status") or ("sending" if document.get("state") == INTENT else
                                             "refused" if document.get("state") == REFUSED else "sent")
            return {"batch_id": document["_id"], "payout_at": instant, "amount_cents": item["amount_cents"],
                    "receiver": item["receiver"], "status": status,
                    "returned": item_outcome(document.get("batch_status"), item.get("status")) == BACK
                    and document.get("state") in (SENT, FINAL)}
    for skipped in document.get("skipped", ()):
        if skipped["member_id"] == member_id:
            return {"batch_id": document["_id"], "payout_at": instant, "amount_cents": skipped["amount_cents"],
                    "receiver": None, "status": "skipped", "reason": skipped["reason"], "returned": False}
    return None


# Mail to members --------------------------------------------------------------------------

def sent_mail(amount_cents, receiver, instant):
    return ("Your interKanect payout is on its way",
            f"We sent {dollars(amount_cents)} to your PayPal account {receiver} with the payout of "
            f"{instant.astimezone(payout_calendar.LOS_ANGELES):%A %B %-d, %Y}.\n\n"
            f"PayPal usually credits it within minutes. If that address has no PayPal account yet, "
            f"PayPal emails it an invitation to claim the money within 30 days.")


def skipped_mail(amount_cents, reason, account_url, next_instant):
    problem = ("there is no PayPal payout email on your account" if reason == "no_payout_email"
               else "the PayPal payout email on your account is not a valid address")
    return ("Add a PayPal payout email to get paid",
            f"You have {dollars(amount_cents)} of earnings ready to be paid, but {problem}, so this week's "
            f"payout skipped you. Your money is safe and waits in your balance.\n\n"
            f"Add your payout email at {account_url} and it goes out with the next payout "
            f"({next_instant.astimezone(payout_calendar.LOS_ANGELES):%A %B %-d, %Y, %-I:%M %p} Los Angeles time).")


def returned_mail(amount_cents, receiver, status):
    return ("Your interKanect payout came back",
            f"Your payout of {dollars(amount_cents)} to {receiver} did not reach a PayPal account "
            f"(PayPal reports it {status}). The money is back in your balance and goes out with the next "
            f"payout. Please check the PayPal payout email on your account.")


# One run ------------------------------------------------------------------------------------

class PayoutStuck(Exception):
    """A batch whose fate only an operator can settle; nothing more is sent until they do."""


@dataclasses.dataclass
class Report:
    batch_id: str
    payout_at: str
    state: str
    already_sent: bool = False
    paypal_batch_id: str = None
    items: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)
    released_calls: list = dataclasses.field(default_factory=list)
    returned: list = dataclasses.field(default_factory=list)
    error: str = None
    step_s: dict = dataclasses.field(default_factory=dict)   # how long each step took, in seconds
    parts: list = dataclasses.field(default_factory=list)    # each batch: id, state, PayPal's id, items, cents

    @property
    def paid_cents(self):
        return sum(item["amount_cents"] for item in self.items)

    def view(self):
        return dict(dataclasses.asdict(self), paid_cents=self.paid_cents)


class PayoutRun:
    """Runs payouts over its ports:
    - store: the ledger (`book`, `book_all`), payouts, calls, refund requests and members (see
      MongoPayoutStore in actors/payouts.py);
    - paypal: `create_payout(sender_batch_id, items)`, `payout_batch(payout_batch_id)` and
      `Refused`, the error it raises when PayPal refuses a batch for good;
    - notify(member_id, subject, body): mail to a member; notify_many([(member_id, subject,
      body)]): many at once.
    Every step is safe to repeat: a crash anywhere is repaired by running again."""

    def __init__(self, store, paypal, notify, hold_s, account_url, notify_many=None, max_items=MAX_BATCH_ITEMS):
        self.store, self.paypal, self.notify = store, paypal, notify
        self.hold_s, self.account_url, self.max_items = hold_s, account_url, max_items
        # Many mails at once (a batch's notices): one database write or SMTP connection for all.
        self.notify_many = notify_many or (lambda mails: [notify(*mail) for mail in mails])

    def run(self, instant, now):
        batch_id = payout_calendar.payout_batch_id(instant)
        step_s, started = {}, time.monotonic()

        def took(step):
            nonlocal started
            step_s[step] = round(step_s.get(step, 0) + time.monotonic() - started, 3)
            started = time.monotonic()
        for earlier in self.store.payouts_in_state(INTENT):
            if earlier["instant"] != instant:
                self.send(earlier, now)
        took("earlier_batches")
        released = self.release(min(now, instant), now)
        took("release")
        parts = self.store.payouts_of(instant)
        replan = not parts or any(part["state"] in REPLANNABLE for part in parts)
        # Parts an earlier run of this instant planned and did not send (it died) go first, so
        # the balances a new plan reads reflect them.
        parts = [self.send(part, now) if part["state"] == INTENT else part for part in parts]
        took("send")
        if replan:
            parts = self.plan(instant, parts, now)
        took("plan")
        parts = [self.send(part, now) if part["state"] == INTENT else part for part in parts]
        took("send")
        returned = []
        for index, part in enumerate(parts):
            if part["state"] == SENT:
                parts[index], came_back = self.check(part, now)
                returned += came_back
        took("check")
        return Report(batch_id, instant.astimezone(payout_calendar.LOS_ANGELES).isoformat(), instant_state(parts),
                      not replan, parts[0].get("paypal_batch_id"), [i for p in parts for i in p.get("items", [])],
                      [s for p in parts for s in p.get("skipped", [])], [r.call_id for r in released], returned,
                      next((p["error"] for p in parts if p.get("error")), None), step_s,
                      [{"batch_id": p["_id"], "state": p["state"], "paypal_batch_id": p.get("paypal_batch_id"),
                        "items": len(p.get("items", [])), "paid_cents": sum(i["amount_cents"] for i in p.get("items", [])),
                        "error": p.get("error")} for p in parts])

    def follow(self, now):
        """Look at every sent batch once: (returned items booked, whether PayPal is still
        processing one, whether any is still open)."""
        returned, processing, still_open = [], False, False
        for document in self.store.payouts_in_state(SENT):
            document, came_back = self.check(document, now)
            returned += came_back
            still_open |= document["state"] == SENT
            processing |= document["state"] == SENT and document.get("processing", False)
        return returned, processing, still_open

    # Steps --------------------------------------------------------------------------------

    def release(self, cutoff, now):
        pending = self.store.pending_by_call()
        if not pending:
            return []
        call_ids = {call_id for call_id, _ in pending}
        held = self.store.open_refund_calls(call_ids) | open_dispute_calls(self.store.dispute_keys(call_ids))
        due = releases_due(pending, self.store.call_end_times(call_ids), held, self.hold_s, cutoff)
        booked = self.store.book_all([ledger.release_transaction(r.call_id, r.member_id, r.amount_cents)
                                      for r in due], now)
        for release in due:
            if booked[f"release:{release.call_id}"] == "conflict":
                # e.g. a capture that completed after the call's release: an operator's case.
                log.error("cannot release call %s: it was released before with another amount", release.call_id)
        return [release for release in due if booked[f"release:{release.call_id}"] != "conflict"]

    def plan(self, instant, parts, now):
        """Fix what this instant pays in its parts' documents (all in one write); the instant's
        parts afterwards. Replaces the parts PayPal never had, keeps the others."""
        amounts = ledger.payout_amounts(self.store.available_balances())
        items, skipped = plan_items(amounts, self.store.payout_emails(sorted(amounts)))
        kept = [part for part in parts if part["state"] not in REPLANNABLE]
        recorded = {s["member_id"] for part in kept for s in part.get("skipped", ())}
        skipped = [member for member in skipped if member["member_id"] not in recorded]
        documents = [{"_id": payout_calendar.payout_batch_id(instant, number), "instant": instant, "part": number,
                      "state": INTENT if chunk else EMPTY, "planned_at": now,
                      "items": [dict(item, status=None, item_id=None) for item in chunk],
                      "skipped": skipped if index == 0 else []}
                     for index, (number, chunk) in enumerate(plan_parts(items, parts, self.max_items))]
        replaced = {part["_id"] for part in parts if part["state"] in REPLANNABLE}
        if not self.store.save_plan(documents, replaced):  # another run planned first: carry on with its plan
            return self.store.payouts_of(instant)
        told = {s["member_id"] for part in parts for s in part.get("skipped", ())}
        next_instant = payout_calendar.next_payouts(max(now, instant), 1)[0]
        for member in skipped:
            if member["member_id"] not in told:
                self.notify(member["member_id"], *skipped_mail(member["amount_cents"], member["reason"],
                                                               self.account_url, next_instant))
        return sorted(kept + documents, key=part_number)

    def send(self, document, now):
        """PayPal gets the batch (or already has it), then the ledger books what it pays."""
        batch_id = document["_id"]
        if document.get("paypal_batch_id") is None and \
                (now - document["planned_at"]).total_seconds() > SENDER_BATCH_ID_MEMORY_S:
            raise PayoutStuck(f"payout {batch_id} was planned on {document['planned_at']:%Y-%m-%d} and never "
                              f"confirmed; PayPal no longer refuses its sender_batch_id, so sending it again could pay "
                              f"twice. Check PayPal's payout history, then mark the document sent or refused.")
        try:
            batch = self.paypal.create_payout(batch_id, [
                {"member_id": i["member_id"], "receiver": i["receiver"], "amount_cents": i["amount_cents"]}
                for i in document["items"]])
        except self.paypal.Refused as refusal:
            log.error("PayPal refused payout batch %s: %s", batch_id, refusal)
            fields = {"state": REFUSED, "error": str(refusal)}
            self.store.update_payout(batch_id, fields)
            return dict(document, **fields)
        items = document["items"]
        if batch.get("items") is not None:  # the batch PayPal already had: book what it has
            paid = [{"member_id": i["sender_item_id"], "receiver": i["receiver"], "amount_cents": i["amount_cents"],
                     "status": None, "item_id": None} for i in batch["items"]]
            if not same_items(items, paid):
                log.error("payout batch %s at PayPal differs from its plan; booking what PayPal has", batch_id)
                items = paid
        self.book_items(batch_id, items, now)
        fields = {"state": SENT, "paypal_batch_id": batch["payout_batch_id"], "batch_status": batch["batch_status"],
                  "sent_at": now, "items": items, "processing": True}
        self.store.update_payout(batch_id, fields)
        if self.store.claim(batch_id, "sent_mail"):
            self.notify_many([(item["member_id"], *sent_mail(item["amount_cents"], item["receiver"],
                                                             document["instant"])) for item in items])
        return dict(document, **fields)

    def book_items(self, batch_id, items, now):
        """One `payout:<batch>:<member>` transaction per item, written in bulk chunks. A batch
        booked whole under `payout:<batch>` (before per-item booking) is not booked again."""
        if self.store.booked(f"payout:{batch_id}"):
            return
        for start in range(0, len(items), BOOK_CHUNK):
            booked = self.store.book_all([ledger.payout_item_transaction(batch_id, item["member_id"],
                                                                         item["amount_cents"])
                                          for item in items[start:start + BOOK_CHUNK]], now)
            for key, outcome in booked.items():
                if outcome == "conflict":
                    log.error("payout item %s is booked with another amount; kept as it was", key)

    def check(self, document, now):
        """Read the batch from PayPal; book back each item whose money did not reach its payee."""
        batch = self.paypal.payout_batch(document["paypal_batch_id"])
        by_member = {item["sender_item_id"]: item for item in batch["items"]}
        items, returned, fees = [], [], []
        for planned in document["items"]:
            item = by_member.get(planned["member_id"])
            if item is None:
                log.error("payout batch %s has no item for member %s", document["_id"], planned["member_id"])
                items.append(planned)
                continue
            items.append(dict(planned, item_id=item["payout_item_id"], status=item["transaction_status"]))
            outcome = item_outcome(batch["batch_status"], item["transaction_status"])
            if outcome == PAID and item.get("fee_cents") and planned.get("status") not in ITEM_PAID:
                fees.append(ledger.payout_fee_transaction(item["payout_item_id"], item["fee_cents"]))
            if outcome == BACK:
                transaction = ledger.payout_returned_transaction(item["payout_item_id"], planned["member_id"],
                                                                 item["amount_cents"])
                if self.store.book(transaction, now):
                    returned.append({"item_id": item["payout_item_id"], "member_id": planned["member_id"],
                                     "amount_cents": item["amount_cents"], "status": item["transaction_status"]})
                    self.notify(planned["member_id"], *returned_mail(item["amount_cents"], item["receiver"],
                                                                     item["transaction_status"]))
        for start in range(0, len(fees), BOOK_CHUNK):   # PayPal's fee on each delivered item, once
            self.store.book_all(fees[start:start + BOOK_CHUNK], now)
        fields = {"items": items, "batch_status": batch["batch_status"], "checked_at": now,
                  "processing": batch_processing(batch), "state": FINAL if batch_settled(batch) else SENT}
        self.store.update_payout(document["_id"], fields)
        return dict(document, **fields), returned
