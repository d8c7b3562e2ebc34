"""The call record's chain and signature, without I/O: a record verifies; any change to any
entry, the facts, the order or the signature is found and said."""
import copy
import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings, strategies as st

from actors import evidence

UTC = datetime.timezone.utc
KEY = Ed25519PrivateKey.generate()
CALL = {"_id": "c" * 24, "host_id": "h", "host_name": "Hana", "caller_id": "k", "caller_name": "Carl",
        "state": "ended", "end_reason": "hung_up", "created_at": datetime.datetime(2026, 12, 4, 10, tzinfo=UTC),
        "ended_at": datetime.datetime(2026, 12, 4, 10, 20, tzinfo=UTC),
        "payments": [{"round": 1, "capture_id": "CAP1", "amount_cents": 1500, "fee_cents": 101}],
        "log": [{"at_s": 0.0, "event": "ringing"}, {"at_s": 2.5, "event": "answered"},
                {"at_s": 60.0, "event": "proposed", "price_cents": 1500, "length_s": 600},
                {"at_s": 95.0, "event": "payment_captured", "round": 1, "amount_cents": 1500},
                {"at_s": 700.0, "event": "ended", "reason": "hung_up"}]}


def test_a_record_verifies_and_each_entry_carries_the_hash_before_it():
    record = evidence.record(CALL, KEY, "k1")
    assert evidence.verify(record, KEY.public_key()) == (True, "intact and signed by interKanect")
    links = record["links"]
    assert links[0]["prev"] == evidence.GENESIS and links[0]["facts"]["payments"][0]["capture_id"] == "CAP1"
    assert [link["prev"] for link in links[1:]] == [link["hash"] for link in links[:-1]]
    assert record["head"] == links[-1]["hash"] and len(links) == 1 + len(CALL["log"])
    assert evidence.record(CALL, KEY, "k1")["head"] == record["head"]   # the same call, the same head


@settings(max_examples=200, deadline=None)
@given(index=st.integers(0, len(CALL["log"])), value=st.one_of(st.integers(), st.text(max_size=5), st.none()))
def test_any_change_to_any_entry_is_found(index, value):
    record = evidence.record(CALL, KEY, "k1")
    edited = copy.deepcopy(record)
    entry = edited["links"][index]
    field = sorted(k for k in entry if k not in ("prev", "hash"))[0]
    if entry[field] == value:
        value = "changed"
    entry[field] = value
    ok, why = evidence.verify(edited, KEY.public_key())
    assert not ok and f"entry {index} was changed" in why


def test_removed_reordered_or_resigned_records_are_refused_in_words():
    record = evidence.record(CALL, KEY, "k1")
    dropped = copy.deepcopy(record)
    del dropped["links"][2]
    assert evidence.verify(dropped, KEY.public_key()) == (False, "entry 2 does not follow the one before it")
    cut = copy.deepcopy(record)
    cut["links"] = cut["links"][:-1]   # the last entry taken away: the signed head is not its end
    assert evidence.verify(cut, KEY.public_key()) == (False, "the head is not the last entry's hash")
    forged = evidence.record(dict(CALL, log=CALL["log"][:-1]), Ed25519PrivateKey.generate(), "k2")
    assert evidence.verify(forged, KEY.public_key()) == (False, "the signature is not interKanect's for this record")
    assert evidence.verify({"format": "other"}, KEY.public_key())[0] is False
    assert evidence.verify([], KEY.public_key())[0] is False


def test_a_record_read_and_written_again_by_javascript_still_verifies():
    """JSON.stringify writes 600.0 as 600: the page's check re-sends what it parsed."""
    import json
    record = evidence.record(dict(CALL, paid_s=600.0, used_s=95.0), KEY, "k1")
    as_javascript = json.loads(json.dumps(record).replace(".0,", ",").replace(".0}", "}"))
    assert evidence.verify(as_javascript, KEY.public_key())[0]
