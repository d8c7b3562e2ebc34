"""The call finder: an adapter a recovered shard starts to read, from the store, the calls
that were live on the node it replaces (their actors died with it). It answers once and
exits, so the query never blocks the shard's mailbox."""
import logging

import pymongo
from thespian.actors import Actor, ActorExitRequest

from rules import call
from actors.messages import FindLiveCalls, LiveCalls
from rules.shards import shard_index

log = logging.getLogger(__name__)

LIVE_STATES = [call.RINGING, call.NEGOTIATING, call.AWAITING_PAYMENT, call.RUNNING, call.EXTENSION_OFFERED]


class CallFinder(Actor):
    def receiveMessage(self, message, sender):
        if isinstance(message, FindLiveCalls):
            try:
                found = live_calls(message.settings, message.shard_index, message.shard_count)
            except pymongo.errors.PyMongoError:
                log.exception("shard %d: the store did not answer; the shard asks again", message.shard_index)
                found = None
            self.send(sender, LiveCalls(found))
            self.send(self.myAddress, ActorExitRequest())


def live_calls(settings, index, count):
    """Calls not ended with a participant on shard `index` (a few hundred at most: live ones)."""
    db = pymongo.MongoClient(settings.database_url, tz_aware=True, serverSelectionTimeoutMS=10000)[settings.db_name]
    try:
        # $in rather than $ne so an index on "state" (see docs/operating.md) can serve it.
        found = db.calls.find({"state": {"$in": LIVE_STATES}}, {"host_id": 1, "caller_id": 1})
        return [document for document in found
                if index in (shard_index(document["host_id"], count), shard_index(document["caller_id"], count))]
    finally:
        db.client.close()
