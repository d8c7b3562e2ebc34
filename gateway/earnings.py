"""A member's earnings: what is held, payable and paid out (sums of their ledger entries, never
a stored balance), when the next payout runs, and their payouts. Read-only: the payments
adapter and the payout scheduler write the ledger and the payouts."""
import datetime

from rules import payout_calendar, payout_rules
from gateway.http import BaseHandler

# About a year of weekly payouts.
PAYOUTS_LIMIT = 52


class EarningsHandler(BaseHandler):
    async def get(self):
        member_id = str(self.require_member()["_id"])
        db = self.app.db
        rows = await (await db.ledger.aggregate(payout_rules.member_balances_pipeline(member_id))).to_list()
        # The member's own rows of the read model, not the batches (each holds up to 15,000 items).
        mine = await db.payout_items.find({"member_id": member_id}).sort("instant", -1).limit(PAYOUTS_LIMIT).to_list()
        batches = {batch["_id"]: batch async for batch in db.payout_batches.find(
            {"_id": {"$in": sorted({row["batch_id"] for row in mine})}})}
        payouts = [payout_rules.member_payout_view(row, batches.get(row["batch_id"], {})) for row in mine]
        next_payout = payout_calendar.next_payouts(datetime.datetime.now(datetime.timezone.utc), 1)[0]
        self.send_json(dict(payout_rules.member_buckets(rows, member_id), next_payout_at=next_payout.isoformat(),
                            payouts=payouts))
