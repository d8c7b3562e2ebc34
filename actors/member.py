"""One online member, hosted inside its shard actor: their connections, status and watchers,
and the calls they take part in.

A member is not a process of its own: a process costs 3–4 MB before it holds anything, and
the product's budget is 3 MB per online member (README: Decisions, Performance).
So a member is a plain object that its shard (actors/member_shard.py) feeds with the shard's
messages and timers, one at a time, the way Thespian feeds an actor; it acts through the
shard (`send`, `createActor`, `wakeupAfter`). Its rules are `presence.MemberPresence`; its
calls are call sessions, hosted by the shard too (or call session processes, children of the
shard, restarted from the store if one dies: settings call_hosting).
Anything addressed to a member goes to its shard with the member id (`ToMember`), so nobody
holds a member's address and a shard started again elsewhere is reached by its new one.
"""
import itertools
import secrets
import time
from collections import defaultdict

from rules import frames, limits, presence
from actors.messages import (Attached, CallActive, CallFrame, CallJoined, CallMissed, CallOver, CallRefused,
                             CallRestore, CallStart, Close, ConnectionGone, Frame, Open, RingPages, RingRequest,
                             SendMail, ToCall, Unwatch, Watch)
from actors.messages import (FollowedOnline, MailFollower, MemberBack, MemberCameOnline, MemberWentAway,
                             ProfileChanged, RecoverCalls)
from rules.terms import FREE

# A call placed while the member's last ringing call is being ended waits this long for the
# end to reach the member (a Thespian hop from the call's shard) before it is refused.
HELD_CALL_S = 1.0


