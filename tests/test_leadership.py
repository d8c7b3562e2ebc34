"""The leader's lease in the real database (actors/leadership.py): one holder at a time, a
higher token for each new holder, a deposed leader's renewal refused, and its money writes
fenced off. The failover of a whole convention is in tests/test_multinode.py."""
import datetime
import secrets

import pymongo
import pytest

from actors import leadership
from rules import fees
from rules.ledger import tip_transaction
from actors.payouts import MongoPayoutStore
from actors.refunds import MongoRefundStore

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
LEASE_S = 4


@pytest.fixture
def db(database_url):
    database = pymongo.MongoClient(database_url, tz_aware=True)["l" + secrets.token_hex(4)]
    yield database
    database.client.drop_database(database.name)


def later(seconds):
    return T0 + datetime.timedelta(seconds=seconds)


def test_one_holder_at_a_time_and_each_new_holder_a_higher_token(db):
    first = leadership.take(db, "leader", "127.0.0.1", 19010, LEASE_S, now=T0)
    assert (first.node, first.token, first.admin) == ("leader", 1, ("127.0.0.1", 19010))
    assert leadership.take(db, "node-1", "127.0.0.1", 19011, LEASE_S, now=later(1)) is None  # still held
    renewed = leadership.renew(db, first, LEASE_S, now=later(3))
    assert renewed.expires_at == later(3 + LEASE_S)
    assert leadership.take(db, "node-1", "127.0.0.1", 19011, LEASE_S, now=later(3 + LEASE_S - 0.1)) is None
    # Not renewed for a lease period: the next node takes it, with the next token.
    second = leadership.take(db, "node-1", "127.0.0.1", 19011, LEASE_S, now=later(3 + LEASE_S + 0.1))
    assert (second.node, second.token) == ("node-1", 2)
    assert leadership.current(db) == second
    # The deposed leader comes back: its renewal is refused, it does not lead again.
    assert leadership.renew(db, renewed, LEASE_S, now=later(8)) is None
    assert leadership.current(db).node == "node-1"
    # A node restarting under its own name takes its lease back at once (a restart of one node).
    again = leadership.take(db, "node-1", "127.0.0.1", 19012, LEASE_S, now=later(8))
    assert (again.token, again.admin_port) == (3, 19012)


def test_two_nodes_taking_a_lapsed_lease_at_once_give_it_to_one(db):
    leadership.take(db, "leader", "127.0.0.1", 19010, LEASE_S, now=T0)
    seen = leadership.current(db)
    winner = leadership.take(db, "node-1", "127.0.0.1", 19011, LEASE_S, now=later(10))
    # The other read the same lapsed lease; its conditional write finds the token moved on.
    db.leadership.update_one({"_id": leadership.LEASE_ID}, {"$set": {"expires_at": later(5)}})
    loser_write = db.leadership.update_one({"_id": leadership.LEASE_ID, "token": seen.token}, {"$set": {"node": "x"}})
    assert winner.token == 2 and loser_write.modified_count == 0


def test_a_deposed_leaders_money_writes_are_fenced_off(db):
    old = leadership.take(db, "leader", "127.0.0.1", 19010, LEASE_S, now=T0)
    leadership.take(db, "node-1", "127.0.0.1", 19011, LEASE_S, now=later(LEASE_S + 1))
    stale_payouts = MongoPayoutStore(db, leadership.Fence(db, old.token))
    tip = tip_transaction("call1", "member1", "caller1", "TIP1", 1000, fees.breakdown(1000).fee_cents)
    with pytest.raises(leadership.Fenced):
        stale_payouts.book(tip, T0)
    with pytest.raises(leadership.Fenced):
        stale_payouts.save_plan([{"_id": "payout-x", "state": "intent", "items": []}], set())
    with pytest.raises(leadership.Fenced):
        MongoRefundStore(db, leadership.Fence(db, old.token)).refund_started("r1", 0, "REFUND1", "COMPLETED")
    assert db.ledger.count_documents({}) == 0 and db.payouts.count_documents({}) == 0
    # The leader now holding the lease writes.
    current = MongoPayoutStore(db, leadership.Fence(db, leadership.current(db).token))
    assert current.book(tip, T0) is True and db.ledger.count_documents({}) == 1


def test_singletons_have_a_name_per_lease():
    assert leadership.global_name("interkanect-directory", None) == "interkanect-directory"
    assert leadership.global_name("interkanect-directory", 3) == "interkanect-directory-3"
