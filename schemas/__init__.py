"""The websocket protocol: one JSON Schema per frame type, for what clients send
(client.json) and what the server sends (server.json).

The gateway validates every inbound frame here, the tests validate every outbound frame
here, and docs/protocol.md is generated from the same files.

Each schema is checked twice over: compiled to Python by fastjsonschema, which passes a good
frame in ~1.4 µs, and, only for a frame that fails, by jsonschema, whose best match names the
field and the rule for the error frame (a signal frame took ~25 µs there: a third of a
gateway's time relaying signaling, profiled with py-spy; README "Decisions").
"""
import itertools
import json
from pathlib import Path

import fastjsonschema
import jsonschema

HERE = Path(__file__).parent


def load(name):
    table = json.loads((HERE / f"{name}.json").read_text())
    table.pop("$comment", None)
    return table


class FrameError(Exception):
    """A refused frame: `code` is one of the error frame's codes."""

    def __init__(self, code, message, request_id=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


_CODES = {"required": "missing_field", "additionalProperties": "unexpected_field", "type": "wrong_type"}
# No frame of the protocol nests deeper than a few maps and lists; a deeper one is refused before
# any schema walks it (a 1,000-deep list made jsonschema's error message recurse past Python's limit).
MAX_DEPTH = 16
# A refusal is worded from the first few errors: a 64 KiB array of wrong items has one each, and
# ranking them all took the gateway's loop half a second. Messages are cut to this length.
ERRORS_RANKED = 8
MESSAGE_MAX_CHARS = 300


def too_deep(value, limit=MAX_DEPTH):
    """True if `value` nests maps and lists deeper than `limit` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class Protocol:
    """Validates frames of one direction against its schemas."""

    def __init__(self, name):
        self.schemas = load(name)
        self.validators = {t: jsonschema.Draft202012Validator(s) for t, s in self.schemas.items()}
        self.fast = {t: fastjsonschema.compile(s) for t, s in self.schemas.items()}

    def validate(self, frame):
        """Raises FrameError for a frame that is not exactly one of the known types."""
        if not isinstance(frame, dict):
            raise FrameError("malformed_frame", "a frame must be a map")
        request_id = frame.get("id") if isinstance(frame.get("id"), int) else None
        frame_type = frame.get("type")
        if too_deep(frame):
            raise FrameError("malformed_frame", f"a frame nests at most {MAX_DEPTH} maps and lists", request_id)
        if not isinstance(frame_type, str) or frame_type not in self.validators:
            if "type" not in frame:
                raise FrameError("missing_field", "'type' is a required property", request_id)
            raise FrameError("unknown_type", f"unknown frame type {repr(frame_type)[:60]}", request_id)
        try:
            self.fast[frame_type](frame)
            return whole_numbers(frame)
        except fastjsonschema.JsonSchemaException:
            pass  # refused: jsonschema says why, in words
        errors = itertools.islice(self.validators[frame_type].iter_errors(frame), ERRORS_RANKED)
        error = jsonschema.exceptions.best_match(errors)
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path)[:60]
            message = f"{frame_type}: {where + ': ' if where else ''}{error.message}"[:MESSAGE_MAX_CHARS]
            raise FrameError(_CODES.get(error.validator, "invalid_value"), message, request_id)
        return frame


def whole_numbers(value):
    """JSON Schema's integer takes 500.0 (msgpack keeps it a float): a frame passes on with
    every whole-number float an int, so money and lengths are never floats past this point.
    In place: the frame is the one just decoded, and a frame with none passes untouched."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in list(items):
        if isinstance(item, float) and item.is_integer():
            value[key] = int(item)
        elif isinstance(item, (dict, list)):
            whole_numbers(item)
    return value


CLIENT = Protocol("client")
SERVER = Protocol("server")
