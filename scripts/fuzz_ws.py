#!/usr/bin/env python3
"""Websocket fuzzer (issue 13): generated frames from many sockets against a live system
(SecantusDB, actor node, gateway and PayPal emulator on unused ports, started by
benchkit.run_bench) running the product's own flood and per-account limits.

The frames come from hypothesis, in bounded runs before the fuzz (generation phase only,
seeded by `--seed`, nothing to shrink): a live loop cannot be a `@given` test, so each
category is a pool drawn once, and each socket picks from the pools with its own seeded
`random.Random`. The categories:

  schema    every client frame type of schemas/client.json, each field valid, of its type with a
            wrong value (out of range, off pattern, too long, an integer-valued float), of a wrong
            type (any msgpack value, ext types and timestamps included), missing, or extra fields
  mangled   a schema frame's msgpack cut short, or with bytes after it
  bytes     random bytes;   text: text frames (frames must be binary msgpack)
  deep      lists or maps nested 2 to 4,000 deep, in a field or as the frame
  huge      arrays and maps of thousands of items, within the frame cap
  oversize  frames over policy ws_max_frame_bytes (the gateway closes the socket with 1009)

Three sockets in four stay within the flood limit; the fourth sends more than its burst at
once, is closed with 1008 and opens again; any socket closed opens again. Fuzzing members
never ring an online member (a `call` names a member who is never online, or nobody), so
nothing they send may store anything: every collection is compared before and after.

Prints `name=value` lines (frames tried, typed errors by code, closes by code, crashes, state
changes, the bystander's ping before and during the fuzz) and a `# goal` line each for crashes
and invalid state changes; exits 1 when one is missed. Each frame the gateway should refuse
itself is judged here first with the gateway's own decode and validation, so every socket
knows which typed refusals it is owed, in order: one missing is a bad frame dropped silently.

    .venv/bin/python scripts/fuzz_ws.py [--quick] [--seconds N] [--sockets N] [--seed S]
                                        [--skip CATEGORY] [--exclude-crashing]
"""
import argparse
import asyncio
import collections
import dataclasses
import hashlib
import json
import math
import os
import random
import re
import sys
import time
from pathlib import Path

import bson
import msgpack
import pymongo
import websockets
from hypothesis import HealthCheck, Phase, given, seed, settings, strategies as st

from benchkit import (Page, comment, emit, insert_accounts, percentile, progress, report_goal,
                      run_bench, sign_up_through_api)

import schemas  # noqa: E402 (benchkit puts the project on sys.path)
from gateway.ws import decode
from interkanect import config

POLICY = config.Policy()
# The product's own limits, not the benchmarks' lifted ones: surviving the fuzz under the real
# flood and per-account limits is what issue 13 asks, and closing a flood is part of it.
PRODUCT_LIMITS = {name: getattr(POLICY, name) for name in (
    "flood_rate_per_s", "flood_burst", "pages_per_member_max", "watched_per_page_max", "watched_per_member_max",
    "rings_per_host_per_minute")}
SOCKETS_PER_MEMBER = 4             # well under pages_per_member_max (16): a socket that comes back is not refused
FLOOD_EVERY = 4                    # every fourth socket floods
PACED_SHARE_OF_FLOOD_RATE = 0.4    # the others send 20 frames/s against the 50 allowed
FLOOD_FRAMES = int(1.5 * POLICY.flood_burst)  # sent at once: past the burst by half
FLOOD_CLOSE_WAIT_S = 10            # a flooding socket not closed by then is counted, and closed by us
REOPEN_PAUSE_S = 1.0               # before a closed socket opens again
DRAIN_S = 10                       # after the fuzz, for the answers to frames already sent
STATE_SETTLE_S = 2                 # for frames in flight in the actors before the store is compared
PING_INTERVAL_S = 0.05             # the bystander pings 20 times a second, answered or not
PREDICT_MAX_BYTES = 16 * 1024      # frames larger are not judged here beforehand (a huge one takes ~1 s)
INT_MIN, UINT_MAX = -2**63, 2**64 - 1  # what msgpack carries
HEX_ID = "^[0-9a-f]{24}$"
# Refusals the gateway makes itself, in order, before a frame goes anywhere (schemas/__init__.py, gateway/ws.py).
LOCAL_CODES = frozenset({"malformed_frame", "unknown_type", "missing_field", "unexpected_field", "wrong_type",
                         "invalid_value"})
