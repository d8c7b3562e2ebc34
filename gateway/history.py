"""Call history: each member's list of calls, and a call's log for its two participants,
read from what the call sessions stored. Metadata only: no media, chat or whiteboard
content ever reaches the server."""
import datetime

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
                                        {"rules": 0, "log": 0}).sort("created_at", -1).limit(LIST_LIMIT)
        self.send_json({"calls": [summary(call, member_id) async for call in cursor]})


class CallLogHandler(BaseHandler):
    async def get(self, call_id):
        member = self.require_member()
        member_id = str(member["_id"])
        # Operators read any call's log: the evidence of a refund review.
        where = {"_id": call_id} if member.get("operator") else {
            "_id": call_id, "$or": [{"host_id": member_id}, {"caller_id": member_id}]}
        call = await self.app.db.calls.find_one(where, {"rules": 0})
        if call is None:  # a stranger learns nothing, not even that the call exists
            raise ClientError(404, "no_such_call", "you took part in no call with this id")
        self.send_json({"call": dict(summary(call, member_id), connected_s=call.get("connected_s", {}),
                                     log=call.get("log", []))})
