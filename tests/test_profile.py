"""Profiles through the real path: editing one's own profile, avatars, the operator's
`members set-tier`, and the public directory."""
import secrets

import pytest

from tests.client import Member, quote
from tests.conftest import run

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64)
UNKNOWN_ID = "0123456789abcdef01234567"


async def me(member):
    answer = await member.request("GET", "/api/me")
    assert answer.code == 200, answer.body
    return answer.json()["member"]


async def edit(member, changes):
    return await member.request("PATCH", "/api/me", changes)


async def upload(member, data, content_type="image/png"):
    return await member.request("PUT", "/api/me/avatar", raw=data, headers={"Content-Type": content_type})


# Editing one's profile -----------------------------------------------------------------------

def test_a_member_edits_name_headline_bio_and_payout_email_and_the_public_sees_no_email(system):
    async def scenario():
        member = await Member(system.url).sign_up("Before")
        payout = f"Pay.{secrets.token_hex(4)}@PayPal.Example"
        answer = await edit(member, {"display_name": " Dr. Ada ", "headline": "Tax law, plainly",
                                     "bio": "Twenty years of tax law.\nAsk me anything.", "payout_email": payout})
        assert answer.code == 200, answer.body
        mine = await me(member)
        assert mine == answer.json()["member"]
        assert (mine["display_name"], mine["headline"], mine["payout_email"]) == \
            ("Dr. Ada", "Tax law, plainly", payout.lower())
        assert mine["bio"] == "Twenty years of tax law.\nAsk me anything."

        public = (await Member(system.url).request("GET", f"/api/members/{member.id}")).json()["member"]
        assert (public["display_name"], public["headline"], public["bio"]) == \
            ("Dr. Ada", "Tax law, plainly", mine["bio"])
        assert "email" not in public and "payout_email" not in public

        # One field at a time leaves the others; an empty payout email removes it.
        assert (await edit(member, {"headline": ""})).code == 200
        assert (await edit(member, {"payout_email": ""})).code == 200
        mine = await me(member)
        assert (mine["display_name"], mine["headline"], mine["payout_email"]) == ("Dr. Ada", "", "")
    run(scenario())


@pytest.mark.parametrize("changes, code", [
    ({"nickname": "Ace"}, "unknown_field"),
    ({"display_name": "Renamed", "nickname": "Ace"}, "unknown_field"),  # the good half is not applied
    ({"tier": "upgraded"}, "unknown_field"),  # upgrading is not self-service through the profile
    ({"email": "someone.else@example.com"}, "unknown_field"),
    ({"password_hash": "$argon2id$forged"}, "unknown_field"),
    ({}, "invalid_body"),
    ({"display_name": "   "}, "invalid_display_name"),
    ({"display_name": "x" * 81}, "invalid_display_name"),
    ({"display_name": 7}, "invalid_display_name"),
    ({"display_name": "Renamed", "headline": "x" * 121}, "invalid_headline"),
    ({"bio": "x" * 2001}, "invalid_bio"),
    ({"bio": ["not", "text"]}, "invalid_bio"),
    ({"payout_email": "not-an-email"}, "invalid_email"),
    (b"{not json", "invalid_json"),
    (b'[{"display_name": "Renamed"}]', "invalid_body"),
])
def test_a_bad_profile_change_is_refused_and_changes_nothing(system, changes, code):
    async def scenario():
        member = await Member(system.url).sign_up("Unchanged")
        assert (await edit(member, {"headline": "Steady", "payout_email": "pay@example.com"})).code == 200
        before = await me(member)
        if isinstance(changes, dict):
            answer = await edit(member, changes)
        else:
            answer = await member.request("PATCH", "/api/me", raw=changes, headers={"Content-Type": "application/json"})
        assert (answer.code, answer.error_code) == (400, code), answer.body
        message = answer.json()["error"]["message"]
        if code == "unknown_field":  # the message names what cannot be changed
            assert all(field in message for field in changes.keys() - {"display_name"}), message
        assert await me(member) == before
        assert system.db.members.find_one({"email": member.email})["tier"] == "free"
    run(scenario())


def test_profile_changes_while_logged_out_are_refused(system):
    async def scenario():
        member = await Member(system.url).sign_up("Logged Out")
        assert (await member.request("POST", "/api/logout")).code == 204
        for answer in (await edit(member, {"display_name": "Ghost"}), await upload(member, PNG),
                       await member.request("GET", "/api/me")):
            assert (answer.code, answer.error_code) == (401, "not_logged_in"), answer.body
        public = (await member.request("GET", f"/api/members/{member.id}")).json()["member"]
        assert public["display_name"] == "Logged Out" and not public["has_avatar"]
    run(scenario())


# Avatars -------------------------------------------------------------------------------------

def test_an_avatar_is_served_back_with_the_type_its_bytes_show(system):
    async def scenario():
        member = await Member(system.url).sign_up("Pictured")
        visitor = Member(system.url)
        none_yet = await visitor.request("GET", f"/avatars/{member.id}")
        assert (none_yet.code, none_yet.error_code) == (404, "no_avatar")

        assert (await upload(member, PNG)).code == 204
        assert (await me(member))["has_avatar"]
        served = await visitor.request("GET", f"/avatars/{member.id}")
        assert (served.code, served.body, served.headers["Content-Type"]) == (200, PNG, "image/png")
        assert served.headers["X-Content-Type-Options"] == "nosniff"

        # The declared type is not trusted either way: these bytes are a JPEG.
        assert (await upload(member, JPEG, content_type="application/octet-stream")).code == 204
        served = await visitor.request("GET", f"/avatars/{member.id}")
        assert (served.body, served.headers["Content-Type"]) == (JPEG, "image/jpeg")
    run(scenario())


