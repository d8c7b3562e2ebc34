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

import argon2
import pymongo
from bson import ObjectId

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
    return value.strip()


def image_type(data):
    for signature, content_type in IMAGE_SIGNATURES.items():
        if data.startswith(signature):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


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
    return {"name": public["display_name"], "tier": public["tier"], "can_charge": public["can_charge"]}


def own_profile(member):
    return dict(public_profile(member), email=member["email"],
                payout_email=member.get("payout_email", ""), operator=bool(member.get("operator")),
                subscription=subscription_view(member))


class Accounts:
    def __init__(self, db, policy, mailer, base_url):
        self.db = db
        self.policy = policy
        self.mailer = mailer
        self.base_url = base_url
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

    async def sign_up(self, email, password, display_name):
        member = {"email": normal_email(email), "password_hash": await self._hash(check_password(password)),
                  "display_name": check_text("display_name", display_name), "headline": "", "bio": "",
                  "payout_email": "", "tier": "free", "created_at": now()}
        try:
            result = await self.db.members.insert_one(member)
        except pymongo.errors.DuplicateKeyError:
            raise ClientError(409, "email_taken", "an account with this email exists; log in or reset the password")
        member["_id"] = result.inserted_id
        return member

    async def _throttled(self, keys):
        since = now() - datetime.timedelta(seconds=self.policy.login_window_s)
        limits = {"account": self.policy.login_failures_per_account,
                  "address": self.policy.login_failures_per_address}
        for kind, key in keys:
            if await self.db.login_failures.count_documents({"key": key, "at": {"$gt": since}}) >= limits[kind]:
                return True
        return False

    async def log_in(self, email, password, address):
        email = normal_email(email)
        keys = [("account", "account:" + email), ("address", "address:" + address)]
        if await self._throttled(keys):
            raise ClientError(429, "too_many_attempts", "too many failed log-ins; wait a few minutes or reset the password",
                              retry_after_s=int(self.policy.login_window_s))
        member = await self.db.members.find_one({"email": email})
        password = password if isinstance(password, str) else ""
        if not await self._verify(member["password_hash"] if member else _DUMMY_HASH, password[:PASSWORD_MAX_CHARS]) \
                or member is None:
            await self.db.login_failures.insert_many([{"key": key, "at": now()} for _, key in keys])
            raise ClientError(401, "bad_credentials", "wrong email or password")
        await self.db.login_failures.delete_many({"key": keys[0][1]})
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

    async def request_reset(self, email):
        """Email a one-time reset link if the account exists; say nothing either way."""
        member = await self.db.members.find_one({"email": normal_email(email)})
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
        await self.db.login_failures.delete_many({"key": "account:" + (await self.member(claimed["member_id"]))["email"]})

    async def member(self, member_id):
        oid = member_id if isinstance(member_id, ObjectId) else object_id(member_id)
        return await self.db.members.find_one({"_id": oid}) if oid else None

    async def update_profile(self, member, changes):
        if not isinstance(changes, dict) or not changes:
            raise ClientError(400, "invalid_body", "send a JSON object of the fields to change")
        allowed = set(PROFILE_LIMITS) | {"payout_email"}
        unknown = set(changes) - allowed
        if unknown:
            raise ClientError(400, "unknown_field", f"cannot change: {', '.join(sorted(unknown))}")
        update = {}
        for field, value in changes.items():
            if field == "payout_email":
                update[field] = normal_email(value, "payout_email") if value else ""
            else:
                update[field] = check_text(field, value)
        return await self.db.members.find_one_and_update(
            {"_id": member["_id"]}, {"$set": update}, return_document=pymongo.ReturnDocument.AFTER)

    async def set_avatar(self, member, data):
        if len(data) > self.policy.avatar_max_bytes:
            raise ClientError(413, "avatar_too_large", f"an avatar is at most {self.policy.avatar_max_bytes // 1024} KiB")
        content_type = image_type(data)
        if content_type is None:
            raise ClientError(415, "avatar_type", "an avatar is a PNG, JPEG, GIF or WebP image")
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
