"""Presence rules of one member: which pages are open, their status, who watches it.

Pure: methods take the time and return the effects for the member (actors/member.py) to carry out.
A member is online while at least one of their pages is open, in_call while online and
in a call; the actor lingers for an exit grace after the last page closes.
"""
import dataclasses

OFFLINE = "offline"
ONLINE = "online"
IN_CALL = "in_call"
STATUSES = (OFFLINE, ONLINE, IN_CALL)


@dataclasses.dataclass(frozen=True)
class Broadcast:
    """Tell every watcher the new status."""
    status: str


@dataclasses.dataclass(frozen=True)
class Tell:
    """Tell one watcher the current status."""
    watcher: object
    status: str


@dataclasses.dataclass(frozen=True)
class Welcome:
    """Confirm a new connection with the current status."""
    connection: tuple
    status: str


@dataclasses.dataclass(frozen=True)
class TooManyPages:
    """Refuse a new connection: the member has `limit` pages open already."""
    connection: tuple
    limit: int


@dataclasses.dataclass(frozen=True)
class StartExitTimer:
    delay_s: float
    token: int


@dataclasses.dataclass(frozen=True)
class RequestExit:
    opens_seen: int


@dataclasses.dataclass
class MemberPresence:
    member_id: str
    exit_grace_s: float
    max_connections: int = 0  # pages at once over every gateway (policy pages_per_member_max); 0: no limit
    connections: set = dataclasses.field(default_factory=set)
    watchers: set = dataclasses.field(default_factory=set)
    calls: int = 0          # calls in progress (answered): the red dot
    held: int = 0           # calls this member takes part in, in any state: keep the actor alive
    opens_seen: int = 0
    exit_token: int = 0

    @property
    def status(self):
        if not self.connections:
            return OFFLINE
        return IN_CALL if self.calls else ONLINE

    def _changed(self, before):
        return [Broadcast(self.status)] if self.status != before else []

    def open(self, connection):
        if self.max_connections and len(self.connections) >= self.max_connections \
                and connection not in self.connections:
            return [TooManyPages(connection, self.max_connections)]
        before = self.status
        self.opens_seen += 1
        self.connections.add(connection)
        self.exit_token += 1  # any pending exit timer is now stale
        return [Welcome(connection, self.status)] + self._changed(before)

    def close(self, connection):
        if connection not in self.connections:
            return []
        before = self.status
        self.connections.discard(connection)
        effects = self._changed(before)
        if not self.connections:
            self.exit_token += 1
            effects.append(StartExitTimer(self.exit_grace_s, self.exit_token))
        return effects

    def close_bridge(self, bridge):
        """A gateway went away: every connection it held is closed."""
        effects = []
        for connection in [c for c in self.connections if c[0] == bridge]:
            effects += self.close(connection)
        self.watchers.discard(bridge)
        return effects

    def exit_timer(self, token):
        if token != self.exit_token or self.connections or self.held:
            return []
        return [RequestExit(self.opens_seen)]

    def hold_call(self):
        self.held += 1
        return []

    def release_call(self):
        """A call this member took part in is over; with no page open the exit grace starts."""
        self.held = max(0, self.held - 1)
        if self.held or self.connections:
            return []
        self.exit_token += 1
        return [StartExitTimer(self.exit_grace_s, self.exit_token)]

    def watch(self, watcher):
        self.watchers.add(watcher)
        return [Tell(watcher, self.status)]

    def unwatch(self, watcher):
        self.watchers.discard(watcher)
        return []

    def call_started(self):
        before = self.status
        self.calls += 1
        return self._changed(before)

    def call_ended(self):
        before = self.status
        self.calls = max(0, self.calls - 1)
        return self._changed(before)
