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
    link: tuple = dataclasses.field(default=None, compare=False, hash=False)  # (host, port): gateway/links.py

    @classmethod
    def of(cls, address, link=None):
        return cls(str(address), address, link)


@dataclasses.dataclass
class Configure:
    """Sent by the node to the directory once at start: the settings (policy, shard count,
    database, mail, TURN), the lease's fencing token (actors/leadership.py), and for a node
    taking over from a lost leader the placement that leader stored (`placement` document)."""
    settings: Any
    token: int = None
    takeover: Any = None


@dataclasses.dataclass
class Services:
    """What every shard, member and call needs to reach: handed down from the directory."""
    settings: Any
    shards: list
    store: Any
    mailer: Any
    payments: Any = None
    followers: Any = None   # the followers adapter (actors/followers.py)


@dataclasses.dataclass
class GetShards:
    """Bridge → directory: which member shards exist (index → address)."""
    req_id: int


@dataclasses.dataclass
class Shards:
    req_id: int
    addresses: list
    heartbeat_s: float = 0  # how often a bridge tells each shard it is alive (policy bridge_heartbeat_s)


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
    """A member's page opened a websocket (to the shard, which finds or creates the member).
    `profile` is the member as the gateway read it: {"name", "tier", "can_charge", "followers"}."""
    member_id: str
    conn_id: int
    bridge: Any
    profile: dict


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
    """The member now holds this connection; frames for it go to `member` (its shard)."""
    member_id: str
    conn_id: int
    member: Any
    status: str
    refused: str = None      # an error code instead: the page is not attached (too_many_pages)
    message: str = ""        # what the page is told when refused


@dataclasses.dataclass
class Push:
    """Frames for some of a bridge's connections: [(conn_ids, frame), ...], and RelayLease
    items, in the order the sender made them."""
    items: list


@dataclasses.dataclass(frozen=True)
class RelayLease:
    """A call's session lets the gateways of its two pages relay the call's `signal` frames by
    themselves (`pages`: the host's page and the caller's, each (BridgeRef, conn_id)): within
    one gateway when both pages are on it, else from one gateway's bridge straight to the
    other's (gateway/links.py); or takes that back (None). Granted only while the call allows
    media and both sides are connected; revoked at every change, so the session stays the only
    authority over who may signal."""
    call_id: str
    pages: tuple = None


@dataclasses.dataclass
class Presence:
    """A member's status, for every viewer of it on the receiving bridge."""
    member_id: str
    status: str


@dataclasses.dataclass
class Presences:
    """Several Presence for one bridge, sent as one message: a watch of 500 members costs each
    shard one answer, not one per member."""
    items: list


@dataclasses.dataclass
class StreamWhere:
    """Bridge → shard, by Thespian: where is your stream (actors/shard_stream.py)? The shard
    listens from then on and expects this bridge's hello with the token of its answer."""
    req_id: int
    bridge: Any             # BridgeRef


@dataclasses.dataclass
class StreamAt:
    req_id: int
    address: tuple          # (host, port) on the shard's actor_host
    token: str


# Directory → shard.

@dataclasses.dataclass
class ShardStart:
    """Directory → new shard: its index and the services its members use."""
    index: int
    services: Any
    recovered: bool = False  # replaces a lost shard: bring back its members' live calls from the store


# Calls. A connection is (BridgeRef, conn_id); a call id is 24 hex digits.

@dataclasses.dataclass
class RingRequest:
    """Caller's member → host's shard → host's member: please ring."""
    call_id: str
    host_id: str
    caller: dict            # {"id", "name"}
    connection: tuple       # the caller's page that placed the call


@dataclasses.dataclass
class CallRefused:
    """Host side → caller's member: the call could not start."""
    call_id: str
    connection: tuple
    code: str
    message: str
    request_id: Any = None


@dataclasses.dataclass
class CallStart:
    """Host's member (through its shard) → new call session."""
    call_id: str
    host: dict              # {"id", "name", "tier", "can_charge"}
    caller: dict
    connection: tuple       # the caller's page
    services: Any


