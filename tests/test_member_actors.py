"""The directory, shards and member actors on simpleSystemBase: the test is the gateway."""
import pytest
from thespian.actors import ActorSystem

from actors.directory import DIRECTORY_NAME, Directory
from actors.shards import shard_index
from actors.messages import (Attached, Batch, BridgeRef, Close, Configure, Frame, Open, Presence, Push,
                             Shards, Unwatch, Watch, WhoAmI, YouAre)
from interkanect.config import Policy, Settings

MEMBER = "a" * 24
OTHER = "b" * 24
PROFILE = {"name": "M", "tier": "free", "can_charge": False}


@pytest.fixture
def actors(database_url):
    system = ActorSystem("simpleSystemBase", transientUnique=True)
    directory = system.createActor(Directory, globalName=DIRECTORY_NAME)
    # The directory also starts the adapters (store, mailer, payments, payout scheduler): give
    # them a real database, or the scheduler's start-up check blocks this one-thread system.
    settings = Settings(member_shards=4, mongodb_url=database_url, db_name="member_actors",
                        policy=Policy(member_exit_grace_s=0.05))
    shards = system.ask(directory, Configure(settings), 5)
    assert isinstance(shards, Shards) and len(shards.addresses) == 4
    me = system.ask(directory, WhoAmI(1), 5)
    assert isinstance(me, YouAre)
    yield system, shards.addresses, BridgeRef.of(me.address)
    system.shutdown()


def receive(system, kind, timeout_s=2, **fields):
    """The next message of this kind (with these fields), skipping others."""
    while True:
        message = system.listen(timeout_s)
        assert message is not None, f"no {kind.__name__} arrived"
        if isinstance(message, kind) and all(getattr(message, k) == v for k, v in fields.items()):
            return message


def test_watchers_see_a_member_open_and_close_and_the_actor_retire(actors):
    system, shards, me = actors
    shard = shards[shard_index(MEMBER, len(shards))]
    system.tell(shard, Batch([Watch(MEMBER, me)]))
    assert receive(system, Presence).status == "offline"
    system.tell(shard, Batch([Open(MEMBER, 1, me, PROFILE)]))
    attached = receive(system, Attached, conn_id=1)
    assert attached.status == "online"
    assert receive(system, Presence).status == "online"
    system.tell(attached.member, Batch([Frame(MEMBER, 1, me, {"type": "ping", "id": 5})]))
    assert receive(system, Push).items == [([1], {"type": "pong", "id": 5})]
    system.tell(attached.member, Batch([Close(MEMBER, 1, me)]))
    assert receive(system, Presence).status == "offline"
    # After the exit grace the shard lets the actor go; opening again creates a new one.
    system.listen(0.3)
    system.tell(shard, Batch([Open(MEMBER, 2, me, PROFILE)]))
    again = receive(system, Attached, conn_id=2)
    assert again.member != attached.member
    assert receive(system, Presence).status == "online"  # watchers survived the old actor


def test_an_unwatched_member_tells_nobody(actors):
    system, shards, me = actors
    shard = shards[shard_index(OTHER, len(shards))]
    system.tell(shard, Batch([Watch(OTHER, me), Unwatch(OTHER, me)]))
    assert receive(system, Presence).status == "offline"  # the answer to the watch
    system.tell(shard, Batch([Open(OTHER, 1, me, PROFILE)]))
    receive(system, Attached)
    assert system.listen(0.2) is None


def test_frames_for_a_member_that_is_gone_are_dropped_quietly(actors):
    system, shards, me = actors
    shard = shards[shard_index(MEMBER, len(shards))]
    system.tell(shard, Batch([Close(MEMBER, 9, me), Frame(MEMBER, 9, me, {"type": "ping", "id": 1})]))
    assert system.listen(0.2) is None
