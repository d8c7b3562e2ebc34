"""The one PayPal client (interkanect/paypal/rest.py), blocking and on Tornado's loop, against
the PayPal emulator: the token cached and renewed, transient failures retried with the same
PayPal-Request-Id, PayPal's refusals in one shape, no answer at all said as such."""
import asyncio

import pytest

from interkanect.paypal import PayPalError, PayPalUnavailable
from interkanect.paypal.rest import AsyncRestClient, RestClient
from tests.test_paypal_emulator import CLIENT_ID, CLIENT_SECRET, running_emulator

BALANCES = "/v1/reporting/balances"
ORDER = {"intent": "CAPTURE", "purchase_units": [{"amount": {"currency_code": "USD", "value": "15.00"}}]}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    yield from running_emulator(tmp_path_factory, "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET)


@pytest.fixture(autouse=True)
def no_faults_left(emulator):
    yield
    emulator.control("DELETE", "/faults")


def requests_to(emulator, path):
    return emulator.control("GET", f"/requests?path={path}")[1]["requests"]


def arm(emulator, **fault):
    status, answer = emulator.control("POST", "/faults", fault)
    assert status in (200, 201), answer


def clients(emulator, attempts=5):
    return (RestClient(emulator.url, CLIENT_ID, CLIENT_SECRET, backoff_s=0.01, attempts=attempts),
            AsyncRestClient(emulator.url, CLIENT_ID, CLIENT_SECRET, backoff_s=0.01, attempts=attempts))


def call(client, *args, **kwargs):
    """One call of either client, from this (synchronous) test."""
    answer = client.call(*args, **kwargs)
    return asyncio.run(answer) if asyncio.iscoroutine(answer) else answer


@pytest.mark.parametrize("kind", ["blocking", "async"])
def test_one_token_serves_many_calls_and_a_revoked_one_is_renewed_once(emulator, kind):
    client = clients(emulator)[kind == "async"]
    tokens_before = len(requests_to(emulator, "/v1/oauth2/token"))
    for _ in range(3):
        assert "balances" in call(client, "read balance", "GET", BALANCES)
    assert len(requests_to(emulator, "/v1/oauth2/token")) == tokens_before + 1
    client.token.value = "revoked-by-paypal"   # PayPal answers 401 to a token it no longer honours
    assert "balances" in call(client, "read balance", "GET", BALANCES)
    assert len(requests_to(emulator, "/v1/oauth2/token")) == tokens_before + 2


@pytest.mark.parametrize("kind", ["blocking", "async"])
def test_a_lost_answer_is_asked_again_with_the_same_request_id_and_paypal_acts_once(emulator, kind):
    client = clients(emulator)[kind == "async"]
    request_id = f"client-test-{kind}"
    arm(emulator, kind="lost_response", path="/v2/checkout/orders", method="POST")
    arm(emulator, kind="error", status=503, path="/v2/checkout/orders", method="POST")
    order = call(client, "create order", "POST", "/v2/checkout/orders", ORDER, request_id=request_id)
    asked = [r for r in requests_to(emulator, "/v2/checkout/orders") if r["paypal_request_id"] == request_id]
    assert len(asked) == 3   # the lost answer, the 503, then the answer
    # PayPal made one order: the same request id now answers it again.
    assert call(client, "create order", "POST", "/v2/checkout/orders", ORDER, request_id=request_id)["id"] == order["id"]


@pytest.mark.parametrize("kind", ["blocking", "async"])
def test_paypals_refusal_is_one_shape_with_its_status_name_and_issue(emulator, kind):
    client = clients(emulator)[kind == "async"]
    with pytest.raises(PayPalError) as refused:
        call(client, "capture", "POST", "/v2/checkout/orders/NO-SUCH-ORDER/capture", {}, request_id=f"nope-{kind}")
    assert refused.value.status == 404 and refused.value.name == "RESOURCE_NOT_FOUND"
    assert refused.value.issue == "INVALID_RESOURCE_ID" and refused.value.details


@pytest.mark.parametrize("kind", ["blocking", "async"])
def test_no_usable_answer_after_every_attempt_is_unavailable_not_a_refusal(emulator, kind):
    client = clients(emulator, attempts=3)[kind == "async"]
    before = len(requests_to(emulator, BALANCES))
    arm(emulator, kind="error", status=500, path=BALANCES, count=3)
    with pytest.raises(PayPalUnavailable, match="HTTP 500"):
        call(client, "read balance", "GET", BALANCES)
    assert len(requests_to(emulator, BALANCES)) == before + 3
