"""Upgrading by PayPal subscription through the real path: the operator's plan made at the
PayPal emulator by `interkanect upgrade-plan`, members subscribing over HTTP, consenting on the
emulator's page, coming back (or not: the signed webhook alone upgrades them), renewals booked
as platform revenue, cancelling, and the end of the paid period."""
import datetime
import json
import urllib.parse
import urllib.request

import pytest

from tests.kit.client import Member
from tests.kit.paypal import control, paypal_api, press
from tests.kit.system import run
from tests.kit.waiting import eventually

WAIT_S = 20


def consent(approve_url, choice="approve"):
    """The member on PayPal's (the emulator's) consent page: where PayPal sends them back."""
    status, location = press(approve_url, choice)
    assert status == 302, f"the consent page did not send the member back: {status} {location}"
    return location


async def me(member):
    answer = await member.request("GET", "/api/me")
    assert answer.code == 200, answer.body
    return answer.json()["member"]


def when(text):
    return datetime.datetime.fromisoformat(text)


def sales(system, member_id):
    return list(system.db.ledger.find({"kind": "subscription", "entries.account": f"subscriber:{member_id}"}))


@pytest.fixture(scope="module")
def plan(system):
    """The operator's plan: $9.99 a month (made once per test module)."""
    shown = json.loads(system.cli("upgrade-plan", "show", "--json").stdout)
    if shown is None:
        made = system.cli("upgrade-plan", "create", "--price", "9.99", "--json")
        assert made.returncode == 0, made.stderr
        shown = json.loads(made.stdout)
    return shown


async def upgraded_member(system, name="Upgrader", come_back=True):
    member = await Member(system.url).sign_up(name)
    answer = await member.request("POST", "/api/me/upgrade")
    assert answer.code == 200, answer.body
    back = consent(answer.json()["approve_url"])
    if come_back:
        path = urllib.parse.urlsplit(back)
        returned = await member.request("GET", f"{path.path}?{path.query}")
        assert returned.code == 302 and returned.headers["Location"] == "/account?upgrade=done"
    return member, back


def test_without_a_plan_nobody_can_upgrade_until_the_operator_sets_one(system):
    async def scenario():
        member = await Member(system.url).sign_up("Too Early")
        answer = await member.request("POST", "/api/me/upgrade")
        assert answer.code == 409 and answer.error_code == "no_upgrade_plan"
        assert (await member.request("GET", "/api/me/upgrade")).json()["plan"] is None
        assert (await me(member))["tier"] == "free"
    run(scenario())
    assert json.loads(system.cli("upgrade-plan", "show", "--json").stdout) is None
    assert system.cli("upgrade-plan", "show").returncode != 0

    made = system.cli("upgrade-plan", "create", "--price", "9.99", "--interval", "month")
    assert made.returncode == 0, made.stderr
    assert "$9.99 every month" in made.stdout
    shown = json.loads(system.cli("upgrade-plan", "show", "--json").stdout)
    assert shown["price_cents"] == 999 and shown["interval"] == "MONTH" and shown["plan_id"].startswith("P-")
    at_paypal = urllib.request.urlopen(system.settings.paypal_url + "/emulator/health", timeout=5)
    assert at_paypal.status == 200


@pytest.mark.parametrize("args, message", [(["--price", "nine"], "dollars and cents"),
                                           (["--price", "0"], "more than 0.00"),
                                           (["--price", "9.999"], "dollars and cents"),
                                           (["--price", "9.99", "--interval", "FORTNIGHT"], "DAY, WEEK, MONTH")])
def test_a_bad_plan_is_refused_and_changes_nothing(system, plan, args, message):
    refused = system.cli("upgrade-plan", "create", *args)
    assert refused.returncode != 0 and message in refused.stderr
    assert json.loads(system.cli("upgrade-plan", "show", "--json").stdout)["plan_id"] == plan["plan_id"]


