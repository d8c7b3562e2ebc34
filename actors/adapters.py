"""I/O adapters: actors that do the blocking work (database writes, mail) so that member
and call actors never block their mailbox. Each runs in its own process.

While the database does not answer (a restart, a primary stepping down) their work waits
here, in arrival order, and is tried again every `DATABASE_RETRY_S`: nothing is dropped,
and a call session hears `CallSaved` only once its change is really stored (it acts after).
"""
import datetime
import itertools
import logging
import os
import socket

import pymongo
from bson import Binary
from thespian.actors import Actor, WakeupMessage

from rules import receipts
from actors.messages import (CallLoaded, CallSaved, CallsSaved, LoadCall, MailCallRecord, SaveCall, SaveCalls,
                             SavePlacement, SendMail)
from interkanect import logs, mail
from interkanect.db import object_id

log = logging.getLogger(__name__)

# A bulk write of call saves stays well under MongoDB's 16 MB message and each piece's wait short.
SAVES_PER_WRITE = 500
DUPLICATE_KEY = 11000

# Short enough that a call resumes about a second after its database is back; each try
# while it is down costs serverSelectionTimeoutMS (5 s) of this adapter's time anyway.
DATABASE_RETRY_S = 1.0


class Configured:
    """Sent once by the directory: the settings an adapter needs."""

    def __init__(self, settings):
        self.settings = settings


def say_where_running(db, adapter):
    """Which process runs this adapter (`platform`, `_id: adapter:<class>`): for operators
    reading the logs (docs/operating.md) and for the tests that kill it."""
    db.platform.update_one({"_id": f"adapter:{type(adapter).__name__}"}, {"$set": {
        "pid": os.getpid(), "host": socket.gethostname(),
        "started_at": datetime.datetime.now(datetime.timezone.utc)}}, upsert=True)


class WaitsForDatabase(Actor):
    """An adapter whose work survives the database going away: each piece of work is kept,
    in order, until it is done; the first one that finds the database down stops the round
    and a wakeup starts the next. A newer piece of work under the same key replaces an older
    one not yet done (the newest version of a call is all that needs writing)."""

    def __init__(self):
        super().__init__()
        self.settings = None
        self.db = None
        self.work = {}              # key → (message, sender), oldest first
        self.waiting = False        # the database was down: the next round starts at the wakeup
        self.keys = itertools.count()

    def receiveMessage(self, message, sender):
        if isinstance(message, Configured):
            self.settings = message.settings
            s = self.settings
            logs.straight_to_stderr(s.log_level, log)
            self.db = pymongo.MongoClient(s.database_url, tz_aware=True, serverSelectionTimeoutMS=5000)[s.db_name]
            try:
                say_where_running(self.db, self)
            except pymongo.errors.PyMongoError as error:  # only a note for people: never worth waiting for
                log.warning("%s could not say where it runs: %s", type(self).__name__, error)
            self.run()
        elif isinstance(message, WakeupMessage) and message.payload == "retry":
            self.waiting = False
            self.run()
        elif self.accepts(message):
            for piece in self.pieces(message):
                key = self.key(piece, sender)
                kept = self.work.get(key)
                if kept is None or self.newer(piece, kept[0]):
                    self.work[key] = (piece, sender)
            if not self.waiting:
                self.run()

    def run(self):
        """Do the work in order until it is all done or the database does not answer."""
        while self.work and self.db is not None:
            keys = self.together()
            try:
                if len(keys) == 1:
                    self.do(*self.work[keys[0]])
                else:
                    self.do_together([self.work[key] for key in keys])
            except pymongo.errors.ConnectionFailure as error:  # down, restarting, no primary: wait
                log.warning("%s: the database does not answer (%s); %d pieces of work wait, next try in %.0f s",
                            type(self).__name__, type(error).__name__, len(self.work), DATABASE_RETRY_S)
                self.waiting = True
                self.wakeupAfter(DATABASE_RETRY_S, payload="retry")
                return
            except Exception:
                # A fault of this piece of work, not of the database: it would block all the rest.
                log.exception("%s could not do %r; dropped", type(self).__name__, [self.work[k][0] for k in keys])
            for key in keys:  # done (or dropped); nothing newer can have come meanwhile: one mailbox
                del self.work[key]

    def pieces(self, message):
        """The pieces of work a message brings (a batch brings several)."""
        return [message]

    def together(self):
        """The keys of the work done next, at once: the first piece alone unless `do_together`
        can do it with those after it."""
        return [next(iter(self.work))]

    def do_together(self, pieces):
        raise NotImplementedError

    def accepts(self, message):
        raise NotImplementedError

    def key(self, message, sender):
        return next(self.keys)

    def newer(self, message, kept):
        return True

    def do(self, message, sender):
        raise NotImplementedError


