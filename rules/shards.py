"""Which shard holds a member: a stable hash of the member id, the same in every process."""
import zlib


def shard_index(member_id, shard_count):
    """Stable across processes and restarts (unlike hash())."""
    return zlib.crc32(member_id.encode()) % shard_count