def test_a_free_member_upgrades_through_paypal_and_pays_the_platform(system, plan):
    async def scenario():
        member = await Member(system.url).sign_up("Soon Upgraded")     # no payout email: not needed
        offer = (await member.request("GET", "/api/me/upgrade")).json()
        assert offer["plan"] == {"plan_id": plan["plan_id"], "price_cents": 999, "interval": "MONTH",
                                 "name": "interKanect Upgraded"}
        answer = await member.request("POST", "/api/me/upgrade")
        assert answer.code == 200
        approve_url = answer.json()["approve_url"]
        assert approve_url.startswith(system.settings.paypal_url + "/webapps/billing/subscriptions?ba_token=")
        assert (await me(member))["tier"] == "free"            # nothing changes before PayPal says so

        back = consent(approve_url)
        assert back.startswith(system.url + "/paypal/subscription-return?subscription_id=I-")
        path = urllib.parse.urlsplit(back)
        returned = await member.request("GET", f"{path.path}?{path.query}")
        assert returned.code == 302 and returned.headers["Location"] == "/account?upgrade=done"
        again = await member.request("GET", f"{path.path}?{path.query}")   # a reload changes nothing
        assert again.code == 302

        profile = await me(member)
        assert profile["tier"] == "upgraded" and profile["can_charge"] is False   # no payout email yet
        subscription = profile["subscription"]
        assert subscription["status"] == "ACTIVE" and subscription["price_cents"] == 999
        assert when(subscription["renews_at"]) - datetime.datetime.now(datetime.timezone.utc) > \
            datetime.timedelta(days=29)
        public = (await member.request("GET", f"/api/members/{member.id}")).json()["member"]
        assert public["tier"] == "upgraded"

        # The first cycle's payment, booked once (return and webhook race; the webhook repeats).
        booked = await eventually(lambda: sales(system, member.id), "the first sale booked", timeout_s=WAIT_S)
        assert len(booked) == 1
        entries = {e["account"]: e["amount_cents"] for e in booked[0]["entries"]}
        assert entries == {f"subscriber:{member.id}": -999, "paypal:fees": 84, "platform:revenue": 915}
        assert not any(account.startswith("member:") for account in entries)

        refused = await member.request("POST", "/api/me/upgrade")
        assert refused.code == 409 and refused.error_code == "already_upgraded"
    run(scenario())


def test_each_renewal_is_booked_and_moves_the_renewal_date(system, plan):
    async def scenario():
        member, _ = await upgraded_member(system, "Renewing")
        first = (await me(member))["subscription"]
        await eventually(lambda: sales(system, member.id), "the first sale booked", timeout_s=WAIT_S)
        control(system, f"/emulator/subscriptions/{first['id']}/advance", {"to": "next_cycle"})
        await eventually(lambda: len(sales(system, member.id)) == 2, "the renewal booked", timeout_s=WAIT_S)

        async def moved():
            renews_at = (await me(member))["subscription"]["renews_at"]
            return when(renews_at) - when(first["renews_at"]) == datetime.timedelta(days=30)
        await eventually(moved, "the renewal date moving a month on", timeout_s=WAIT_S)
        assert (await me(member))["tier"] == "upgraded"
    run(scenario())


