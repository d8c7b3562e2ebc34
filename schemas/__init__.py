"""The websocket protocol: one JSON Schema per frame type, for what clients send
(client.json) and what the server sends (server.json).

The gateway validates every inbound frame here, the tests validate every outbound frame
here, and docs/protocol.md is generated from the same files.

Each schema is checked twice over: compiled to Python by fastjsonschema, which passes a good
frame in ~1.4 µs, and, only for a frame that fails, by jsonschema, whose best match names the
field and the rule for the error frame (a signal frame took ~25 µs there: a third of a
gateway's time relaying signaling, profiled with py-spy; README "Decisions").
"""
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
        if frame_type not in self.validators:
            if "type" not in frame:
                raise FrameError("missing_field", "'type' is a required property", request_id)
            raise FrameError("unknown_type", f"unknown frame type {frame_type!r}", request_id)
        try:
            self.fast[frame_type](frame)
            return frame
        except fastjsonschema.JsonSchemaException:
            pass  # refused: jsonschema says why, in words
        error = jsonschema.exceptions.best_match(self.validators[frame_type].iter_errors(frame))
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path)
            message = f"{frame_type}: {where + ': ' if where else ''}{error.message}"
            raise FrameError(_CODES.get(error.validator, "invalid_value"), message, request_id)
        return frame


CLIENT = Protocol("client")
SERVER = Protocol("server")
