"""Attempts counted per key over a sliding window (log-ins, sign-ups, reset requests), in the
database so that every gateway counts together, and the client address they count by.

An attempt takes its slot atomically before it is acted on, so concurrent attempts can never
all pass a check that counted none of them (issue 13: 40 guesses at once were all tried).

The window slides: each key has a counter per fixed window, and an attempt counts the current
window's attempts plus the previous window's in proportion to how much of it still lies within
the last `window_s` (the sliding-window counter). Fixed windows alone let twice the limit through
around a boundary (the limit at the end of one window, the limit again at the start of the next).
The share assumes a window's attempts spread evenly; its last attempt's time bounds it, so no
attempt is ever held more than `window_s` (a refusal never says to wait longer than the window).
"""
import datetime
import functools
import ipaddress
import math
import typing

import pymongo

# An IPv6 client gets a /64 of its own from any provider: counting single addresses would
# give one client billions of fresh limits.
IPV6_CLIENT_PREFIX = 64
# An address we cannot parse (a proxy's odd entry) still counts, by its first characters.
ADDRESS_KEY_MAX_CHARS = 64


class Taken(typing.NamedTuple):
    """A slot taken (`slot`, to give back if the attempt should not count), or None and
    how many seconds to wait (`wait_s`) before the next attempt may be tried."""
    slot: typing.Optional[tuple]
    wait_s: int = 0