@pytest.mark.parametrize("data, content_type, status, code", [
    (b"just some text, not a picture\n", "image/png", 415, "avatar_type"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "image/svg+xml", 415, "avatar_type"),
    (b"", "image/png", 415, "avatar_type"),
    ("one byte too many", "image/png", 413, "avatar_too_large"),
])
def test_an_avatar_too_big_or_not_an_image_is_refused_and_the_old_one_stays(system, data, content_type, status,
                                                                              code):
    if data == "one byte too many":
        data = PNG + bytes(system.settings.policy.avatar_max_bytes - len(PNG) + 1)

    async def scenario():
        member = await Member(system.url).sign_up("Keeps Picture")
        assert (await upload(member, PNG)).code == 204
        answer = await upload(member, data, content_type)
        assert (answer.code, answer.error_code) == (status, code), answer.body
        assert answer.json()["error"]["message"]
        served = await Member(system.url).request("GET", f"/avatars/{member.id}")
        assert (served.body, served.headers["Content-Type"]) == (PNG, "image/png")
    run(scenario())


def test_a_phone_photo_of_several_megabytes_gets_a_clear_413_not_a_dropped_connection(system):
    async def scenario():
        member = await Member(system.url).sign_up("Phone Photo")
        photo = JPEG + bytes(5 * 1024 * 1024)  # far above the limit and the server's general body limit
        answer = await upload(member, photo, "image/jpeg")
        assert (answer.code, answer.error_code) == (413, "avatar_too_large"), answer.body
        assert "KiB" in answer.json()["error"]["message"]
        assert not (await me(member))["has_avatar"]
        # The same connection pool goes on working: the small picture goes through.
        assert (await upload(member, PNG)).code == 204
    run(scenario())


def test_an_avatar_exactly_at_the_limit_is_accepted(system):
    async def scenario():
        member = await Member(system.url).sign_up("Big Picture")
        data = PNG + bytes(system.settings.policy.avatar_max_bytes - len(PNG))
        assert (await upload(member, data)).code == 204
        assert (await Member(system.url).request("GET", f"/avatars/{member.id}")).body == data
    run(scenario())


# Tiers -----------------------------------------------------------------------------------------

def test_an_operator_upgrades_a_member_who_can_charge_once_a_payout_email_is_on_file(system):
    async def scenario():
        member = await Member(system.url).sign_up("Soon Upgraded")
        done = system.cli("members", "set-tier", member.email.upper(), "upgraded")
        assert done.returncode == 0, done.stderr
        assert "upgraded" in done.stdout
        mine = await me(member)
        assert (mine["tier"], mine["can_charge"]) == ("upgraded", False)  # no payout email yet
        assert (await edit(member, {"payout_email": "payouts@example.com"})).code == 200
        assert (await me(member))["can_charge"]
        public = (await Member(system.url).request("GET", f"/api/members/{member.id}")).json()["member"]
        assert (public["tier"], public["can_charge"]) == ("upgraded", True)

        assert system.cli("members", "set-tier", member.email, "free").returncode == 0
        assert ((await me(member))["tier"], (await me(member))["can_charge"]) == ("free", False)
    run(scenario())


def test_set_tier_with_an_unknown_email_or_tier_fails_clearly_and_changes_nothing(system):
    async def scenario():
        member = await Member(system.url).sign_up("Stays Free")
        unknown_email = system.cli("members", "set-tier", "nobody-" + member.email, "upgraded")
        assert unknown_email.returncode != 0
        assert "no member has the email nobody-" in unknown_email.stderr
        unknown_tier = system.cli("members", "set-tier", member.email, "platinum")
        assert unknown_tier.returncode != 0
        assert "tier must be one of free, upgraded" in unknown_tier.stderr
        assert (await me(member))["tier"] == "free"
    run(scenario())


# Directory -------------------------------------------------------------------------------------

def test_the_directory_finds_members_by_name_or_headline(system):
    async def scenario():
        word = "Zq" + secrets.token_hex(4)  # unique to this test: the module's database is shared
        by_name = await Member(system.url).sign_up(f"Maria {word}")
        by_headline = await Member(system.url).sign_up("Bob Builder")
        assert (await edit(by_headline, {"headline": f"C++ and {word.lower()} mentoring"})).code == 200
        await Member(system.url).sign_up("Unrelated Person")
        visitor = Member(system.url)

        async def search(q):
            answer = await visitor.request("GET", "/api/members?q=" + quote(q))
            assert answer.code == 200, answer.body
            return answer.json()["members"]

        found = await search(word.upper())  # any case
        assert sorted(m["id"] for m in found) == sorted([by_name.id, by_headline.id])
        assert all("email" not in m and "payout_email" not in m for m in found)
        assert [m["id"] for m in await search("C++")] == [by_headline.id]  # taken literally, not as a pattern
        assert await search(word + " not there") == []
        assert await search(".*") == []
        everyone = {m["id"] for m in await search("")}
        assert {by_name.id, by_headline.id} <= everyone
    run(scenario())


def test_an_unknown_member_is_a_clear_404(system):
    async def scenario():
        visitor = Member(system.url)
        answer = await visitor.request("GET", f"/api/members/{UNKNOWN_ID}")
        assert (answer.code, answer.error_code) == (404, "no_such_member")
        answer = await visitor.request("GET", f"/avatars/{UNKNOWN_ID}")
        assert (answer.code, answer.error_code) == (404, "no_avatar")
    run(scenario())
