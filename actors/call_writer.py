"""A shard's call saves, written by a thread of the shard's own process: a call's change is
stored before its effects, and the way to the database is the wait every accept, ring and
hang-up pays, so it takes no actor hop (README "Decisions": a save went shard → call store →
database → call store → shard, two Thespian hops of ~0.5–1 ms each around a ~1–2 ms write).

The shard hands each message's saves over (`save`) and goes on; the thread writes them, in
order, one bulk write for all that waited (actors/adapters.write_saves, which the call store
uses too), and says which are stored through a socket pair the shard's Thespian select loop
watches beside its streams. While the database does not answer, the saves wait here and are
tried again every DATABASE_RETRY_S, as in the call store: nothing is dropped, and a session
hears `CallSaved` only once its change is really stored. A newer save of a call replaces an
older one still waiting (the newest version is all that needs writing).
"""
import logging
import socket
import threading
from collections import deque

import pymongo

from actors.adapters import DATABASE_RETRY_S, SAVES_PER_WRITE, write_saves
from actors.messages import CallSaved

log = logging.getLogger(__name__)


class CallWriter:
    def __init__(self, settings):
        self.settings = settings
        self.lock = threading.Lock()
        self.waiting = {}          # call_id → its newest SaveCall not written yet, oldest call first
        self.stored = deque()      # CallSaved, for the shard to take (`take`)
        self.work = threading.Event()
        self.stopping = False
        # The thread writes a byte when something is stored; the shard's select loop watches
        # `fileno()` and then calls `take`.
        self.wake_out, self.wake_in = socket.socketpair()
        self.wake_out.setblocking(False)
        self.wake_in.setblocking(False)
        self.signalled = False
        threading.Thread(target=self.run, name="call-writer", daemon=True).start()

    def fileno(self):
        return self.wake_out.fileno()

    def save(self, saves):
        """SaveCalls to write, after those handed over before them."""
        with self.lock:
            for save in saves:
                kept = self.waiting.get(save.call_id)
                if kept is None or save.version > kept.version:
                    self.waiting[save.call_id] = save
        self.work.set()

    def take(self):
        """The saves stored since the last call (CallSaved), oldest first."""
        try:
            while self.wake_out.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        with self.lock:
            self.signalled = False
            stored, self.stored = list(self.stored), deque()
        return stored

    def close(self):
        self.stopping = True
        self.work.set()
        for sock in (self.wake_out, self.wake_in):
            sock.close()

    # The thread ------------------------------------------------------------------------

    def run(self):
        s = self.settings
        db = pymongo.MongoClient(s.database_url, tz_aware=True, serverSelectionTimeoutMS=5000)[s.db_name]
        while not self.stopping:
            self.work.wait()
            self.work.clear()
            while not self.stopping and self.write_some(db):
                pass

    def write_some(self, db):
        """Write what waits (up to SAVES_PER_WRITE); True if more may wait."""
        with self.lock:
            saves = [self.waiting[call_id] for call_id in list(self.waiting)[:SAVES_PER_WRITE]]
        if not saves:
            return False
        try:
            stored = write_saves(db, saves)
        except pymongo.errors.ConnectionFailure as error:  # down, restarting, no primary: wait
            log.warning("call writer: the database does not answer (%s); %d calls' saves wait, next try in %.0f s",
                        type(error).__name__, len(self.waiting), DATABASE_RETRY_S)
            self.work.wait(DATABASE_RETRY_S)
            return True
        except Exception:
            # A fault of these saves, not of the database: it would block all the rest.
            log.exception("call writer could not write %d saves; dropped", len(saves))
            stored = []
        with self.lock:
            for save in saves:
                if self.waiting.get(save.call_id) is save:  # else a newer save came meanwhile: it waits
                    del self.waiting[save.call_id]
            self.stored.extend(CallSaved(save.call_id, save.version) for save in stored)
            signal = stored and not self.signalled
            self.signalled = self.signalled or bool(stored)
        if signal:
            try:
                self.wake_in.send(b"!")
            except OSError:  # closed: the shard is stopping
                pass
        return True
