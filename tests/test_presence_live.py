"""Presence through the real path: websockets → gateway → member shards on a
multiprocTCPBase node → gateway → the viewers' websockets."""
import asyncio
import time

from tests.kit.client import Member
from tests.kit.system import run
from tests.kit.waiting import eventually
from tests.kit.waiting import eventually

PRESENCE_BOUND_S = 1.0  # the product promise: a dot changes within a second


def test_a_viewer_sees_a_member_come_online_and_go_offline_within_a_second(system):
    async def scenario():
        host = await Member(system.url).sign_up("Host")
        viewer = await Member(system.url).sign_up("Viewer")
        watching = await viewer.socket()
        assert (await watching.expect("hello"))["status"] == "online"
        await watching.request("watch", members=[host.id])
        await watching.expect("presence", member_id=host.id, status="offline")

        started = time.monotonic()
        page = await host.socket()
        await watching.expect("presence", timeout_s=PRESENCE_BOUND_S, member_id=host.id, status="online")
        assert time.monotonic() - started < PRESENCE_BOUND_S + 0.5

        second_page = await host.socket()
        await second_page.expect("hello", status="online")
        await page.close()  # one page still open: still online
        await second_page.close()
        await watching.expect("presence", timeout_s=PRESENCE_BOUND_S, member_id=host.id, status="offline")
        assert [f["status"] for f in watching.received if f["type"] == "presence"] == ["offline", "online", "offline"]
    run(scenario())


def test_every_viewer_on_every_socket_gets_the_change(system):
    async def scenario():
        host = await Member(system.url).sign_up("Host")
        viewers = [await Member(system.url).sign_up(f"Viewer {i}") for i in range(3)]
        sockets = [await v.socket() for v in viewers for _ in range(2)]
        for s in sockets:
            await s.request("watch", members=[host.id])
            await s.expect("presence", member_id=host.id, status="offline")
        page = await host.socket()
        await asyncio.gather(*(s.expect("presence", member_id=host.id, status="online") for s in sockets))
        # A viewer who stops watching hears no more.
        await sockets[0].request("unwatch", members=[host.id])
        await sockets[0].request("ping")
        await page.close()
        await asyncio.gather(*(s.expect("presence", member_id=host.id, status="offline") for s in sockets[1:]))
        await sockets[0].expect("pong")
        assert [f for f in sockets[0].received if f["type"] == "presence"][-1]["status"] == "online"
    run(scenario())


def test_ping_goes_through_the_member_actor_and_back(system):
    async def scenario():
        member = await Member(system.url).sign_up()
        socket = await member.socket()
        await socket.expect("hello", member_id=member.id)
        ids = [await socket.request("ping") for _ in range(20)]
        answers = [(await socket.expect("pong"))["id"] for _ in ids]
        assert answers == ids
    run(scenario())


def test_a_member_actor_is_recreated_after_its_exit_grace(system):
    """The member leaves its shard after the exit grace and a new one is made at the next page.
    Seen from outside through a follower: a member with followers tells the followers adapter
    when it leaves its shard (`presence_times.away_since`) and when a new stay begins."""
    async def scenario():
        member = await Member(system.url).sign_up()
        viewer = await Member(system.url).sign_up()
        assert (await viewer.request("POST", f"/api/members/{member.id}/follow")).code == 200
        watching = await viewer.socket()
        await watching.request("watch", members=[member.id])
        await watching.expect("presence", member_id=member.id, status="offline")

        def stay():
            return system.db.presence_times.find_one({"_id": member.id}) or {}
        for _ in range(2):
            page = await member.socket()
            await watching.expect("presence", member_id=member.id, status="online")
            began = await eventually(lambda: stay().get("online_since") if not stay().get("away_since") else None,
                                     "the member's stay in its shard beginning")
            await page.close()
            await watching.expect("presence", member_id=member.id, status="offline")
            await eventually(lambda: stay().get("away_since"), "the member leaving its shard after the grace")
            assert stay()["online_since"] == began
        page = await member.socket()
        await page.expect("hello", status="online")
        await watching.expect("presence", member_id=member.id, status="online")
        await eventually(lambda: stay().get("away_since") is None and stay()["online_since"] > began,
                         "a new stay of the member")
    run(scenario())


def test_healthz_reports_database_and_actors(system):
    status, report = system.health()
    assert status == 200
    assert report["database"]["ok"] and report["actors"]["ok"] and report["actors"]["shards"] == 8
