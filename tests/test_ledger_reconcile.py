"""`interkanect ledger reconcile`: the ledger against PayPal's own balance (the emulator's
GET /v1/reporting/balances, computed from what it did), through a real system: captures, a tip,
a refund made on PayPal's dashboard and a payout whose items PayPal charges a fee for. Every
fee is booked, so the two agree to the cent; money the ledger has and PayPal does not is a
difference, and the command says so with exit status 1."""
import datetime
import json

from rules import fees, ledger, payout_calendar
from tests.kit.calls import PAID_LENGTH_S, paid_call
from tests.kit.paypal import paypal_api
from tests.kit.system import run
from tests.kit.waiting import wait_for
from tests.test_payouts import run_payout

UTC = datetime.timezone.utc
PAYOUT_ITEM_FEE_CENTS = 25


def reconcile(system):
    answer = system.cli("ledger", "reconcile", "--json")
    return answer.returncode, json.loads(answer.stdout)


def test_the_ledger_and_paypals_balance_agree_to_the_cent_and_a_difference_is_reported(system_with):
    system = system_with(earnings_hold_s=0, refund_window_s=0, min_length_s=PAID_LENGTH_S,
                         paypal_emulator_payout_item_fee_cents=PAYOUT_ITEM_FEE_CENTS)
    db = system.db

    async def scenario():
        return await paid_call(system, [1500, 2000], tip_cents=500)
    call = run(scenario())
    payments = sorted(db.ledger.find({"call_id": call.id, "kind": ledger.CALL_PAYMENT}), key=lambda t: t["_id"])
    # Someone refunds $4.00 of the first payment on PayPal's dashboard: booked from its webhook.
    status, _ = paypal_api(system.settings.paypal_url, "POST", f"/v2/payments/captures/{payments[0]['_id'][8:]}/refund",
                           {"amount": {"currency_code": "USD", "value": "4.00"}})
    assert status == 201
    wait_for(lambda: db.ledger.find_one({"call_id": call.id, "kind": ledger.REFUND}), "the dashboard refund booked")
    code, figures = reconcile(system)
    net = sum(fees.breakdown(cents).net_cents for cents in (1500, 2000, 500))
    assert (code, figures["ledger_cents"], figures["paypal_cents"]) == (0, net - 400, net - 400)

    # The payout: PayPal charges its fee per delivered item; the platform pays it.
    report = run_payout(system, payout_calendar.next_payouts(datetime.datetime.now(UTC), 1)[0])
    (item,) = report["items"]
    assert item["amount_cents"] == net - 400
    fee = wait_for(lambda: db.ledger.find_one({"kind": ledger.PAYOUT_FEE}), "the payout item's fee booked", 30)
    assert fee["entries"] == [{"account": ledger.PLATFORM_COSTS, "amount_cents": -PAYOUT_ITEM_FEE_CENTS},
                              {"account": ledger.PAYPAL_FEES, "amount_cents": PAYOUT_ITEM_FEE_CENTS}]
    code, figures = reconcile(system)
    assert (code, figures["difference_cents"]) == (0, 0)
    assert figures["paypal_cents"] == -PAYOUT_ITEM_FEE_CENTS and figures["members_held_cents"] == 0
    assert figures["platform_costs_cents"] == -PAYOUT_ITEM_FEE_CENTS
    readable = system.cli("ledger", "reconcile")
    assert readable.returncode == 0 and "difference: $0.00  (reconciled)" in readable.stdout

    # A booking PayPal never saw (a tip written straight into the database) is a difference.
    forged = ledger.tip_transaction(call.id, call.host.id, call.caller.id, "NOTATPAYPAL", 1000, 84)
    db.ledger.insert_one(dict(forged.document(), at=datetime.datetime.now(UTC)))
    code, figures = reconcile(system)
    assert code == 1 and figures["difference_cents"] == -916
    # Taken out again: every test system must end reconciled (conftest's check_books).
    db.ledger.delete_one({"_id": forged.key})
    assert reconcile(system)[1]["difference_cents"] == 0
