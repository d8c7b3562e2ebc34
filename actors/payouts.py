"""The payout scheduler: the adapter actor that pays members weekly through PayPal's Payouts API.

A thin shell over `payout_rules.PayoutRun`: it wakes at each payout instant (and, on start,
catches up with one that passed while no node ran), runs the payout, follows the batch until
PayPal has settled every item, and answers `RunPayout` from `interkanect payouts run`. All its
I/O (MongoDB, PayPal, SMTP through the mailer) blocks this actor's own process only.
`MongoPayoutStore` is the run's view of the database: the ledger (one document per
transaction, _id = its idempotency key), the `payouts` documents and what decides a release.
"""
import dataclasses
import datetime
import logging

import pymongo
from thespian.actors import Actor, WakeupMessage

from actors import convention, leadership, ledger_store
from rules import ledger, payout_calendar, payout_rules
from actors.messages import MailerMoved, SendMail
from interkanect import logs, mail
from interkanect.db import object_id

log = logging.getLogger(__name__)

PAYOUTS_NAME = "interkanect-payouts"
# How long `interkanect payouts run` waits for the scheduler's answer by default.
RUN_ANSWER_TIMEOUT_S = 50
# Members and calls are looked up by this many ids per query: SecantusDB's cost of an $in grows
# faster than its length (3,000 member ids in one query: 10 s; in chunks of 100: 0.9 s).
LOOKUP_CHUNK = 100


@dataclasses.dataclass
class StartPayouts:
    """Directory → scheduler, once: the settings and where member mail goes."""
    settings: object
    mailer: object
    token: int = None   # the leader's lease (actors/leadership.py): checked before every money write


@dataclasses.dataclass
class RunPayout:
    """Operator → scheduler: run the payout of this instant now (an aware datetime)."""
    instant: datetime.datetime


@dataclasses.dataclass
class PayoutRan:
    """Scheduler → operator: the run's report (`Report.view()`), or why there is none."""
    report: dict = None
    error: str = None


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


