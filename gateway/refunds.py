"""Refund requests over HTTP: the caller asks, both sides read it, operators work the review
queue (notes, decision). The rules are in rules/refund_rules.py; the money moves in the
refunds actor, which this gateway tells of each decision after storing it (`RefundDesk`)."""
import asyncio
import datetime
import logging

import pymongo
from bson import ObjectId

from actors import leadership
from rules import ledger, refund_rules
from rules.refund_rules import RefundRefused
from actors.refunds import REFUNDS_NAME, MoneyEvent, RefundsActor, SettleRefund
from gateway.accounts import ClientError
from gateway.http import BaseHandler

log = logging.getLogger(__name__)

# How long a decision waits for PayPal before answering "approved" (the refunds go on): PayPal
# answers in about a second; an operator should not stare at a spinner while it retries.
DECISION_WAIT_S = 8
QUEUE_LIMIT = 500


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def who(member):
    return {"id": str(member["_id"]), "name": member["display_name"]}


async def ensure_indexes(db):
    """One request per call; the queue reads by state and deadline; PayPal's refund webhooks
    find their request by refund id."""
    await db.refund_requests.create_index("call_id", unique=True)
    await db.refund_requests.create_index([("state", 1), ("deadline", 1)])
    await db.refund_requests.create_index("plan.refund_id", sparse=True)


class RefundDesk:
    """This gateway's way to the refunds actor (one per convention, by global name)."""

    def __init__(self, hub):
        self.hub = hub

    async def _refunds_actor(self):
        """Looked up by name for each message (the name under the current lease): a new leader
        starts a new one, and one that died is replaced under the same name (actors/directory.py)."""
        name = leadership.global_name(REFUNDS_NAME, self.hub.lease_token)
        return await self.hub.bridge.call(lambda context: context.createActor(RefundsActor, globalName=name))

    async def tell_event(self, event_id):
        """Tell the refunds actor that PayPal's money event `event_id` is recorded and due. Not
        told (no leader right now, say), its sweep applies it all the same."""
        try:
            self.hub.bridge.tell(await self._refunds_actor(), MoneyEvent(event_id))
        except Exception as error:
            log.warning("PayPal event %s recorded, the refunds actor not told (%s): its sweep applies it",
                        event_id, error)

    async def settle(self, refund_id, timeout_s=DECISION_WAIT_S):
        """Ask the refunds actor to move a decided request's money now; its answer, or None
        when it did not come in time (the actor's sweep finishes the job either way)."""
        try:
            answer = await self.hub.bridge.request(await self._refunds_actor(),
                                                   lambda req_id: SettleRefund(req_id, refund_id), timeout_s)
        except asyncio.TimeoutError:
            log.info("refund request %s: not settled within %d s; the refunds actor goes on", refund_id, timeout_s)
            return None
        if answer.error:
            log.warning("refund request %s not settled yet: %s", refund_id, answer.error)
        return answer


class RefundHandler(BaseHandler):
    """Shared by the refund handlers: rule refusals become client errors."""

    def _handle_request_exception(self, error):
        if isinstance(error, RefundRefused):
            error = ClientError(error.status, error.code, error.message)
        super()._handle_request_exception(error)

    async def call_payments(self, call_id):
        """The call's payments, each with what of it was refunded already."""
        found = self.app.db.ledger.find({"call_id": call_id, "kind": {"$in": [
            ledger.CALL_PAYMENT, ledger.REFUND, ledger.LATE_CAPTURE_REFUND]}})
        return refund_rules.call_payments([document async for document in found])

    async def request_or_404(self, refund_id):
        document = await self.app.db.refund_requests.find_one({"_id": refund_id})
        if document is None:
            raise ClientError(404, "no_refund_request", "no refund request has this id")
        return document

    async def mail(self, member_id, subject, body):
        member = await self.app.accounts.member(member_id)
        if member is None:
            return
        try:
            await self.app.mailer.send(member["email"], subject, body)
        except Exception:  # the request is stored; a lost courtesy mail must not undo it
            log.exception("could not mail %r to member %s", subject, member_id)