# Percent of the frames a paced socket sends. An oversize frame ends its socket, so it is rare: a
# paced socket lives ~10 s. A flooding socket sends no oversize frame (it would end before the flood).
CATEGORY_WEIGHTS = {"schema": 64, "mangled": 8, "bytes": 8, "text": 8, "deep": 7, "huge": 4.5, "oversize": 0.5}
POOL_SIZES = {"schema": 600, "mangled": 200, "bytes": 200, "text": 150, "deep": 150, "huge": 60, "oversize": 30}


# A send the server's close (or its reset) cut short.
CLOSED = (websockets.ConnectionClosed, ConnectionError)


# ---------------------------------------------------------------- frames (hypothesis)

@dataclasses.dataclass(frozen=True)
class Item:
    category: str
    data: bytes | str      # str is sent as a text frame
    expected: str          # "passes", "refused:<code>", "refused:?", "close:1009" or "crash:<exception>"


def any_value():
    scalars = (st.none() | st.booleans() | st.integers(INT_MIN, UINT_MAX) | st.floats() | st.text(max_size=40)
               | st.binary(max_size=40) | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=12))
               | st.builds(msgpack.Timestamp, st.integers(-2**34, 2**34), st.integers(0, 999_999_999)))
    keys = st.text(max_size=10) | st.binary(max_size=6)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
                        max_leaves=10)


def kinds(schema):
    kind = schema.get("type", [])
    return kind if isinstance(kind, list) else [kind]


def valid_value(schema, hex_ids):
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    return st.one_of([valid_of_kind(kind, schema, hex_ids) for kind in kinds(schema)])


def valid_of_kind(kind, schema, hex_ids):
    if kind == "integer":
        return st.integers(schema.get("minimum", INT_MIN), schema.get("maximum", UINT_MAX))
    if kind == "string":
        return hex_ids if schema.get("pattern") == HEX_ID else st.text(max_size=min(schema.get("maxLength", 200), 200))
    if kind == "array":
        return st.lists(valid_value(schema["items"], hex_ids), min_size=schema.get("minItems", 0),
                        max_size=min(schema.get("maxItems", 20), 20))
    if kind == "object":
        properties, required = schema.get("properties", {}), set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {name: valid_value(s, hex_ids) for name, s in properties.items() if name in required},
            optional={name: valid_value(s, hex_ids) for name, s in properties.items() if name not in required})
    return {"boolean": st.booleans(), "null": st.none(), "number": st.floats()}[kind]


def wrong_value(schema):
    """Of the field's own type, but a value the schema refuses, or one at the edge of what the rules take."""
    if "const" in schema or "enum" in schema:
        allowed = [schema["const"]] if "const" in schema else schema["enum"]
        return st.text(max_size=20).filter(lambda s: s not in allowed) | st.sampled_from([a.upper() for a in allowed])
    return st.one_of([wrong_of_kind(kind, schema) for kind in kinds(schema) if kind != "null"])


def wrong_of_kind(kind, schema):
    if kind == "integer":
        low, high = schema.get("minimum", INT_MIN), schema.get("maximum", UINT_MAX)
        options = [st.sampled_from([0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, INT_MIN, UINT_MAX]),
                   st.integers(-2**60, 2**60).map(float)]  # 1.0: an integer to JSON Schema, a float to Python
        options += [st.integers(INT_MIN, low - 1)] if low > INT_MIN else []
        options += [st.integers(high + 1, UINT_MAX)] if high < UINT_MAX else []
        return st.one_of(options)
    if kind == "string":
        if "pattern" in schema:
            pattern = re.compile(schema["pattern"])
            return (st.text(max_size=30).filter(lambda s: not pattern.search(s))
                    | st.sampled_from(["A" * 24, "a" * 23, "a" * 25, "g" * 24, "a" * 24 + "\n"]))
        if "maxLength" in schema:
            return st.integers(schema["maxLength"] + 1, schema["maxLength"] + 64).map(lambda n: "x" * n)
        return st.text(min_size=1, max_size=3) | st.just("")
    if kind == "array":
        return st.just([]) | st.lists(any_value(), min_size=1, max_size=5)  # past maxItems: the huge category
    if kind == "object":
        return st.dictionaries(st.text(max_size=12), any_value(), max_size=4)
    return st.sampled_from([0, 1, "true", None])  # boolean


MISSING = object()
FIELD_FATES = ("valid",) * 5 + ("wrong_value",) * 2 + ("wrong_type", "missing")
TYPE_FATES = ("valid",) * 8 + ("wrong_value", "wrong_type", "missing")


