"""The call store on a real database: the saves a shard sends together are written in one bulk
write, each answered, and a version older than the stored one never replaces it."""
import secrets

import pymongo
import pytest
from thespian.actors import ActorSystem

from actors.adapters import CallStore, Configured
from actors.messages import CallLoaded, CallSaved, CallsSaved, LoadCall, SaveCall, SaveCalls
from interkanect.config import Settings


@pytest.fixture
def store(database_url):
    settings = Settings(mongodb_url=database_url, db_name="store" + secrets.token_hex(4))
    system = ActorSystem("simpleSystemBase", transientUnique=True)
    store = system.createActor(CallStore)
    system.tell(store, Configured(settings))
    db = pymongo.MongoClient(database_url)[settings.db_name]
    yield system, store, db
    system.shutdown()
    db.client.drop_database(settings.db_name)


def call(call_id, version, state):
    return SaveCall(call_id, version, {"_id": call_id, "state": state})


def test_saves_sent_together_are_stored_together_and_each_answered(store):
    system, store, db = store
    first, second, third = ("%024x" % n for n in (1, 2, 3))
    assert system.ask(store, call(first, 5, "running"), 5) == CallSaved(first, 5)
    answer = system.ask(store, SaveCalls([call(first, 4, "ringing"),    # older than what is stored
                                          call(second, 1, "ringing"), call(third, 2, "negotiating"),
                                          call(second, 2, "negotiating")]), 5)
    # The older save of `first` and the newer one of `second` answer too (stored, or newer stored).
    assert isinstance(answer, CallsSaved)
    assert sorted((a.call_id, a.version) for a in answer.saved) == [(first, 4), (second, 2), (third, 2)]
    stored = {doc["_id"]: (doc["version"], doc["state"]) for doc in db.calls.find()}
    assert stored == {first: (5, "running"), second: (2, "negotiating"), third: (2, "negotiating")}
    loaded = system.ask(store, LoadCall(third), 5)
    assert isinstance(loaded, CallLoaded) and loaded.document["state"] == "negotiating"
