"""The attempt counter behind the log-in, sign-up and reset limits (gateway/throttle.py), on the
real database with the time given: the window slides, so no burst gets twice the limit through
around a boundary, and a refusal says how long until an attempt fits again."""
import datetime
import secrets

import pymongo
import pytest

from gateway.throttle import Throttle, window_of
from tests.kit.system import run

WINDOW_S = 60
LIMIT = 3


@pytest.fixture
def throttle(database_url):
    client = pymongo.AsyncMongoClient(database_url, tz_aware=True)
    yield Throttle(client["th" + secrets.token_hex(4)].throttle)


def boundary():
    """The end of the window the present is in: the instants tested are around it."""
    return window_of(datetime.datetime.now(datetime.timezone.utc), WINDOW_S)[1]


def test_a_burst_at_a_windows_end_leaves_no_fresh_limit_at_the_next_windows_start(throttle):
    async def scenario():
        end = boundary()
        before = end - datetime.timedelta(seconds=1)
        taken = [await throttle.take("signup-email:a@example.com", LIMIT, WINDOW_S, before) for _ in range(LIMIT + 1)]
        assert [bool(t.slot) for t in taken] == [True, True, True, False]
        # A second after the boundary the last minute still holds three attempts: refused, and
        # told when one fits again (the previous window's share falls to two after 19 s).
        after = end + datetime.timedelta(seconds=1)
        refused = await throttle.take("signup-email:a@example.com", LIMIT, WINDOW_S, after)
        assert refused.slot is None and refused.wait_s == 19
        assert (await throttle.take("signup-email:a@example.com", LIMIT, WINDOW_S,
                                    after + datetime.timedelta(seconds=18))).slot is None
        later = await throttle.take("signup-email:a@example.com", LIMIT, WINDOW_S, after + datetime.timedelta(seconds=19))
        assert later.slot is not None
        # Another key counts for itself.
        assert (await throttle.take("signup-email:b@example.com", LIMIT, WINDOW_S, after)).slot is not None
    run(scenario())


def test_within_a_window_the_limit_holds_and_a_slot_given_back_is_free_again(throttle):
    async def scenario():
        at = boundary() - datetime.timedelta(seconds=WINDOW_S / 2)
        slots = [await throttle.take("login-address:198.51.100.1", LIMIT, WINDOW_S, at) for _ in range(LIMIT)]
        refused = await throttle.take("login-address:198.51.100.1", LIMIT, WINDOW_S, at)
        assert refused.slot is None and refused.wait_s == 50   # 30 s to the end, then 20 s for the share to fall
        await throttle.give_back(slots[0].slot)
        assert (await throttle.take("login-address:198.51.100.1", LIMIT, WINDOW_S, at)).slot is not None
    run(scenario())


def test_a_refusal_never_says_to_wait_longer_than_the_window_and_the_attempt_then_fits(throttle):
    async def scenario():
        start = boundary()
        burst = start + datetime.timedelta(seconds=5)   # early in a window: evenly spread, its share would
        for _ in range(LIMIT):                          # hold the burst 20 s past the window
            assert (await throttle.take("login-address:203.0.113.9", LIMIT, WINDOW_S, burst)).slot is not None
        refused = await throttle.take("login-address:203.0.113.9", LIMIT, WINDOW_S, burst)
        assert refused.slot is None and refused.wait_s == WINDOW_S
        told = burst + datetime.timedelta(seconds=refused.wait_s)
        assert (await throttle.take("login-address:203.0.113.9", LIMIT, WINDOW_S,
                                    told - datetime.timedelta(seconds=1))).slot is None
        assert (await throttle.take("login-address:203.0.113.9", LIMIT, WINDOW_S, told)).slot is not None
    run(scenario())
