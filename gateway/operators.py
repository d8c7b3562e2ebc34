"""What operators do to members: find them by name or email, and set their tier (the self-serve
upgrade is a PayPal subscription; an operator can set a tier either way). Operators are members
with `operator: true`, set by `interkanect members set-operator`."""
import re

import pymongo

from gateway.accounts import TIERS, ClientError
from gateway.http import BaseHandler
from interkanect.db import object_id

SEARCH_LIMIT = 100
QUERY_MAX_CHARS = 80


def member_row(member):
    return {"id": str(member["_id"]), "name": member["display_name"], "email": member["email"],
            "tier": member["tier"], "operator": bool(member.get("operator")),
            "payout_email": member.get("payout_email", "")}


class OperatorMembersHandler(BaseHandler):
    async def get(self):
        self.require_operator()
        query = self.get_query_argument("q", "").strip()[:QUERY_MAX_CHARS]
        where = {}
        if query:
            pattern = re.escape(query)
            where = {"$or": [{"display_name": {"$regex": pattern, "$options": "i"}},
                             {"email": {"$regex": pattern, "$options": "i"}}]}
        found = self.app.db.members.find(where).sort([("display_name", 1), ("_id", 1)]).limit(SEARCH_LIMIT)
        self.send_json({"members": [member_row(member) async for member in found]})


class OperatorTierHandler(BaseHandler):
    async def post(self, member_id):
        self.require_operator()
        tier = self.json_body().get("tier")
        if tier not in TIERS:
            raise ClientError(400, "invalid_tier", f"tier is one of {', '.join(TIERS)}")
        member = await self.app.db.members.find_one_and_update(
            {"_id": object_id(member_id)}, {"$set": {"tier": tier}}, return_document=pymongo.ReturnDocument.AFTER)
        if member is None:
            raise ClientError(404, "no_such_member", "no member has this id")
        self.app.member_changed(member)  # an online host can be called on the new terms at once
        self.send_json(member_row(member))
