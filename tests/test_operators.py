"""Operators: members with the operator role (set by the CLI) find members, set tiers and read
any call's log; everyone else is refused with a clear error and changes nothing."""
from bson import ObjectId

from tests.kit.calls import Call
from tests.kit.client import Member
from tests.kit.operators import operator
from tests.kit.system import run
from tests.kit.waiting import wait_for


def test_the_cli_gives_and_takes_the_operator_role_and_me_shows_it(system):
    async def scenario():
        member = await Member(system.url).sign_up("Role Model")
        assert (await member.request("GET", "/api/me")).json()["member"]["operator"] is False
        given = system.cli("members", "set-operator", member.email.upper())
        assert given.returncode == 0 and "now an operator" in given.stdout
        assert (await member.request("GET", "/api/me")).json()["member"]["operator"] is True
        taken = system.cli("members", "set-operator", member.email, "--off")
        assert taken.returncode == 0 and "no longer" in taken.stdout
        assert (await member.request("GET", "/api/me")).json()["member"]["operator"] is False
        assert (await member.request("GET", "/api/operator/members")).error_code == "not_operator"
    run(scenario())
    unknown = system.cli("members", "set-operator", "nobody@example.com")
    assert unknown.returncode != 0 and "no member has the email nobody@example.com" in unknown.stderr


def test_an_operator_finds_members_by_name_or_email_and_sets_their_tier(system):
    async def scenario():
        olga = await operator(system, "Olga Finder")
        zed = await Member(system.url, email="zed.quokka@example.com").sign_up("Zed Zebra")
        by_name = (await olga.request("GET", "/api/operator/members?q=zebra")).json()["members"]
        assert by_name == [{"id": zed.id, "name": "Zed Zebra", "email": "zed.quokka@example.com", "tier": "free",
                            "operator": False, "payout_email": ""}]
        by_email = (await olga.request("GET", "/api/operator/members?q=QUOKKA")).json()["members"]
        assert [m["id"] for m in by_email] == [zed.id]
        assert (await olga.request("GET", "/api/operator/members?q=.*")).json()["members"] == []  # text, not a regex
        everyone = (await olga.request("GET", "/api/operator/members")).json()["members"]
        assert olga.id in [m["id"] for m in everyone] and len(everyone) <= 100

        tier = f"/api/operator/members/{zed.id}/tier"
        for body, status, code in (({"tier": "gold"}, 400, "invalid_tier"), ({}, 400, "invalid_tier")):
            answer = await olga.request("POST", tier, body)
            assert (answer.code, answer.error_code) == (status, code)
        missing = await olga.request("POST", f"/api/operator/members/{ObjectId()}/tier", {"tier": "upgraded"})
        assert (missing.code, missing.error_code) == (404, "no_such_member")
        refused = await zed.request("POST", tier, {"tier": "upgraded"})
        assert (refused.code, refused.error_code) == (403, "not_operator")
        visitor = await Member(system.url).request("GET", "/api/operator/members")
        assert (visitor.code, visitor.error_code) == (401, "not_logged_in")
        assert system.db.members.find_one({"_id": ObjectId(zed.id)})["tier"] == "free"

        upgraded = await olga.request("POST", tier, {"tier": "upgraded"})
        assert upgraded.code == 200 and upgraded.json()["tier"] == "upgraded"
        assert (await zed.request("GET", "/api/me")).json()["member"]["tier"] == "upgraded"
    run(scenario())


def test_an_operator_reads_any_calls_log_and_a_stranger_still_cannot(system):
    async def scenario():
        call = await Call.answered(system, "Logged Host", "Logged Caller")
        await call.agree(0, 600)
        await call.host_page.request("hang_up", call_id=call.id)
        await call.caller_page.expect("call_state", state="ended")
        wait_for(lambda: system.db.calls.find_one({"_id": call.id, "ended_at": {"$ne": None}}), "the call stored")
        olga = await operator(system, "Olga Reader")
        answer = await olga.request("GET", f"/api/calls/{call.id}")
        assert answer.code == 200, answer.body
        shown = answer.json()["call"]
        assert shown["role"] == "operator" and shown["host"] == {"id": call.host.id, "name": "Logged Host"}
        assert shown["caller"]["id"] == call.caller.id and shown["log"]
        stranger = await Member(system.url).sign_up("Nosy")
        assert (await stranger.request("GET", f"/api/calls/{call.id}")).error_code == "no_such_call"
        assert (await call.caller.request("GET", f"/api/calls/{call.id}")).json()["call"]["role"] == "caller"
    run(scenario())