@pytest.mark.parametrize("mismatch", [{"amount": "12.99"}, {"currency": "EUR"}], ids=["amount", "currency"])
def test_a_renewal_for_another_amount_or_currency_than_the_plan_is_refunded_and_operators_told(system, plan, mismatch):
    async def scenario():
        olga = await Member(system.url).sign_up("Olga Operator")
        assert system.cli("members", "set-operator", olga.email).returncode == 0
        member, _ = await upgraded_member(system, "Overbilled")
        subscription = (await me(member))["subscription"]
        await eventually(lambda: sales(system, member.id), "the first sale booked", timeout_s=WAIT_S)
        # PayPal bills the next cycle for something else than the plan (changed behind our back).
        control(system, "/emulator/faults", {"kind": "sale_mismatch", **mismatch})
        control(system, f"/emulator/subscriptions/{subscription['id']}/advance", {"to": "next_cycle"})
        [wrong] = await eventually(
            lambda: [m for m in system.db.sale_mismatches.find({"member_id": member.id})], "the sale refunded",
            timeout_s=WAIT_S)
        sale_id = wrong["_id"]
        refunded = control(system, "/emulator/webhooks?event_type=PAYMENT.SALE.REFUNDED")["deliveries"]
        assert [d["resource_id"] for d in refunded].count(wrong["refund_id"]) == 1   # one refund at PayPal
        booked = {t["_id"]: t for t in system.db.ledger.find({"_id": {"$regex": f"^sale:{sale_id}"}})}
        totals = {}
        for transaction in booked.values():
            for entry in transaction["entries"]:
                totals[entry["account"]] = totals.get(entry["account"], 0) + entry["amount_cents"]
        if "amount" in mismatch:   # in USD: the sale and its refund, the member square, PayPal's fee our cost
            assert set(booked) == {f"sale:{sale_id}", f"sale:{sale_id}:refund"}
            assert totals == {f"subscriber:{member.id}": 0, "paypal:fees": 94, "platform:revenue": 0,
                              "platform:costs": -94}
        else:                      # in euros: never in the USD balance, nothing booked
            assert booked == {}
        # Only the first cycle is the platform's; the member stays upgraded.
        assert len(sales(system, member.id)) == 1 + ("amount" in mismatch)
        assert (await me(member))["tier"] == "upgraded"
        alert = await eventually(lambda: system.db.outbox.find_one(
            {"to": olga.email, "subject": f"A PayPal subscription payment did not match its plan "
                                          f"(subscription {subscription['id']})"}), "the operators told")
        assert sale_id in alert["body"] and "$9.99" in alert["body"]
        # PayPal delivers its webhook again: nothing more is refunded, booked or mailed.
        def deliveries_of_the_sale():
            return [d for d in control(system, "/emulator/webhooks?event_type=PAYMENT.SALE.COMPLETED")["deliveries"]
                    if d["resource_id"] == sale_id]
        [event] = deliveries_of_the_sale()
        status, _ = paypal_api(system.settings.paypal_url, "POST",
                               f"/v1/notifications/webhooks-events/{event['event_id']}/resend")
        assert status == 202
        await eventually(lambda: [d["status"] for d in deliveries_of_the_sale()] == ["SUCCESS", "SUCCESS"],
                         "the event delivered again", timeout_s=WAIT_S)
        refunded = control(system, "/emulator/webhooks?event_type=PAYMENT.SALE.REFUNDED")["deliveries"]
        assert [d["resource_id"] for d in refunded].count(wrong["refund_id"]) == 1
        assert system.db.ledger.count_documents({"_id": {"$regex": f"^sale:{sale_id}"}}) == len(booked)
        assert system.db.outbox.count_documents({"to": olga.email, "subject": alert["subject"]}) == 1
    run(scenario())


def test_the_webhook_alone_upgrades_a_member_who_never_comes_back(system, plan):
    async def scenario():
        member, _ = await upgraded_member(system, "Tab Closed", come_back=False)

        async def upgraded():
            return (await me(member))["tier"] == "upgraded"
        await eventually(upgraded, "the ACTIVATED webhook upgrading the member", timeout_s=WAIT_S)
    run(scenario())


def test_cancelling_keeps_the_member_upgraded_until_the_paid_period_ends(system, plan):
    async def scenario():
        member, _ = await upgraded_member(system, "Leaving")
        active = (await me(member))["subscription"]
        answer = await member.request("POST", "/api/me/upgrade/cancel")
        assert answer.code == 200, answer.body
        profile = answer.json()["member"]
        assert profile["tier"] == "upgraded"
        assert profile["subscription"]["status"] == "CANCELLED"
        assert profile["subscription"]["ends_at"] == active["renews_at"]
        assert control(system, "/emulator/webhooks?event_type=BILLING.SUBSCRIPTION.CANCELLED")["deliveries"]

        again = await member.request("POST", "/api/me/upgrade/cancel")
        assert again.code == 409 and again.error_code == "no_active_subscription"
        resubscribe = await member.request("POST", "/api/me/upgrade")
        assert resubscribe.code == 409 and resubscribe.error_code == "already_upgraded"
        assert "until" in resubscribe.json()["error"]["message"]
        assert (await me(member))["subscription"]["ends_at"] == active["renews_at"]  # the webhook changed nothing
    run(scenario())


def test_the_member_is_free_again_once_the_paid_period_is_over(system, plan):
    control(system, "/emulator/billing-clock", {"day_s": 0.1}, method="PUT")    # a month is three seconds
    try:
        async def scenario():
            member, _ = await upgraded_member(system, "Short Month")
            answer = await member.request("POST", "/api/me/upgrade/cancel")
            assert answer.code == 200 and answer.json()["member"]["tier"] == "upgraded"
            ends_at = when(answer.json()["member"]["subscription"]["ends_at"])

            async def free():
                return (await me(member))["tier"] == "free"
            await eventually(free, "the end of the paid period", timeout_s=WAIT_S)
            assert datetime.datetime.now(datetime.timezone.utc) >= ends_at
            public = (await member.request("GET", f"/api/members/{member.id}")).json()["member"]
            assert public["tier"] == "free"
            # Free again: a new subscription may start.
            assert (await member.request("POST", "/api/me/upgrade")).code == 200
        run(scenario())
    finally:
        control(system, "/emulator/billing-clock", {"day_s": 86400}, method="PUT")