class CallStore(WaitsForDatabase):
    """Writes call documents (newest version wins) and reads them back for a restart. The saves
    waiting in a row (a shard's SaveCalls) go in one bulk write."""

    def accepts(self, message):
        return isinstance(message, (SaveCall, SaveCalls, LoadCall, SavePlacement))

    def pieces(self, message):
        return message.saves if isinstance(message, SaveCalls) else [message]

    def together(self):
        keys = []
        for key, (message, _) in self.work.items():
            if not isinstance(message, SaveCall) or len(keys) == SAVES_PER_WRITE:
                break
            keys.append(key)
        return keys or [next(iter(self.work))]

    def do_together(self, pieces):
        """Saves in one bulk write; each sender hears of its calls in one CallsSaved."""
        stored = {id(message) for message in write_saves(self.db, [message for message, _ in pieces])}
        saved = {}
        for message, sender in pieces:
            if id(message) in stored:
                saved.setdefault(str(sender), (sender, []))[1].append(CallSaved(message.call_id, message.version))
        for sender, answers in saved.values():
            self.send(sender, answers[0] if len(answers) == 1 else CallsSaved(answers))

    def key(self, message, sender):
        if isinstance(message, SaveCall):  # one session's versions only grow: keep its newest
            return ("save", message.call_id, str(sender))
        if isinstance(message, SavePlacement):  # only the latest placement matters
            return "placement"
        return next(self.keys)

    def newer(self, message, kept):
        if isinstance(message, SavePlacement):
            return True  # the directory sends its placements in order
        return message.version > kept.version

    def do(self, message, sender):
        if isinstance(message, SavePlacement):
            self.save_placement(message)
        elif isinstance(message, SaveCall):
            if write_saves(self.db, [message]):
                self.send(sender, CallSaved(message.call_id, message.version))
        else:
            self.send(sender, CallLoaded(message.call_id, self.db.calls.find_one({"_id": message.call_id})))

    def save_placement(self, message):
        """The shards' addresses and nodes (actors/leadership.py), unless a directory under a
        newer lease stored its own."""
        fields = {"token": message.token or 0, "shards": [Binary(address) for address in message.shards],
                  "placement": message.placement, "leader": message.leader,
                  "at": datetime.datetime.now(datetime.timezone.utc)}
        try:
            self.db.deployment.update_one({"_id": "placement", "token": {"$lte": fields["token"]}}, {"$set": fields},
                                          upsert=True)
        except pymongo.errors.DuplicateKeyError:
            log.warning("a directory under a newer lease placed the shards; this placement is not stored")


def save_request(message):
    """(filter, document): only a newer version replaces what is stored, so a late retry
    cannot roll a call back."""
    return ({"_id": message.call_id, "version": {"$lt": message.version}},
            dict(message.document, version=message.version))


def write_saves(db, saves):
    """Write call saves (SaveCall) in one bulk write; returns those stored (or found stored in
    this version or a newer one). Raises pymongo's ConnectionFailure if the database did not
    answer. The call store and a shard's call writer (actors/call_writer.py) both write so."""
    requests = [pymongo.ReplaceOne(*save_request(save), upsert=True) for save in saves]
    failed = set()
    try:
        db.calls.bulk_write(requests, ordered=False)
    except pymongo.errors.BulkWriteError as error:
        for write_error in error.details["writeErrors"]:
            if write_error["code"] != DUPLICATE_KEY:  # a duplicate: this version or a newer one is stored
                failed.add(write_error["index"])
                log.error("call %s could not be stored: %s", saves[write_error["index"]].call_id,
                          write_error.get("errmsg"))
    return [save for index, save in enumerate(saves) if index not in failed]


class Mailer(WaitsForDatabase):
    """Sends mail to a member by id: over SMTP when configured, else into the outbox."""

    def accepts(self, message):
        return isinstance(message, (SendMail, MailCallRecord))

    def do(self, message, sender):
        if isinstance(message, MailCallRecord):
            self.mail_call_record(message.call_id)
            return
        member = self.db.members.find_one({"_id": object_id(message.member_id)})
        if member is None:
            log.warning("no member %s to mail %r to", message.member_id, message.subject)
            return
        mail.send_now(self.settings, self.db, member["email"], message.subject, message.body)

    def mail_call_record(self, call_id):
        """Both sides of an ended paid call get its record's head, once (a restored session
        ending the call again finds the call in `record_mails` and mails nobody)."""
        from actors import evidence  # here: cryptography stays out of the processes forked from ours
        call = self.db.calls.find_one({"_id": call_id}, {"rules": 0})
        if call is None or call.get("state") != "ended" or not call.get("payments"):
            return
        try:
            self.db.record_mails.insert_one({"_id": call_id, "at": datetime.datetime.now(datetime.timezone.utc)})
        except pymongo.errors.DuplicateKeyError:
            return
        links = evidence.chain(call)
        for role, other in (("caller", "host"), ("host", "caller")):
            member = self.db.members.find_one({"_id": object_id(call[role + "_id"])}, {"email": 1})
            if member is not None:
                mail.send_now(self.settings, self.db, member["email"], *receipts.call_record_mail(
                    call[other + "_name"], call_id, role, links[-1]["hash"], len(links), call["ended_at"],
                    self.settings.url))
