"""Followers in a member shard, on simpleSystemBase: the test is both the gateway and the
followers adapter. A member with followers reports the start of each stay (not each page) and
its end; a follower with a page open is shown `followed_online`, one with none is mailed."""
import pytest
from thespian.actors import ActorSystem

from actors.directory import Directory
from actors.member_shard import MemberShard
from actors.messages import (Attached, Batch, BridgeRef, Close, FollowedOnline, MailFollower, MemberCameOnline,
                             MemberWentAway, Open, Push, Services, ShardStart, TellFollowers, ToMember, WhoAmI)
from interkanect.config import Policy, Settings

MEMBER, FOLLOWER, AWAY_FOLLOWER = "a" * 24, "b" * 24, "c" * 24
FOLLOWED = {"name": "Ada", "tier": "free", "can_charge": False, "followers": 2}
UNFOLLOWED = dict(FOLLOWED, followers=0)


@pytest.fixture
def shard(database_url):
    """One shard whose followers adapter is this test: (system, shard, bridge)."""
    system = ActorSystem("simpleSystemBase", transientUnique=True)
    me = system.ask(system.createActor(Directory), WhoAmI(1), 5).address
    shard = system.createActor(MemberShard)
    settings = Settings(member_shards=1, mongodb_url=database_url, db_name="followers_actors",
                        policy=Policy(member_exit_grace_s=0.05))
    system.tell(shard, ShardStart(0, Services(settings, [shard], None, None, followers=me)))
    yield system, shard, BridgeRef.of(me)
    system.shutdown()


def messages(system, quiet_s=0.3):
    """Everything that arrives until nothing has for `quiet_s`."""
    got = []
    while (message := system.listen(quiet_s)) is not None:
        got.append(message)
    return got


def of(kind, got):
    return [message for message in got if isinstance(message, kind)]


def test_a_followed_member_reports_the_start_of_a_stay_once_and_its_end(shard):
    system, shard, bridge = shard
    system.tell(shard, Batch([Open(MEMBER, 1, bridge, FOLLOWED)]))
    got = messages(system)
    [online] = of(MemberCameOnline, got)
    assert (online.member_id, online.name) == (MEMBER, "Ada")
    system.tell(shard, Batch([Open(MEMBER, 2, bridge, FOLLOWED)]))  # a second page: the same stay
    system.tell(shard, Batch([Close(MEMBER, 1, bridge)]))
    system.tell(shard, Batch([Open(MEMBER, 1, bridge, FOLLOWED)]))  # a refresh: the same stay
    assert of(MemberCameOnline, messages(system)) == []
    system.tell(shard, Batch([Close(MEMBER, 1, bridge), Close(MEMBER, 2, bridge)]))
    [away] = of(MemberWentAway, messages(system))
    assert away.member_id == MEMBER and away.at_s >= online.at_s


def test_a_member_nobody_follows_costs_the_adapter_nothing(shard):
    system, shard, bridge = shard
    system.tell(shard, Batch([Open(MEMBER, 1, bridge, UNFOLLOWED)]))
    system.tell(shard, Batch([Close(MEMBER, 1, bridge)]))
    got = messages(system)
    assert of(MemberCameOnline, got) == [] and of(MemberWentAway, got) == []


def test_a_follower_with_a_page_sees_it_and_one_without_is_mailed(shard):
    system, shard, bridge = shard
    system.tell(shard, Batch([Open(FOLLOWER, 7, bridge, UNFOLLOWED)]))
    assert of(Attached, messages(system))
    system.tell(shard, TellFollowers(MEMBER, "Ada", [FOLLOWER, AWAY_FOLLOWER]))
    got = messages(system)
    frames = [item for push in of(Push, got) for item in push.items]
    assert frames == [([7], {"type": "followed_online", "member_id": MEMBER, "name": "Ada"})]
    assert of(MailFollower, got) == [MailFollower(AWAY_FOLLOWER, MEMBER, "Ada")]

    # Online in the shard but with no page (its exit grace, or a call): mailed too.
    system.tell(shard, Batch([Open(AWAY_FOLLOWER, 8, bridge, UNFOLLOWED), Close(AWAY_FOLLOWER, 8, bridge)]))
    system.tell(shard, ToMember(AWAY_FOLLOWER, FollowedOnline(AWAY_FOLLOWER, MEMBER, "Ada")))  # before its exit
    got = messages(system)
    assert of(MailFollower, got) == [MailFollower(AWAY_FOLLOWER, MEMBER, "Ada")] and of(Push, got) == []
