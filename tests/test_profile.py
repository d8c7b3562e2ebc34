"""Profiles through the real path: editing one's own profile, the payout email (with the
password, the old address told), avatars (by content and pixel count), the operator's
`members set-tier`, and the public directory."""
import secrets
import struct

import pytest

from tests.kit.client import PASSWORD, Member, quote
from tests.kit.system import run
from tests.test_accounts import outbox_mails


def png(width, height):
    """A PNG's signature and header chunk: what the gateway reads of it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + header + bytes(4) + bytes(64)


def jpeg(width, height):
    """A JPEG's start, a JFIF segment, then its frame header (baseline, three components)."""
    jfif = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    frame = b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", height, width) + b"\x03" + bytes(9)
    return b"\xff\xd8" + jfif + frame + bytes(64)


def gif(width, height, frame_width, frame_height):
    """A GIF whose one frame may reach past its logical screen (browsers grow the canvas)."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, frame_width, frame_height, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b"\x3b"


def webp(width, height):
    """An extended WebP: its canvas size, 24 bits each, minus one."""
    canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    chunk = b"VP8X" + struct.pack("<I", 10) + bytes(4) + canvas
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk + bytes(64)


PNG = png(64, 64)
JPEG = jpeg(64, 48)
UNKNOWN_ID = "0123456789abcdef01234567"


async def me(member):
    answer = await member.request("GET", "/api/me")
    assert answer.code == 200, answer.body
    return answer.json()["member"]


async def edit(member, changes):
    return await member.request("PATCH", "/api/me", changes)


async def set_payout(member, email, password=PASSWORD):
    return await edit(member, {"payout_email": email, "password": password})


async def upload(member, data, content_type="image/png"):
    return await member.request("PUT", "/api/me/avatar", raw=data, headers={"Content-Type": content_type})


# Editing one's profile -----------------------------------------------------------------------

def test_a_member_edits_name_headline_bio_and_payout_email_and_the_public_sees_no_email(system):
    async def scenario():
        member = await Member(system.url).sign_up("Before")
        payout = f"Pay.{secrets.token_hex(4)}@PayPal.Example"
        answer = await edit(member, {"display_name": " Dr. Ada ", "headline": "Tax law, plainly",
                                     "bio": "Twenty years of tax law.\nAsk me anything.", "payout_email": payout,
                                     "password": PASSWORD})
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
        assert (await set_payout(member, "")).code == 200
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
    ({"display_name": "Ann\u202eNOSLIW"}, "invalid_display_name"),  # a bidi override
    ({"display_name": "Ann\u200b"}, "invalid_display_name"),  # zero-width: looks like "Ann"
    ({"display_name": "Ann\x00"}, "invalid_display_name"),
    ({"display_name": "Ann\nOfficial support"}, "invalid_display_name"),
    ({"headline": "Tax law\u2028Call now"}, "invalid_headline"),  # a line separator
    ({"headline": "Tax \u2066law"}, "invalid_headline"),
    ({"bio": "Twenty years\x00"}, "invalid_bio"),
    ({"bio": "Twenty years \u202eof tax law"}, "invalid_bio"),
    (b"{not json", "invalid_json"),
    (b'[{"display_name": "Renamed"}]', "invalid_body"),
])
def test_a_bad_profile_change_is_refused_and_changes_nothing(system, changes, code):
    async def scenario():
        member = await Member(system.url).sign_up("Unchanged")
        assert (await edit(member, {"headline": "Steady", "payout_email": "pay@example.com",
                                    "password": PASSWORD})).code == 200
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


def test_names_refuse_control_and_format_characters_by_name_and_a_bio_keeps_its_lines(system):
    async def scenario():
        member = await Member(system.url).sign_up("Plain Name")
        answer = await edit(member, {"display_name": "Support\u202e\u2066Team"})
        assert (answer.code, answer.error_code) == (400, "invalid_display_name")
        assert "U+202E" in answer.json()["error"]["message"]
        # Line breaks, tabs and an emoji joined by a zero-width joiner are what a bio is made of.
        bio = "Family lawyer \U0001F468\u200d\U0001F469\u200d\U0001F467\n\tTwenty years.\r\nAsk me."
        assert (await edit(member, {"bio": bio})).code == 200
        assert (await me(member))["bio"] == bio.replace("\r\n", "\n")
        assert (await me(member))["display_name"] == "Plain Name"
    run(scenario())


# The payout email --------------------------------------------------------------------------------

def test_the_payout_email_changes_only_with_the_password_and_the_old_address_is_told(system):
    async def scenario():
        member = await Member(system.url).sign_up("Payee")
        first, second = f"first.{secrets.token_hex(4)}@example.com", f"second.{secrets.token_hex(4)}@example.com"
        assert (await set_payout(member, first)).code == 200
        [added] = [body for to, body in outbox_mails(system) if to == member.email]
        assert "was set to f***@example.com" in added and f"{system.url}/reset" in added

        # A session alone (stolen, or a tab left open) cannot send the earnings elsewhere.
        for body, code in (({"payout_email": second}, "password_required"),
                           ({"payout_email": second, "password": ""}, "password_required"),
                           ({"payout_email": second, "password": "not the password"}, "wrong_password"),
                           ({"payout_email": "", "password": "not the password"}, "wrong_password")):
            answer = await edit(member, body)
            assert (answer.code, answer.error_code) == (403, code), body
            assert answer.json()["error"]["message"]
        assert (await me(member))["payout_email"] == first
        assert [to for to, _ in outbox_mails(system) if to in (first, second)] == []

        assert (await set_payout(member, second.upper())).code == 200
        assert (await me(member))["payout_email"] == second
        [told] = [body for to, body in outbox_mails(system) if to == first]
        assert f"changed from {first} to s***@example.com" in told and second not in told
        assert len([to for to, _ in outbox_mails(system) if to == member.email]) == 2
        # Other fields need no password, and the same payout email again is no change.
        assert (await edit(member, {"headline": "Still mine", "payout_email": second})).code == 200
        assert (await set_payout(member, "")).code == 200
        assert (await me(member))["payout_email"] == ""
        assert len([to for to, _ in outbox_mails(system) if to == second]) == 1
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


@pytest.mark.parametrize("data", [
    png(60000, 60000), png(4097, 4096), jpeg(20000, 20000), gif(16, 16, 60000, 60000), webp(65536, 65536),
], ids=["png", "png-one-column-over", "jpeg", "gif-frame-past-its-screen", "webp"])
def test_an_avatar_of_too_many_pixels_is_refused_whatever_its_file_size(system, data):
    async def scenario():
        member = await Member(system.url).sign_up("Pixel Bomb")
        assert (await upload(member, PNG)).code == 204
        answer = await upload(member, data)
        assert (answer.code, answer.error_code) == (413, "avatar_too_many_pixels"), answer.body
        assert "16,777,216 pixels" in answer.json()["error"]["message"]
        served = await Member(system.url).request("GET", f"/avatars/{member.id}")
        assert served.body == PNG
    run(scenario())


@pytest.mark.parametrize("data", [
    b"\x89PNG\r\n\x1a\n" + bytes(64),           # no header chunk
    png(0, 64),                                   # no pixels
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64),  # no frame header
    b"RIFF\x00\x00\x00\x00WEBPVP8Z" + bytes(32),   # no known chunk
], ids=["png", "png-empty", "jpeg", "webp"])
def test_an_avatar_whose_size_cannot_be_read_is_refused(system, data):
    async def scenario():
        member = await Member(system.url).sign_up("Unreadable")
        answer = await upload(member, data)
        assert (answer.code, answer.error_code) == (415, "avatar_unreadable"), answer.body
        assert not (await me(member))["has_avatar"]
    run(scenario())


def test_avatars_up_to_the_pixel_limit_are_accepted_in_every_format(system):
    async def scenario():
        member = await Member(system.url).sign_up("Many Formats")
        for data, content_type in ((png(4096, 4096), "image/png"), (jpeg(4096, 4096), "image/jpeg"),
                                   (gif(4096, 4096, 100, 100), "image/gif"), (webp(4096, 4096), "image/webp")):
            assert (await upload(member, data)).code == 204, content_type
            served = await Member(system.url).request("GET", f"/avatars/{member.id}")
            assert (served.body, served.headers["Content-Type"]) == (data, content_type)
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
        assert (await set_payout(member, "payouts@example.com")).code == 200
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
