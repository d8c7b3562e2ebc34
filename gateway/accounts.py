"""Accounts: sign up, log in and out, sessions, password reset, profiles, tiers.

Passwords are hashed with Argon2id off the event loop; session and reset tokens are
random and stored only as their SHA-256, so a leaked database opens no account.
"""
import asyncio
import collections
import datetime
import hashlib
import logging
import re
import secrets
import struct
import unicodedata

import argon2
import pymongo
from bson import ObjectId

from gateway.throttle import Throttle, address_key
from interkanect.db import object_id

log = logging.getLogger(__name__)

TIERS = ("free", "upgraded")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
PASSWORD_MIN_CHARS = 10
# Argon2 over a megabyte-long "password" is a cheap way to burn our CPU; nobody needs more.
PASSWORD_MAX_CHARS = 256
# Member ids a gateway remembers as existing (~170 bytes each).
KNOWN_MEMBERS_MAX = 20_000
PROFILE_LIMITS = {"display_name": (1, 80), "headline": (0, 120), "bio": (0, 2000)}
# A name or headline sits inside other text (lists, the incoming-call popup): control and
# format characters (NUL, line breaks, bidi overrides, zero-width ones) would make it read
# as something it is not, or spill into what surrounds it.
LINE_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
# A bio is a block of its own: it keeps line breaks, tabs and the format characters of real
# writing (joiners, direction marks), but not those that reorder the text shown after them.
BIO_REFUSED_CATEGORIES = frozenset({"Cc", "Cs"})
BIO_KEPT = frozenset("\n\t")
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Avatars are sniffed by their first bytes, never trusted by the declared type alone.
IMAGE_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg",
                    b"GIF87a": "image/gif", b"GIF89a": "image/gif"}

_hasher = argon2.PasswordHasher()  # argon2-cffi's default type is Argon2id
# Verified when an email is unknown, so a miss costs as long as a hit.
_DUMMY_HASH = _hasher.hash("not a real password, only for timing")


