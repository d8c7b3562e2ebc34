"""Records on our own TCP streams (gateway ↔ gateway links, gateway ↔ member shard streams):
each a msgpack value after its length in 4 bytes, big-endian. Pure encoding, an incremental
reader for a select loop, and the asyncio read; the protocols on top say what a record holds.
"""
import struct

import msgpack

LENGTH = struct.Struct("!I")
# A page's frame is at most ~33 KB (schemas/client.json: an SDP of 32 KiB) and a record wraps
# one frame; anything larger is not ours.
RECORD_MAX_BYTES = 128 * 1024
# A peer that reads nothing while this much waits for it is stalled (each protocol says what
# then happens): about 120 large frames, or tens of thousands of small ones.
STALLED_BYTES = 4 * 1024 * 1024


class RecordError(ValueError):
    """What came is not a record of ours (too long, or not msgpack): the stream is closed."""


def encode(record):
    payload = msgpack.packb(record, use_bin_type=True)
    return LENGTH.pack(len(payload)) + payload


def decode(payload):
    try:
        return msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        raise RecordError(f"not a msgpack record: {error}") from None


class RecordReader:
    """Bytes in, whole records out; a partial record waits in the buffer for the rest."""

    def __init__(self):
        self.buffer = bytearray()

    def feed(self, data):
        """The records `data` completes (raises RecordError on input that is not ours)."""
        buffer = self.buffer
        buffer += data
        records, position, size = [], 0, len(buffer)
        while size - position >= LENGTH.size:
            (length,) = LENGTH.unpack_from(buffer, position)
            if length > RECORD_MAX_BYTES:
                raise RecordError(f"a record of {length} bytes")
            end = position + LENGTH.size + length
            if end > size:
                break
            records.append(decode(bytes(buffer[position + LENGTH.size:end])))
            position = end
        if position:
            del buffer[:position]
        return records


async def read(reader):
    """The next record from an asyncio StreamReader."""
    (length,) = LENGTH.unpack(await reader.readexactly(LENGTH.size))
    if length > RECORD_MAX_BYTES:
        raise RecordError(f"a record of {length} bytes")
    return decode(await reader.readexactly(length))
