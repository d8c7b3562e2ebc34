"""Refund requests, free of I/O: who may ask and when, what an approval refunds (one PayPal
refund per call payment, its amount minus its fee), the states a request goes through, what
members and operators see of it, and `Settlement`, which carries an approval's money out over
injected ports (a store, PayPal, a mail function) so the refunds actor and the tests run the
same steps.

States. A `refund_requests` document has `state` "open" until its decision's money has moved
(the hook the payout run reads: an open request holds its call's earnings), then "refunded" or
"denied", and `decision` None, "approve" or "deny". What members and operators see is one
state: open, approved (decided, refunds under way), refunded or denied.

Decisions:
- One request per call (a unique index on call_id): a second is `refund_already_requested`,
  even after a denial (the decision is final; a caller who disagrees goes to PayPal).
- Only call payments are refunded (every round, extensions included); tips never. Each is
  refunded by its own PayPal call for its amount minus the fee PayPal took on it (as booked in
  the ledger) minus what of it was refunded already (a late-capture refund, a refund made on
  PayPal's dashboard: a capture refunded whole is left out), with PayPal-Request-Id
  `refund-<request id>-<capture id>`: a retry, a crash or a resumed approval gets PayPal's
  first refund back instead of a second one.
- The decision is stored (with the plan, read from the ledger at that moment) before any
  money moves. Then per capture: PayPal refunds, its refund id and status are stored, and once
  PayPal says COMPLETED the ledger books `refund:<PayPal refund id>` and the capture is marked
  booked. A crash anywhere is repaired by settling again; a refund whose ledger key exists is
  booked already, whatever split between pending and available it was booked with.
- PayPal's refund lifecycle: a PENDING refund (an eCheck) books nothing and is read again
  (Policy.refund_poll_s, or at once when its webhook comes) until it is COMPLETED (booked),
  FAILED or CANCELLED (nothing was booked, so nothing is reversed). A failed refund is asked
  again as a new refund with a new request id (`…-retry<n>`: the old id would return the
  failed one), up to Policy.refund_attempts_max refunds per capture; then operators are
  mailed and the capture waits for one of them to ask again (`retry`).
- PayPal not answering, or refusing for now (e.g. TRANSACTION_DISPUTED while a dispute is
  open), leaves the request "approved": the capture is tried again after Policy.refund_retry_s,
  doubling per attempt up to a day, and the last error is shown to operators. PayPal saying the
  capture is refunded in full already (CAPTURE_FULLY_REFUNDED: by hand, on its dashboard) ends
  that capture's part: the caller has the money; the refund's own webhook books it. PayPal
  saying ours is more than is left (REFUND_AMOUNT_EXCEEDED: part of it refunded on its
  dashboard after the plan was made) plans that capture again from the ledger once the other
  refund is booked there (its webhook): what is left for the caller, under a new request id
  (`…-after<cents>`), or nothing (that capture's part ends).
- The decision mail goes to both sides once the decision is final (refunded or denied), at
  most once (claimed before sending).
"""
import dataclasses
import datetime

from rules import ledger, payout_calendar
from rules.terms import dollars

