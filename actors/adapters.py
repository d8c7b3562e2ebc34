"""I/O adapters: actors that do the blocking work (database writes, mail) so that member
and call actors never block their mailbox. Each runs in its own process."""
import logging

import pymongo
from thespian.actors import Actor

from actors.messages import CallLoaded, CallSaved, LoadCall, SaveCall, SendMail
from interkanect import mail
from interkanect.db import object_id

log = logging.getLogger(__name__)


class Configured:
    """Sent once by the directory: the settings an adapter needs."""

    def __init__(self, settings):
        self.settings = settings


class CallStore(Actor):
    """Writes call documents (newest version wins) and reads them back for a restart."""

    def __init__(self):
        super().__init__()
        self.db = None

    def receiveMessage(self, message, sender):
        if isinstance(message, Configured):
            s = message.settings
            self.db = pymongo.MongoClient(s.database_url, tz_aware=True, serverSelectionTimeoutMS=5000)[s.db_name]
        elif isinstance(message, SaveCall):
            self.save(message)
            self.send(sender, CallSaved(message.call_id, message.version))
        elif isinstance(message, LoadCall):
            self.send(sender, CallLoaded(message.call_id, self.db.calls.find_one({"_id": message.call_id})))

    def save(self, message):
        document = dict(message.document, version=message.version)
        try:
            # Only a newer version replaces what is stored: a late retry cannot roll a call back.
            self.db.calls.replace_one({"_id": message.call_id, "version": {"$lt": message.version}}, document,
                                      upsert=True)
        except pymongo.errors.DuplicateKeyError:
            pass  # a newer version is stored already


class Mailer(Actor):
    """Sends mail to a member by id: over SMTP when configured, else into the outbox."""

    def __init__(self):
        super().__init__()
        self.settings = None
        self.db = None

    def receiveMessage(self, message, sender):
        if isinstance(message, Configured):
            self.settings = message.settings
            s = self.settings
            self.db = pymongo.MongoClient(s.database_url, tz_aware=True, serverSelectionTimeoutMS=5000)[s.db_name]
        elif isinstance(message, SendMail):
            member = self.db.members.find_one({"_id": object_id(message.member_id)})
            if member is None:
                log.warning("no member %s to mail %r to", message.member_id, message.subject)
                return
            mail.send_now(self.settings, self.db, member["email"], message.subject, message.body)