class CallRefundHandler(RefundHandler):
    async def post(self, call_id):
        member = self.require_member()
        body = self.json_body()
        db, policy, now = self.app.db, self.app.settings.policy, _now()
        call = await db.calls.find_one({"_id": call_id}, {"rules": 0, "log": 0, "quality": 0})
        refund_rules.check_caller(call, str(member["_id"]))
        reason = refund_rules.check_reason(body.get("reason"))
        if await db.refund_requests.find_one({"call_id": call_id}, {"_id": 1}):
            raise ClientError(409, "refund_already_requested", "a refund of this call was asked already")
        payments = await self.call_payments(call_id)
        refund_rules.check_eligible(call, payments, now, policy.refund_window_s)
        moment_s = refund_rules.check_moment(body.get("moment_s"), call)
        document = refund_rules.new_request(str(ObjectId()), call, reason, payments, now,
                                            policy.refund_review_business_days, moment_s)
        try:
            await db.refund_requests.insert_one(document)
        except pymongo.errors.DuplicateKeyError:  # two requests at once: the first one stands
            raise ClientError(409, "refund_already_requested", "a refund of this call was asked already") from None
        for role in ("caller", "host"):
            await self.mail(document[role]["id"], *refund_rules.requested_mail(document, role))
        self.send_json(refund_rules.view(document), 201)

    async def get(self, call_id):
        member = self.require_member()
        document = await self.app.db.refund_requests.find_one({"call_id": call_id})
        operator = bool(member.get("operator"))
        if not operator:
            call = await self.app.db.calls.find_one({"_id": call_id}, {"host_id": 1, "caller_id": 1})
            if call is None or str(member["_id"]) not in (call["host_id"], call["caller_id"]):
                raise ClientError(404, "no_such_call", "you took part in no call with this id")
        if document is None:
            raise ClientError(404, "no_refund_request", "no refund was asked for this call")
        self.send_json(refund_rules.view(document, operator=operator))


class RefundsHandler(RefundHandler):
    """The operators' review queue, soonest deadline first."""

    async def get(self):
        self.require_operator()
        state = self.get_query_argument("state", refund_rules.OPEN)
        if state != "all" and state not in refund_rules.VIEW_STATES:
            raise ClientError(400, "invalid_state", "state is open, approved, refunded, denied or all")
        query = {} if state == "all" else refund_rules.state_query(state)
        found = self.app.db.refund_requests.find(query).sort([("deadline", 1), ("_id", 1)]).limit(QUEUE_LIMIT)
        self.send_json({"refunds": [refund_rules.view(document, operator=True) async for document in found]})


class RefundNotesHandler(RefundHandler):
    """An operator records what they learned (e.g. from interviewing the member)."""

    async def post(self, refund_id):
        operator = self.require_operator()
        text = refund_rules.check_note(self.json_body().get("text"))
        await self.request_or_404(refund_id)
        document = await self.app.db.refund_requests.find_one_and_update(
            {"_id": refund_id}, {"$push": {"notes": {"by": who(operator), "text": text, "at": _now()}}},
            return_document=pymongo.ReturnDocument.AFTER)
        self.send_json(refund_rules.view(document, operator=True), 201)


class RefundDecisionHandler(RefundHandler):
    async def post(self, refund_id):
        operator = self.require_operator()
        body = self.json_body()
        decision, note = refund_rules.check_decision(body.get("decision"), body.get("note"))
        document = await self.request_or_404(refund_id)
        if document.get("decision") is not None:
            raise ClientError(409, "already_decided", f"this request was decided already "
                                                      f"({refund_rules.view_state(document)})")
        refund_rules.check_interviewed(document, decision)
        payments = await self.call_payments(document["call_id"])
        fields = refund_rules.decision_fields(decision, note or None, who(operator), payments, refund_id, _now())
        # Stored before any money moves, and only if nobody decided meanwhile.
        decided = await self.app.db.refund_requests.find_one_and_update(
            {"_id": refund_id, "state": refund_rules.OPEN, "decision": None}, {"$set": fields},
            return_document=pymongo.ReturnDocument.AFTER)
        if decided is None:
            raise ClientError(409, "already_decided", "this request was decided meanwhile")
        await self.app.refund_desk.settle(refund_id)
        self.send_json(refund_rules.view(await self.request_or_404(refund_id), operator=True))


class RefundRetryHandler(RefundHandler):
    """An operator asks PayPal again for the refunds it failed too often (after looking at
    the caller's payment): each such capture gets the policy's number of new refunds."""

    async def post(self, refund_id):
        operator = self.require_operator()
        document = await self.request_or_404(refund_id)
        fields = refund_rules.retry_fields(document, self.app.settings.policy.refund_attempts_max)
        if not fields:
            raise ClientError(409, "nothing_to_retry", "no refund of this request waits for an operator")
        note = {"by": who(operator), "text": "asked PayPal again for the refunds it failed", "at": _now()}
        await self.app.db.refund_requests.update_one({"_id": refund_id}, {"$set": fields, "$push": {"notes": note}})
        await self.app.refund_desk.settle(refund_id)
        self.send_json(refund_rules.view(await self.request_or_404(refund_id), operator=True))