OPEN, APPROVED, REFUNDED, DENIED = "open", "approved", "refunded", "denied"
VIEW_STATES = (OPEN, APPROVED, REFUNDED, DENIED)
APPROVE, DENY = "approve", "deny"
DECISIONS = {APPROVE: REFUNDED, DENY: DENIED}
REASON_MAX_CHARS = 2000
NOTE_MAX_CHARS = 2000
# A capture PayPal keeps refusing is tried at most daily.
MAX_RETRY_S = 24 * 3600
# PayPal's refund statuses: only COMPLETED moved money; FAILED and CANCELLED never will.
REFUND_COMPLETED, REFUND_PENDING = "COMPLETED", "PENDING"
REFUND_NOT_DONE = ("FAILED", "CANCELLED")
# PayPal's refusal when a capture has nothing left to refund.
FULLY_REFUNDED = "CAPTURE_FULLY_REFUNDED"
# PayPal's refusal of a refund for more than is left of its capture.
AMOUNT_EXCEEDED = "REFUND_AMOUNT_EXCEEDED"
# PayPal's refusals that pass: a dispute open on the capture, another refund not booked here yet.
# Any other 4xx (REFUND_TIME_LIMIT_EXCEEDED, PERMISSION_DENIED, …) is final: it counts as a refund
# not done, so past the allowance operators are told instead of it being asked daily forever.
REFUSALS_THAT_PASS = ("TRANSACTION_DISPUTED", AMOUNT_EXCEEDED)
# PayPal delivers a webhook again for three days: an outside refund still not in the ledger
# after that never will be, so REFUND_AMOUNT_EXCEEDED retried that long goes to operators.
PAYPAL_REDELIVERY_S = 3 * 24 * 3600
# What Settlement.refund answers for a capture that waits for an operator.
STUCK = "stuck"


