"""Following a member: follow and unfollow from their page, how many follow them, and the
one-click unfollow link of the mails that say they are back (actors/followers.py).

A follow is a `follows` document {follower, member, created_at, notified_at, unfollow_token},
one per pair (a unique index); the member document's `followers` count moves with each one
created or deleted, so their page and their shard (Open's profile) read it with the member.
"""
import html
import secrets

import pymongo

from rules import follow_rules
from gateway.accounts import ClientError, now, public_profile
from gateway.http import PAGE_SECURITY_HEADERS, BaseHandler
from interkanect.db import object_id

# An unfollow link's token: random, 32 characters of URL-safe base64 (192 bits).
UNFOLLOW_TOKEN_BYTES = 24


class Follows:
    def __init__(self, db, member_changed):
        self.db = db
        self.member_changed = member_changed  # the member's live shard hears their new count

    async def follow(self, follower, member):
        """`follower` (a member document) follows `member`; following twice is following."""
        follower_id, member_id = str(follower["_id"]), str(member["_id"])
        if follower_id == member_id:
            raise ClientError(400, "self_follow", "you cannot follow yourself")
        try:
            await self.db.follows.insert_one({"follower": follower_id, "member": member_id, "created_at": now(),
                                              "notified_at": None,
                                              "unfollow_token": secrets.token_urlsafe(UNFOLLOW_TOKEN_BYTES)})
        except pymongo.errors.DuplicateKeyError:
            return member  # followed already: the count is right as it is
        return await self._count(member_id, +1)

    async def unfollow(self, follower, member):
        member_id = str(member["_id"])
        result = await self.db.follows.delete_one({"follower": str(follower["_id"]), "member": member_id})
        return await self._count(member_id, -1) if result.deleted_count else member

    async def unfollow_by_token(self, token):
        """The member the follow of this unfollow link was of, now unfollowed; None for an unknown link."""
        follow = await self.db.follows.find_one_and_delete({"unfollow_token": token})
        if follow is None:
            return None
        return await self._count(follow["member"], -1)

    async def following(self, follower, member):
        return await self.db.follows.find_one({"follower": str(follower["_id"]), "member": str(member["_id"])},
                                              {"_id": 1}) is not None

    async def _count(self, member_id, step):
        """The member document after its count moved by `step` (a follow made or ended)."""
        member = await self.db.members.find_one_and_update(
            {"_id": object_id(member_id)}, {"$inc": {"followers": step}}, return_document=pymongo.ReturnDocument.AFTER)
        self.member_changed(member)
        return member


def follower_count(member):
    return max(0, member.get("followers", 0))


class MemberHandler(BaseHandler):
    """GET /api/members/<id>: the public profile, how many follow them, and for a logged-in
    viewer whether they do."""

    async def get(self, member_id):
        member = await self.app.accounts.member(member_id)
        if member is None:
            raise ClientError(404, "no_such_member", "no member has this id")
        view = dict(public_profile(member), followers=follower_count(member))
        if self.member is not None:
            view["following"] = await self.app.follows.following(self.member, member)
        self.send_json({"member": view})


class FollowHandler(BaseHandler):
    """POST (follow) and DELETE (unfollow) /api/members/<id>/follow; both answer
    {"followers", "following"}, and doing either twice is doing it once."""

    async def post(self, member_id):
        follower, member = await self._both(member_id)
        member = await self.app.follows.follow(follower, member)
        self.send_json({"followers": follower_count(member), "following": True})

    async def delete(self, member_id):
        follower, member = await self._both(member_id)
        member = await self.app.follows.unfollow(follower, member)
        self.send_json({"followers": follower_count(member), "following": False})

    async def _both(self, member_id):
        follower = self.require_member()
        member = await self.app.accounts.member(member_id)
        if member is None:
            raise ClientError(404, "no_such_member", "no member has this id")
        return follower, member


class UnfollowLinkHandler(BaseHandler):
    """GET /unfollow/<token>, a mail's one-click unfollow: no log-in (the link is the key), a
    small page saying what happened with a link to the member; an unknown link changes nothing."""

    async def get(self, token):
        member = await self.app.follows.unfollow_by_token(token)
        if member is None:
            self.set_status(404)
            self._page("This unfollow link is not valid",
                       "It may have been used already, or copied only in part. Nothing was changed.",
                       "/", "Browse the directory")
            return
        name = member["display_name"]
        self._page(f"You no longer follow {name}", f"We will not tell you when {name} comes online.",
                   follow_rules.member_url("/", member["_id"]), f"{name}’s page (follow again there)")

    def _page(self, title, text, href, link_text):
        for name, value in PAGE_SECURITY_HEADERS.items():
            self.set_header(name, value)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        e = html.escape
        self.finish(UNFOLLOW_PAGE.format(title=e(title), text=e(text), href=e(href), link=e(link_text)))


UNFOLLOW_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · interKanect</title>
<link rel="icon" href="/static/img/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/css/app.css">
</head>
<body class="page-unfollow" data-ready="true">
<header class="site-header">
  <div class="site-header__inner">
    <a class="brand" href="/" aria-label="interKanect home">inter<span class="brand__k">K</span>anect</a>
  </div>
</header>
<main id="main" class="page">
  <div class="card">
    <h1 id="unfollow-title">{title}</h1>
    <p id="unfollow-text">{text}</p>
    <p><a id="unfollow-back" href="{href}">{link}</a></p>
  </div>
</main>
</body>
</html>
"""