@dataclasses.dataclass
class CallRestore:
    """Host's member (through its shard) → replacement call session: carry on from the stored call."""
    call_id: str
    services: Any


@dataclasses.dataclass(frozen=True)
class CallRef:
    """How a call hosted inside its host's shard is reached: through that shard, found from the
    host's id wherever the shard runs now (a call session process is reached by its address)."""
    host_id: str
    call_id: str


@dataclasses.dataclass
class CallJoined:
    """Call session → a participant's member: frames about this call go to `call` (a CallRef,
    or a call session process's address)."""
    call_id: str
    call: Any


@dataclasses.dataclass
class CallFrame:
    """Member → call session: a frame from one of the member's pages about this call."""
    member_id: str
    connection: tuple
    frame: dict


@dataclasses.dataclass
class ConnectionGone:
    member_id: str
    connection: tuple


@dataclasses.dataclass
class RingPages:
    """Call session → host's member: show (or drop) the incoming call on every page."""
    call_id: str
    frame: dict


@dataclasses.dataclass
class CallActive:
    """Call session → both members: in a call (red dot) or not."""
    call_id: str
    active: bool


@dataclasses.dataclass
class CallOver:
    call_id: str


@dataclasses.dataclass
class CallMissed:
    """Call session → host's member: nobody answered; the member mails them (throttled)."""
    call_id: str
    caller_name: str


@dataclasses.dataclass
class ToCall:
    """From outside (the money side, operators, tests) to a call, routed by its host's shard."""
    host_id: str
    call_id: str
    message: Any


@dataclasses.dataclass
class PaymentCaptured:
    round: int
    payment: dict           # e.g. {"capture_id", "amount_cents"}


@dataclasses.dataclass
class PaymentFailed:
    round: int
    reason: str


# Store and mail adapters.

@dataclasses.dataclass
class SaveCall:
    call_id: str
    version: int
    document: dict


@dataclasses.dataclass
class SaveCalls:
    """The SaveCall of every call a shard changed while handling one message, in one message:
    the call store writes them in one bulk write (a reconnect storm re-attaches thousands)."""
    saves: list


@dataclasses.dataclass
class CallSaved:
    call_id: str
    version: int


@dataclasses.dataclass
class CallsSaved:
    """The call store's CallSaved for one SaveCalls, in one message."""
    saved: list


@dataclasses.dataclass
class LoadCall:
    call_id: str


@dataclasses.dataclass
class CallLoaded:
    call_id: str
    document: Any           # None when no such call is stored


@dataclasses.dataclass
class SendMail:
    member_id: str
    subject: str
    body: str


@dataclasses.dataclass
class MailCallRecord:
    """Call session → mailer, when a paid call has ended (and is stored so): both sides get the
    head of its record's hash chain (actors/evidence.py), once per call."""
    call_id: str


# Payments (call session <-> payments adapter; gateway -> call through ToCall).

# `tip` is 0 for the payment of a round, else the number of the tip in the call.

@dataclasses.dataclass
class CreateOrder:
    call_id: str
    round: int
    host_id: str
    caller_id: str
    amount_cents: int
    tip: int = 0
    terms: dict = None      # the agreed terms' view (with fingerprint), printed on the receipt


@dataclasses.dataclass
class OrderCreated:
    round: int
    order_id: str
    approve_url: str
    tip: int = 0


@dataclasses.dataclass
class OrderApproved:
    """The payer approved (PayPal's return to us, or its webhook): capture it now."""
    round: int
    order_id: str
    tip: int = 0


@dataclasses.dataclass
class CaptureOrder:
    call_id: str
    round: int
    host_id: str
    caller_id: str
    order_id: str
    tip: int = 0


@dataclasses.dataclass
class TipCaptured:
    tip: int
    payment: dict


@dataclasses.dataclass
class TipFailed:
    tip: int
    reason: str


@dataclasses.dataclass
class RefundLateCapture:
    """Call session → payments: this round's capture came when the call could no longer use it
    (it is over): give it back to the caller in full."""
    call_id: str
    round: int
    order_id: str
    capture_id: str