class Member:
    def __init__(self, member_id, shard, watchers, incarnation):
        self.shard = shard         # the MemberShard actor hosting this member
        self.incarnation = incarnation  # tells this member's timers from a former one's (same id)
        policy = shard.services.settings.policy
        self.rules = presence.MemberPresence(member_id, policy.member_exit_grace_s,
                                             max_connections=policy.pages_per_member_max, watchers=set(watchers))
        self.profile = {}
        self.calls = {}            # call_id → call session address (None until it is known)
        self.placed = {}           # call_id → (connection, request id) of a call this member placed
        self.hosting = set()       # call_ids of the calls this member hosts
        self.active = set()        # call_ids counted as in progress (a restored session may say so again)
        self.early_frames = defaultdict(list)  # call_id → CallFrames that came before its session's address
        self.ringing_out = set()   # call_ids this member placed that nobody answered yet
        self.held_call = None      # (token, connection, frame): a call placed while the last one may be ending
        self.held_tokens = itertools.count(1)
        self.rings = limits.RingWindow(policy.rings_per_host_per_minute)
        self.missed_mails = limits.MissedCallMails(policy.missed_call_mail_interval_s)
        self.told_followers = False  # the followers adapter knows this stay began: it hears of its end

    @property
    def member_id(self):
        return self.rules.member_id

    # Pages and watchers ----------------------------------------------------------------

    def on_event(self, event):
        if isinstance(event, Open):
            self.profile = event.profile
            effects = self.rules.open((event.bridge, event.conn_id))
            self.perform(effects)
            if self.rules.opens_seen == 1 and any(isinstance(e, presence.Welcome) for e in effects):
                self.came_online()
        elif isinstance(event, Close):
            connection = (event.bridge, event.conn_id)
            for call in self.calls.values():
                if call is not None:
                    self.shard.tell_call(call, ConnectionGone(self.member_id, connection))
            if self.held_call is not None and self.held_call[1] == connection:
                self.held_call = None   # its page is gone: nobody to ring for
            self.perform(self.rules.close(connection))
        elif isinstance(event, Watch):
            self.perform(self.rules.watch(event.bridge))
        elif isinstance(event, Unwatch):
            self.perform(self.rules.unwatch(event.bridge))
        elif isinstance(event, Frame):
            self.on_frame(event)

    def on_frame(self, event):
        frame, connection = event.frame, (event.bridge, event.conn_id)
        if frame["type"] == "ping":
            self.shard.push(connection, frames.pong(frame["id"]))
        elif frame["type"] == "call":
            self.place_call(connection, frame)
        elif self.calls.get(frame["call_id"]) is not None:
            self.shard.tell_call(self.calls[frame["call_id"]], CallFrame(self.member_id, connection, frame))
        elif frame["call_id"] in self.calls:
            # Its session is on its way (placed, or restored after a node was lost): CallJoined sends these.
            self.early_frames[frame["call_id"]].append(CallFrame(self.member_id, connection, frame))
        else:
            self.error(connection, frame["id"], "no_such_call", "you take part in no call with this id")

    def exit_timer(self, token):
        self.perform(self.rules.exit_timer(token))

    # Calls -----------------------------------------------------------------------------

    def place_call(self, connection, frame):
        host_id = frame["member_id"]
        if host_id == self.member_id:
            self.error(connection, frame["id"], "self_call", "you cannot call yourself")
            return
        if len(self.ringing_out) >= self.policy.ringing_calls_per_caller_max:
            if self.held_call is None:
                # A page hears a call ended from the call's shard, this member a moment later by
                # another way: a call placed in between waits for that news before it is refused.
                self.held_call = (next(self.held_tokens), connection, frame)
                self.shard.wakeupAfter(HELD_CALL_S, payload=("held_call", self.member_id, self.incarnation,
                                                             self.held_call[0]))
            else:
                self.refuse_already_calling(connection, frame)
            return
        call_id = secrets.token_hex(12)
        self.ringing_out.add(call_id)
        self.calls[call_id] = None
        self.placed[call_id] = (connection, frame["id"])
        caller = {"id": self.member_id, "name": self.profile.get("name", "")}
        self.shard.to_member(host_id, RingRequest(call_id, host_id, caller, connection))
        self.perform(self.rules.hold_call())

    def refuse_already_calling(self, connection, frame):
        self.error(connection, frame["id"], "already_calling",
                   "you are ringing someone already: cancel that call, or wait until it is answered")

    def held_call_timer(self, token):
        """The calls ringing out did not end in time: the held call is refused."""
        if self.held_call is not None and self.held_call[0] == token:
            _, connection, frame = self.held_call
            self.held_call = None
            self.refuse_already_calling(connection, frame)

    def place_held_call(self):
        """A call ringing out ended (answered, refused, over): a held call goes now."""
        if self.held_call is not None and len(self.ringing_out) < self.policy.ringing_calls_per_caller_max:
            _, connection, frame = self.held_call
            self.held_call = None
            self.place_call(connection, frame)

    def on_message(self, message):
        """What the shard got for this member (in a ToMember, or a message naming it)."""
        if isinstance(message, RingRequest):
            self.ring(message)
        elif isinstance(message, CallRefused):
            self.ringing_out.discard(message.call_id)
            self.calls.pop(message.call_id, None)
            self.early_frames.pop(message.call_id, None)
            connection, request_id = self.placed.pop(message.call_id, (message.connection, None))
            self.error(connection, request_id, message.code, message.message)
            self.perform(self.rules.release_call())
            self.place_held_call()
        elif isinstance(message, CallJoined):
            if message.call_id not in self.calls:  # a restored call this member did not know
                self.perform(self.rules.hold_call())
            self.calls[message.call_id] = message.call
            for early in self.early_frames.pop(message.call_id, []):
                self.shard.tell_call(message.call, early)
            self.placed.pop(message.call_id, None)
        elif isinstance(message, RingPages):
            for connection in self.rules.connections:
                self.shard.push(connection, message.frame)
        elif isinstance(message, CallActive):
            self.ringing_out.discard(message.call_id)  # answered
            self.call_active(message.call_id, message.active)
            self.place_held_call()
        elif isinstance(message, CallMissed):
            self.perform_mails(self.missed_mails.missed(message.caller_name, time.time()))
        elif isinstance(message, CallOver):
            self.ringing_out.discard(message.call_id)
            self.early_frames.pop(message.call_id, None)
            if self.calls.pop(message.call_id, "gone") != "gone":
                self.hosting.discard(message.call_id)
                self.perform(self.rules.release_call())
            self.place_held_call()
        elif isinstance(message, ToCall):  # for a call session process (the shard serves its own sessions)
            if self.calls.get(message.call_id) is not None:
                self.shard.tell_call(self.calls[message.call_id], message.message)
        elif isinstance(message, RecoverCalls):
            self.recover(message.calls)
        elif isinstance(message, FollowedOnline):
            self.followed_online(message)
        elif isinstance(message, ProfileChanged):
            # Tier, payout email or name changed while pages are open: the next ring uses it
            # (a call already started keeps the terms' limits it rang with).
            self.profile = message.profile

    def ring(self, request):
        refusal = None
        if self.rules.status == presence.OFFLINE:
            refusal = ("offline", "this member is offline; try again when their dot is green")
        elif self.profile.get("tier") == FREE and self.hosting:
            refusal = ("busy", "this member is in a call; free hosts take one call at a time")
        elif not self.rings.admit(time.time()):
            refusal = ("too_many_rings", "this member has been called too often in the last minute; "
                                         "try again in a minute")
        if refusal:
            self.shard.to_member(request.caller["id"], CallRefused(request.call_id, request.connection, *refusal))
            return
        call = self.shard.create_call(self.member_id, request.call_id)
        host = {"id": self.member_id, "name": self.profile.get("name", ""),
                "tier": self.profile.get("tier", FREE), "can_charge": bool(self.profile.get("can_charge"))}
        self.shard.tell_call(call, CallStart(request.call_id, host, request.caller, request.connection,
                                             self.shard.services))
        self.calls[request.call_id] = call
        self.hosting.add(request.call_id)
        self.perform(self.rules.hold_call())

    @property
    def policy(self):
        return self.shard.services.settings.policy

    def missed_mail_timer(self):
        self.perform_mails(self.missed_mails.digest(time.time()))

    def perform_mails(self, effects):
        for effect in effects:
            if isinstance(effect, limits.DigestAt):
                self.shard.wakeupAfter(max(0.0, effect.at_s - time.time()),
                                       payload=("missed_mails", self.member_id, self.incarnation, 0))
            elif isinstance(effect, limits.MailNow):
                self.shard.send(self.shard.services.mailer, SendMail(self.member_id, *missed_call_mail(
                    effect.callers, effect.more, self.policy.ring_timeout_s)))

    def restart_call(self, address):
        """A call session process died before its call was over: a new one carries on from the store."""
        for call_id, call in self.calls.items():
            if call == address and call_id in self.hosting:
                self.restore_call(call_id)
                return

    def restore_call(self, call_id):
        self.calls[call_id] = self.shard.create_call(self.member_id, call_id)
        self.shard.tell_call(self.calls[call_id], CallRestore(call_id, self.shard.services))

    def call_active(self, call_id, active):
        """Count each call once for the red dot: a restored session says so again."""
        if active and call_id not in self.active:
            self.active.add(call_id)
            self.perform(self.rules.call_started())
        elif not active and call_id in self.active:
            self.active.discard(call_id)
            self.perform(self.rules.call_ended())

    def recover(self, calls):
        """Calls whose shard died with its node: a host restores the session from the store;
        a caller tells the (restored or surviving) session it is back."""
        for call_id, role, other_id in calls:
            if self.calls.get(call_id) is not None:
                continue  # known already: a surviving or restored session reached us first
            if call_id not in self.calls:
                self.perform(self.rules.hold_call())
            if role == "host":
                self.hosting.add(call_id)
                self.restore_call(call_id)
            else:
                self.calls[call_id] = None
                self.shard.to_member(other_id, ToCall(other_id, call_id, MemberBack(call_id, self.member_id)))

    def bridge_lost(self, bridge):
        """A gateway fell silent: its pages are gone, for presence and for calls (their grace starts)."""
        for connection in [c for c in self.rules.connections if c[0] == bridge]:
            for call in self.calls.values():
                if call is not None:
                    self.shard.tell_call(call, ConnectionGone(self.member_id, connection))
        self.shard.forget_pushes(bridge)
        self.perform(self.rules.close_bridge(bridge))

    # Followers -------------------------------------------------------------------------

    def came_online(self):
        """The first page of this stay in the shard (a refresh within the exit grace is not one):
        with followers, the followers adapter decides whether that is news for them."""
        followers = self.shard.services.followers
        if followers is not None and self.profile.get("followers"):
            self.told_followers = True
            self.shard.send(followers, MemberCameOnline(self.member_id, self.profile.get("name", ""), time.time()))

    def went_away(self):
        followers = self.shard.services.followers
        if followers is not None and (self.told_followers or self.profile.get("followers")):
            self.shard.send(followers, MemberWentAway(self.member_id, time.time()))

    def followed_online(self, message):
        """A member this one follows is back: every open page shows it; with none open, a mail."""
        frame = frames.followed_online(message.member_id, message.name)
        for connection in self.rules.connections:
            self.shard.push(connection, frame)
        if not self.rules.connections:
            self.shard.send(self.shard.services.followers,
                            MailFollower(message.follower_id, message.member_id, message.name))

    # Effects ---------------------------------------------------------------------------

    def error(self, connection, request_id, code, message):
        self.shard.push(connection, frames.error(request_id, code, message))

    def perform(self, effects):
        rules, shard = self.rules, self.shard
        for effect in effects:
            if isinstance(effect, presence.Welcome):
                bridge, conn_id = effect.connection
                # Frames for this connection go to the shard, which hands them to this member.
                shard.attached(bridge, Attached(rules.member_id, conn_id, shard.myAddress, effect.status))
            elif isinstance(effect, presence.TooManyPages):
                bridge, conn_id = effect.connection
                shard.attached(bridge, Attached(
                    rules.member_id, conn_id, shard.myAddress, presence.OFFLINE, refused="too_many_pages",
                    message=f"you have {effect.limit} interKanect pages open already; close one and this one connects"))
            elif isinstance(effect, presence.Broadcast):
                for watcher in rules.watchers:
                    shard.tell_status(watcher, rules.member_id, effect.status)
            elif isinstance(effect, presence.Tell):
                shard.tell_status(effect.watcher, rules.member_id, effect.status)
            elif isinstance(effect, presence.StartExitTimer):
                shard.wakeupAfter(effect.delay_s, payload=("exit", rules.member_id, self.incarnation, effect.token))
            elif isinstance(effect, presence.RequestExit):
                self.missed_mail_timer()  # missed calls held for a digest go now, not with this member
                self.went_away()
                shard.retire(rules.member_id)


def missed_call_mail(callers, more, ring_timeout_s):
    """(subject, body) of the mail about missed calls: one, or a digest of several."""
    named = list(callers)
    count = len(named) + more
    subject = f"Missed call from {named[0]}" if count == 1 else f"{count} missed calls on interKanect"
    who = ", ".join(named) + (f" and {more} more" if more else "")
    lines = (f"{named[0]} called you on interKanect and nobody answered within {int(ring_timeout_s)} seconds."
             if count == 1 else f"{count} calls to you on interKanect went unanswered: {who}.")
    return subject, (f"{lines}\n\nYou are shown as online while any interKanect page of yours is open; keep one "
                     f"open to take calls. (We send at most one such mail every few minutes.)\n")