class PayoutScheduler(Actor):
    # One per convention, on the leader: a lookup by global name through another node's admin
    # (a gateway beside it, the CLI) is passed to the leader, never answered by a second one.
    actorSystemCapabilityCheck = staticmethod(convention.runs_directory)

    def __init__(self):
        super().__init__()
        self.payouts = None       # payout_rules.PayoutRun
        self.mailer = None
        self.payout_token = 0     # wakeupAfter cannot be cancelled: only the latest timer counts
        self.poll_token = 0
        self.polls = 0            # looks at batches PayPal is processing since the last send
        self.lead_s = 0           # how long before a payout instant its run starts

    def receiveMessage(self, message, sender):
        now = _now()
        if isinstance(message, StartPayouts):
            self.start(message, now)
        elif isinstance(message, RunPayout):
            self.send(sender, self.run_asked(message.instant, now))
        elif isinstance(message, MailerMoved):
            self.mailer = message.mailer
        elif isinstance(message, WakeupMessage) and isinstance(message.payload, tuple):
            if message.payload[0] == "payout":
                self.payout_due(*message.payload[1:], now)
            elif message.payload[0] == "poll" and message.payload[1] == self.poll_token:
                self.follow(now)

    def start(self, message, now):
        from interkanect.paypal.payouts import PayPalPayouts  # loads only in this actor's process
        s = message.settings
        logs.straight_to_stderr(s.log_level, log)
        db = pymongo.MongoClient(s.database_url, tz_aware=True, serverSelectionTimeoutMS=5000)[s.db_name]
        store = MongoPayoutStore(db, leadership.Fence(db, message.token))
        paypal = PayPalPayouts(s.paypal_url, s.paypal_client_id_in_use, s.paypal_client_secret_in_use)
        self.mailer = message.mailer
        self.settings, self.store, self.lead_s = s, store, s.policy.payout_lead_s
        self.payouts = payout_rules.PayoutRun(store, paypal, self.notify, s.policy.earnings_hold_s, f"{s.url}account",
                                              self.notify_many, s.paypal_payout_batch_items)
        latest = payout_rules.latest_payout_at_or_before(now)
        try:
            store.ensure_indexes()
            store.backfill_read_model()
            # Caught up at once: an instant never planned, or a plan PayPal may not have yet (a
            # leader lost in the middle of a run: its successor sends the same batch, once).
            missed = (store.payout(payout_calendar.payout_batch_id(latest)) is None
                      or bool(store.payouts_in_state(payout_rules.INTENT)))
        except Exception:
            log.exception("payout scheduler: cannot read the payouts yet; trying again in %d s", payout_rules.RETRY_S)
            self.arm_payout(latest, now + datetime.timedelta(seconds=payout_rules.RETRY_S))
            return
        self.follow(now)  # batches a previous node sent and did not see settled
        if missed:
            log.info("catching up with the payout of %s", latest.isoformat())
            self.arm_payout(latest, now)  # at once, through the same path as any payout
        else:
            self.arm_payout(payout_calendar.next_payouts(now, 1)[0], None)

    # Timers -------------------------------------------------------------------------------

    def arm_payout(self, instant, due_at):
        """One live payout timer: for `instant`, acting at `due_at` (Policy.payout_lead_s before
        the instant, so the money has left by then; or a retry)."""
        due_at = due_at or payout_rules.run_due_at(instant, self.lead_s)
        self.payout_token += 1
        delay_s = payout_rules.wake_delay_s(_now(), due_at)
        self.wakeupAfter(datetime.timedelta(seconds=delay_s), payload=("payout", self.payout_token, instant, due_at))

    def arm_poll(self, delay_s):
        self.poll_token += 1
        self.wakeupAfter(datetime.timedelta(seconds=delay_s), payload=("poll", self.poll_token))

    def payout_due(self, token, instant, due_at, now):
        action, instant = payout_rules.payout_wakeup(token, self.payout_token, instant, due_at, now)
        if action == "sleep":
            self.arm_payout(instant, due_at)
        if action != "run":
            return
        try:
            self.after_run(self.payouts.run(instant, now))
        except Exception:
            log.exception("payout %s failed; trying again in %d s", instant.isoformat(), payout_rules.RETRY_S)
            self.arm_payout(instant, now + datetime.timedelta(seconds=payout_rules.RETRY_S))
            return
        # The next instant after this one: with the lead, this one's own time may be still ahead.
        self.arm_payout(payout_rules.next_instant_after(max(now, instant)), None)

    def follow(self, now):
        try:
            returned, processing, still_open = self.payouts.follow(now)
        except Exception:
            log.exception("cannot follow the sent payout batches; trying again in %d s", payout_rules.RETRY_S)
            self.arm_poll(payout_rules.RETRY_S)
            return
        if still_open:
            self.arm_poll(payout_rules.poll_delay_s(self.polls, processing))
            self.polls += 1

    def after_run(self, report):
        log.info("payout %s: %s, %d items in %d batches, %d cents, %d skipped; seconds per step %s", report.batch_id,
                 report.state, len(report.items), len(report.parts), report.paid_cents, len(report.skipped),
                 report.step_s)
        if any(part["state"] == payout_rules.SENT for part in report.parts):
            self.polls = 0
            self.arm_poll(payout_rules.poll_delay_s(self.polls, True))
            self.polls += 1

    # Operator -----------------------------------------------------------------------------

    def run_asked(self, instant, now):
        if self.payouts is None:
            return PayoutRan(error="the payout scheduler is not configured yet (is the actor node's directory up?)")
        if not payout_rules.is_payout_instant(instant):
            return PayoutRan(error=f"{instant.isoformat()} is not a payout instant")
        try:
            report = self.payouts.run(instant, now)
        except Exception as error:
            log.exception("payout %s asked by an operator failed", instant.isoformat())
            return PayoutRan(error=f"{type(error).__name__}: {error}")
        self.after_run(report)
        return PayoutRan(report=report.view())

    def notify_many(self, mails):
        """A batch's notices: sent from here over one SMTP connection (or written to the outbox
        in bulk), not one mailer message each (the mailer's queue would block this actor)."""
        emails = self.store.member_emails(sorted({member_id for member_id, _, _ in mails}))
        try:
            sent = mail.send_many(self.settings, self.store.db, [(emails[member_id], subject, body)
                                                                 for member_id, subject, body in mails
                                                                 if member_id in emails])
        except Exception:  # the money has moved; a mail server down loses these notices, not the payout
            log.exception("payout notices not sent")
            return
        log.info("%d payout notices sent", sent)

    def notify(self, member_id, subject, body):
        if self.mailer is None:
            log.warning("no mailer: %r for member %s not sent", subject, member_id)
            return
        self.send(self.mailer, SendMail(member_id, subject, body))


def ask_run(settings, instant, timeout_s=RUN_ANSWER_TIMEOUT_S):
    """From outside the node (the CLI): ask the running scheduler to run this payout now.
    Returns PayoutRan, or None when no answer came within the timeout."""
    from actors.actor_transport import outside_system
    actors = outside_system(settings)
    scheduler = actors.createActor(PayoutScheduler,
                                   globalName=leadership.global_name(PAYOUTS_NAME, leadership.current_token(settings)))
    return actors.ask(scheduler, RunPayout(instant), datetime.timedelta(seconds=timeout_s))


