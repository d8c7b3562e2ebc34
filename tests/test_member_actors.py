"""The directory, shards and the members they host, on simpleSystemBase: the test is the gateway."""
import pymongo
import pytest
from thespian.actors import ActorSystem

from actors.directory import DIRECTORY_NAME, Directory
from rules.shards import shard_index
from actors.messages import (Attached, Batch, BridgeRef, Close, Configure, Frame, Open, Presence, Presences, Push,
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
    # A call rung here would be live for the next test's shards, which recover live calls.
    pymongo.MongoClient(database_url).drop_database(settings.db_name)


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
    # After the exit grace the shard lets the member go: a frame for its old page finds nobody.
    system.listen(0.3)
    system.tell(shard, Batch([Frame(MEMBER, 1, me, {"type": "ping", "id": 6})]))
    assert system.listen(0.2) is None
    system.tell(shard, Batch([Open(MEMBER, 2, me, PROFILE)]))
    again = receive(system, Attached, conn_id=2)
    assert again.member == shard  # members live in their shard, which takes their frames
    assert receive(system, Presence).status == "online"  # watchers survived the member's absence


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


def same_shard_ids(count, shard_count=4):
    """Member ids that all hash to one shard, so their messages stay inside it."""
    ids, candidate = [], 0
    while len(ids) < count:
        member_id = f"{candidate:024x}"
        if shard_index(member_id, shard_count) == shard_index(f"{0:024x}", shard_count):
            ids.append(member_id)
        candidate += 1
    return ids


def test_a_watch_of_many_members_of_one_shard_is_answered_in_one_message(actors):
    """Presence answers travel per gateway, not per member: 300 watched cost one message."""
    system, shards, me = actors
    watched = same_shard_ids(300)
    online = watched[0]
    shard = shards[shard_index(online, len(shards))]
    system.tell(shard, Batch([Open(online, 1, me, PROFILE)]))
    receive(system, Attached, conn_id=1)
    system.tell(shard, Batch([Watch(member_id, me) for member_id in watched]))
    answer = receive(system, Presences)
    assert {(p.member_id, p.status) for p in answer.items} == \
        {(online, "online")} | {(member_id, "offline") for member_id in watched[1:]}


def test_members_of_one_shard_ring_and_refuse_each_other_inside_it(actors):
    """A call between two members of one shard goes through the shard's own queue; a call to an
    offline member of that shard is refused with a reason."""
    system, shards, me = actors
    caller, host, absent = same_shard_ids(3)
    shard = shards[shard_index(caller, len(shards))]
    system.tell(shard, Batch([Open(caller, 1, me, {**PROFILE, "name": "Caller"}),
                              Open(host, 2, me, {**PROFILE, "name": "Host"})]))
    receive(system, Attached, conn_id=1)
    receive(system, Attached, conn_id=2)

    system.tell(shard, Batch([Frame(caller, 1, me, {"type": "call", "id": 3, "member_id": absent})]))
    refused = receive(system, Push, items=[([1], {"type": "error", "id": 3, "code": "offline",
                                                 "message": "this member is offline; try again when their dot is "
                                                            "green"})])
    assert refused

    system.tell(shard, Batch([Frame(caller, 1, me, {"type": "call", "id": 4, "member_id": host})]))
    frames = {}
    while not ({"call_state", "incoming_call"} <= set(frames)):
        for conn_ids, frame in receive(system, Push, timeout_s=5).items:
            frames[frame["type"]] = (conn_ids, frame)
    assert frames["incoming_call"][0] == [2] and frames["incoming_call"][1]["caller"]["name"] == "Caller"
    assert frames["call_state"][0] == [1] and frames["call_state"][1]["state"] == "ringing"


def test_a_member_whose_handler_fails_leaves_the_others_and_itself_working(actors):
    system, shards, me = actors
    first, second = same_shard_ids(2)
    shard = shards[shard_index(first, len(shards))]
    system.tell(shard, Batch([Open(first, 1, me, PROFILE), Open(second, 2, me, PROFILE)]))
    receive(system, Attached, conn_id=1)
    receive(system, Attached, conn_id=2)
    # A ping with no id is a bug in the sender (the gateway validates frames): the member's
    # handler raises; the shard logs it and goes on with the batch.
    system.tell(shard, Batch([Frame(first, 1, me, {"type": "ping"}),
                              Frame(second, 2, me, {"type": "ping", "id": 7})]))
    assert receive(system, Push).items == [([2], {"type": "pong", "id": 7})]
    system.tell(shard, Batch([Frame(first, 1, me, {"type": "ping", "id": 8})]))
    assert receive(system, Push).items == [([1], {"type": "pong", "id": 8})]


def test_messages_before_a_shards_start_are_handled_once_it_starts(database_url):
    """A shard started again (its node or process lost) can hear from gateways and other
    shards before the directory's start: what came early is handled after it, in order."""
    from actors.member_shard import MemberShard
    from actors.messages import RingRequest, Services, ShardStart, ToMember
    system = ActorSystem("simpleSystemBase", transientUnique=True)
    try:
        me = BridgeRef.of(system.ask(system.createActor(Directory), WhoAmI(1), 5).address)
        shard = system.createActor(MemberShard)
        caller, absent = same_shard_ids(2, shard_count=1)
        system.tell(shard, Batch([Open(caller, 1, me, PROFILE)]))
        system.tell(shard, ToMember(absent, RingRequest("c" * 24, absent, {"id": caller, "name": "C"}, (me, 1))))
        assert system.listen(0.2) is None  # nothing happens before the start
        settings = Settings(member_shards=1, mongodb_url=database_url, db_name="member_actors_early")
        system.tell(shard, ShardStart(0, Services(settings, [shard], None, None)))
        assert receive(system, Attached, conn_id=1).status == "online"
        refused = receive(system, Push)
        assert refused.items[0][1]["code"] == "offline" and refused.items[0][0] == [1]
    finally:
        system.shutdown()