def window_of(at, window_s):
    """(index, end) of the fixed window that holds `at`."""
    index = int(at.timestamp() // window_s)
    return index, datetime.datetime.fromtimestamp((index + 1) * window_s, datetime.timezone.utc)


def slowdown_s(over, first_s, max_s):
    """How long the `over`-th attempt past a limit waits after the attempt before it."""
    return min(first_s * 2 ** min(over - 1, 62), max_s)


def whole_seconds(duration_s):
    """What Retry-After says of a wait: whole seconds, at least 1."""
    return max(1, math.ceil(duration_s))


def seconds_until(later, at):
    return whole_seconds((later - at).total_seconds())


@functools.lru_cache(maxsize=8)
def trusted_networks(entries):
    """The networks of the `trusted_proxies` setting (a tuple of addresses or CIDRs)."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"trusted_proxies: {entry!r} is not an IP address or network") from None
    return tuple(networks)


def _ip(text):
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return address.ipv4_mapped or address if address.version == 6 else address


def _trusted(text, networks):
    address = _ip(text)
    return address is not None and any(address in network for network in networks)


def client_address(peer, forwarded_for, networks):
    """The client's address: the peer, or, when the peer is a trusted proxy, the right-most
    X-Forwarded-For entry that is not one (entries left of it are the client's own word).
    `forwarded_for` is the list of the header's values, in the order received."""
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    address = peer
    while hops and _trusted(address, networks):
        address = hops.pop()
    return address


def address_key(text):
    """What one client's attempts are counted under: its IPv4 address, or its IPv6 /64."""
    address = _ip(text)
    if address is None:
        return text.strip()[:ADDRESS_KEY_MAX_CHARS]
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(address)


def free_in_s(limit, previous, current, window_s, left_s):
    """How long until an attempt fits again: the previous window's share shrinks as time goes
    (a slot frees once it carries few enough), and at this window's end the current count
    becomes the previous one. `previous` and `current` are (count, seconds until that window's
    last attempt is older than `window_s`, when all of its attempts stop counting)."""
    (previous_count, previous_gone_s), (current_count, current_gone_s) = previous, current
    room = limit - current_count - 1            # what the previous window may still carry
    if room >= 0 and previous_count:
        return min(max(0.0, left_s - window_s * room / previous_count), previous_gone_s)
    if not current_count:
        return left_s                           # a limit of 0: nothing ever frees a slot
    return min(left_s + window_s * (1 - max(0, limit - 1) / current_count), current_gone_s)


def carried_count(window, window_s, at, share):
    """What the previous window's attempts count now: its share, or none once even its last
    attempt is older than `window_s`."""
    if not window or window["last_at"] is None or window["last_at"] <= at - datetime.timedelta(seconds=window_s):
        return 0
    return math.ceil(window["count"] * share)


def gone_in_s(window, window_s, at):
    """Seconds until a window's last attempt is older than `window_s` (0 for no window)."""
    if not window or window["last_at"] is None:
        return 0.0
    return max(0.0, (window["last_at"] - at).total_seconds() + window_s)


def document_id(key, window_index):
    return f"{key}@{window_index}"


class Throttle:
    """One document per key and window: `count` slots taken, and past the limit, `over`
    attempts let through after a slow-down, the last at `last_at`."""

    def __init__(self, collection):
        self.collection = collection
        self.indexed = False

    async def _ensure_indexes(self):
        if not self.indexed:
            # A window's document is dropped by MongoDB once the window is over.
            await self.collection.create_index([("expires_at", 1)], expireAfterSeconds=0)
            await self.collection.create_index([("key", 1)])
            self.indexed = True

    async def _window_document(self, key, window_s, at):
        """The id of `key`'s document for the window of `at`, created if need be, and its end."""
        await self._ensure_indexes()
        index, ends_at = window_of(at, window_s)
        doc_id = document_id(key, index)
        # Inserted first, then updated on a condition: an upsert that races another may not say
        # whether it counted.
        try:
            # Kept one more window: the next one counts part of it.
            await self.collection.insert_one({"_id": doc_id, "key": key, "count": 0, "over": 0, "last_at": None,
                                              "expires_at": ends_at + datetime.timedelta(seconds=window_s)})
        except pymongo.errors.DuplicateKeyError:
            pass
        return doc_id, ends_at

    async def take(self, key, limit, window_s, at):
        """One of `limit` slots of `key` in the last `window_s`, or how long until one frees."""
        doc_id, ends_at = await self._window_document(key, window_s, at)
        index = window_of(at, window_s)[0]
        fields = {"count": 1, "last_at": 1}
        previous = await self.collection.find_one({"_id": document_id(key, index - 1)}, fields)
        left_s = (ends_at - at).total_seconds()
        carried = carried_count(previous, window_s, at, left_s / window_s)  # the share still in the last window_s
        taken = await self.collection.find_one_and_update(
            {"_id": doc_id, "count": {"$lt": limit - carried}}, {"$inc": {"count": 1}, "$set": {"last_at": at}})
        if taken:
            return Taken((doc_id, "count"))
        current = await self.collection.find_one({"_id": doc_id}, fields)

        def count_and_gone(window):
            return (window["count"] if window else 0), gone_in_s(window, window_s, at)
        return Taken(None, whole_seconds(free_in_s(limit, count_and_gone(previous), count_and_gone(current),
                                                   window_s, left_s)))

    async def take_slowed(self, key, limit, window_s, first_s, max_s, at):
        """As `take`; past the limit, one attempt at a time, each `slowdown_s` after the last."""
        taken = await self.take(key, limit, window_s, at)
        if taken.slot:
            return taken
        doc_id = document_id(key, window_of(at, window_s)[0])
        document = await self.collection.find_one({"_id": doc_id})
        over, last_at = document["over"], document["last_at"]
        wait = datetime.timedelta(seconds=slowdown_s(over + 1, first_s, max_s))
        opens_at = last_at + wait if last_at else at  # no attempt before: a limit of 0
        if at < opens_at:
            return Taken(None, seconds_until(opens_at, at))
        # Only the attempt that moves `over` on gets through; a concurrent one waits its turn.
        moved = await self.collection.update_one({"_id": doc_id, "over": over},
                                                 {"$inc": {"over": 1}, "$set": {"last_at": at}})
        if moved.modified_count:
            return Taken((doc_id, "over"))
        return Taken(None, whole_seconds(slowdown_s(over + 2, first_s, max_s)))

    async def give_back(self, slot):
        """An attempt that should not count (a right password, a refusal for another reason)."""
        doc_id, kind = slot
        if kind == "count":
            await self.collection.update_one({"_id": doc_id, "count": {"$gt": 0}}, {"$inc": {"count": -1}})

    async def clear(self, key):
        await self.collection.delete_many({"key": key})
