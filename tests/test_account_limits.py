"""Bounded work per account, through the real path (websockets, gateway, member shards): one
free account must not be able to stall everyone (issue 13). Each limit is a policy value, set
small here, and each refusal a clear error code."""
import os
import signal

import pytest

from rules.shards import shard_index
from tests.kit.client import Member
from tests.kit.system import run, start_system
from tests.kit.waiting import eventually

LIMITS = dict(pages_per_member_max=2, watched_per_page_max=3, watched_per_member_max=4,
              ringing_calls_per_caller_max=1, rings_per_host_per_minute=3, ring_timeout_s=1.5,
              missed_call_mail_interval_s=600)


@pytest.fixture(scope="module")
def limited(database_url, tmp_path_factory):
    running = start_system(database_url, tmp_path_factory.mktemp("limited"), **LIMITS)
    yield running
    running.finish()




def test_a_member_opens_at_most_the_page_limit_and_one_more_once_a_page_closes(limited):
    async def scenario():
        member = await Member(limited.url).sign_up()
        first, second = await member.socket(), await member.socket()
        for page in (first, second):
            await page.expect("hello")
        third = await member.socket()
        refused = await third.expect("error")
        assert refused["code"] == "too_many_pages" and refused["id"] is None
        assert "2 interKanect pages" in refused["message"]
        assert await third.closed() == 1008
        await first.close()
        async def a_page_taken():   # the shard hears of the close a moment after the socket goes
            again = await member.socket()
            if again.greeting["type"] == "hello":
                return again
            await again.closed()
        await eventually(a_page_taken, "a third page taken once the first closed", timeout_s=10, poll_s=0.1)
        await second.request("ping")
        await second.expect("pong")
    run(scenario())


def test_a_page_and_an_account_follow_a_bounded_number_of_members_that_exist(limited):
    async def scenario():
        others = [await Member(limited.url).sign_up(f"Watched {n}") for n in range(5)]
        ids = [other.id for other in others]
        viewer = await Member(limited.url).sign_up("Viewer")
        page = await viewer.socket()
        await page.request("watch", members=ids[:4])
        assert (await page.expect("error"))["code"] == "too_many_watched"
        await page.request("watch", members=ids[:3])
        seen = {(await page.expect("presence"))["member_id"] for _ in range(3)}
        assert seen == set(ids[:3])
        # The account's second page: 3 + 2 would pass the account's 4.
        other_page = await viewer.socket()
        await other_page.request("watch", members=ids[3:5])
        refused = await other_page.expect("error")
        assert refused["code"] == "too_many_watched" and "together" in refused["message"]
        await other_page.request("watch", members=ids[3:4])
        assert (await other_page.expect("presence"))["member_id"] == ids[3]
        # Ids of nobody are refused by name and cost nothing: they count towards no limit.
        stranger = await Member(limited.url).sign_up("Stranger")
        lone = await stranger.socket()
        nobody = "0" * 24
        await lone.request("watch", members=[ids[0], nobody])
        assert (await lone.expect("presence"))["member_id"] == ids[0]
        unknown = await lone.expect("error")
        assert unknown["code"] == "no_such_member" and nobody in unknown["message"]
        await lone.request("watch", members=ids[1:3])
        assert {(await lone.expect("presence"))["member_id"] for _ in range(2)} == set(ids[1:3])
        assert not [frame for frame in lone.unread if frame["type"] == "error"]
    run(scenario())


def test_a_caller_rings_one_member_at_a_time(limited):
    async def scenario():
        first_host = await Member(limited.url).sign_up("First Host")
        second_host = await Member(limited.url).sign_up("Second Host")
        caller = await Member(limited.url).sign_up("Impatient")
        first_page, second_page, caller_page = (await first_host.socket(), await second_host.socket(),
                                                await caller.socket())
        await caller_page.request("call", member_id=first_host.id)
        ringing = await caller_page.expect("call_state", state="ringing")
        await first_page.expect("incoming_call", call_id=ringing["call_id"])
        await caller_page.request("call", member_id=second_host.id)
        refused = await caller_page.expect("error")
        assert refused["code"] == "already_calling"
        await caller_page.request("cancel", call_id=ringing["call_id"])
        await caller_page.expect("call_state", call_id=ringing["call_id"], state="ended")
        await caller_page.request("call", member_id=second_host.id)
        second = await caller_page.expect("call_state", state="ringing")
        await second_page.expect("incoming_call", call_id=second["call_id"])
    run(scenario())