class RefundRefused(Exception):
    """A refund request or decision refused because of what the client sent or the state."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# Input ------------------------------------------------------------------------------------------

def _text(value, required_code, too_long_code, what, max_chars, required=True):
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise RefundRefused(400, required_code, f"say {what} (a non-empty text)")
    if len(value) > max_chars:
        raise RefundRefused(400, too_long_code, f"{what} has at most {max_chars} characters")
    return value.strip()


def check_reason(reason):
    return _text(reason, "reason_required", "reason_too_long", "why you ask for a refund", REASON_MAX_CHARS)


def check_moment(value, call):
    """The moment of the call a refund request points at on the connection-quality chart, in
    seconds after it was answered (None: none), within the call."""
    if value is None:
        return None
    answered, ended = call.get("answered_at"), call.get("ended_at")
    length_s = (ended - answered).total_seconds() if answered and ended else 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= length_s:
        raise RefundRefused(400, "invalid_moment",
                            f"the moment pointed at is a number of seconds into the call, from 0 to {length_s:.0f}")
    return round(value, 1)


def check_note(text):
    return _text(text, "note_required", "note_too_long", "what the note records", NOTE_MAX_CHARS)


def check_decision(decision, note):
    if decision not in DECISIONS:
        raise RefundRefused(400, "invalid_decision", "decision is \"approve\" or \"deny\"")
    if note is not None and not isinstance(note, str):
        raise RefundRefused(400, "invalid_note", "note is a text")
    return decision, _text(note, "note_required", "note_too_long", "the decision note", NOTE_MAX_CHARS,
                           required=False)


def check_interviewed(document, decision):
    """The FAQ promises an interview: an approval needs at least one operator's note on what
    they learned (a denial does not: the caller keeps PayPal's own dispute process)."""
    if decision == APPROVE and not document.get("notes"):
        raise RefundRefused(409, "interview_required", "add a note on what you learned from the host (and the "
                                                       "call's log) before approving")


def overdue(document, now):
    """Undecided past its review deadline."""
    return document.get("decision") is None and document["state"] == OPEN and document["deadline"] < now


def overdue_mail(documents, now):
    """(subject, body) of the operators' daily reminder of requests past their deadline."""
    count = len(documents)
    lines = "\n".join(f"- {d['caller']['name']} asks {d['host']['name']}'s call back (call {d['call_id']}): "
                      f"due {d['deadline']:%A %B %-d, %Y}" for d in documents[:50])
    more = f"\n… and {count - 50} more." if count > 50 else ""
    return (f"{count} refund request{'s are' if count != 1 else ' is'} past the review deadline",
            f"These refund requests were not decided within the review deadline the caller was promised:\n\n"
            f"{lines}{more}\n\nThe review queue (Open requests) lists them first.")


# Who may ask, and when ----------------------------------------------------------------------------

def payment_of(transaction):
    """A booked capture (a call payment or tip transaction, stored or not) as {capture_id, kind,
    call_id, amount_cents, fee_cents, host_id, caller_id}."""
    if not isinstance(transaction, ledger.Transaction):
        transaction = ledger.Transaction.from_document(transaction)
    payment = {"capture_id": transaction.key.split(":", 1)[1], "kind": transaction.kind,
               "call_id": transaction.call_id, "amount_cents": 0, "fee_cents": 0, "host_id": None, "caller_id": None}
    for entry in transaction.entries:
        if entry.account.startswith("caller:"):
            payment.update(amount_cents=-entry.amount_cents, caller_id=entry.account.split(":", 1)[1])
        elif entry.account == ledger.PAYPAL_FEES:
            payment["fee_cents"] = entry.amount_cents
        elif (parsed := ledger.parse_member_account(entry.account)) is not None:
            payment["host_id"] = parsed[0]
    return payment


def call_payments(transactions):
    """The call payments of a call from its ledger transactions (tips left out), each with
    `refunded_cents`: what of it the caller got back already (refunds of it, a late-capture
    refund of it in full, a dispute of it lost)."""
    transactions = [t if isinstance(t, ledger.Transaction) else ledger.Transaction.from_document(t)
                    for t in transactions]
    refunded = {}
    for transaction in transactions:
        if transaction.kind in (ledger.REFUND, ledger.LATE_CAPTURE_REFUND, ledger.DISPUTE_LOST) and transaction.capture_id:
            to_caller = sum(e.amount_cents for e in transaction.entries if e.account.startswith("caller:"))
            refunded[transaction.capture_id] = refunded.get(transaction.capture_id, 0) + to_caller
    payments = [dict(payment_of(t), refunded_cents=0) for t in transactions if t.kind == ledger.CALL_PAYMENT]
    for payment in payments:
        payment["refunded_cents"] = refunded.get(payment["capture_id"], 0)
    return sorted(payments, key=lambda p: p["capture_id"])


def check_caller(call, member_id):
    """Refuses unless `member_id` is the caller of `call` (its stored document, or None)."""
    if call is None or member_id not in (call["host_id"], call["caller_id"]):
        raise RefundRefused(404, "no_such_call", "you took part in no call with this id")
    if call["caller_id"] != member_id:
        raise RefundRefused(403, "not_caller", "only the caller of a call can ask for its refund")


def check_eligible(call, payments, now, window_s):
    """Refuses unless `call` can be refunded at `now`; `payments` are its call payments."""
    if call.get("state") != "ended" or call.get("ended_at") is None:
        raise RefundRefused(409, "call_not_ended", "a refund can be asked once the call has ended")
    if not any(refund_cents(payment) > 0 for payment in payments):
        raise RefundRefused(409, "nothing_to_refund", "nothing was paid for this call (tips are never refunded)")
    closes_at = call["ended_at"] + datetime.timedelta(seconds=window_s)
    if now > closes_at:
        raise RefundRefused(409, "refund_window_closed", f"a refund can be asked until {window_s / 3600:g} hours "
                                                         f"after the call ended ({closes_at.isoformat()})")


# What an approval refunds -------------------------------------------------------------------------

def refund_cents(payment):
    """PayPal keeps its fee: the caller gets the rest of each payment back, less what of it
    they got back already."""
    return max(0, payment["amount_cents"] - payment["fee_cents"] - payment.get("refunded_cents", 0))


def paypal_request_id(request_id, capture_id, refunds_failed=0, replanned_after=None):
    """A new id per refund asked: the same id again would return PayPal's failed refund (or,
    for a capture planned again after an outside refund, its refusal of the old amount)."""
    base = f"refund-{request_id}-{capture_id}"
    if replanned_after is not None:
        base = f"{base}-after{replanned_after}"
    return f"{base}-retry{refunds_failed}" if refunds_failed else base


def plan(request_id, payments):
    """One item per call payment with something to give back."""
    return [{"capture_id": p["capture_id"], "amount_cents": p["amount_cents"], "fee_cents": p["fee_cents"],
             "refunded_cents": p.get("refunded_cents", 0), "refund_cents": refund_cents(p),
             "request_id": paypal_request_id(request_id, p["capture_id"]), "refund_id": None, "refund_status": None,
             "booked": False, "attempts": 0, "retry_at": None, "error": None, "failed_refunds": [],
             "refunds_allowed": None, "escalated": False}
            for p in payments if refund_cents(p) > 0]


def totals(items):
    return {"paid_cents": sum(item["amount_cents"] for item in items),
            "refund_cents": sum(item["refund_cents"] for item in items)}


def final_refusal(error, issue):
    """PayPal said no for good (a 4xx other than those that pass), as opposed to not answering."""
    status = getattr(error, "status", None)
    return isinstance(status, int) and 400 <= status < 500 and status != 429 and issue not in REFUSALS_THAT_PASS


def retry_delay_s(attempts, base_s):
    return min(MAX_RETRY_S, base_s * 2 ** max(0, attempts - 1))


def waited_s(attempts, base_s):
    """How long `attempts` retries waited in all."""
    return sum(retry_delay_s(n, base_s) for n in range(1, attempts + 1))


# Documents and views ------------------------------------------------------------------------------

def new_request(request_id, call, reason, payments, now, review_business_days, moment_s=None):
    items = plan(request_id, payments)
    return dict({"_id": request_id, "call_id": call["_id"], "moment_s": moment_s,
                 "caller": {"id": call["caller_id"], "name": call["caller_name"]},
                 "host": {"id": call["host_id"], "name": call["host_name"]},
                 "state": OPEN, "decision": None, "reason": reason, "requested_at": now,
                 "deadline": payout_calendar.refund_review_deadline(now, review_business_days),
                 "decided_at": None, "decided_by": None, "decision_note": None, "notes": [], "plan": items,
                 "mailed_at": None}, **totals(items))


def decision_fields(decision, note, operator, payments, request_id, now):
    """What a decision stores, in one update with the request still undecided. An approval
    fixes the plan from the ledger as it is now; a denial is final at once."""
    fields = {"decision": decision, "decision_note": note, "decided_at": now, "decided_by": operator}
    if decision == APPROVE:
        items = plan(request_id, payments)
        fields.update(plan=items, **totals(items))
    else:
        fields["state"] = DENIED
    return fields


def view_state(document):
    if document["state"] == OPEN and document.get("decision") == APPROVE:
        return APPROVED
    return document["state"]


def state_query(state):
    """The documents a view state selects (None: all)."""
    return {OPEN: {"state": OPEN, "decision": None}, APPROVED: {"state": OPEN, "decision": APPROVE},
            REFUNDED: {"state": REFUNDED}, DENIED: {"state": DENIED}}.get(state)


def _iso(value):
    return value.isoformat() if isinstance(value, datetime.datetime) else None


def view(document, operator=False):
    shown = {"id": document["_id"], "call_id": document["call_id"], "state": view_state(document),
             "reason": document["reason"], "moment_s": document.get("moment_s"),
             "requested_at": _iso(document["requested_at"]),
             "deadline": _iso(document["deadline"]), "decided_at": _iso(document.get("decided_at")),
             "decision_note": document.get("decision_note"), "refund_cents": document["refund_cents"],
             "paid_cents": document["paid_cents"], "caller": document["caller"], "host": document["host"]}
    if operator:
        shown["overdue"] = overdue(document, datetime.datetime.now(datetime.timezone.utc))
        shown["notes"] = [{"by": note["by"], "text": note["text"], "at": _iso(note["at"])}
                          for note in document.get("notes", [])]
        shown["decided_by"] = document.get("decided_by")
        shown["refunds"] = [{"capture_id": item["capture_id"], "refund_cents": item["refund_cents"],
                             "refund_id": item.get("refund_id"), "status": item.get("refund_status"),
                             "done": bool(item.get("booked") or item.get("elsewhere")),
                             "failed_refunds": [{"refund_id": f["refund_id"], "status": f["status"]}
                                                for f in item.get("failed_refunds", [])],
                             "needs_operator": bool(item.get("escalated")), "error": item.get("error")}
                            for item in document.get("plan", [])]
        shown["needs_operator"] = any(item.get("escalated") for item in document.get("plan", []))
    return shown


# Mail --------------------------------------------------------------------------------------------

def requested_mail(document, role):
    call, amount = document["call_id"], dollars(document["refund_cents"])
    if role == "caller":
        return ("We received your refund request",
                f"We received your request for a refund of your call with {document['host']['name']} "
                f"(call {call}). If it is approved you get {amount} back (PayPal keeps its processing fee). "
                f"We decide by {document['deadline']:%A %B %-d, %Y} and tell you by email.")
    return ("A caller asked for a refund of your call",
            f"{document['caller']['name']} asked for a refund of your call (call {call}):\n\n"
            f"{document['reason']}\n\nThe call's earnings are held until we decide, by "
            f"{document['deadline']:%A %B %-d, %Y}. An operator may contact you to hear your side.")


def decision_mail(document, role):
    amount, call = dollars(document["refund_cents"]), document["call_id"]
    note = f"\n\nThe reviewer's note: {document['decision_note']}" if document.get("decision_note") else ""
    other = document["host"]["name"] if role == "caller" else document["caller"]["name"]
    if document["state"] == REFUNDED:
        if role == "caller":
            return ("Your refund was approved",
                    f"Your refund request for the call with {other} (call {call}) was approved. PayPal is returning "
                    f"{amount} to you (the whole purchase minus PayPal's processing fee; tips are not "
                    f"refunded)." + note)
        return ("A refund of your call was approved",
                f"The refund request of {other} for your call (call {call}) was approved after review: {amount} of "
                f"the call's earnings went back to the caller." + note)
    if role == "caller":
        return ("Your refund request was declined",
                f"After review, your refund request for the call with {other} (call {call}) was declined." + note)
    return ("A refund request on your call was declined",
            f"After review, the refund request of {other} for your call (call {call}) was declined. The call's "
            f"earnings are released with the next payout." + note)


# Carrying an approval out --------------------------------------------------------------------------

def stuck_mail(document, item, failed):
    """(subject, body) telling operators that PayPal failed a capture's refund too often."""
    return (f"A refund needs you: PayPal failed it {'once' if failed == 1 else f'{failed} times'}",
            f"PayPal did not complete the refund of capture {item['capture_id']} "
            f"({dollars(item['refund_cents'])}) for refund request {document['_id']} on call "
            f"{document['call_id']} ({document['caller']['name']} ← {document['host']['name']}): "
            f"{', '.join((f['refund_id'] or 'refund') + ' ' + f['status'] for f in item.get('failed_refunds', []))}.\n\n"
            f"Nothing was taken from the host's earnings for it. Look at the caller's payment on PayPal, then ask "
            f"for the refund again from the review queue (Retry), or refund it on PayPal's dashboard.")


@dataclasses.dataclass
class Outcome:
    state: str                  # the view state after this settlement
    retry_at: datetime.datetime = None   # when a capture that did not refund is due again


class Settlement:
    """Moves a decided request's money and mails its decision, over its ports:
    - store: `request(id)`, `undone()`, `refund_started(id, index, refund_id, status)`,
      `refund_pending(id, index, poll_at)`, `refund_not_done(id, index, failure, request_id,
      escalated)` (escalated: operators not told yet), `operators_told(id, index)`,
      `refund_failed(id, index, attempts, retry_at, error)`, `refund_booked(id,
      index)`, `refund_elsewhere(id, index, error)`, `call_pending_cents(call_id, member_id)`,
      `book(transaction, now)` (False when the key is booked already), `finish(id, now)`,
      `claim_mail(id, now)`, `operators()`;
    - paypal: `refund_capture(capture_id, request_id, amount_cents, note_to_payer)` and
      `get_refund(refund_id)` → {"refund_id", "status"}, raising PayPalError (PayPal said no,
      with its `issue`) or any other error (no usable answer): either way the same request id
      is safe to send again;
    - notify(member_id, subject, body).
    Every step is safe to repeat: settling again after a crash anywhere finishes the job."""

    def __init__(self, store, paypal, notify, retry_s, poll_s=3600, attempts_max=3):
        self.store, self.paypal, self.notify, self.retry_s = store, paypal, notify, retry_s
        self.poll_s, self.attempts_max = poll_s, attempts_max

    def settle(self, request_id, now, read_now=False):
        """Move the request on; `read_now`: PayPal just told us one of its refunds changed, so a
        PENDING one is read now rather than at its next poll."""
        document = self.store.request(request_id)
        if document is None or document.get("decision") is None:
            return Outcome(view_state(document) if document else None)
        retry_at = None
        if document["state"] == OPEN and document["decision"] == APPROVE:
            left = [self.refund(document, index, item, now, read_now) for index, item in enumerate(document["plan"])]
            waiting = [due for due in left if isinstance(due, datetime.datetime)]
            if waiting:
                retry_at = min(waiting)
            elif STUCK not in left:
                self.store.finish(request_id, now)
            document = self.store.request(request_id)
        if document["state"] in (REFUNDED, DENIED) and self.store.claim_mail(request_id, now):
            for role in ("caller", "host"):
                self.notify(document[role]["id"], *decision_mail(document, role))
        return Outcome(view_state(document), retry_at)

    def refund(self, document, index, item, now, read_now=False):
        """Move one capture's refund a step: None when it is done, STUCK when it waits for an
        operator, else when it is due again."""
        if item.get("booked") or item.get("elsewhere"):
            return None
        if item.get("escalated"):
            if item.get("operators_told") is False:   # handed to operators, and stopped before telling them
                self.tell_operators(document, index, item)
            return STUCK
        due = item.get("retry_at")
        polled = item.get("refund_id") is not None and item.get("refund_status") == REFUND_PENDING
        if due is not None and now < due and not (read_now and polled):
            return due
        refund_id = item.get("refund_id")
        try:
            if refund_id is None:
                refund = self.paypal.refund_capture(item["capture_id"], item["request_id"], item["refund_cents"],
                                                    f"Refund of interKanect call {document['call_id']}")
                refund_id = refund["refund_id"]
                self.store.refund_started(document["_id"], index, refund_id, refund["status"])
            elif item.get("refund_status") in (None, REFUND_COMPLETED):
                refund = {"refund_id": refund_id, "status": REFUND_COMPLETED}  # stored before its booking
            else:
                refund = self.paypal.get_refund(refund_id)
        except Exception as error:  # refused or unanswered: the same request id is safe to send again
            issue = getattr(error, "issue", "") or type(error).__name__
            if issue == FULLY_REFUNDED:  # by hand, on PayPal: the caller has it, its webhook books it
                self.store.refund_elsewhere(document["_id"], index, f"{issue}: {error}"[:500])
                return None
            if issue == AMOUNT_EXCEEDED and (replanned := self.replanned(document, index, item)) is not None:
                return self.refund(document, index, replanned, now, read_now)
            if final_refusal(error, issue):
                return self.not_done(document, index, item, None, f"REFUSED {issue}", now)
            attempts = item.get("attempts", 0) + 1
            if issue == AMOUNT_EXCEEDED and waited_s(attempts - 1, self.retry_s) >= PAYPAL_REDELIVERY_S:
                return self.not_done(document, index, item, None, f"REFUSED {issue}", now, escalate=True)
            retry_at = now + datetime.timedelta(seconds=retry_delay_s(attempts, self.retry_s))
            self.store.refund_failed(document["_id"], index, attempts, retry_at, f"{issue}: {error}"[:500])
            return retry_at
        status = refund["status"]
        if status == REFUND_COMPLETED:
            host_id, caller_id = document["host"]["id"], document["caller"]["id"]
            pending_cents = self.store.call_pending_cents(document["call_id"], host_id)
            self.store.book(ledger.refund_transaction(document["call_id"], host_id, caller_id, refund_id,
                                                      item["refund_cents"], pending_cents, item["capture_id"]), now)
            self.store.refund_booked(document["_id"], index)
            return None
        if status in REFUND_NOT_DONE:
            return self.not_done(document, index, item, refund_id, status, now)
        # PENDING (or a status PayPal may add): nothing moved yet; read it again later.
        poll_at = now + datetime.timedelta(seconds=self.poll_s)
        self.store.refund_pending(document["_id"], index, status, poll_at)
        return poll_at

    def replanned(self, document, index, item):
        """This capture's item planned again from the ledger, when refunds of it were booked
        since the plan (made on PayPal's dashboard); None when none were (their webhook may
        still be on its way: the refusal is retried like any other)."""
        payment = next((p for p in call_payments(self.store.call_transactions(document["call_id"]))
                        if p["capture_id"] == item["capture_id"]), None)
        if payment is None or payment["refunded_cents"] <= item["refunded_cents"]:
            return None
        cents = refund_cents(payment)
        if cents == 0:   # the caller got all of it back elsewhere
            self.store.refund_elsewhere(document["_id"], index, f"{AMOUNT_EXCEEDED}: refunded on PayPal's side")
            return dict(item, elsewhere=True)
        fields = {"refund_cents": cents, "refunded_cents": payment["refunded_cents"],
                  "replanned_after": payment["refunded_cents"], "attempts": 0, "retry_at": None,
                  "request_id": paypal_request_id(document["_id"], item["capture_id"],
                                                  len(item.get("failed_refunds", [])), payment["refunded_cents"]),
                  "error": f"{AMOUNT_EXCEEDED}: part refunded on PayPal's side; now {dollars(cents)}"}
        self.store.refund_replanned(document["_id"], index, fields, cents - item["refund_cents"])
        return dict(item, **fields)

    def not_done(self, document, index, item, refund_id, status, now, escalate=False):
        """PayPal failed or cancelled this refund (or refused it for good: `refund_id` None):
        nothing was booked for it, so nothing is reversed. Asked again as a new refund, or, past
        the allowance, handed to operators."""
        failed = item.get("failed_refunds", []) + [{"refund_id": refund_id, "status": status}]
        allowed = item.get("refunds_allowed") or self.attempts_max
        escalated = escalate or len(failed) >= allowed
        self.store.refund_not_done(document["_id"], index, {"refund_id": refund_id, "status": status},
                                   paypal_request_id(document["_id"], item["capture_id"], len(failed),
                                                     item.get("replanned_after")), escalated)
        if not escalated:
            return now  # due at once: a new refund
        self.tell_operators(document, index, dict(item, failed_refunds=failed))
        return STUCK

    def tell_operators(self, document, index, item):
        """Mail every operator that this capture needs them, then say so in the request: a
        crash in between mails them again at the next settlement, never not at all."""
        for operator_id in self.store.operators():
            self.notify(operator_id, *stuck_mail(document, item, len(item["failed_refunds"])))
        self.store.operators_told(document["_id"], index)


def retry_fields(document, attempts_max):
    """What an operator's retry sets: each capture handed to operators gets as many new refunds
    as the policy allows, from now."""
    fields = {}
    for index, item in enumerate(document.get("plan", [])):
        if item.get("escalated"):
            fields.update({f"plan.{index}.escalated": False, f"plan.{index}.retry_at": None,
                           f"plan.{index}.attempts": 0,
                           f"plan.{index}.refunds_allowed": len(item.get("failed_refunds", [])) + attempts_max})
    return fields