def field_strategy(schema, hex_ids, fates):
    def of_fate(fate):
        return {"valid": valid_value(schema, hex_ids), "wrong_value": wrong_value(schema),
                "wrong_type": any_value(), "missing": st.just(MISSING)}[fate]
    return st.sampled_from(fates).flatmap(of_fate)


def assemble(fields, extra):
    frame = dict(extra)
    frame.update((name, value) for name, value in fields.items() if value is not MISSING)
    return frame


def schema_frames(protocol, id_pools):
    """Frames shaped like each client frame type. `id_pools`: field name → strategy of 24-hex ids."""
    random_ids = st.from_regex(r"[0-9a-f]{24}", fullmatch=True)

    def of_type(frame_type):
        properties = protocol.schemas[frame_type]["properties"]
        fields = {name: field_strategy(s, id_pools.get(name, random_ids), TYPE_FATES if name == "type" else FIELD_FATES)
                  for name, s in properties.items()}
        extra = st.just({}) | st.dictionaries(st.text(max_size=10).filter(lambda k: k not in properties),
                                              any_value(), min_size=1, max_size=2)
        return st.builds(assemble, st.fixed_dictionaries(fields), extra)
    return st.sampled_from(sorted(protocol.schemas)).flatmap(of_type)


def pack(value):
    return msgpack.packb(value, use_bin_type=True)


def raw_map(pairs):
    """A msgpack map of (key, already packed value) pairs: for values too deep for msgpack.packb."""
    return bytes([0x80 | len(pairs)]) + b"".join(pack(key) + value for key, value in pairs)


def deep_frame(spec):
    kind, depth, where = spec
    value = (b"\x91" if kind == "list" else b"\x81\xa1k") * depth + b"\xc0"
    at = {"id": [("type", pack("ping")), ("id", value)],
          "extra": [("type", pack("ping")), ("id", pack(1)), ("x", value)],
          "members": [("type", pack("watch")), ("id", pack(1)), ("members", value)],
          "candidate": [("type", pack("signal")), ("id", pack(1)), ("call_id", pack("a" * 24)),
                        ("kind", pack("candidate")), ("candidate", value)]}
    return value if where == "frame" else raw_map(at[where])


HUGE_ELEMENTS = {"nil": None, "int": 1, "member_id": "0" * 24, "bad_id": "z" * 24, "float": 0.5, "map": {}}


