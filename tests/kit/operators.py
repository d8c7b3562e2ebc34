"""An operator: a member made one with the command line, and what they do in a test (approve a
refund request, with the interview note an approval needs)."""
from tests.kit.client import Member


async def operator(system, name="Olga Operator"):
    """A new member made an operator (`interkanect members set-operator`)."""
    member = await Member(system.url).sign_up(name)
    answer = system.cli("members", "set-operator", member.email)
    assert answer.returncode == 0, answer.stderr
    assert (await member.request("GET", "/api/me")).json()["member"]["operator"] is True
    return member


async def approve(olga, request_id, note=None):
    """The operator records what they heard from the host (an approval needs it), then approves."""
    noted = await olga.request("POST", f"/api/refunds/{request_id}/notes", {"text": "Called the host: it failed."})
    assert noted.code == 201, noted.body
    return await olga.request("POST", f"/api/refunds/{request_id}/decision",
                              {"decision": "approve", **({"note": note} if note else {})})
