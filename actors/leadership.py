"""Which actor node leads the convention: a lease in the database, so the leader can die.

The leader runs the member directory and the singletons (payout scheduler, refunds actor,
adapters). It holds the `leadership` document {_id: "leader", node, host, admin_port, token,
expires_at} and renews it every `leader_lease_s / 3`; a lease not renewed for `leader_lease_s`
is free, and the first node to take it (one atomic update, conditional on the token it saw)
gets a token one higher: the fencing token. The new leader makes its own actor system the
convention's leader, starts a directory that adopts the surviving shards and restarts the lost
ones, and the other nodes join it; gateways are told by the shards. A leader that finds its
lease taken stops at once (it was cut off long enough for another to lead); money writes of the
singletons check the token they were started with before each write (`Fence`).

Measured and chosen (README, "Decisions"): Thespian's multi-leader conventions are beta and
not for production; changing the "Convention Address" capability of a live admin moves it to
another leader (tested with a SIGKILLed leader: the survivors re-form in one lease period).
"""
import dataclasses
import datetime
import logging

import pymongo

log = logging.getLogger(__name__)

LEASE_ID = "leader"


class Fenced(Exception):
    """This node's lease was taken by another: a money write from here could race theirs."""


@dataclasses.dataclass(frozen=True)
class Lease:
    node: str
    host: str
    admin_port: int
    token: int
    expires_at: datetime.datetime

    @classmethod
    def of(cls, document):
        if document is None:
            return None
        return cls(document["node"], document["host"], document["admin_port"], document["token"],
                   document["expires_at"])

    @property
    def admin(self):
        return self.host, self.admin_port


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def current(db):
    return Lease.of(db.leadership.find_one({"_id": LEASE_ID}))


def take(db, node, host, admin_port, lease_s, now=None):
    """The lease for `node` if it is free (never taken, expired, or already this node's), with
    a token one higher than the last; None if another node holds it."""
    now = now or _now()
    seen = current(db)
    if seen is not None and seen.node != node and seen.expires_at > now:
        return None
    fields = {"node": node, "host": host, "admin_port": admin_port, "expires_at": now + datetime.timedelta(seconds=lease_s),
              "token": (seen.token if seen else 0) + 1, "taken_at": now}
    try:
        if seen is None:
            db.leadership.insert_one(dict(fields, _id=LEASE_ID))
        elif db.leadership.update_one({"_id": LEASE_ID, "token": seen.token}, {"$set": fields}).modified_count == 0:
            return None  # another node took it between our read and our write
    except pymongo.errors.DuplicateKeyError:
        return None      # another node took the very first lease at the same moment
    return Lease.of(fields)


def renew(db, lease, lease_s, now=None):
    """The lease renewed, or None if it is no longer this node's (its token moved on)."""
    now = now or _now()
    expires_at = now + datetime.timedelta(seconds=lease_s)
    if db.leadership.update_one({"_id": LEASE_ID, "token": lease.token, "node": lease.node},
                                {"$set": {"expires_at": expires_at}}).modified_count == 0:
        return None
    return dataclasses.replace(lease, expires_at=expires_at)


def release(db, lease):
    """A leader stopping cleanly lets its lease lapse now: the next node leads at once."""
    db.leadership.update_one({"_id": LEASE_ID, "token": lease.token, "node": lease.node},
                             {"$set": {"expires_at": _now()}})


class Fence:
    """Checks, before a money write, that the lease this actor was started under still stands."""

    def __init__(self, db, token):
        self.db, self.token = db, token

    def check(self):
        if self.token is None:
            return  # a single node started without a lease (tests of one actor)
        seen = current(self.db)
        if seen is None or seen.token != self.token:
            raise Fenced(f"the lease moved on (token {seen.token if seen else None}, ours {self.token}); "
                         "another node leads now")


def global_name(base, token):
    """The global name of a leader's singleton (directory, payout scheduler, refunds actor)
    under lease `token`. A name per lease, because a Thespian admin that forwarded a lookup to a
    leader that died keeps that lookup pending forever: the next leader's actors must have names
    nobody asked for before (found by reading the lease: `current(db).token`)."""
    return base if token is None else f"{base}-{token}"


def current_token(settings):
    """The lease's token as the database has it now (None: no lease yet), for processes outside
    the node (the CLI) that look a singleton up by its global name."""
    db = pymongo.MongoClient(settings.database_url, tz_aware=True, serverSelectionTimeoutMS=5000)[settings.db_name]
    lease = current(db)
    return lease.token if lease else None
