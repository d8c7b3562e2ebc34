"""The steps of a call that many tests and the benchmarks take through real websockets: an
upgraded host (who may charge), a ring to every host page, a `Call` answered and agreed, a round
paid on PayPal, and a whole paid call (rounds, a tip) from ring to hang-up."""
from bson import ObjectId

from rules import fees
from tests.kit.client import PASSWORD, Member
from tests.kit.paypal import approve_on_paypal
from tests.kit.waiting import wait_for

# upgraded_host sets a payout email, and its owner is told so by mail: not a money mail.
PAYOUT_NOTICE = "Your interKanect payout email changed"
NOT_THE_PAYOUT_NOTICE = {"subject": {"$ne": PAYOUT_NOTICE}}
# paid_call's rounds: the shortest paid length a test system allows when it sets
# min_length_s=PAID_LENGTH_S, so an extension comes quickly.
PAID_LENGTH_S = 2


async def upgraded_host(system, name="Host"):
    host = await Member(system.url).sign_up(name)
    assert (await host.request("PATCH", "/api/me", {"payout_email": "payouts@example.com", "password": PASSWORD})).code == 200
    system.db.members.update_one({"_id": ObjectId(host.id)}, {"$set": {"tier": "upgraded"}})
    return host


async def ring(caller_socket, host_sockets, host_id):
    """Caller calls; every host page rings. Returns the call id."""
    request_id = await caller_socket.request("call", member_id=host_id)
    state = await caller_socket.expect("call_state", state="ringing")
    for page in host_sockets:
        incoming = await page.expect("incoming_call", call_id=state["call_id"])
        assert incoming["caller"]["id"] == state["caller"]["id"]
    assert request_id
    return state["call_id"]


class Call:
    """A call between an upgraded host and a caller, each with one page open."""

    def __init__(self, host, caller, host_page, caller_page, call_id):
        self.host, self.caller = host, caller
        self.host_page, self.caller_page, self.id = host_page, caller_page, call_id
        self.proposal = None

    @classmethod
    async def answered(cls, system, host_name="Host", caller_name="Caller"):
        host = await upgraded_host(system, host_name)
        caller = await Member(system.url).sign_up(caller_name)
        host_page, caller_page = await host.socket(), await caller.socket()
        call = cls(host, caller, host_page, caller_page, await ring(caller_page, [host_page], host.id))
        await host_page.request("accept", call_id=call.id)
        return call

    async def agree(self, price_cents, length_s):
        """The host proposes, the caller takes it: running if free, else awaiting payment."""
        await self.host_page.request("propose", call_id=self.id, price_cents=price_cents, length_s=length_s)
        self.proposal = (await self.caller_page.expect("call_state", event="proposed"))["proposal"]
        await self.caller_page.request("pay", call_id=self.id, proposal=self.proposal["proposal"])
        await self.host_page.expect("call_state", state="running" if price_cents == 0 else "awaiting_payment")
        return self.proposal


async def pay_round(call, price_cents, length_s):
    """One round agreed and paid on PayPal: the call runs again."""
    await call.agree(price_cents, length_s)
    ready = await call.caller_page.expect("call_state", event="payment_ready")
    approve_on_paypal(ready["payment"]["approve_url"])
    await call.host_page.expect("call_state", state="running", event="payment_captured")


async def paid_call(system, prices, tip_cents=0, host=None, caller=None, length_s=PAID_LENGTH_S):
    """A call whose caller pays each price in turn (the first round, then extensions), tips if
    asked, and the host hangs up. Returns the Call."""
    host = host or await upgraded_host(system, "Hana Host")
    caller = caller or await Member(system.url).sign_up("Carl Caller")
    host_page, caller_page = await host.socket(), await caller.socket()
    call = Call(host, caller, host_page, caller_page, await ring(caller_page, [host_page], host.id))
    await host_page.request("accept", call_id=call.id)
    for number, price in enumerate(prices):
        if number:
            await host_page.expect("call_state", event="extension_offer", timeout_s=15)
            await host_page.request("extend", call_id=call.id, yes=True)
            await call.caller_page.expect("call_state", state="negotiating")
        await pay_round(call, price, length_s)
    if tip_cents:
        await caller_page.request("tip", call_id=call.id, amount_cents=tip_cents)
        approve_on_paypal((await caller_page.expect("call_state", event="tip_ready"))["tips"][-1]["approve_url"])
        await host_page.expect("call_state", event="tip_received")
    await host_page.request("hang_up", call_id=call.id)
    await caller_page.expect("call_state", state="ended")
    await host_page.close(), await caller_page.close()
    wait_for(lambda: system.db.calls.find_one({"_id": call.id, "ended_at": {"$ne": None}}), "the call stored")
    return call


def net(cents):
    """What the host earns of a payment of `cents`: the amount less PayPal's fee."""
    return fees.breakdown(cents).net_cents
