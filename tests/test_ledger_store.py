"""Booking ledger transactions once on the real database (actors/ledger_store.py): a money
movement written once, its repeat answered as a repeat, another movement under a used key
refused with the stored one attached; alone, in bulk, on the async driver and inside a
database transaction with the writes that go with it."""
import datetime
import secrets

import pymongo
import pytest

from actors import fees, leadership, ledger, ledger_store
from tests.kit.system import run

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
MEMBER, CALLER, CALL = "6a1", "6c2", "5f0c0ffee0ddba11c0ffee01"


@pytest.fixture
def db(database_url):
    database = pymongo.MongoClient(database_url, tz_aware=True)["ls" + secrets.token_hex(4)]
    yield database
    database.client.drop_database(database.name)


def tip(capture_id="TIP1", amount_cents=1000):
    return ledger.tip_transaction(CALL, MEMBER, CALLER, capture_id, amount_cents, fees.breakdown(amount_cents).fee_cents)


def refund(call_pending_cents, refund_id="REFUND1"):
    """A $9.16 refund, split between pending and available by what the call had pending when
    it was computed: the same refund computed at two moments can differ."""
    return ledger.refund_transaction(CALL, MEMBER, CALLER, refund_id, 916, call_pending_cents, "CAP1")


def stored(db, key):
    return ledger.Transaction.from_document(db.ledger.find_one({"_id": key}))


def test_a_transaction_is_booked_once_and_its_repeat_writes_nothing(db):
    assert ledger_store.book(db, tip(), T0) is True
    assert ledger_store.book(db, tip(), T0 + datetime.timedelta(hours=1)) is False
    (document,) = db.ledger.find()
    assert document["at"] == T0 and stored(db, tip().key) == tip()


def test_another_transaction_under_a_used_key_is_refused_with_the_stored_one(db):
    ledger_store.book(db, refund(call_pending_cents=916), T0)
    with pytest.raises(ledger_store.KeyReused) as refused:
        ledger_store.book(db, refund(call_pending_cents=0), T0)
    assert refused.value.code == "key_reused" and isinstance(refused.value, ledger.LedgerError)
    assert refused.value.stored == refund(call_pending_cents=916)
    assert "refund:REFUND1" in str(refused.value)
    assert stored(db, "refund:REFUND1") == refund(call_pending_cents=916) and db.ledger.count_documents({}) == 1


def test_fields_kept_with_a_transaction_are_stored_but_never_compared(db):
    sale = ledger.subscription_transaction(MEMBER, "SALE1", 900, 56)
    assert ledger_store.book(db, sale, T0, fields={"subscription_id": "I-SUB1"}) is True
    assert ledger_store.book(db, sale, T0, fields={"subscription_id": "I-OTHER"}) is False
    assert db.ledger.find_one({"_id": sale.key})["subscription_id"] == "I-SUB1"


def test_a_fenced_off_leader_books_nothing(db):
    old = leadership.take(db, "leader", "127.0.0.1", 19010, 4, now=T0)
    leadership.take(db, "node-1", "127.0.0.1", 19011, 4, now=T0 + datetime.timedelta(seconds=5))
    with pytest.raises(leadership.Fenced):
        ledger_store.book(db, tip(), T0, fence=leadership.Fence(db, old.token))
    with pytest.raises(leadership.Fenced):
        ledger_store.book_all(db, [tip()], T0, fence=leadership.Fence(db, old.token))
    assert db.ledger.count_documents({}) == 0
    current = leadership.Fence(db, leadership.current(db).token)
    assert ledger_store.book(db, tip(), T0, fence=current) is True


def test_many_at_once_each_answered_booked_repeat_or_conflict(db):
    ledger_store.book(db, tip("TIP1"), T0)
    ledger_store.book(db, refund(call_pending_cents=916), T0)
    outcome = ledger_store.book_all(db, [tip("TIP1"), refund(call_pending_cents=0), tip("TIP2"), tip("TIP3")], T0)
    assert outcome == {"capture:TIP1": "repeat", "refund:REFUND1": "conflict", "capture:TIP2": "booked",
                       "capture:TIP3": "booked"}
    assert stored(db, "refund:REFUND1") == refund(call_pending_cents=916)
    assert stored(db, "capture:TIP2") == tip("TIP2") and db.ledger.count_documents({}) == 4
    assert ledger_store.book_all(db, [], T0) == {}


def test_a_replayed_bulk_larger_than_a_lookup_is_all_repeats(db):
    tips = [tip(f"TIP{n}") for n in range(ledger_store.LOOKUP_CHUNK + 5)]
    assert set(ledger_store.book_all(db, tips, T0).values()) == {"booked"}
    assert set(ledger_store.book_all(db, tips, T0).values()) == {"repeat"}
    assert db.ledger.count_documents({}) == len(tips)


def test_the_async_driver_gets_the_same_answers(database_url):
    name = "ls" + secrets.token_hex(4)

    async def scenario():
        client = pymongo.AsyncMongoClient(database_url, tz_aware=True)
        db = client[name]
        try:
            first = await ledger_store.book_async(db, refund(call_pending_cents=916), T0)
            again = await ledger_store.book_async(db, refund(call_pending_cents=916), T0)
            with pytest.raises(ledger_store.KeyReused) as refused:
                await ledger_store.book_async(db, refund(call_pending_cents=0), T0)
            count = await db.ledger.count_documents({})
            return first, again, refused.value.stored, count
        finally:
            await client.drop_database(name)
            await client.close()

    assert run(scenario()) == (True, False, refund(call_pending_cents=916), 1)


def booking_with_its_mail(db, transaction):
    """A booking and the mail it sends, in one database transaction (as the payments adapter)."""
    def body(session):
        if not ledger_store.book(db, transaction, T0, session=session):
            return False
        db.money_mails.insert_one({"_id": f"{transaction.key}:receipt"}, session=session)
        return True
    with db.client.start_session() as session:
        return session.with_transaction(body)


def test_inside_a_database_transaction_a_booking_and_its_writes_are_all_or_nothing(db):
    assert booking_with_its_mail(db, tip()) is True
    assert booking_with_its_mail(db, tip()) is False   # a repeat ends the transaction: no second mail
    with pytest.raises(ledger_store.KeyReused) as refused:
        booking_with_its_mail(db, tip(amount_cents=2000))
    assert refused.value.stored == tip()
    assert db.ledger.count_documents({"_id": tip().key}) == 1
    assert sorted(row["_id"] for row in db.money_mails.find()) == ["capture:TIP1:receipt"]
    # The session's rollback took nothing else with it: the next booking goes through.
    assert booking_with_its_mail(db, tip("TIP2")) is True
