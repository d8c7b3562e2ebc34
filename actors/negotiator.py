"""The negotiation actor: one per round of a call, owning the round's window timer.

A thin shell over negotiation.Negotiation: the call session forwards the participants'
propose / pay / renegotiate / decline_terms frames; outcomes and refusals go back to it.
"""
import time

from thespian.actors import Actor, WakeupMessage

from actors import lifelines
from actors.messages import NegotiationFrame, NegotiationOutcome, NegotiationRefused, NegotiationStart
from actors.negotiation import Negotiation
from actors.terms import Refused


class NegotiationActor(Actor):
    def __init__(self):
        super().__init__()
        lifelines.die_with_parent()  # with its creator, whose replacement restores it
        self.rules = None
        self.call = None

    def receiveMessage(self, message, sender):
        now_s = time.time()
        if isinstance(message, NegotiationStart):
            self.call = sender
            self.rules = Negotiation(message.round, message.limits, message.deadline_s)
            if message.proposal is not None:  # carried over by a restarted call session
                self.rules.proposal = message.proposal
                self.rules.proposals_made = message.proposal.proposal
            self.wakeupAfter(max(0.0, message.deadline_s - now_s))
        elif isinstance(message, NegotiationFrame):
            self.on_frame(message, now_s)
        elif isinstance(message, WakeupMessage) and self.rules is not None:
            if now_s < self.rules.deadline_s:  # woken a little early
                self.wakeupAfter(self.rules.deadline_s - now_s)
                return
            outcome = self.rules.expire(now_s)
            if outcome is not None:
                self.send(self.call, NegotiationOutcome(outcome))

    def on_frame(self, message, now_s):
        frame, who = message.frame, message.who
        try:
            if frame["type"] == "propose":
                outcome = self.rules.propose(who, frame["price_cents"], frame["length_s"], now_s)
            elif frame["type"] == "pay":
                outcome = self.rules.pay(who, frame["proposal"], now_s)
            elif frame["type"] == "renegotiate":
                outcome = self.rules.renegotiate(who, now_s)
            else:
                outcome = self.rules.decline(who, now_s)
        except Refused as refused:
            self.send(self.call, NegotiationRefused(message.connection, frame.get("id"), refused.code, refused.message))
            return
        self.send(self.call, NegotiationOutcome(outcome))