# Several nodes and failure (docs/operating.md).

@dataclasses.dataclass
class Heartbeat:
    """Bridge → every shard, each policy bridge_heartbeat_s: this gateway is alive."""
    bridge: Any             # BridgeRef


@dataclasses.dataclass
class Resync:
    """Shard → a bridge it had given up on: attach your connections and watches here again."""
    index: int


@dataclasses.dataclass
class ShardsMoved:
    """Directory → shards → their call sessions: the shard addresses now (a lost one replaced)."""
    addresses: list


@dataclasses.dataclass
class ToMember:
    """To a member, through the shard that hosts it (actors/member.py): members have no address."""
    member_id: str
    message: Any


@dataclasses.dataclass
class ProfileChanged:
    """Gateway → a live member, through its shard: the member's profile changed (tier, payout
    email, name); same shape as Open's `profile`. A member not online reads the fresh profile
    at its next Open."""
    member_id: str
    profile: dict


@dataclasses.dataclass
class MemberBack:
    """A participant's member, restored with its shard → the call session: it is back."""
    call_id: str
    member_id: str


@dataclasses.dataclass
class RecoverCalls:
    """Recovered shard → member: live calls of this member whose actors were lost with their node.
    `calls` is [(call_id, role, other_member_id)], role "host" or "caller"."""
    calls: list


@dataclasses.dataclass
class FindLiveCalls:
    """Recovered shard → its call finder: calls not ended whose host or caller hashes to the shard."""
    shard_index: int
    shard_count: int
    settings: Any = None


@dataclasses.dataclass
class LiveCalls:
    calls: Any              # [{"_id", "host_id", "caller_id"}], or None when the store did not answer


# Followers (actors/followers.py, rules/follow_rules.py).

@dataclasses.dataclass
class MemberCameOnline:
    """A member with followers → the followers adapter: their first page of a new stay in their
    shard opened at `at_s`. The adapter answers the shard with `TellFollowers` if it is news."""
    member_id: str
    name: str
    at_s: float


@dataclasses.dataclass
class MemberWentAway:
    """A member with followers → the followers adapter: they left their shard (no page for the
    exit grace) at `at_s`."""
    member_id: str
    at_s: float


@dataclasses.dataclass
class TellFollowers:
    """Followers adapter → the member's shard: these followers are due a notice that the member
    is online (claimed already: each is told once, on a page or by mail)."""
    member_id: str
    name: str
    follower_ids: list


@dataclasses.dataclass
class FollowedOnline:
    """To a follower, through their shard: show `followed_online` on your open pages, or, with
    none open, have the followers adapter mail you (`MailFollower`)."""
    follower_id: str
    member_id: str
    name: str


@dataclasses.dataclass
class MailFollower:
    """A follower's shard → the followers adapter: they have no page open; mail them."""
    follower_id: str
    member_id: str
    name: str


# Leadership (actors/leadership.py): a directory started by a node that took over the lease.

@dataclasses.dataclass
class SavePlacement:
    """Directory → call store: where the shards are now (their pickled addresses and nodes),
    so a node taking over a lost leader's lease adopts the shards that survived. Stored only
    under a token at least the stored one's (a deposed directory cannot overwrite it)."""
    token: int
    shards: list
    placement: dict
    leader: str = None      # the node of the directory that placed them (the leader then)


@dataclasses.dataclass
class Adopted:
    """New directory → a shard that survived its leader, or the directory → every shard when an
    adapter died and a new one took its place: the new adapters and shard list (work they had
    not answered is asked again), and the directory the gateways must ask from now on."""
    services: Any
    directory: Any
    token: int = None       # the new leader's lease: the global names of its singletons


@dataclasses.dataclass
class DirectoryMoved:
    """Shard → a gateway's bridge it hears heartbeats from: the member directory is this one now."""
    directory: Any
    token: int = None


@dataclasses.dataclass
class MailerMoved:
    """Directory → the payout scheduler and the refunds actor: the mailer died and this one
    took its place."""
    mailer: Any
