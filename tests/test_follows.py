"""Following a member, on the real path (SecantusDB, actor node, gateway, websockets, aiosmtpd):
follow and unfollow over HTTP with the count on the member's page, the refusals, the mail's
one-click unfollow link; and a member back after being away shown within 2 s on the open pages
of their followers, mailed once to those with none, and not again within the notice interval."""
import asyncio
import re
import time

import pytest

from tests.kit.client import Member
from tests.kit.system import run
from tests.kit.waiting import eventually
from tests.test_accounts import wait_for_log
from tests.test_money_emails import smtp_server  # noqa: F401 (a fixture: aiosmtpd on loopback)

UNKNOWN_ID = "f" * 24
# The issue promises 2 s on a follower's page; bounded loosely here (a shared machine), the
# figure printed (speed goals are measured, not asserted tightly: README, Performance).
NOTICE_BOUND_S = 10
AWAY_S = 3               # policy follow_away_s for the live test: a return after this is news
UNFOLLOW_LINK = re.compile(r"(https?://\S+/unfollow/([A-Za-z0-9_-]+))")


async def follow(who, member_id, method="POST", **options):
    return await who.request(method, f"/api/members/{member_id}/follow", **options)


async def profile(who, member_id):
    answer = await who.request("GET", f"/api/members/{member_id}")
    assert answer.code == 200, answer.body
    return answer.json()["member"]





# Follow, unfollow and the count -------------------------------------------------------------

def test_a_member_follows_and_unfollows_and_everyone_sees_the_count(system):
    async def scenario():
        member = await Member(system.url).sign_up("Followed")
        fan = await Member(system.url).sign_up("Fan")
        visitor = Member(system.url)
        seen = await profile(visitor, member.id)
        assert seen["followers"] == 0 and "following" not in seen  # only a logged-in viewer follows
        assert (await profile(fan, member.id))["following"] is False

        for _ in range(2):  # following twice is following once
            answer = await follow(fan, member.id)
            assert (answer.code, answer.json()) == (200, {"followers": 1, "following": True})
        assert (await profile(visitor, member.id))["followers"] == 1
        assert (await profile(fan, member.id))["following"] is True
        own = (await member.request("GET", "/api/me")).json()["member"]
        assert own["followers"] == 1  # the member sees how many follow them (/account)

        for _ in range(2):
            answer = await follow(fan, member.id, "DELETE")
            assert (answer.code, answer.json()) == (200, {"followers": 0, "following": False})
        assert (await profile(fan, member.id))["followers"] == 0
    run(scenario())


def test_following_yourself_nobody_logged_out_or_without_the_xsrf_token_is_refused(system):
    async def scenario():
        member = await Member(system.url).sign_up("Refuser")
        fan = await Member(system.url).sign_up("Would-be fan")
        refusals = [
            (await follow(member, member.id), 400, "self_follow"),
            (await follow(fan, UNKNOWN_ID), 404, "no_such_member"),
            (await follow(fan, UNKNOWN_ID, "DELETE"), 404, "no_such_member"),
            (await follow(Member(system.url), member.id), 401, "not_logged_in"),
            (await follow(fan, member.id, xsrf=False), 403, "xsrf"),
            (await follow(fan, member.id, "DELETE", xsrf=False), 403, "xsrf"),
        ]
        for answer, status, code in refusals:
            assert (answer.code, answer.error_code) == (status, code), answer.body
        assert (await profile(fan, member.id))["followers"] == 0  # none of them changed anything
        assert system.db.follows.count_documents({"member": member.id}) == 0
    run(scenario())


def test_the_one_click_unfollow_link_unfollows_once_and_an_unknown_one_changes_nothing(system):
    async def scenario():
        member = await Member(system.url).sign_up("Linked <Name>")
        fans = [await Member(system.url).sign_up(f"Fan {n}") for n in range(2)]
        for fan in fans:
            assert (await follow(fan, member.id)).code == 200
        token = system.db.follows.find_one({"follower": fans[0].id, "member": member.id})["unfollow_token"]
        stranger = Member(system.url)  # a mail's link works without a log-in

        page = await stranger.request("GET", f"/unfollow/{token}")
        assert page.code == 200 and page.headers["Content-Type"].startswith("text/html")
        text = page.body.decode()
        assert "You no longer follow Linked &lt;Name&gt;" in text and f'href="/m/{member.id}"' in text
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        seen = await profile(fans[0], member.id)
        assert (seen["followers"], seen["following"]) == (1, False)
        for used_or_unknown in (token, "not-a-real-token"):
            page = await stranger.request("GET", f"/unfollow/{used_or_unknown}")
            assert page.code == 404 and "This unfollow link is not valid" in page.body.decode()
        seen = await profile(fans[1], member.id)
        assert (seen["followers"], seen["following"]) == (1, True)  # the other fan still follows
        assert token not in wait_for_log(system, "404 GET /unfollow/…")  # a link's token is never logged
    run(scenario())


