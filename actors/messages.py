"""Messages between gateway bridges and actors. Plain picklable classes, no behaviour.

A gateway bridge batches: every message it sends carries a list of events, and actors
answer a bridge with `Push` batches, so a busy socket costs one actor message per burst.
"""
import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class BridgeRef:
    """A gateway bridge's address, hashable so it can sit in sets and dict keys
    (Thespian's addresses are not hashable; their string form is unique per endpoint)."""
    key: str
    address: Any = dataclasses.field(compare=False, hash=False)

    @classmethod
    def of(cls, address):
        return cls(str(address), address)


@dataclasses.dataclass
class Configure:
    """Sent by the node to the directory once at start: the policy and shard count."""
    policy: Any
    shard_count: int


@dataclasses.dataclass
class GetShards:
    """Bridge → directory: which member shards exist (index → address)."""
    req_id: int


@dataclasses.dataclass
class Shards:
    req_id: int
    addresses: list


@dataclasses.dataclass
class Ping:
    req_id: int


@dataclasses.dataclass
class Pong:
    req_id: int
    detail: dict


@dataclasses.dataclass
class WhoAmI:
    """Bridge → directory; the answer tells the bridge its own address."""
    req_id: int


@dataclasses.dataclass
class YouAre:
    req_id: int
    address: Any


# Events a bridge sends in a Batch. A connection is (bridge address, conn_id).

@dataclasses.dataclass
class Open:
    """A member's page opened a websocket (to the shard, which finds or creates the member)."""
    member_id: str
    conn_id: int
    bridge: Any


@dataclasses.dataclass
class Close:
    member_id: str
    conn_id: int
    bridge: Any


@dataclasses.dataclass
class Frame:
    """A validated inbound frame from one of the member's connections."""
    member_id: str
    conn_id: int
    bridge: Any
    frame: dict


@dataclasses.dataclass
class Watch:
    """A bridge has its first viewer of `member_id`'s status (to the shard)."""
    member_id: str
    bridge: Any


@dataclasses.dataclass
class Unwatch:
    member_id: str
    bridge: Any


@dataclasses.dataclass
class Batch:
    events: list


# Actor → bridge.

@dataclasses.dataclass
class Attached:
    """The member actor now holds this connection; frames for it go to `member`."""
    member_id: str
    conn_id: int
    member: Any
    status: str


@dataclasses.dataclass
class Push:
    """Frames for some of a bridge's connections: [(conn_ids, frame), ...]."""
    items: list


@dataclasses.dataclass
class Presence:
    """A member's status, for every viewer of it on the receiving bridge."""
    member_id: str
    status: str


# Member → shard.

@dataclasses.dataclass
class MemberIdle:
    """The member has had no connection for the exit grace; it may go if nothing is in flight."""
    member_id: str
    opens_seen: int


@dataclasses.dataclass
class ShardStart:
    """Directory → new shard: its index and the policy its members follow."""
    index: int
    policy: Any


@dataclasses.dataclass
class MemberStart:
    """Shard → new member actor: who it is, its policy, and the current watchers."""
    member_id: str
    policy: Any
    watchers: set