def huge_frame(spec, cap):
    element_name, count, where = spec
    element = HUGE_ELEMENTS[element_name]
    count = max(1, min(count, (cap - 64) // (len(pack(element)) + (8 if where == "wide_map" else 0))))
    items = [element] * count
    frames = {"members": lambda: {"type": "watch", "id": 1, "members": items},
              "extra": lambda: {"type": "ping", "id": 1, "x": items},
              "frame": lambda: items,
              "wide_map": lambda: dict({f"k{i}": element for i in range(count)}, type="ping", id=1)}
    return pack(frames[where]())


def oversize_frame(spec):
    kind, size, seed_value = spec
    if kind == "sdp":
        return pack({"type": "signal", "id": 1, "call_id": "a" * 24, "kind": "offer", "sdp": "x" * size})
    if kind == "members":
        return pack({"type": "watch", "id": 1, "members": ["0" * 24] * (size // 25 + 1)})
    return random.Random(seed_value).randbytes(size)


def mangle(spec):
    frame, cut, position, tail = spec
    data = pack(frame)
    return data[:position % len(data)] if cut else data + tail


def category_strategies(frames, cap):
    """The other categories, built on `frames` (schema frames already drawn)."""
    drawn = st.sampled_from(frames)
    return {
        "mangled": st.tuples(drawn, st.booleans(), st.integers(0, 10**6),
                             st.binary(min_size=1, max_size=16)).map(mangle),
        "bytes": st.binary(max_size=2048) | st.tuples(st.integers(2049, 32768), st.integers(0, 2**32)).map(
            lambda spec: random.Random(spec[1]).randbytes(spec[0])),
        "text": st.text(max_size=500) | drawn.map(lambda f: json.dumps(f, default=repr, skipkeys=True)),
        "deep": st.tuples(st.sampled_from(["list", "map"]), st.integers(2, 4000),
                          st.sampled_from(["id", "extra", "members", "candidate", "frame"])).map(deep_frame),
        "huge": st.tuples(st.sampled_from(sorted(HUGE_ELEMENTS)), st.integers(500, 65536),
                          st.sampled_from(["members", "extra", "frame", "wide_map"])).map(lambda s: huge_frame(s, cap)),
        "oversize": st.tuples(st.sampled_from(["sdp", "members", "bytes"]), st.integers(cap + 1, 4 * cap),
                              st.integers(0, 2**32)).map(oversize_frame),
    }


def examples(strategy, count, seed_value):
    """Up to `count` examples of `strategy`, from one bounded, seeded hypothesis run."""
    found = []

    @seed(seed_value)
    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value):
        found.append(value)
    collect()
    return found


def expected_outcome(data, cap):
    """What the gateway should do with `data`, judged here by its own decode and validation."""
    if len(data) > cap:
        return "close:1009"
    return "refused:?" if len(data) > PREDICT_MAX_BYTES else judge(data)


def judge(data):
    try:
        schemas.CLIENT.validate(decode(data))
    except schemas.FrameError as refused:
        return f"refused:{refused.code}"
    except Exception as error:  # what the gateway would not catch either
        return f"crash:{type(error).__name__}"
    return "passes"


def build_pools(categories, sizes, id_pools, cap, seed_value):
    frames = examples(schema_frames(schemas.CLIENT, id_pools), sizes["schema"], seed_value)
    datas = {"schema": [pack(frame) for frame in frames]}
    for index, (category, strategy) in enumerate(category_strategies(frames, cap).items(), 1):
        if category in categories:
            datas[category] = examples(strategy, sizes[category], seed_value + index)
    return {category: [Item(category, d, expected_outcome(d, cap)) for d in found]
            for category, found in datas.items() if category in categories}


def without_crashing(pools):
    return {category: [item for item in items if not item.expected.startswith("crash:")] or items
            for category, items in pools.items()}


# ---------------------------------------------------------------- what the sockets saw

class Tally:
    def __init__(self):
        self.frames = collections.Counter()        # by category
        self.errors = collections.Counter()        # typed error frames, by code
        self.answers = collections.Counter()       # other server frames, by type
        self.closes = collections.Counter()        # by close code
        self.counts = collections.Counter()        # the rest, by name
        self.examples = {}                         # name → first example

    def note(self, name, example=None):
        self.counts[name] += 1
        if example is not None:
            self.examples.setdefault(name, example)


class FuzzConnection:
    """One open socket: the refusals it expects from the gateway, in the order it sent them."""

    def __init__(self, page, tally):
        self.page = page
        self.tally = tally
        self.expected = collections.deque()       # (Item, code or "?") of frames the gateway refuses itself
        self.sent_oversize = False
        page.on_frame = self.on_frame

    async def send(self, item):
        await self.page.ws.send(item.data)
        self.tally.frames[item.category] += 1
        self.sent_oversize |= item.expected == "close:1009"
        if item.expected.startswith("refused:"):
            self.expected.append((item, item.expected.split(":", 1)[1]))

    def on_frame(self, page, frame, received_at):
        try:
            schemas.SERVER.validate(frame)
        except schemas.FrameError as error:
            self.tally.note("server_frames_off_schema", f"{frame!r:.200} ({error.message})")
        if frame.get("type") != "error":
            self.tally.answers[frame.get("type")] += 1
            return
        code = frame.get("code")
        if not isinstance(code, str) or not re.fullmatch(r"[a-z_]+", code):
            self.tally.note("untyped_errors", repr(frame)[:200])
            return
        self.tally.errors[code] += 1
        if code in LOCAL_CODES:
            self.match_refusal(code, frame)

    def match_refusal(self, code, frame):
        if not self.expected:
            self.tally.note("refusal_code_mismatches", f"an unexpected {code}: {frame.get('message')!r:.200}")
            return
        item, wanted = self.expected.popleft()
        if wanted not in ("?", code):
            self.tally.note("refusal_code_mismatches", f"{item.category} frame {preview(item.data)}: "
                                                       f"expected {wanted}, got {code} ({frame.get('message')!r:.150})")

    async def drain(self, deadline):
        while self.expected and not self.page.reader.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def finish(self, closed_by_us):
        """Close (if the server did not), and count how it ended and what went unanswered."""
        if not self.page.reader.done():
            await self.page.ws.close()
        await asyncio.wait_for(asyncio.shield(self.page.reader), 5)
        code = self.page.ws.close_code
        if code == 1006 and self.sent_oversize:
            # Tornado sends 1009 and drops the connection at once: the reset can overtake the close frame.
            code = "1009_as_reset"
        self.tally.closes["ours" if closed_by_us and code == 1000 else code] += 1
        unanswered = "refusals_unanswered" if closed_by_us else "frames_lost_to_close"
        for item, _ in self.expected:
            self.tally.note(unanswered, f"{item.category} frame {preview(item.data)} ({item.expected})")
        return code


def preview(data, limit=48):
    raw = data.encode() if isinstance(data, str) else data
    text = raw[:limit].hex() + ("…" if len(raw) > limit else "")
    return f"{'text' if isinstance(data, str) else 'bytes'}[{len(raw)}] {text}"


class Fuzzer:
    """The fuzzing sockets: each picks frames from the pools with its own seeded random."""

    def __init__(self, system, accounts, pools, tally, seed_value):
        self.system = system
        self.accounts = accounts
        self.pools = pools
        self.tally = tally
        self.seed = seed_value
        self.stopping = asyncio.Event()
        self.drain_deadline = None
        self.weights = {c: w for c, w in CATEGORY_WEIGHTS.items() if c in pools}
        self.flood_weights = {c: w for c, w in self.weights.items() if c != "oversize"} or self.weights

    def pick(self, rng, weights):
        return rng.choice(self.pools[rng.choices(list(weights), list(weights.values()))[0]])

    async def open(self, account):
        while not self.stopping.is_set():
            try:
                page = await Page.open(self.system, account)
                self.tally.counts["sockets_opened"] += 1
                return FuzzConnection(page, self.tally)
            except Exception as error:  # refused (too many pages), timed out, reset: counted, tried again
                self.tally.note("opens_refused", f"{error!r:.200}")
                await asyncio.sleep(REOPEN_PAUSE_S)
        return None

    async def socket(self, index, ready):
        rng = random.Random(f"{self.seed}-{index}")
        account = self.accounts[index // SOCKETS_PER_MEMBER]
        flooding = index % FLOOD_EVERY == FLOOD_EVERY - 1
        first = True
        while not self.stopping.is_set():
            connection = await self.open(account)
            if first:
                ready.release()
                first = False
            if connection is None:
                return
            ours = await (self.flood(connection, rng) if flooding else self.paced(connection, rng))
            await connection.finish(closed_by_us=ours)
            if not ours:
                await asyncio.sleep(REOPEN_PAUSE_S)

    async def paced(self, connection, rng):
        """Within the flood limit until the fuzz ends or the server closes; True if we close."""
        interval_s = 1 / (PACED_SHARE_OF_FLOOD_RATE * POLICY.flood_rate_per_s)
        next_at = time.monotonic()
        try:
            while not self.stopping.is_set() and not connection.page.reader.done():
                await connection.send(self.pick(rng, self.weights))
                next_at = max(next_at + interval_s, time.monotonic() - 1)  # never catch up more than 1 s
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        except CLOSED:
            return False
        await connection.drain(self.drain_deadline)
        return not connection.page.reader.done()

    async def flood(self, connection, rng):
        """Past the burst at once; the gateway must close the socket with 1008."""
        try:
            for _ in range(FLOOD_FRAMES):
                await connection.send(self.pick(rng, self.flood_weights))
        except CLOSED:
            return False
        try:
            await asyncio.wait_for(asyncio.shield(connection.page.reader), FLOOD_CLOSE_WAIT_S)
        except asyncio.TimeoutError:
            # Every refusal answered and still open: the gateway took the whole flood. Refusals still
            # owed: it had not read the flood yet.
            self.tally.note("floods_not_closed" if not connection.expected else "floods_unread_after_wait")
            return True
        return False

    async def run(self, sockets, seconds, on_ready):
        ready = asyncio.Semaphore(0)
        tasks = [asyncio.create_task(self.socket(i, ready)) for i in range(sockets)]
        for _ in range(sockets):
            await ready.acquire()
        on_ready()
        started = time.monotonic()
        await asyncio.sleep(seconds)
        self.drain_deadline = time.monotonic() + DRAIN_S
        self.stopping.set()
        fuzz_s = time.monotonic() - started
        await asyncio.wait_for(asyncio.gather(*tasks), DRAIN_S + FLOOD_CLOSE_WAIT_S + 15)
        return fuzz_s


# ---------------------------------------------------------------- the bystander

class Pinger:
    """A member who only pings, open loop: every ping is timed, whether the last was answered or not."""

    def __init__(self, page):
        self.page = page
        self.sent = {}                 # ping id → (window, sent at)
        self.rtts_ms = collections.defaultdict(list)
        self.seq = 0
        self.closed = None             # the close code, if the bystander's socket was closed
        page.on_frame = self.on_frame

    def on_frame(self, page, frame, received_at):
        if frame.get("type") == "pong" and frame.get("id") in self.sent:
            window, sent_at = self.sent.pop(frame["id"])
            self.rtts_ms[window].append(1000 * (received_at - sent_at))

    async def ping_while(self, window, until):
        while not until() and self.closed is None:
            self.seq += 1
            self.sent[self.seq] = (window, time.monotonic())
            try:
                await self.page.send({"type": "ping", "id": self.seq})
            except websockets.ConnectionClosed:
                self.closed = self.page.ws.close_code  # an innocent page closed by the fuzz: reported
                return
            await asyncio.sleep(PING_INTERVAL_S)

    async def wait_answers(self, timeout_s):
        deadline = time.monotonic() + timeout_s
        while self.sent and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return collections.Counter(window for window, _ in self.sent.values())


# ---------------------------------------------------------------- the server's side

def store_snapshot(settings):
    """Collection → (documents, digest of them all): what the fuzz must leave as it was."""
    db = pymongo.MongoClient(settings.database_url, tz_aware=True)[settings.db_name]
    try:
        out = {}
        for name in sorted(db.list_collection_names()):
            digest, count = hashlib.sha256(), 0
            for document in sorted(db[name].find(), key=lambda d: str(d.get("_id"))):
                digest.update(bson.encode(document))
                count += 1
            out[name] = (count, digest.hexdigest())
        return out
    finally:
        db.client.close()


class LogWatch:
    """Tracebacks and ERROR lines written to the system's logs since it was made."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.offsets = {path: path.stat().st_size for path in self.workdir.glob("*.log")}

    def new_text(self):
        for path in sorted(self.workdir.glob("*.log")):
            with open(path, "rb") as f:
                f.seek(self.offsets.get(path, 0))
                yield path.name, f.read().decode(errors="replace")

    def findings(self):
        """(tracebacks as (log, summary), ERROR lines)."""
        tracebacks, errors = [], 0
        for name, text in self.new_text():
            lines = text.splitlines()
            errors += sum(" ERROR " in line for line in lines)
            for i, line in enumerate(lines):
                if line.startswith("Traceback (most recent call last)"):
                    tracebacks.append((name, summarize_traceback(lines, i)))
        return tracebacks, errors


def summarize_traceback(lines, start):
    """'Exception: message at file:line (function)': the innermost frame in this project, the innermost of
    all if that is elsewhere, and the log record the traceback belongs to."""
    frames, end = [], start + 1
    while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
        if m := re.match(r'\s+File "([^"]+)", line (\d+), in (\S+)', lines[end]):
            frames.append(m.groups())
        end += 1
    exception = lines[end][:200] if end < len(lines) else "?"
    ours = [f for f in frames if "/site-packages/" not in f[0] and "/lib/python" not in f[0]]
    where = [ours[-1]] if ours else []
    where += [frames[-1]] if frames and frames[-1] not in where else []
    record = next((line for line in reversed(lines[:start]) if re.match(r"\d{4}-\d\d-\d\d ", line)), "")
    record = re.sub(r"^\S+ \S+ \d+ ", "", record)  # its time and pid: the same failure summarizes alike
    return (f"{exception} at " + ", raised in ".join(f"{short_path(path)}:{line} ({function})"
                                                    for path, line, function in where)
            + f"; logged as: {record[:160]}")


def short_path(path):
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1]
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return path[len(root):] if path.startswith(root) else path


@dataclasses.dataclass
class Findings:
    changed: list            # collections whose documents changed
    counts: dict             # collection → (documents before, after)
    tracebacks: list         # (log, summary)
    error_lines: int
    exits: list              # "node", "gateway"
    lost_pids: set           # actor processes gone


class ServerWatch:
    """What the fuzz did to the system: the store, the logs, the processes, from now on."""

    def __init__(self, system, workdir):
        self.system = system
        self.store = store_snapshot(system.settings)
        self.pids = set(system.node_pids())
        self.logs = LogWatch(workdir)

    def findings(self):
        store = store_snapshot(self.system.settings)
        changed = sorted(name for name in set(self.store) | set(store) if self.store.get(name) != store.get(name))
        tracebacks, error_lines = self.logs.findings()
        exits = [name for name, process in (("node", self.system.node), ("gateway", self.system.gateway))
                 if process.poll() is not None]
        return Findings(changed, {name: (self.store.get(name, (0,))[0], store.get(name, (0,))[0]) for name in changed},
                        tracebacks, error_lines, exits, self.pids - set(self.system.node_pids()))


# ---------------------------------------------------------------- the whole run

async def bench(system, args, workdir, outcome):
    fuzzers, bystander, pools = await members_and_pools(system, args)
    page = await Page.open(system, bystander)
    pinger = Pinger(page)
    progress(f"bystander alone for {args.baseline_s:.0f} s")
    until = time.monotonic() + args.baseline_s
    await pinger.ping_while("before", lambda: time.monotonic() > until)

    watch = ServerWatch(system, workdir)
    tally = Tally()
    fuzzer = Fuzzer(system, fuzzers, pools, tally, args.seed)
    progress(f"fuzzing from {args.sockets} sockets ({len(fuzzers)} members) for {args.seconds:.0f} s")
    during = []
    fuzz_s = await fuzzer.run(args.sockets, args.seconds, lambda: during.append(
        asyncio.create_task(pinger.ping_while("during", fuzzer.stopping.is_set))))
    await asyncio.gather(*during)
    unanswered = await pinger.wait_answers(DRAIN_S)
    await page.close()
    await asyncio.sleep(STATE_SETTLE_S)
    outcome["missed"] = report(args, tally, pinger, unanswered, fuzz_s, watch.findings(), pools)


async def members_and_pools(system, args):
    """The fuzzing members, the bystander, and the frame pools (ids drawn from these members)."""
    _, _, reference = await sign_up_through_api(system, 1)
    fuzz_members = math.ceil(args.sockets / SOCKETS_PER_MEMBER)
    accounts = await asyncio.get_running_loop().run_in_executor(
        None, insert_accounts, system.settings, fuzz_members + 3, reference)
    fuzzers, bystander, never_online = accounts[:fuzz_members], accounts[fuzz_members], accounts[fuzz_members + 1:]
    random_ids = st.from_regex(r"[0-9a-f]{24}", fullmatch=True)
    # A `call` names a member who is never online, or nobody: no fuzzing frame may start a call.
    id_pools = {"member_id": st.sampled_from([a.member_id for a in never_online]) | random_ids,
                "members": st.sampled_from([a.member_id for a in accounts]) | random_ids}
    cap = system.settings.policy.ws_max_frame_bytes

    progress(f"generating frames with hypothesis (seed {args.seed})")
    started = time.monotonic()
    sizes = {c: max(10, int(n * args.pool_scale)) for c, n in POOL_SIZES.items()}
    pools = build_pools(set(CATEGORY_WEIGHTS) - set(args.skip), sizes, id_pools, cap, args.seed)
    report_pools(pools, time.monotonic() - started)
    if args.exclude_crashing:
        pools = without_crashing(pools)
    if "huge" in pools:
        report_huge_cost(cap)
    return fuzzers, bystander, pools


def report_pools(pools, seconds):
    comment(f"frame pools drawn by hypothesis in {seconds:.1f} s: " + ", ".join(
        f"{c} {len(items)}" for c, items in pools.items()))
    expected = collections.Counter(item.expected for items in pools.values() for item in items)
    comment("  what the gateway's own decode and validation make of them (judged here): " + ", ".join(
        f"{e} {n}" for e, n in expected.most_common()))
    for items in pools.values():
        for item in items:
            if item.expected.startswith("crash:"):
                comment(f"  fails validation here with {item.expected[6:]}, e.g. {item.category} frame "
                        f"{preview(item.data, 24)}")
                break


def report_huge_cost(cap):
    """What refusing the costliest huge frame takes, timed here on the gateway's own decode and validation."""
    frame = huge_frame(("nil", cap, "members"), cap)
    started = time.perf_counter()
    outcome = judge(frame)
    emit("huge_frame_refusal_ms", 1000 * (time.perf_counter() - started))
    comment(f"  (a watch frame of {len(frame)} bytes, its members all nil: {outcome}, timed in this process with "
            f"the gateway's own decode and validation; the gateway's event loop spends as long on each)")


def report(args, tally, pinger, lost, fuzz_s, found, pools):
    emit("fuzz_s", fuzz_s)
    emit("sockets", args.sockets)
    emit("frames_tried", sum(tally.frames.values()))
    for category in pools:
        emit(f"frames_tried_{category}", tally.frames[category])
    emit("frames_per_s", sum(tally.frames.values()) / fuzz_s)
    emit("typed_errors", sum(tally.errors.values()))
    for code, n in sorted(tally.errors.items()):
        emit(f"typed_errors_{code}", n)
    for kind, n in sorted(tally.answers.items()):
        emit(f"answers_{kind}", n)
    emit("sockets_opened", tally.counts["sockets_opened"])
    for code, n in sorted(tally.closes.items(), key=lambda kv: str(kv[0])):
        emit(f"closes_{code}", n)
    for name in ("opens_refused", "floods_not_closed", "floods_unread_after_wait", "untyped_errors",
                 "server_frames_off_schema", "refusal_code_mismatches", "refusals_unanswered", "frames_lost_to_close"):
        emit(name, tally.counts[name])
        if name in tally.examples:
            comment(f"  first of {name}: {tally.examples[name]}")
    # A socket the gateway dropped because its handler raised is one crash with its traceback: count
    # only the drops no traceback explains (1009_as_reset is none: the frame was oversize).
    gateway_tracebacks = sum(log_name == "gateway.log" for log_name, _ in found.tracebacks)
    unexplained = max(0, tally.closes[1006] - gateway_tracebacks) + tally.closes[1011]
    crashes = len(found.tracebacks) + len(found.exits) + len(found.lost_pids) + unexplained
    emit("server_tracebacks", len(found.tracebacks))
    emit("server_error_log_lines", found.error_lines)
    emit("process_exits", len(found.exits))
    emit("actor_processes_lost", len(found.lost_pids))
    emit("abnormal_closes_unexplained", unexplained)
    emit("crashes", crashes)
    for (log_name, summary), n in collections.Counter(found.tracebacks).most_common(5):
        comment(f"  traceback in {log_name} ({n}×): {summary}")
    emit("invalid_state_changes", len(found.changed))
    for name in found.changed:
        comment(f"  collection {name}: {found.counts[name][0]} documents before, {found.counts[name][1]} after")
    for window in ("before", "during"):
        rtts = pinger.rtts_ms[window]
        emit(f"bystander_pings_{window}", len(rtts) + lost[window])
        emit(f"bystander_pings_unanswered_{window}", lost[window])
        if rtts:
            emit(f"bystander_ping_p50_ms_{window}", percentile(rtts, 50))
            emit(f"bystander_ping_p99_ms_{window}", percentile(rtts, 99))
            emit(f"bystander_ping_max_ms_{window}", max(rtts))
    emit("bystander_closed", 0 if pinger.closed is None else pinger.closed)
    comment(f"crashes = server tracebacks + node/gateway exits + actor processes gone + sockets closed 1011 or "
            f"dropped (1006, no close frame) beyond the gateway's tracebacks; closes_ours: closed by this script after "
            f"the drain; the bystander pings every {1000 * PING_INTERVAL_S:.0f} ms, answered or not; a ping "
            f"unanswered {DRAIN_S} s after the fuzz is not in the percentiles")
    report_goal("crashes", "<=", 0, crashes)
    report_goal("invalid_state_changes", "<=", 0, len(found.changed))
    return crashes > 0 or len(found.changed) > 0


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="15 s of fuzz, smaller pools")
    p.add_argument("--seconds", type=float, help="fuzz this long (default 60; quick 15)")
    p.add_argument("--sockets", type=int, default=24, help="fuzzing sockets (4 per member; every 4th floods)")
    p.add_argument("--baseline-s", type=float, help="the bystander alone before the fuzz (default 10; quick 5)")
    p.add_argument("--seed", type=int, default=13, help="seeds hypothesis and every socket's choices")
    p.add_argument("--skip", action="append", default=[], choices=sorted(CATEGORY_WEIGHTS),
                   help="leave a category of frames out (repeatable)")
    p.add_argument("--exclude-crashing", action="store_true",
                   help="leave out the frames that the gateway's own decode and validation raise on here (a known "
                        "crash), to fuzz the rest while it stands")
    args = p.parse_args(argv)
    for name, quick, full in (("seconds", 15, 60), ("baseline_s", 5, 10)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    args.pool_scale = 0.5 if args.quick else 1.0
    if set(args.skip) >= set(CATEGORY_WEIGHTS):
        p.error("every category skipped: nothing to send")
    return args


def main(argv=None):
    args = parse_args(argv)
    header = (f"fuzz_ws: {args.sockets} sockets for {args.seconds:.0f} s, seed {args.seed}, product limits "
              f"(flood {POLICY.flood_rate_per_s:g}/s, burst {POLICY.flood_burst}, frame cap "
              f"{POLICY.ws_max_frame_bytes} bytes){', skipping ' + ', '.join(args.skip) if args.skip else ''}"
              f"{', known crashes excluded' if args.exclude_crashing else ''}; "
              f"{os.cpu_count()} CPUs, load average at start {os.getloadavg()[0]:.2f}")
    outcome = {"missed": False}
    status = run_bench("fuzz-ws", header, lambda system, workdir: bench(system, args, workdir, outcome),
                       args.baseline_s + args.seconds + 150, policy=PRODUCT_LIMITS)
    return status or int(outcome["missed"])


if __name__ == "__main__":
    sys.exit(main())
