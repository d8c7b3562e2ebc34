"""A member's profile changes reach their live actor at once (ProfileChanged through their
shard), so an online host is called on what they are now, without reopening a page: an
operator's tier, a subscription through PayPal, a payout email added or removed, a new name."""
import urllib.parse

from tests.kit.calls import ring, upgraded_host
from tests.kit.client import PASSWORD, Member
from tests.kit.system import run
from tests.kit.operators import operator
from tests.test_upgrade import consent, plan  # noqa: F401 (plan is a fixture)


async def online(member):
    page = await member.socket()
    await page.expect("hello")
    return page


async def answered(caller_page, host_page, host_id):
    call_id = await ring(caller_page, [host_page], host_id)
    await host_page.request("accept", call_id=call_id)
    await host_page.expect("call_state", call_id=call_id, state="negotiating")
    return call_id


async def proposal_refusal(host_page, caller_page, call_id, price_cents):
    """None when the caller is shown the proposal, else the host's error code."""
    request_id = await host_page.request("propose", call_id=call_id, price_cents=price_cents, length_s=600)
    while True:
        frame = await host_page.frame()
        if frame["type"] == "error" and frame["id"] == request_id:
            return frame["code"]
        if frame["type"] == "call_state" and frame.get("event") == "proposed":
            shown = await caller_page.expect("call_state", call_id=call_id, event="proposed")
            assert shown["proposal"]["price_cents"] == price_cents
            return None


async def hang_up(host_page, caller_page, call_id):
    await host_page.request("hang_up", call_id=call_id)
    await caller_page.expect("call_state", call_id=call_id, state="ended")


def test_an_online_free_host_upgraded_by_an_operator_takes_a_paid_call_at_once(system):
    async def scenario():
        host = await Member(system.url).sign_up("Soon Upgraded")
        assert (await host.request("PATCH", "/api/me",
                                   {"payout_email": "pay@example.com", "password": PASSWORD})).code == 200
        caller = await Member(system.url).sign_up("Caller")
        host_page, caller_page = await online(host), await online(caller)

        call_id = await answered(caller_page, host_page, host.id)
        assert await proposal_refusal(host_page, caller_page, call_id, 1500) == "free_tier_price"
        await hang_up(host_page, caller_page, call_id)

        olga = await operator(system)
        assert (await olga.request("POST", f"/api/operator/members/{host.id}/tier", {"tier": "upgraded"})).code == 200
        call_id = await answered(caller_page, host_page, host.id)   # the same page, never reopened
        assert await proposal_refusal(host_page, caller_page, call_id, 1500) is None
        await hang_up(host_page, caller_page, call_id)
    run(scenario())


def test_a_host_who_removes_their_payout_email_can_no_longer_be_offered_paid_terms(system):
    async def scenario():
        host = await upgraded_host(system, "Payout Host")
        caller = await Member(system.url).sign_up("Old Name")
        host_page, caller_page = await online(host), await online(caller)
        assert (await host.request("PATCH", "/api/me", {"payout_email": "", "password": PASSWORD})).code == 200
        assert (await caller.request("PATCH", "/api/me", {"display_name": "New Name"})).code == 200

        request_id = await caller_page.request("call", member_id=host.id)
        incoming = await host_page.expect("incoming_call")
        assert incoming["caller"]["name"] == "New Name" and request_id
        await host_page.request("accept", call_id=incoming["call_id"])
        await host_page.expect("call_state", call_id=incoming["call_id"], state="negotiating")
        assert await proposal_refusal(host_page, caller_page, incoming["call_id"], 1500) == "no_payout_email"
        assert await proposal_refusal(host_page, caller_page, incoming["call_id"], 0) is None  # free stays open
        await hang_up(host_page, caller_page, incoming["call_id"])
    run(scenario())


def test_an_online_host_who_subscribes_through_paypal_takes_a_paid_call_at_once(system, plan):  # noqa: F811
    async def scenario():
        host = await Member(system.url).sign_up("Subscriber Host")
        assert (await host.request("PATCH", "/api/me",
                                   {"payout_email": "pay@example.com", "password": PASSWORD})).code == 200
        caller = await Member(system.url).sign_up("Caller")
        host_page, caller_page = await online(host), await online(caller)

        answer = await host.request("POST", "/api/me/upgrade")
        assert answer.code == 200, answer.body
        back = urllib.parse.urlsplit(consent(answer.json()["approve_url"]))
        assert (await host.request("GET", f"{back.path}?{back.query}")).headers["Location"] == "/account?upgrade=done"

        call_id = await answered(caller_page, host_page, host.id)
        assert await proposal_refusal(host_page, caller_page, call_id, 1500) is None
        await hang_up(host_page, caller_page, call_id)
    run(scenario())
