"""A shard's call writer on a real database: the saves a shard hands over are written, each
call's newest only, a version older than the stored one never replaces it, and the shard
learns what is stored through the socket its select loop watches."""
import secrets
import select
import time

import pymongo
import pytest

from actors.call_writer import CallWriter
from actors.messages import CallSaved, SaveCall
from interkanect.config import Settings

WAIT_S = 10


@pytest.fixture
def writer(database_url):
    settings = Settings(mongodb_url=database_url, db_name="writer" + secrets.token_hex(4))
    writer = CallWriter(settings)
    db = pymongo.MongoClient(database_url)[settings.db_name]
    yield writer, db
    writer.close()
    db.client.drop_database(settings.db_name)


def call(call_id, version, state):
    return SaveCall(call_id, version, {"_id": call_id, "state": state})


def stored_answers(writer, count):
    """The CallSaved the shard would take, waiting on the writer's socket as its select loop does."""
    answers, deadline = [], time.monotonic() + WAIT_S
    while len(answers) < count:
        ready, _, _ = select.select([writer.fileno()], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"{len(answers)} of {count} saves answered within {WAIT_S} s"
        answers += writer.take()
    return answers


def test_saves_are_written_and_answered_through_the_watched_socket(writer):
    writer, db = writer
    first, second = ("%024x" % n for n in (1, 2))
    writer.save([call(first, 5, "running")])
    assert stored_answers(writer, 1) == [CallSaved(first, 5)]
    # An older version of `first` (a late retry) and two of `second` handed over together.
    writer.save([call(first, 4, "ringing"), call(second, 1, "ringing"), call(second, 2, "negotiating")])
    answers = stored_answers(writer, 2)
    assert sorted((a.call_id, a.version) for a in answers) == [(first, 4), (second, 2)]
    stored = {doc["_id"]: (doc["version"], doc["state"]) for doc in db.calls.find()}
    assert stored == {first: (5, "running"), second: (2, "negotiating")}