def test_an_expired_subscription_makes_the_member_free(system, plan):
    async def scenario():
        member, _ = await upgraded_member(system, "Expiring")
        subscription = (await me(member))["subscription"]
        control(system, f"/emulator/subscriptions/{subscription['id']}/advance", {"to": "end"})

        async def free():
            profile = await me(member)
            return profile["tier"] == "free" and profile["subscription"]["status"] == "EXPIRED"
        await eventually(free, "the EXPIRED webhook ending the upgrade", timeout_s=WAIT_S)
    run(scenario())


def test_bad_upgrade_requests_are_refused_and_change_nothing(system, plan):
    async def scenario():
        stranger = Member(system.url)
        answer = await stranger.request("POST", "/api/me/upgrade")
        assert answer.code == 401 and answer.error_code == "not_logged_in"
        assert (await stranger.request("GET", "/api/me/upgrade")).code == 401
        member = await Member(system.url).sign_up("Careful")
        answer = await member.request("POST", "/api/me/upgrade", xsrf=False)
        assert answer.code == 403 and answer.error_code == "xsrf"
        answer = await member.request("POST", "/api/me/upgrade/cancel")
        assert answer.code == 409 and answer.error_code == "no_active_subscription"
        answer = await member.request("GET", "/paypal/subscription-return")
        assert answer.code == 400 and answer.error_code == "missing_subscription_id"
        before = paypal_reads(system, "I-NOSUCHTHING")
        answer = await member.request("GET", "/paypal/subscription-return?subscription_id=I-NOSUCHTHING")
        assert answer.code == 404 and answer.error_code == "no_such_subscription"
        assert paypal_reads(system, "I-NOSUCHTHING") == before == 0   # not ours to ask PayPal about
        assert (await me(member))["tier"] == "free" and (await me(member))["subscription"] is None
        assert system.db.members.find_one({"email": member.email}).get("subscription") is None
    run(scenario())


def paypal_reads(system, subscription_id):
    """How often the gateway asked PayPal (the emulator) for this subscription."""
    path = urllib.parse.quote(f"/v1/billing/subscriptions/{subscription_id}")
    return sum(1 for r in control(system, f"/emulator/requests?path={path}")["requests"] if r["method"] == "GET")


def test_the_subscription_return_needs_the_members_session_and_their_own_pending_subscription(system, plan):
    async def scenario():
        member = await Member(system.url).sign_up("Returning")
        answer = await member.request("POST", "/api/me/upgrade")
        assert answer.code == 200, answer.body
        approve_url = answer.json()["approve_url"]
        # The approve URL carries ba_token, not the subscription id: read it from the member's document.
        subscription_id = system.db.members.find_one({"email": member.email})["subscription"]["id"]
        back = "/paypal/subscription-return?" + urllib.parse.urlencode(
            {"subscription_id": subscription_id, "ba_token": "BA-1", "token": "T-1"})

        # Anyone else with the link (logged out, or another member): no call to PayPal.
        stranger = await Member(system.url).request("GET", back, xsrf=False)
        assert stranger.code == 302
        assert stranger.headers["Location"] == "/login?next=" + urllib.parse.quote(back, safe="")
        other = await Member(system.url).sign_up("Someone Else")
        answer = await other.request("GET", back)
        assert answer.code == 404 and answer.error_code == "no_such_subscription"
        assert paypal_reads(system, subscription_id) == 0
        assert (await me(other))["tier"] == "free"

        # The member, in their own session, after consenting: upgraded (PayPal asked, unless the
        # ACTIVATED webhook came first; later webhooks read it too, so reads are not counted here).
        consent(approve_url)
        returned = await member.request("GET", back)
        assert returned.code == 302 and returned.headers["Location"] == "/account?upgrade=done"
        assert (await me(member))["tier"] == "upgraded"
        assert (await other.request("GET", back)).code == 404
    run(scenario())
