"""Which gateways' bridges are alive, as a member shard sees them. Pure: the shard reports each
heartbeat with the time and asks, on its own timer, which bridges fell silent."""


class BridgeLiveness:
    def __init__(self, timeout_s):
        self.timeout_s = timeout_s
        self.last_seen_s = {}     # BridgeRef → time of its last heartbeat
        self.given_up = set()     # bridges declared lost: a heartbeat from one means "resync"

    def heard(self, bridge, now_s):
        """A heartbeat came; True when this bridge had been given up (it must attach again)."""
        self.last_seen_s[bridge] = now_s
        if bridge in self.given_up:
            self.given_up.discard(bridge)
            return True
        return False

    def silent(self, now_s):
        """The bridges silent for longer than the timeout; each is reported once."""
        lost = [bridge for bridge, seen_s in self.last_seen_s.items() if now_s - seen_s > self.timeout_s]
        for bridge in lost:
            del self.last_seen_s[bridge]
            self.given_up.add(bridge)
        return lost

    def give_up(self, bridge):
        """Declared lost by other means (its stream stalled): its next heartbeat means "resync"."""
        self.last_seen_s.pop(bridge, None)
        self.given_up.add(bridge)

    @property
    def watching(self):
        return bool(self.last_seen_s)