class ClientError(Exception):
    """A request refused because of what the client sent; `status` is the HTTP status."""

    def __init__(self, status, code, message, retry_after_s=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def masked(email):
    """An email as a notice shows it: enough for its owner to recognise, not to copy."""
    name, _, domain = email.partition("@")
    return f"{name[:1]}***@{domain}"


def token_hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


def normal_email(value, field="email"):
    if not isinstance(value, str) or not EMAIL_RE.match(value.strip()) or len(value) > 254:
        raise ClientError(400, "invalid_email", f"{field} is not a valid email address")
    return value.strip().lower()


def check_password(value):
    if not isinstance(value, str) or not PASSWORD_MIN_CHARS <= len(value) <= PASSWORD_MAX_CHARS:
        raise ClientError(400, "weak_password",
                          f"a password has {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters")
    return value


def check_text(field, value):
    low, high = PROFILE_LIMITS[field]
    if not isinstance(value, str) or not low <= len(value.strip()) <= high:
        raise ClientError(400, "invalid_" + field, f"{field} has {low} to {high} characters")
    text = value.strip()
    if field == "bio":
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    refused = next((c for c in text if _refused(field, c)), None)
    if refused is not None:
        raise ClientError(400, "invalid_" + field, f"{field} may not contain control or invisible formatting "
                                                   f"characters (it has U+{ord(refused):04X})")
    return text


def _refused(field, character):
    if field != "bio":
        return unicodedata.category(character) in LINE_REFUSED_CATEGORIES
    return character in BIDI_CONTROLS or (
        character not in BIO_KEPT and unicodedata.category(character) in BIO_REFUSED_CATEGORIES)


def image_type(data):
    for signature, content_type in IMAGE_SIGNATURES.items():
        if data.startswith(signature):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


# The size a browser decodes an image to, read from its header bytes (no decoding): a file of
# a few kilobytes can claim 60000 × 60000 pixels.

def _png_size(data):
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


# Start-of-frame markers (baseline, progressive, lossless...); C4, C8 and CC are other tables.
JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
JPEG_STANDALONE_MARKERS = frozenset(range(0xD0, 0xD9)) | {0x01}


def _jpeg_size(data):
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
        elif marker in JPEG_STANDALONE_MARKERS:
            position += 2
        elif marker in JPEG_FRAME_MARKERS:
            if position + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            return width, height
        elif marker in (0xD9, 0xDA):  # the end, or a scan, before any frame header
            return None
        else:
            position += 2 + struct.unpack(">H", data[position + 2:position + 4])[0]
    return None


def _gif_sub_blocks_end(data, position):
    while position < len(data) and data[position]:
        position += data[position] + 1
    return position + 1


def _gif_size(data):
    """The logical screen, widened by any frame reaching past it (browsers grow the canvas)."""
    if len(data) < 13:
        return None
    width, height = struct.unpack("<HH", data[6:10])
    position = 13 + (3 * 2 ** ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    while position < len(data) and data[position] != 0x3B:  # 3B: the trailer
        if data[position] == 0x21:  # an extension: its label, then sub-blocks
            position = _gif_sub_blocks_end(data, position + 2)
        elif data[position] == 0x2C and position + 10 <= len(data):  # a frame
            left, top, frame_width, frame_height, flags = struct.unpack("<HHHHB", data[position + 1:position + 10])
            width, height = max(width, left + frame_width), max(height, top + frame_height)
            position += 10 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
            position = _gif_sub_blocks_end(data, position + 1)  # after the LZW code size
        else:
            return None
    return width, height


def _webp_size(data):
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:  # extended: the canvas, 24 bits each, minus one
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":  # lossy
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:  # lossless: 14 bits each, minus one
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


IMAGE_SIZE_READERS = {"image/png": _png_size, "image/jpeg": _jpeg_size, "image/gif": _gif_size,
                      "image/webp": _webp_size}


def image_size(data, content_type):
    """(width, height) from the header of an image of `content_type`, or None if unreadable."""
    return IMAGE_SIZE_READERS[content_type](data)


# A subscription that is over still upgrades its member until the paid period ends (ends_at).
SUBSCRIPTION_ENDED = ("CANCELLED", "SUSPENDED", "EXPIRED")


def effective_tier(member, at=None):
    """`tier` is what an operator set; an ACTIVE upgrade subscription, or one that ended but
    whose paid period runs on, upgrades the member too. Read wherever the tier is shown or
    used, so the end of a paid period needs no job: it is over when its time has passed."""
    if member.get("tier") == "upgraded":
        return "upgraded"
    subscription = member.get("subscription") or {}
    if subscription.get("status") == "ACTIVE":
        return "upgraded"
    ends_at = subscription.get("ends_at")
    if subscription.get("status") in SUBSCRIPTION_ENDED and ends_at and ends_at > (at or now()):
        return "upgraded"
    return "free"


def subscription_view(member):
    """The member's upgrade subscription as their account page shows it, or None."""
    subscription = member.get("subscription")
    if not subscription or subscription.get("status") == "APPROVAL_PENDING":
        return None
    active = subscription["status"] == "ACTIVE"
    view = {"id": subscription["id"], "status": subscription["status"],
            "price_cents": subscription.get("price_cents"), "interval": subscription.get("interval")}
    when = subscription.get("next_billing_time" if active else "ends_at")
    view["renews_at" if active else "ends_at"] = when.isoformat() if when else None
    return view


def public_profile(member):
    tier = effective_tier(member)
    return {"id": str(member["_id"]), "display_name": member["display_name"],
            "headline": member.get("headline", ""), "bio": member.get("bio", ""),
            "tier": tier, "has_avatar": bool(member.get("avatar_type")),
            "can_charge": tier == "upgraded" and bool(member.get("payout_email"))}


def actor_profile(member):
    """What the member's shard needs of them to ring and host (Open's and ProfileChanged's `profile`)."""
    public = public_profile(member)
    return {"name": public["display_name"], "tier": public["tier"], "can_charge": public["can_charge"],
            "followers": member.get("followers", 0)}  # with followers, their returns are told (actors/followers.py)


def own_profile(member):
    return dict(public_profile(member), email=member["email"],
                payout_email=member.get("payout_email", ""), operator=bool(member.get("operator")),
                followers=max(0, member.get("followers", 0)),
                subscription=subscription_view(member))


class Accounts:
    def __init__(self, db, policy, mailer, base_url):
        self.db = db
        self.policy = policy
        self.mailer = mailer
        self.base_url = base_url
        self.throttle = Throttle(db.throttle)
        # Member ids seen to exist (members are never deleted), most recent last: a page that
        # watches the same members again costs no query.
        self.known_members = collections.OrderedDict()

    async def _hash(self, password):
        return await asyncio.get_running_loop().run_in_executor(None, _hasher.hash, password)

    async def _verify(self, password_hash, password):
        def verify():
            try:
                return _hasher.verify(password_hash, password)
            except argon2.exceptions.VerificationError:
                return False
            except argon2.exceptions.InvalidHashError:
                log.error("a stored password hash is not an Argon2 hash")
                return False
        return await asyncio.get_running_loop().run_in_executor(None, verify)

    async def _limit(self, key, limit, window_s, code, message):
        """Take one of `key`'s attempts in this window, or refuse with 429 and when to come back."""
        taken = await self.throttle.take(key, limit, window_s, now())
        if taken.slot is None:
            raise ClientError(429, code, message, retry_after_s=taken.wait_s)
        return taken.slot

    async def sign_up(self, email, password, display_name, address):
        """The new member; or None when the email has an account: its owner is mailed and the
        caller gets the answer of a sign-up, without a session (README, Decisions)."""
        email, password = normal_email(email), check_password(password)
        display_name = check_text("display_name", display_name)
        p = self.policy
        await self._limit("signup-address:" + address_key(address), p.signups_per_address, p.signup_reset_window_s,
                          "too_many_signups", "too many sign-ups from your network; try again later")
        await self._limit("signup-email:" + email, p.signups_per_email, p.signup_reset_window_s,
                          "too_many_signups", "too many sign-ups with this email; check its inbox or try again later")
        member = {"email": email, "password_hash": await self._hash(password), "display_name": display_name,
                  "headline": "", "bio": "", "payout_email": "", "tier": "free", "created_at": now()}
        try:
            result = await self.db.members.insert_one(member)
        except pymongo.errors.DuplicateKeyError:
            await self._mail_sign_up_attempt(email)
            return None
        member["_id"] = result.inserted_id
        return member

    async def _mail_sign_up_attempt(self, email):
        owner = await self.db.members.find_one({"email": email})
        await self.mailer.send(email, "Someone tried to sign up with your email", (
            f"Hello {owner['display_name']},\n\n"
            f"Someone, perhaps you, tried to create an interKanect account with this email address.\n"
            f"It already has an account, so nothing was created and nothing changed.\n\n"
            f"To use your account, log in: {self.base_url}login\n"
            f"Forgot the password? Choose a new one: {self.base_url}reset\n\n"
            f"If it was not you, ignore this email.\n"))

    async def _checked_password(self, email, password, address):
        """The member if `password` is theirs, else None. Every check first takes a slot of the
        address (a hard limit) and of the account (past its limit, a growing wait), so that at
        most the limits are ever verified, however many come at once; a right password gives
        its slots back, so only failures count."""
        p = self.policy
        address_slot = await self._limit(
            "login-address:" + address_key(address), p.login_failures_per_address, p.login_window_s,
            "too_many_attempts", "too many failed log-ins from your network; wait a few minutes")
        account = await self.throttle.take_slowed("login-account:" + email, p.login_failures_per_account,
                                                  p.login_window_s, p.login_slowdown_s, p.login_slowdown_max_s, now())
        if account.slot is None:
            await self.throttle.give_back(address_slot)  # nothing was tried
            raise ClientError(429, "too_many_attempts", f"too many failed log-ins on this account; try again in "
                                                        f"{account.wait_s} s, or reset the password",
                              retry_after_s=account.wait_s)
        member = await self.db.members.find_one({"email": email})
        password = password if isinstance(password, str) else ""
        if not await self._verify(member["password_hash"] if member else _DUMMY_HASH, password[:PASSWORD_MAX_CHARS]) \
                or member is None:
            return None
        for slot in (address_slot, account.slot):
            await self.throttle.give_back(slot)
        return member

    async def log_in(self, email, password, address):
        member = await self._checked_password(normal_email(email), password, address)
        if member is None:
            raise ClientError(401, "bad_credentials", "wrong email or password")
        return member

    async def start_session(self, member):
        token = secrets.token_urlsafe(32)
        expires_at = now() + datetime.timedelta(seconds=self.policy.session_ttl_s)
        await self.db.sessions.insert_one({"_id": token_hash(token), "member_id": member["_id"],
                                           "created_at": now(), "expires_at": expires_at})
        return token

    async def session(self, token):
        """(session id, member, expires_at) for a live session token, else None."""
        if not token:
            return None
        session = await self.db.sessions.find_one({"_id": token_hash(token), "expires_at": {"$gt": now()}})
        if session is None:
            return None
        member = await self.db.members.find_one({"_id": session["member_id"]})
        return (session["_id"], member, session["expires_at"]) if member else None

    async def _revoke(self, session_ids):
        """Every gateway reads revocations to close that session's sockets (see Gateway)."""
        if session_ids:
            await self.db.session_revocations.insert_many([{"session_id": i, "at": now()} for i in session_ids])

    async def revoked_since(self, since):
        cursor = self.db.session_revocations.find({"at": {"$gte": since}}, {"session_id": 1})
        return {doc["session_id"] async for doc in cursor}

    async def end_session(self, session_id):
        await self.db.sessions.delete_one({"_id": session_id})
        await self._revoke([session_id])

    async def request_reset(self, email, address):
        """Email a one-time reset link if the account exists; say nothing either way."""
        email, p = normal_email(email), self.policy
        # Counted whether or not the email has an account, so a refusal tells nothing either.
        await self._limit("reset-address:" + address_key(address), p.reset_requests_per_address,
                          p.signup_reset_window_s, "too_many_reset_requests",
                          "too many password resets asked from your network; try again later")
        await self._limit("reset-email:" + email, p.reset_requests_per_email, p.signup_reset_window_s,
                          "too_many_reset_requests",
                          "too many password resets asked for this email; use the link already mailed")
        member = await self.db.members.find_one({"email": email})
        if member is None:
            return
        token = secrets.token_urlsafe(32)
        await self.db.reset_tokens.insert_one({
            "_id": token_hash(token), "member_id": member["_id"], "created_at": now(),
            "expires_at": now() + datetime.timedelta(seconds=self.policy.reset_token_ttl_s)})
        minutes = int(self.policy.reset_token_ttl_s // 60)
        await self.mailer.send(member["email"], "Reset your interKanect password", (
            f"Hello {member['display_name']},\n\n"
            f"Someone asked to reset the password of your interKanect account. To choose a new one,\n"
            f"open this link within {minutes} minutes:\n\n{self.base_url}reset?token={token}\n\n"
            f"If it was not you, ignore this email: your password stays as it is.\n"
            f"interKanect never asks for your password by email.\n"))

    async def reset_password(self, token, password):
        check_password(password)
        if not isinstance(token, str) or not token:
            raise ClientError(400, "invalid_token", "the reset link is invalid or has expired; ask for a new one")
        # Claim the token atomically, so two uses of one link cannot both succeed.
        claimed = await self.db.reset_tokens.find_one_and_update(
            {"_id": token_hash(token), "used_at": None, "expires_at": {"$gt": now()}},
            {"$set": {"used_at": now()}})
        if claimed is None:
            raise ClientError(400, "invalid_token", "the reset link is invalid or has expired; ask for a new one")
        await self.db.members.update_one({"_id": claimed["member_id"]},
                                         {"$set": {"password_hash": await self._hash(password)}})
        # Links mailed before this one are void too: an older mail found later (a shared
        # inbox, a forwarded message) must not choose the password again.
        await self.db.reset_tokens.update_many({"member_id": claimed["member_id"], "used_at": None},
                                               {"$set": {"used_at": now()}})
        # A reset means the old password may be known to someone: end every session.
        ended = [doc["_id"] async for doc in self.db.sessions.find({"member_id": claimed["member_id"]}, {"_id": 1})]
        await self.db.sessions.delete_many({"member_id": claimed["member_id"]})
        await self._revoke(ended)
        # The owner's way out of a slow-down: the account's log-in count starts again.
        await self.throttle.clear("login-account:" + (await self.member(claimed["member_id"]))["email"])

    async def member(self, member_id):
        oid = member_id if isinstance(member_id, ObjectId) else object_id(member_id)
        return await self.db.members.find_one({"_id": oid}) if oid else None

    async def update_profile(self, member, changes, address):
        """`changes` of profile fields; a new payout email (added, changed or removed) needs the
        member's current `password` with them, and its old address and the account's hear of it."""
        changes = dict(changes) if isinstance(changes, dict) else {}
        password = changes.pop("password", None)
        if not changes:
            raise ClientError(400, "invalid_body", "send a JSON object of the fields to change")
        unknown = set(changes) - set(PROFILE_LIMITS) - {"payout_email"}
        if unknown:
            raise ClientError(400, "unknown_field", f"cannot change: {', '.join(sorted(unknown))}")
        update = {}
        for field, value in changes.items():
            if field == "payout_email":
                update[field] = normal_email(value, "payout_email") if value else ""
            else:
                update[field] = check_text(field, value)
        old_payout = member.get("payout_email", "")
        payout_changed = "payout_email" in update and update["payout_email"] != old_payout
        if payout_changed:
            await self._confirm_password(member, password, address)
        updated = await self.db.members.find_one_and_update(
            {"_id": member["_id"]}, {"$set": update}, return_document=pymongo.ReturnDocument.AFTER)
        if payout_changed:
            await self._mail_payout_change(updated, old_payout)
        return updated

    async def _confirm_password(self, member, password, address):
        """Where the money goes is changed only by who knows the password, not by a stolen session."""
        if not isinstance(password, str) or not password:
            raise ClientError(403, "password_required", "changing the payout email needs your current password")
        if await self._checked_password(member["email"], password, address) is None:
            raise ClientError(403, "wrong_password", "this is not your current password")

    async def _mail_payout_change(self, member, old_payout):
        new_payout = member["payout_email"]
        change = f"changed from {old_payout} to {masked(new_payout) if new_payout else 'none'}" if old_payout \
            else f"was set to {masked(new_payout)}"
        # The old address first: if the account was taken over, its owner may still read it.
        for to in dict.fromkeys(address for address in (old_payout, member["email"]) if address):
            await self.mailer.send(to, "Your interKanect payout email changed", (
                f"Hello {member['display_name']},\n\n"
                f"The PayPal payout email of your interKanect account ({member['email']}) {change}.\n"
                f"Your earnings are paid to the new address from the next payout on.\n\n"
                f"If you did not make this change, choose a new password at once ({self.base_url}reset):\n"
                f"that ends every session. Then set your payout email back on {self.base_url}account.\n"))

    async def set_avatar(self, member, data):
        if len(data) > self.policy.avatar_max_bytes:
            raise ClientError(413, "avatar_too_large", f"an avatar is at most {self.policy.avatar_max_bytes // 1024} KiB")
        content_type = image_type(data)
        if content_type is None:
            raise ClientError(415, "avatar_type", "an avatar is a PNG, JPEG, GIF or WebP image")
        size = image_size(data, content_type)
        if not size or not all(size):
            raise ClientError(415, "avatar_unreadable", "the image's width and height cannot be read; "
                                                        "is it a whole PNG, JPEG, GIF or WebP file?")
        max_pixels = self.policy.avatar_max_pixels
        if size[0] * size[1] > max_pixels:
            raise ClientError(413, "avatar_too_many_pixels", f"an avatar has at most {max_pixels:,} pixels; "
                                                             f"this one is {size[0]} × {size[1]}")
        await self.db.avatars.replace_one({"_id": member["_id"]}, {"_id": member["_id"], "type": content_type,
                                                                  "data": data}, upsert=True)
        await self.db.members.update_one({"_id": member["_id"]}, {"$set": {"avatar_type": content_type}})

    async def avatar(self, member_id):
        oid = object_id(member_id)
        return await self.db.avatars.find_one({"_id": oid}) if oid else None

    async def existing_members(self, member_ids):
        """Those of `member_ids` (24 hex digits each) that are members."""
        known = {member_id for member_id in member_ids if member_id in self.known_members}
        ids = [oid for oid in map(object_id, set(member_ids) - known) if oid is not None]
        found = {str(member["_id"]) async for member in self.db.members.find({"_id": {"$in": ids}}, {"_id": 1})} \
            if ids else set()
        for member_id in known | found:
            self.known_members[member_id] = True
            self.known_members.move_to_end(member_id)
        while len(self.known_members) > KNOWN_MEMBERS_MAX:
            self.known_members.popitem(last=False)
        return known | found

    async def directory(self, query, limit=200):
        """Members whose name or headline contains `query`, by name."""
        where = {}
        if query:
            pattern = re.escape(query.strip()[:80])
            where = {"$or": [{"display_name": {"$regex": pattern, "$options": "i"}},
                             {"headline": {"$regex": pattern, "$options": "i"}}]}
        cursor = self.db.members.find(where).sort("display_name", 1).limit(limit)
        return [public_profile(m) async for m in cursor]
