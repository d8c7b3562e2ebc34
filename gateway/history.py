"""Call history: each member's list of calls, and a call's log for its two participants,
read from what the call sessions stored. Metadata only: no media, chat or whiteboard
content ever reaches the server."""
import datetime

import tornado.web

from actors import evidence
from gateway.accounts import ClientError
from gateway.http import BaseHandler

LIST_LIMIT = 100


def _iso(value):
    return value.isoformat() if isinstance(value, datetime.datetime) else value


def summary(call, member_id):
    # An operator reading someone else's call (a refund review) sees it as "operator", with the host.
    role = "host" if call["host_id"] == member_id else "caller" if call["caller_id"] == member_id else "operator"
    other = "caller" if role == "host" else "host"
    return {
        "id": call["_id"], "role": role,
        "with": {"id": call[other + "_id"], "name": call[other + "_name"]},
        "host": {"id": call["host_id"], "name": call["host_name"]},
        "caller": {"id": call["caller_id"], "name": call["caller_name"]},
        "state": call["state"], "end_reason": call.get("end_reason"),
        "created_at": _iso(call.get("created_at")), "answered_at": _iso(call.get("answered_at")),
        "ended_at": _iso(call.get("ended_at")),
        "rounds": call.get("rounds", []), "paid_s": call.get("paid_s", 0), "used_s": call.get("used_s", 0),
        "payments": call.get("payments", []),
        "paid_cents": sum(p.get("amount_cents", 0) for p in call.get("payments", [])),
        "tips": [t for t in call.get("tips", []) if t["state"] == "captured"],
    }


class CallsHandler(BaseHandler):
    async def get(self):
        member_id = str(self.require_member()["_id"])
        cursor = self.app.db.calls.find({"$or": [{"host_id": member_id}, {"caller_id": member_id}]},
                                        {"rules": 0, "log": 0, "quality": 0}).sort("created_at", -1).limit(LIST_LIMIT)
        self.send_json({"calls": [summary(call, member_id) async for call in cursor]})


async def readable_call(handler, call_id):
    """(the stored call, the reader's member id) for one of its two sides or an operator (who
    reads any call: the evidence of a refund review); 404 for anyone else."""
    member = handler.require_member()
    member_id = str(member["_id"])
    where = {"_id": call_id} if member.get("operator") else {
        "_id": call_id, "$or": [{"host_id": member_id}, {"caller_id": member_id}]}
    call = await handler.app.db.calls.find_one(where, {"rules": 0})
    if call is None:  # a stranger learns nothing, not even that the call exists
        raise ClientError(404, "no_such_call", "you took part in no call with this id")
    return call, member_id


class CallLogHandler(BaseHandler):
    async def get(self, call_id):
        call, member_id = await readable_call(self, call_id)
        self.send_json({"call": dict(summary(call, member_id), connected_s=call.get("connected_s", {}),
                                     log=call.get("log", []), quality=call.get("quality"))})


class CallRecordHandler(BaseHandler):
    """The call's record, hash-chained and signed (actors/evidence.py), for its two sides and
    operators, once the call has ended: downloaded as a JSON file."""

    async def get(self, call_id):
        call, _ = await readable_call(self, call_id)
        if call.get("state") != "ended":
            raise ClientError(409, "call_not_ended", "a call's record is signed once the call has ended")
        keys = self.app.record_keys
        document = evidence.record(call, keys.private, keys.key_id)
        self.set_header("Content-Disposition", f'attachment; filename="interkanect-call-{call_id}.json"')
        self.send_json(document)


class RecordVerifyHandler(BaseHandler):
    """POST a record: whether its chain is intact and its head signed by this platform."""

    async def post(self):
        ok, why = evidence.verify(self.json_body(), self.app.record_keys.public)
        self.send_json({"intact": ok, "message": why})


class RecordKeyHandler(tornado.web.RequestHandler):
    """The public key that verifies call records (/.well-known/interkanect-record-key)."""

    def initialize(self, app):
        self.app = app

    def get(self):
        keys = self.app.record_keys
        self.set_header("Cache-Control", "public, max-age=3600")
        self.finish({"alg": "Ed25519", "public_key": keys.public_text, "key_id": keys.key_id})
