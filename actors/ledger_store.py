"""Writing transactions into the ledger collection, each once: the one place that books them.

A transaction's idempotency key is its document's `_id`, so a second insert under a used key
fails instead of applying twice. What that failure means is decided here, the same way for
every caller (all of them actors, with pymongo; the gateway writes no money):
- the stored transaction is this one (same kind, entries, call and capture): a repeat, nothing
  is written and the caller hears False;
- it is another one: `KeyReused`, carrying the stored transaction. A caller for whom the first
  booking legitimately stands (a dispute's freeze computed twice) catches it and says why.
"""
from pymongo.errors import BulkWriteError, DuplicateKeyError

from rules import ledger

BOOKED, REPEAT, CONFLICT = "booked", "repeat", "conflict"
# The server's code for a duplicate key, as a bulk write reports it per document.
DUPLICATE_KEY = 11000
# Stored transactions read back per query: an $in of 10,000 ids took SecantusDB 100 s.
LOOKUP_CHUNK = 100


class KeyReused(ledger.LedgerError):
    """The key is booked with another transaction; nothing was written. `stored` is the one
    booked under it."""

    def __init__(self, transaction, stored):
        super().__init__("key_reused", f"{transaction.key} is booked as {_describe(stored)}, "
                                       f"not as {_describe(transaction)}")
        self.transaction = transaction
        self.stored = stored


def _describe(transaction):
    entries = ", ".join(f"{e.account} {e.amount_cents:+d}" for e in transaction.entries)
    return f"{transaction.kind} ({entries})"


def document(transaction, now, fields=None):
    """The stored shape: the transaction, when it was booked, and what else its caller keeps
    with it (`fields`: read by others, never part of the comparison)."""
    return dict(fields or {}, **transaction.document(), at=now)


def verdict(transaction, stored_document):
    """What a used key means for this transaction: REPEAT (the same one is stored) or CONFLICT."""
    return REPEAT if ledger.Transaction.from_document(stored_document) == transaction else CONFLICT


def _repeat(transaction, stored_document):
    """False for a repeat (the caller's answer); KeyReused for another transaction."""
    if verdict(transaction, stored_document) == CONFLICT:
        raise KeyReused(transaction, ledger.Transaction.from_document(stored_document))
    return False


def book(db, transaction, now, *, session=None, fence=None, fields=None):
    """Book the transaction (blocking): True when written now, False when the same one was
    booked already; KeyReused when another one was.

    `fence` (actors/leadership.py `Fence`) is checked before the write: a singleton whose lease
    moved on books nothing. With `session`, the insert is part of the caller's DB transaction;
    a used key ends that transaction (the server aborts it), so nothing of it is written, and
    the caller's body returns at once, writing nothing more (with_transaction then commits
    nothing and returns the body's answer)."""
    if fence is not None:
        fence.check()
    try:
        db.ledger.insert_one(document(transaction, now, fields), session=session)
        return True
    except DuplicateKeyError:
        if session is not None and session.in_transaction:
            session.abort_transaction()   # over at the server already; with_transaction must not commit
        # Read outside the session: its transaction is over, and the stored one was committed.
        stored = db.ledger.find_one({"_id": transaction.key})
        if stored is None:
            raise   # another unique index refused it, not the key
    return _repeat(transaction, stored)


def book_all(db, transactions, now, *, fence=None):
    """Book many transactions in one round trip (blocking), each once whatever the others do:
    {key: BOOKED | REPEAT | CONFLICT}. Nothing is raised for a conflict: the caller decides
    what each one means (a payout run carries on with the rest)."""
    outcome = {transaction.key: BOOKED for transaction in transactions}
    if not transactions:
        return outcome
    if fence is not None:
        fence.check()
    try:
        db.ledger.insert_many([document(transaction, now) for transaction in transactions], ordered=False)
    except BulkWriteError as failed:
        errors = failed.details["writeErrors"]
        if any(error["code"] != DUPLICATE_KEY for error in errors):
            raise
        refused = [transactions[error["index"]] for error in errors]
        stored = _stored(db, [transaction.key for transaction in refused])
        if any(transaction.key not in stored for transaction in refused):
            raise   # another unique index refused one, not its key
        for transaction in refused:
            outcome[transaction.key] = verdict(transaction, stored[transaction.key])
    return outcome


def _stored(db, keys):
    """{key: stored document} of the keys booked, read in chunks."""
    keys = sorted(set(keys))
    found = {}
    for start in range(0, len(keys), LOOKUP_CHUNK):
        for stored in db.ledger.find({"_id": {"$in": keys[start:start + LOOKUP_CHUNK]}}):
            found[stored["_id"]] = stored
    return found