# A member back after being away -------------------------------------------------------------

def mails_to(handler, address):
    return [message for recipients, message in handler.messages if address in recipients]


def test_followers_are_told_a_member_is_back_on_their_pages_or_by_one_mail_once_a_day(system_with, smtp_server):
    system = system_with(smtp_host="127.0.0.1", smtp_port=smtp_server.port, follow_away_s=AWAY_S)
    handler, db = smtp_server.handler, system.db

    def presence_of(member):
        return db.presence_times.find_one({"_id": member.id}) or {}

    def notified_at(follower, member):
        return db.follows.find_one({"follower": follower.id, "member": member.id})["notified_at"]

    async def went_away(page, member):
        """Close the member's last page; returns once the adapter has it as away (exit grace over)."""
        await page.close()
        await eventually(lambda: presence_of(member).get("away_since") is not None, "the member to be away")
        return presence_of(member)["away_since"].timestamp()

    async def nothing_more(page, frame_type):
        """Nothing of `frame_type` came before the answer to a ping sent now (its shard is done)."""
        await page.request("ping")
        await page.expect("pong")
        assert [f for f in page.unread if f["type"] == frame_type] == []

    async def scenario():
        member = await Member(system.url).sign_up("Ada Lovelace")
        watching = await Member(system.url).sign_up("Watching")
        mailed = await Member(system.url).sign_up("Mailed")
        for follower in (watching, mailed):
            assert (await follow(follower, member.id)).code == 200
        watching_pages = [await watching.socket(), await watching.socket()]

        # Her first page since she has followers: news, on every open page of a follower.
        opened_s = time.monotonic()
        page = await member.socket()
        for watching_page in watching_pages:
            notice = await watching_page.expect("followed_online", timeout_s=NOTICE_BOUND_S, member_id=member.id)
            assert notice["name"] == "Ada Lovelace"
        print(f"follow_notice_frame_s={time.monotonic() - opened_s:.2f}")
        await eventually(lambda: mails_to(handler, mailed.email), "the mail to the follower with no page")
        [mail] = mails_to(handler, mailed.email)
        assert mail["Subject"] == "Ada Lovelace is online on interKanect"
        body = mail.get_payload(decode=True).decode()
        assert f"{system.url}/m/{member.id}" in body
        unfollow_link, token = UNFOLLOW_LINK.search(body).groups()
        assert mails_to(handler, watching.email) == []  # told on the page, not mailed too
        told = {f.id: notified_at(f, member) for f in (watching, mailed)}

        # A follower who comes later; she is back at once after leaving: no news.
        late = await Member(system.url).sign_up("Late")
        assert (await follow(late, member.id)).code == 200
        late_page = await late.socket()
        away_s = await went_away(page, member)
        page = await member.socket()
        await eventually(lambda: presence_of(member).get("online_since") is not None
                    and presence_of(member)["online_since"].timestamp() > away_s, "her return to be recorded")
        assert time.time() - away_s < AWAY_S, "the machine was too slow to return within follow_away_s"
        assert notified_at(late, member) is None
        await nothing_more(late_page, "followed_online")

        # Away long enough now: the late follower hears of it; the others were told today already.
        away_s = await went_away(page, member)
        await asyncio.sleep(max(0.0, away_s + AWAY_S - time.time()))  # the policy's away time passing
        opened_s = time.monotonic()
        page = await member.socket()
        await late_page.expect("followed_online", timeout_s=NOTICE_BOUND_S, member_id=member.id)
        print(f"follow_notice_frame_s={time.monotonic() - opened_s:.2f}")
        assert {f.id: notified_at(f, member) for f in (watching, mailed)} == told
        for watching_page in watching_pages:
            await nothing_more(watching_page, "followed_online")
        assert len(mails_to(handler, mailed.email)) == 1
        assert db.outbox.count_documents({}) == 0  # every mail went over SMTP

        # The mail's one-click link unfollows: no log-in needed, the count drops.
        answer = await Member(system.url).request("GET", unfollow_link[len(system.url):])
        assert answer.code == 200 and "You no longer follow Ada Lovelace" in answer.body.decode()
        assert db.follows.find_one({"unfollow_token": token}) is None
        seen = await profile(mailed, member.id)
        assert (seen["followers"], seen["following"]) == (2, False)
        await page.close()
    run(scenario())
