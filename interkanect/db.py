"""The MongoDB connection and the indexes every collection relies on."""
import pymongo
from bson import ObjectId
from bson.errors import InvalidId
from pymongo import AsyncMongoClient, MongoClient

# Each collection's indexes, created idempotently at gateway start.
INDEXES = {
    "members": [([("email", 1)], {"unique": True})],
    "sessions": [([("member_id", 1)], {})],
    "reset_tokens": [([("member_id", 1)], {})],
    "outbox": [([("created_at", 1)], {})],
    # Read by every gateway for the last few seconds only; a day is plenty to keep.
    "session_revocations": [([("at", 1)], {"expireAfterSeconds": 24 * 3600})],
    # By state: a node's recovery looks up the live calls of the shards it restarts.
    "calls": [([("host_id", 1), ("created_at", -1)], {}), ([("caller_id", 1), ("created_at", -1)], {}),
              ([("state", 1)], {})],
    # One follow per follower and member (gateway/follows.py); a member's followers are read
    # when they come back (actors/followers.py); a mail's one-click unfollow link finds its follow.
    "follows": [([("follower", 1), ("member", 1)], {"unique": True}), ([("member", 1)], {}),
                ([("unfollow_token", 1)], {"unique": True})],
}

CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 5000, "tz_aware": True}


def async_database(settings):
    return AsyncMongoClient(settings.database_url, **CLIENT_OPTIONS)[settings.db_name]


def database(settings):
    return MongoClient(settings.database_url, **CLIENT_OPTIONS)[settings.db_name]


async def ensure_indexes(db):
    for collection, indexes in INDEXES.items():
        for keys, options in indexes:
            await db[collection].create_index(keys, **options)


def ping(settings, timeout_ms=1000):
    """True when the database answers; for start-up waits."""
    client = MongoClient(settings.database_url, serverSelectionTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
        return True
    except pymongo.errors.PyMongoError:
        return False
    finally:
        client.close()


def object_id(value):
    """The ObjectId of a member id string, or None when it is not one."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None