def test_a_host_is_rung_a_bounded_number_of_times_a_minute_and_gets_one_mail_then_a_digest(limited):
    async def scenario():
        host = await Member(limited.url).sign_up("Popular Host")
        caller = await Member(limited.url).sign_up("Ring Bomber")
        host_page, caller_page = await host.socket(), await caller.socket()
        for _ in range(LIMITS["rings_per_host_per_minute"]):
            await caller_page.request("call", member_id=host.id)
            ringing = await caller_page.expect("call_state", state="ringing")
            ended = await caller_page.expect("call_state", call_id=ringing["call_id"], state="ended")
            assert ended["end_reason"] == "missed"
        await caller_page.request("call", member_id=host.id)
        assert (await caller_page.expect("error"))["code"] == "too_many_rings"
        # One mail for the first missed call; the other two wait for the digest.
        first = await eventually(lambda: list(limited.db.outbox.find({"to": host.email})), "missed-call mail")
        assert len(first) == 1 and first[0]["subject"] == "Missed call from Ring Bomber"
        # The host leaves: what was held goes now, in one mail, rather than with the member.
        await host_page.close()
        mails = await eventually(lambda: (found := list(limited.db.outbox.find({"to": host.email}))) and
                                 len(found) >= 2 and found, "the digest")
        assert len(mails) == 2
        assert mails[1]["subject"] == "2 missed calls on interKanect"
        assert "Ring Bomber, Ring Bomber" in mails[1]["body"]
    run(scenario())


def test_a_caller_who_calls_again_the_moment_a_call_ends_is_not_refused(system_with):
    """The "ended" frame and the caller's member hearing the call is over travel different ways
    (a stream from the host's shard, a Thespian message to the caller's): a page that calls
    again the moment it hears "ended" may reach its member first, which then holds the call
    until the end reaches it, instead of refusing it `already_calling` (seen under load). Made
    certain here by stopping the caller's shard while the call ends and the page calls again."""
    system = system_with(ringing_calls_per_caller_max=1)

    async def scenario():
        host = await Member(system.url).sign_up("Declining Host")
        caller = await Member(system.url).sign_up("Quick Redialer")
        while shard_index(caller.id, system.settings.member_shards) == shard_index(host.id,
                                                                                system.settings.member_shards):
            caller = await Member(system.url).sign_up("Quick Redialer")
        host_page, caller_page = await host.socket(), await caller.socket()
        # Where the caller's shard runs: the shard hosting a call to the caller.
        finder = await Member(system.url).sign_up("Shard Finder")
        finder_page = await finder.socket()
        await finder_page.request("call", member_id=caller.id)
        probe = await finder_page.expect("call_state", state="ringing")
        caller_shard = (await eventually(lambda: system.db.calls.find_one({"_id": probe["call_id"]}),
                                         "the probe call stored"))["shard_pid"]
        await finder_page.request("cancel", call_id=probe["call_id"])
        await caller_page.expect("ring_stopped", call_id=probe["call_id"])

        await caller_page.request("call", member_id=host.id)
        ringing = await caller_page.expect("call_state", state="ringing")
        await host_page.expect("incoming_call", call_id=ringing["call_id"])
        os.kill(caller_shard, signal.SIGSTOP)
        try:
            await host_page.request("decline", call_id=ringing["call_id"])
            # The caller's page hears of the end from the host's shard, and calls again at once.
            await caller_page.expect("call_state", call_id=ringing["call_id"], state="ended")
            await caller_page.request("call", member_id=host.id)
        finally:
            os.kill(caller_shard, signal.SIGCONT)
        again = await caller_page.expect("call_state", state="ringing")
        assert not [f for f in caller_page.unread if f.get("type") == "error"], caller_page.unread
        await host_page.expect("incoming_call", call_id=again["call_id"])
    run(scenario())
