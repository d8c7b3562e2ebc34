"""The protocol's two validators agree: a frame the fast compiled check lets through is one
jsonschema accepts too (jsonschema only words the refusals), for every frame type and both
directions, on frames shaped like each schema with values of every kind."""
import pytest
from hypothesis import given, settings, strategies as st

import schemas

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**64) | st.floats(allow_nan=False)
    | st.text(max_size=40) | st.from_regex(r"[0-9a-f]{24}", fullmatch=True) | st.sampled_from(
        ["offer", "answer", "candidate", "host", "caller", "online"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8)


def frames_like(protocol):
    """Maps with a schema's own field names (some left out, some extra) and any values."""
    def shaped(frame_type):
        names = sorted(protocol.schemas[frame_type].get("properties", {}))
        return st.fixed_dictionaries({"type": st.just(frame_type)}, optional={
            **{name: VALUES for name in names if name != "type"}, "extra": VALUES})
    return st.sampled_from(sorted(protocol.schemas)).flatmap(shaped)


def agree(protocol, frame):
    fast_accepts = True
    try:
        protocol.fast[frame["type"]](frame)
    except Exception:
        fast_accepts = False
    slow_accepts = protocol.validators[frame["type"]].is_valid(frame)
    assert fast_accepts == slow_accepts, frame


@settings(max_examples=1500)
@given(frames_like(schemas.CLIENT))
def test_client_frames_are_judged_alike(frame):
    agree(schemas.CLIENT, frame)


@settings(max_examples=500)
@given(frames_like(schemas.SERVER))
def test_server_frames_are_judged_alike(frame):
    agree(schemas.SERVER, frame)


def test_a_good_signal_frame_passes_and_a_bad_one_is_refused_in_words():
    good = {"type": "signal", "id": 1, "call_id": "a" * 24, "kind": "offer", "sdp": "v=0"}
    assert schemas.CLIENT.validate(good) is good
    try:
        schemas.CLIENT.validate(dict(good, kind="shout"))
    except schemas.FrameError as refused:
        assert refused.code == "invalid_value" and "kind" in refused.message and refused.request_id == 1
    else:
        raise AssertionError("a bad kind was let through")


def test_frames_that_crashed_the_gateway_are_refused_with_a_code():
    """Found by scripts/fuzz_ws.py: a non-string type, a 1,000-deep id, a 64 KiB array."""
    for frame, code in (({"type": [], "id": 1}, "unknown_type"), ({"type": {"a": 1}, "id": 2}, "unknown_type")):
        try:
            schemas.CLIENT.validate(frame)
        except schemas.FrameError as refused:
            assert refused.code == code
        else:
            raise AssertionError(f"{frame} was let through")
    deep = None
    for _ in range(1000):
        deep = [deep]
    for frame in ({"type": "ping", "id": deep}, {"type": "watch", "id": 3, "members": [None] * 65_000}):
        try:
            schemas.CLIENT.validate(frame)
        except schemas.FrameError as refused:
            assert refused.code in ("malformed_frame", "wrong_type", "invalid_value")
            assert len(refused.message) <= schemas.MESSAGE_MAX_CHARS
        else:
            raise AssertionError("let through")


def test_a_whole_number_sent_as_a_float_goes_on_as_an_int_and_a_fraction_is_refused():
    """msgpack keeps 500.0 a float and JSON Schema's integer takes it: money must not stay a
    float past the socket (it would reach PayPal as "5.0.00")."""
    frame = schemas.CLIENT.validate({"type": "tip", "id": 1, "call_id": "a" * 24, "amount_cents": 500.0})
    assert frame["amount_cents"] == 500 and type(frame["amount_cents"]) is int
    proposed = schemas.CLIENT.validate({"type": "propose", "id": 2, "call_id": "a" * 24, "price_cents": 1500.0,
                                        "length_s": 600.0})
    assert [type(proposed[k]) for k in ("price_cents", "length_s")] == [int, int]
    with pytest.raises(schemas.FrameError) as refused:
        schemas.CLIENT.validate({"type": "tip", "id": 3, "call_id": "a" * 24, "amount_cents": 500.5})
    assert refused.value.code == "wrong_type"


def test_every_frame_builder_makes_a_frame_of_the_protocol():
    from rules import frames
    built = [frames.error(7, "no_such_call", "you take part in no call with this id"),
             frames.error(True, "x", "a boolean is no request id"), frames.error(None, "unavailable", "later"),
             frames.hello("5f0c0ffee0ddba11c0ffee01", "online"), frames.pong(3),
             frames.presence("5f0c0ffee0ddba11c0ffee01", "in_call"),
             frames.followed_online("5f0c0ffee0ddba11c0ffee01", "Ada"),
             frames.incoming_call("5f0c0ffee0ddba11c0ffee01", "5f0c0ffee0ddba11c0ffee02", "Carl", 1_796_000_000_000),
             frames.ring_stopped("5f0c0ffee0ddba11c0ffee01", "answered")]
    for frame in built:
        schemas.SERVER.validate(frame)
    assert built[1]["id"] is None
