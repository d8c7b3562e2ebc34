"""The followers adapter: remembers when members with followers come and go, and when one is
back after being away, claims the followers due a notice and has their shards tell them
(a `followed_online` frame on their open pages), or mails those with no page open.

An adapter, so the database and SMTP waits never hold a shard's mailbox (README, "How it is
built"); the decisions are rules/follow_rules.py's.
"""
import datetime
import logging

from rules import follow_rules
from actors.adapters import WaitsForDatabase
from actors.messages import MailFollower, MemberCameOnline, MemberWentAway, TellFollowers
from interkanect import mail
from interkanect.db import object_id

log = logging.getLogger(__name__)


def instant(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


class FollowersAdapter(WaitsForDatabase):
    """Collections: `presence_times` {_id: member id, online_since, away_since} and `follows`
    {follower, member, created_at, notified_at, unfollow_token} (written by gateway/follows.py)."""

    def accepts(self, message):
        return isinstance(message, (MemberCameOnline, MemberWentAway, MailFollower))

    def do(self, message, sender):
        if isinstance(message, MemberCameOnline):
            followers = self.came_online(message)
            if followers:
                self.send(sender, TellFollowers(message.member_id, message.name, followers))
        elif isinstance(message, MemberWentAway):
            self.db.presence_times.update_one({"_id": message.member_id},
                                              {"$set": {"away_since": instant(message.at_s)}}, upsert=True)
        else:
            self.mail(message)

    def came_online(self, message):
        """The followers to tell now (each claimed, so told once), or [] if this is no news."""
        before = self.db.presence_times.find_one_and_update(
            {"_id": message.member_id}, {"$set": {"online_since": instant(message.at_s), "away_since": None}},
            upsert=True)
        seen = None if before is None else {
            "away_since_s": before["away_since"].timestamp() if before.get("away_since") else None}
        policy = self.settings.policy
        if not follow_rules.returned_after_away(seen, message.at_s, policy.follow_away_s):
            return []
        return self.claim(message.member_id, message.at_s, policy.follow_notice_interval_s)

    def claim(self, member_id, now_s, interval_s):
        """Each follower whose last notice is old enough, marked as told now in one atomic update
        apiece: a second gateway, node or retry finds them claimed and tells nobody twice."""
        due = {"member": member_id, "$or": [{"notified_at": None}, {"notified_at": {
            "$lte": instant(follow_rules.notice_cutoff_s(now_s, interval_s))}}]}
        claimed = []
        for follow in self.db.follows.find(due, {"_id": 1, "follower": 1}):
            result = self.db.follows.update_one(dict(due, _id=follow["_id"]),
                                                {"$set": {"notified_at": instant(now_s)}})
            if result.modified_count:
                claimed.append(follow["follower"])
        if claimed:
            log.info("member %s is back: %d followers to tell", member_id, len(claimed))
        return claimed

    def mail(self, message):
        follow = self.db.follows.find_one({"follower": message.follower_id, "member": message.member_id})
        follower = self.db.members.find_one({"_id": object_id(message.follower_id)}, {"email": 1})
        if follow is None or follower is None:
            return  # unfollowed meanwhile: nothing to say
        subject, body = follow_rules.online_mail(message.name, message.member_id, follow["unfollow_token"],
                                                 self.settings.url, self.settings.policy.follow_notice_interval_s)
        mail.send_now(self.settings, self.db, follower["email"], subject, body)