class _PlanTaken(Exception):
    """A part to replace was planned by another run meanwhile: the transaction writes nothing."""


# What a member's view of a batch needs of the batch itself.
BATCH_SUMMARY = ("instant", "state", "batch_status")


class MongoPayoutStore:
    """The payout run's reads and writes (pymongo, blocking)."""

    def __init__(self, db, fence=None):
        self.db = db
        self.fence = fence or leadership.Fence(db, None)   # checked before each money write

    def ensure_indexes(self):
        """What a run and the earnings page look up by. The ledger is shared with the payments
        adapter: an index someone else made on the same keys is fine, so a conflict only warns."""
        for collection, keys in (("ledger", "entries.account"), ("ledger", "call_id"), ("payouts", "state"),
                                 ("payouts", "instant"),
                                 ("payout_items", [("member_id", 1), ("instant", -1)]), ("payout_items", "batch_id")):
            try:
                self.db[collection].create_index(keys)
            except pymongo.errors.OperationFailure as conflict:
                log.warning("index %s.%s not created: %s", collection, keys, conflict)

    # Payouts documents --------------------------------------------------------------------

    def payout(self, batch_id):
        return self.db.payouts.find_one({"_id": batch_id})

    def payouts_in_state(self, state):
        return list(self.db.payouts.find({"state": state}).sort([("instant", 1), ("part", 1)]))

    def payouts_of(self, instant):
        """The parts of one instant's payout, part 1 first."""
        return sorted(self.db.payouts.find({"instant": instant}), key=payout_rules.part_number)

    def save_plan(self, documents, replaced):
        """Write a plan's parts in one transaction: the ids in `replaced` replace parts PayPal
        never had (empty, refused), the others are new. False, with nothing written, when
        another run got there first (a new id taken, a replaced part no longer replannable)."""
        self.fence.check()

        def write(session):
            for document in documents:
                if document["_id"] not in replaced:
                    self.db.payouts.insert_one(document, session=session)
                elif self.db.payouts.replace_one({"_id": document["_id"],
                                                  "state": {"$in": list(payout_rules.REPLANNABLE)}},
                                                 document, session=session).matched_count != 1:
                    raise _PlanTaken()
        try:
            with self.db.client.start_session() as session:
                session.with_transaction(write)
        except (_PlanTaken, pymongo.errors.DuplicateKeyError):
            return False
        for document in documents:
            self.write_read_model(document)
        return True

    def update_payout(self, batch_id, fields):
        self.fence.check()
        self.db.payouts.update_one({"_id": batch_id}, {"$set": fields})
        summary = {name: fields[name] for name in BATCH_SUMMARY if name in fields}
        if summary:
            self.db.payout_batches.update_one({"_id": batch_id}, {"$set": summary}, upsert=True)
        if "items" in fields:
            self.update_item_statuses(batch_id, fields["items"])

    # The members' read model: what each member's earnings page shows of a batch ----------
    #
    # A batch document holds up to 15,000 items; a member's page must not read 52 of them. So
    # each (batch, member) has a small `payout_items` document and each batch a `payout_batches`
    # summary, written with the batch document (statuses only when they change).

    def write_read_model(self, document):
        batch_id = document["_id"]
        self.db.payout_batches.replace_one({"_id": batch_id}, dict(
            {name: document.get(name) for name in BATCH_SUMMARY}, _id=batch_id), upsert=True)
        self.db.payout_items.delete_many({"batch_id": batch_id})
        rows = [payout_rules.member_item_row(batch_id, document["instant"], item) for item in document.get("items", [])]
        rows += [payout_rules.member_item_row(batch_id, document["instant"], skipped, skipped=True)
                 for skipped in document.get("skipped", [])]
        for start in range(0, len(rows), payout_rules.BOOK_CHUNK):
            self.db.payout_items.insert_many(rows[start:start + payout_rules.BOOK_CHUNK], ordered=False)

    def update_item_statuses(self, batch_id, items):
        stored = {row["member_id"]: row for row in self.db.payout_items.find(
            {"batch_id": batch_id, "skipped": {"$ne": True}}, {"member_id": 1, "status": 1, "amount_cents": 1})}
        if set(stored) != {item["member_id"] for item in items} or any(
                stored[item["member_id"]]["amount_cents"] != item["amount_cents"] for item in items):
            # PayPal's batch differs from the plan (it is booked as PayPal has it): write it whole.
            self.write_read_model(self.db.payouts.find_one({"_id": batch_id}))
            return
        common, own = payout_rules.row_statuses({item["member_id"]: item.get("status") for item in items})
        changed = {}
        for member_id, status in own.items():
            if stored[member_id].get("status") != status:
                changed.setdefault(status, []).append(f"{batch_id}:{member_id}")
        for status, ids in changed.items():   # in chunks: an $in of 10,000 ids took SecantusDB 100 s
            for start in range(0, len(ids), LOOKUP_CHUNK):
                self.db.payout_items.update_many({"_id": {"$in": ids[start:start + LOOKUP_CHUNK]}},
                                                 {"$set": {"status": status}})
        self.db.payout_batches.update_one({"_id": batch_id}, {"$set": {"items_status": common}}, upsert=True)

    def backfill_read_model(self):
        """Batches written before the read model existed get theirs (once, at start)."""
        known = {row["_id"] for row in self.db.payout_batches.find({}, {"_id": 1})}
        for row in self.db.payouts.find({}, {"_id": 1}):
            if row["_id"] not in known:
                self.write_read_model(self.db.payouts.find_one({"_id": row["_id"]}))

    def claim(self, batch_id, flag):
        """True for the one caller that sets this flag first (e.g. to mail once)."""
        return self.db.payouts.update_one({"_id": batch_id, flag: {"$ne": True}},
                                          {"$set": {flag: True}}).modified_count == 1

    # What decides a release ---------------------------------------------------------------

    def pending_by_call(self):
        rows = self.db.ledger.aggregate(payout_rules.bucket_balances_pipeline("pending", by_call=True))
        return {(row["_id"]["call_id"], ledger.parse_member_account(row["_id"]["account"])[0]): row["cents"]
                for row in rows if row["_id"].get("call_id") and row["cents"] > 0}

    def call_end_times(self, call_ids):
        calls = self._find_in("calls", "_id", call_ids, {}, {"ended_at": 1})
        return {call["_id"]: call.get("ended_at") for call in calls}

    def open_refund_calls(self, call_ids):
        """Calls with a refund under way: an open request, or a late capture whose whole refund
        is not done (PENDING at PayPal, or left to an operator): its net is in the call's pending
        and is the caller's, not the host's, until it is settled."""
        requests = {request["call_id"] for request in self._find_in(
            "refund_requests", "call_id", call_ids, {"state": payout_rules.OPEN_REFUND_STATE}, {"call_id": 1})}
        late = {order["call_id"] for order in self._find_in(
            "orders", "call_id", call_ids, {"capture_state": {"$in": ["refunding", "refund_refused"]}}, {"call_id": 1})}
        return requests | late

    def dispute_keys(self, call_ids):
        keys = {}
        kinds = {"kind": {"$in": [ledger.DISPUTE_FREEZE, ledger.DISPUTE_WON, ledger.DISPUTE_LOST]}}
        for transaction in self._find_in("ledger", "call_id", call_ids, kinds, {"call_id": 1}):
            keys.setdefault(transaction["call_id"], []).append(transaction["_id"])
        return keys

    def _find_in(self, collection, field, values, query, projection):
        values = sorted(values)
        for start in range(0, len(values), LOOKUP_CHUNK):
            yield from self.db[collection].find(dict(query, **{field: {"$in": values[start:start + LOOKUP_CHUNK]}}),
                                                projection)

    # What a batch pays ----------------------------------------------------------------------

    def available_balances(self):
        return {row["_id"]: row["cents"]
                for row in self.db.ledger.aggregate(payout_rules.bucket_balances_pipeline("available"))}

    def payout_emails(self, member_ids):
        ids = [oid for oid in map(object_id, member_ids) if oid is not None]
        return {str(member["_id"]): member.get("payout_email") or ""
                for member in self._find_in("members", "_id", ids, {}, {"payout_email": 1})}

    def booked(self, key):
        return self.db.ledger.find_one({"_id": key}, {"_id": 1}) is not None

    def member_emails(self, member_ids):
        ids = [oid for oid in map(object_id, member_ids) if oid is not None]
        return {str(member["_id"]): member["email"]
                for member in self._find_in("members", "_id", ids, {}, {"email": 1})}

    def book_all(self, transactions, now):
        """Many transactions in one round trip: {key: "booked" | "repeat" | "conflict"}."""
        return ledger_store.book_all(self.db, transactions, now, fence=self.fence)

    def book(self, transaction, now):
        """One transaction: False if its key is booked already with it (a repeat),
        ledger_store.KeyReused (a LedgerError) if with another one."""
        return ledger_store.book(self.db, transaction, now, fence=self.fence)
