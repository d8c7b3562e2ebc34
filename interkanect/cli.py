"""The `interkanect` command: run the system or one of its processes, and operator tasks."""
import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from interkanect import config, logs, processes


def serve(settings, args):
    """Database, actor node and gateway as children; all stop on Ctrl-C or SIGTERM."""
    refuse_fake_money(settings)
    check_paypal_choice(settings, args.paypal)
    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    processes.require_free(settings.host, settings.port, "gateway", "IK_PORT")
    processes.require_free(settings.actor_host, settings.admin_port, "actor node admin", "IK_ADMIN_PORT")
    if settings.embedded_database:
        processes.require_free(settings.db_host, settings.db_port, "database", "IK_DB_PORT")

    stopping = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.append(True))
    env = dict(os.environ, **config.to_environ(settings))
    me = [sys.executable, "-m", "interkanect.cli"]
    children = processes.Supervisor()
    actor_sessions = set()
    try:
        if settings.embedded_database:
            secantusd = shutil.which("secantusd-py", path=str(Path(sys.executable).parent)) or "secantusd-py"
            db_log = open(data_dir / "database.log", "ab")
            process = children.start("database", [secantusd, "--host", settings.db_host, "--port", str(settings.db_port),
                                                  "--storage-path", str(data_dir / "db")],
                                     env=env, stdout=db_log, stderr=db_log)
            from interkanect.db import ping
            processes.wait_until(lambda: ping(settings), 60, "the database (see var/database.log)", process=process)
        if settings.paypal_emulated:
            paypal_log = open(data_dir / "paypal-emulator.log", "ab")
            start_paypal_emulator(children, settings, env, stdout=paypal_log, stderr=subprocess.STDOUT)
        process = children.start("actor node", me + ["node"], env=env)
        processes.wait_until(lambda: processes.port_listening(settings.actor_host, settings.admin_port), 60,
                             "the actor node", process=process)
        actor_sessions |= processes.actor_system_sessions(settings.admin_port)
        process = children.start("gateway", me + ["gateway"], env=env)
        processes.wait_until(lambda: _healthy(settings), 60, "the gateway", process=process)
        print(f"interKanect is running at {settings.url}  (Ctrl-C stops it)", flush=True)
        while not stopping:
            exited = children.exited()
            if exited:
                print(f"error: the {exited[0]} exited with status {exited[1]}; stopping", file=sys.stderr)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        print("stopping…", file=sys.stderr, flush=True)
        children.stop_all()
        processes.kill_sessions(actor_sessions | processes.actor_system_sessions(settings.admin_port))


def refuse_fake_money(settings):
    """A production deployment starts only with live PayPal credentials."""
    from interkanect.paypal_mode import production_refusal
    refusal = production_refusal(settings)
    if refusal:
        raise SystemExit(f"error: {refusal}")


def check_paypal_choice(settings, choice):
    """`serve` runs the emulator, and takes fake payments, only when told to (`--paypal emulator`)."""
    if choice == "emulator" and not settings.paypal_emulated:
        raise SystemExit("error: --paypal emulator, but PayPal credentials are set (IK_PAYPAL_CLIENT_ID): "
                         "drop --paypal emulator (or pass --paypal paypal) to use them, or unset them")
    if choice != "emulator" and settings.paypal_emulated:
        raise SystemExit("error: no PayPal credentials are set (IK_PAYPAL_CLIENT_ID, IK_PAYPAL_CLIENT_SECRET, "
                         "IK_PAYPAL_WEBHOOK_ID); set them, or pass --paypal emulator to run the local PayPal "
                         "emulator, which takes fake payments (scripts/serve does)")


def start_paypal_emulator(children, settings, env, **popen_options):
    """The local PayPal, for a system with no PayPal credentials; its webhooks go to our gateway."""
    processes.require_free("127.0.0.1", settings.paypal_emulator_port, "PayPal emulator", "IK_PAYPAL_EMULATOR_PORT")
    process = children.start("PayPal emulator", [
        sys.executable, "-m", "interkanect.cli", "paypal-emulator", "--port", str(settings.paypal_emulator_port),
        "--webhook-url", f"{settings.url}paypal/webhook", "--webhook-id", settings.paypal_webhook_id_in_use,
        "--payout-item-fee-cents", str(settings.paypal_emulator_payout_item_fee_cents)],
        env=env, **popen_options)
    processes.wait_until(lambda: _answers(f"{settings.paypal_url}/emulator/health"), 60, "the PayPal emulator",
                         process=process)
    return process


def _answers(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def _healthy(settings):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.port}/healthz", timeout=2) as answer:
            return json.load(answer)["ok"]
    except OSError:
        return False


def gateway(settings, args):
    from gateway.app import run
    refuse_fake_money(settings)
    if not processes.port_listening(settings.actor_host, settings.admin_port):
        raise SystemExit(f"error: no actor node answers on admin port {settings.admin_port}; "
                         f"start `interkanect node` first (or set IK_ADMIN_PORT)")
    processes.require_free(settings.host, settings.port, "gateway", "IK_PORT")
    asyncio.run(run(settings))


def node(settings, args):
    import dataclasses
    from actors.convention import parse_join
    from actors.node import run
    chosen = {"join": args.join, "admin_port": args.admin_port, "node_name": args.name,
              "member_nodes": args.member_nodes, "hosts_members": False if args.no_members else None}
    settings = dataclasses.replace(settings, **{k: v for k, v in chosen.items() if v is not None})
    refuse_fake_money(settings)
    if settings.join:
        try:
            parse_join(settings.join)
        except ValueError as error:
            raise SystemExit(f"error: {error}")
    processes.require_free(settings.actor_host, settings.admin_port, "actor node admin", "IK_ADMIN_PORT")
    if settings.node_metrics_port:
        processes.require_free(settings.actor_host, settings.node_metrics_port, "node metrics", "IK_NODE_METRICS_PORT")
    run(settings)


def paypal_emulator(settings, args):
    from paypal_emulator.app import run
    from paypal_emulator.settings import EmulatorSettings
    processes.require_free(args.host, args.port, "PayPal emulator", "--port")
    asyncio.run(run(EmulatorSettings(
        host=args.host, port=args.port, public_url=args.public_url, client_id=args.client_id,
        client_secret=args.client_secret, webhook_url=args.webhook_url, webhook_id=args.webhook_id,
        time_scale=args.time_scale, payout_processing_s=args.payout_processing_s,
        payout_item_fee_cents=args.payout_item_fee_cents, dispute_fee_cents=args.dispute_fee_cents)))


def mail_outbox(settings, args):
    from interkanect.db import database
    for mail in database(settings).outbox.find().sort("created_at", 1):
        print(f"--- {mail['created_at'].isoformat()}  to: {mail['to']}\nsubject: {mail['subject']}\n\n{mail['body']}")


def set_tier(settings, args):
    from gateway.accounts import TIERS
    from interkanect.db import database
    if args.tier not in TIERS:
        raise SystemExit(f"error: tier must be one of {', '.join(TIERS)}")
    result = database(settings).members.update_one({"email": args.email.strip().lower()},
                                                   {"$set": {"tier": args.tier}})
    if result.matched_count == 0:
        raise SystemExit(f"error: no member has the email {args.email}")
    print(f"{args.email} is now {args.tier}")


def upgrade_plan_create(settings, args):
    """Create the upgrade's product (once) and a plan at PayPal; every gateway offers it."""
    from gateway import upgrade
    from interkanect.db import async_database
    from interkanect.paypal import PayPalError, PayPalUnavailable
    from interkanect.paypal.subscriptions import PayPalSubscriptions
    try:
        price_cents = upgrade.parse_price_cents(args.price)
    except ValueError as error:
        raise SystemExit(f"error: {error}")
    interval = args.interval.upper()
    if interval not in upgrade.INTERVALS:
        raise SystemExit(f"error: the interval is one of {', '.join(upgrade.INTERVALS)}")

    async def create():
        paypal = PayPalSubscriptions(settings.paypal_url, settings.paypal_client_id_in_use,
                                     settings.paypal_client_secret_in_use)
        try:
            return await upgrade.create_plan(async_database(settings), paypal, price_cents, interval)
        except (PayPalError, PayPalUnavailable) as error:
            raise SystemExit(f"error: PayPal did not create the plan: {error}")
    plan = asyncio.run(create())
    print_upgrade_plan(plan, args.json)


def upgrade_plan_show(settings, args):
    from gateway.upgrade import PLAN_ID
    from interkanect.db import database
    plan = database(settings).platform.find_one({"_id": PLAN_ID})
    if plan is None and not args.json:
        raise SystemExit("no upgrade plan: create one with `interkanect upgrade-plan create --price 9.99`")
    print_upgrade_plan(plan, args.json)


def print_upgrade_plan(plan, as_json):
    from gateway.upgrade import plan_view
    if as_json:
        print(json.dumps(dict(plan_view(plan), product_id=plan["product_id"],
                              created_at=plan["created_at"].isoformat()) if plan else None))
        return
    print(f"upgrade plan {plan['plan_id']} (product {plan['product_id']}): "
          f"${plan['price_cents'] // 100}.{plan['price_cents'] % 100:02d} every {plan['interval'].lower()}")


def set_operator(settings, args):
    from interkanect.db import database
    result = database(settings).members.update_one({"email": args.email.strip().lower()},
                                                   {"$set": {"operator": not args.off}})
    if result.matched_count == 0:
        raise SystemExit(f"error: no member has the email {args.email}")
    print(f"{args.email} is {'no longer' if args.off else 'now'} an operator")


def fees(settings, args):
    from rules.fees import check_payment, parse_dollars
    from rules.terms import Refused, dollars
    try:
        payment = check_payment(parse_dollars(args.amount), settings.policy.min_price_cents)
    except Refused as refused:
        raise SystemExit(f"error: {refused.message}")
    if args.json:
        print(json.dumps(payment.view()))
    else:
        print(f"{dollars(payment.amount_cents)}: PayPal keeps {dollars(payment.fee_cents)}, "
              f"the member earns {dollars(payment.net_cents)}")


def payouts_schedule(settings, args):
    import datetime
    from rules import payout_calendar
    try:
        after = (payout_calendar.parse_moment(args.after) if args.after
                 else datetime.datetime.now(payout_calendar.LOS_ANGELES))
    except ValueError as error:
        raise SystemExit(f"error: --from: {error}")
    if not 1 <= args.count <= 1000:
        raise SystemExit("error: --count is between 1 and 1000")
    instants = payout_calendar.next_payouts(after, args.count)
    if args.json:
        print(json.dumps([instant.isoformat() for instant in instants]))
        return
    for instant in instants:
        friday = payout_calendar.friday_on_or_before(instant.date())
        moved = (f"  (Friday {friday} is {payout_calendar.federal_holiday(friday)})"
                 if friday != instant.date() else "")
        print(f"{instant.isoformat()}  {instant:%A}{moved}")


def verify_record(settings, args):
    """Whether a downloaded call record is intact and signed by this platform's key."""
    from actors import evidence
    try:
        document = json.loads(Path(args.file).read_text())
    except (OSError, ValueError) as error:
        raise SystemExit(f"error: cannot read {args.file} as JSON: {error}")
    if args.public_key:
        try:
            public = evidence.public_key_from_text(args.public_key)
        except ValueError:
            raise SystemExit("error: --public-key is the base64 Ed25519 key of /.well-known/interkanect-record-key")
    elif evidence.key_path(settings).exists():
        public = evidence.signing_key(settings).public_key()
    else:
        raise SystemExit(f"error: no record key at {evidence.key_path(settings)}: pass --public-key (from "
                         f"/.well-known/interkanect-record-key)")
    ok, why = evidence.verify(document, public)
    print(f"{args.file}: {why}")
    if not ok:
        raise SystemExit(1)


def ledger_reconcile(settings, args):
    """The ledger against PayPal: what the platform's PayPal account should hold (members'
    held money, the platform's revenue less its costs) and what PayPal says it holds."""
    from rules import ledger
    from interkanect.paypal.payouts import PayPalPayouts
    from rules.terms import dollars
    from interkanect.db import database
    rows = database(settings).ledger.aggregate([{"$unwind": "$entries"}, {"$group": {
        "_id": "$entries.account", "cents": {"$sum": "$entries.amount_cents"}}}])
    balances = {row["_id"]: row["cents"] for row in rows}
    ours = ledger.paypal_balance_cents(balances)
    theirs = PayPalPayouts(settings.paypal_url, settings.paypal_client_id_in_use,
                           settings.paypal_client_secret_in_use).balance_cents()
    report = {"ledger_cents": ours, "paypal_cents": theirs, "difference_cents": theirs - ours,
              "members_held_cents": ledger.held_at_paypal_cents(balances),
              "platform_revenue_cents": balances.get(ledger.PLATFORM_REVENUE, 0),
              "platform_costs_cents": balances.get(ledger.PLATFORM_COSTS, 0),
              "paypal_fees_cents": balances.get(ledger.PAYPAL_FEES, 0)}
    if args.json:
        print(json.dumps(report))
    else:
        def signed(cents):
            return ("-" if cents < 0 else "") + dollars(abs(cents))
        print(f"ledger: {signed(ours)} should be at PayPal (members {signed(report['members_held_cents'])}, "
              f"platform revenue {signed(report['platform_revenue_cents'])}, platform costs "
              f"{signed(report['platform_costs_cents'])})\nPayPal: {signed(theirs)}\ndifference: "
              f"{signed(theirs - ours)}" + ("  (reconciled)" if theirs == ours else ""))
    if theirs != ours:
        raise SystemExit(1)


def payouts_run(settings, args):
    import datetime
    from rules import payout_calendar, payout_rules
    from rules.terms import dollars
    try:
        instant = payout_calendar.parse_moment(args.at)
    except ValueError as error:
        raise SystemExit(f"error: --at: {error}")
    if not payout_rules.is_payout_instant(instant):
        nearest = payout_calendar.next_payouts(instant - datetime.timedelta(days=11), 3)
        raise SystemExit(f"error: --at {instant.isoformat()} is not a payout instant; near it: "
                         f"{', '.join(p.isoformat() for p in nearest)} (see `interkanect payouts schedule`)")
    if not processes.port_listening(settings.actor_host, settings.admin_port):
        raise SystemExit(f"error: no actor node answers on admin port {settings.admin_port}; the payout runs in its "
                         f"payout scheduler: start `interkanect node` first (or set IK_ADMIN_PORT)")
    from actors.payouts import ask_run
    answer = ask_run(settings, instant, args.timeout_s)
    if answer is None:
        raise SystemExit(f"error: no answer from the payout scheduler within {args.timeout_s:g} s; the run goes on "
                         f"in the node: run this command again to see its result (it pays nothing twice)")
    if answer.error:
        raise SystemExit(f"error: the payout of {instant.isoformat()} failed: {answer.error}")
    report = answer.report
    if args.json:
        print(json.dumps(report))
        return
    sent = "already sent; " if report["already_sent"] else ""
    print(f"{report['batch_id']} ({report['payout_at']}): {sent}{report['state']}, {len(report['items'])} members, "
          f"{dollars(report['paid_cents'])}" + (f", PayPal batch {report['paypal_batch_id']}"
                                                 if report['paypal_batch_id'] else ""))
    if len(report["parts"]) > 1:
        for part in report["parts"]:
            print(f"  batch {part['batch_id']}: {part['state']}, {part['items']} members, {dollars(part['paid_cents'])}"
                  + (f", PayPal batch {part['paypal_batch_id']}" if part["paypal_batch_id"] else ""))
    for skipped in report["skipped"]:
        print(f"  skipped {skipped['member_id']} ({skipped['reason']}): {dollars(skipped['amount_cents'])} waits")
    for item in report["returned"]:
        print(f"  came back ({item['status']}): {dollars(item['amount_cents'])} to {item['member_id']}")
    if report["error"]:
        print(f"  PayPal refused {'a' if len(report['parts']) > 1 else 'the'} batch: {report['error']}")


def parser():
    top = argparse.ArgumentParser(prog="interkanect", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    whole = commands.add_parser("serve", help="run the whole system: database, actor node, gateway")
    whole.add_argument("--paypal", choices=("emulator", "paypal"), default="paypal",
                       help="paypal (default): PayPal with the configured credentials (IK_PAYPAL_*); emulator: "
                            "start the local PayPal emulator, fake payments (what scripts/serve passes)")
    whole.set_defaults(run=serve)
    commands.add_parser("gateway", help="run one gateway (needs a running actor node)").set_defaults(run=gateway)
    actor_node = commands.add_parser("node", help="run an actor node: the convention leader (runs the directory), "
                                                  "or with --join one more node for member shards")
    actor_node.add_argument("--join", metavar="HOST:PORT", help="join the convention led by the node whose admin "
                                                              "port is HOST:PORT (default IK_JOIN; empty: lead)")
    actor_node.add_argument("--admin-port", type=int, help="this node's Thespian admin port (default IK_ADMIN_PORT)")
    actor_node.add_argument("--name", help="this node's name in the convention (default hostname:admin-port)")
    actor_node.add_argument("--no-members", action="store_true", help="host no member shards here")
    actor_node.add_argument("--member-nodes", type=int, metavar="N",
                            help="leader: spread the shards once N member-hosting nodes are in (default "
                                 "IK_MEMBER_NODES, 1; after IK_NODE_WAIT_S with those present)")
    actor_node.set_defaults(run=node)
    emulator = commands.add_parser("paypal-emulator", help="run a local PayPal (REST API, checkout page, "
                                                           "signed webhooks) for development and tests")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8890)
    emulator.add_argument("--public-url", default="", help="base of the links it hands out (default http://HOST:PORT)")
    emulator.add_argument("--webhook-url", default="", help="where signed events are posted (default: nowhere)")
    emulator.add_argument("--webhook-id", default="EMULATORWEBHOOKID", help="the webhook id events are signed for")
    emulator.add_argument("--client-id", default="emulator-client-id")
    emulator.add_argument("--client-secret", default="emulator-client-secret")
    emulator.add_argument("--time-scale", type=float, default=1.0,
                          help="multiplies PayPal's webhook retry backoff (1 = about 3 days for 25 retries)")
    emulator.add_argument("--payout-processing-s", type=float, default=2.0,
                          help="how long a payout batch stays PENDING")
    emulator.add_argument("--dispute-fee-cents", type=int, default=1500,
                          help="PayPal's fee on a dispute the buyer wins (default 1500: $15.00)")
    emulator.add_argument("--payout-item-fee-cents", type=int, default=0,
                          help="PayPal's fee per delivered payout item, charged to the sender (default 0)")
    emulator.set_defaults(run=paypal_emulator)
    mail = commands.add_parser("mail", help="mail tools").add_subparsers(dest="mail_command", required=True)
    mail.add_parser("outbox", help="print mail kept because no SMTP server is configured").set_defaults(run=mail_outbox)
    members = commands.add_parser("members", help="member administration").add_subparsers(dest="members_command",
                                                                                         required=True)
    tier = members.add_parser("set-tier", help="set a member's tier")
    tier.add_argument("email")
    tier.add_argument("tier", help="free or upgraded")
    tier.set_defaults(run=set_tier)
    operator = members.add_parser("set-operator", help="let a member review refunds and set tiers (operator)")
    operator.add_argument("email")
    operator.add_argument("--off", action="store_true", help="take the operator role away")
    operator.set_defaults(run=set_operator)
    plans = commands.add_parser("upgrade-plan", help="the PayPal subscription plan members upgrade with")
    plans = plans.add_subparsers(dest="upgrade_plan_command", required=True)
    create = plans.add_parser("create", help="create the plan at PayPal and offer it to members (members "
                                             "subscribed before keep theirs)")
    create.add_argument("--price", required=True, help="in dollars per interval, e.g. 9.99")
    create.add_argument("--interval", default="MONTH", help="DAY, WEEK, MONTH (default) or YEAR")
    create.add_argument("--json", action="store_true", help="print the plan as JSON")
    create.set_defaults(run=upgrade_plan_create)
    show = plans.add_parser("show", help="the plan members are offered")
    show.add_argument("--json", action="store_true", help="print the plan as JSON (null when there is none)")
    show.set_defaults(run=upgrade_plan_show)
    fee = commands.add_parser("fees", help="PayPal's fee on a payment or tip, and what the member earns")
    fee.add_argument("amount", help="in dollars, e.g. 10.00")
    fee.add_argument("--json", action="store_true", help="print {amount_cents, fee_cents, net_cents}")
    fee.set_defaults(run=fees)
    verify = commands.add_parser("verify-record", help="check a downloaded call record: its entries unchanged and "
                                                       "signed by this platform (exit status 1 if not)")
    verify.add_argument("file")
    verify.add_argument("--public-key", help="the base64 key of /.well-known/interkanect-record-key (default: "
                                             "this machine's record key file)")
    verify.set_defaults(run=verify_record)
    ledger_tools = commands.add_parser("ledger", help="ledger tools")
    ledger_tools = ledger_tools.add_subparsers(dest="ledger_command", required=True)
    reconcile = ledger_tools.add_parser("reconcile", help="compare what the ledger says the platform's PayPal account "
                                                          "holds with PayPal's balance (exit status 1 if they differ)")
    reconcile.add_argument("--json", action="store_true", help="print the figures as JSON")
    reconcile.set_defaults(run=ledger_reconcile)
    payouts = commands.add_parser("payouts", help="payout tools").add_subparsers(dest="payouts_command", required=True)
    schedule = payouts.add_parser("schedule", help="the next payout instants (Friday 19:00 Los Angeles, "
                                                   "or the next business day after a federal holiday)")
    schedule.add_argument("--from", dest="after", metavar="DATE",
                          help="YYYY-MM-DD (its 00:00 in Los Angeles) or an ISO datetime with offset; default now")
    schedule.add_argument("--count", type=int, default=5, help="how many (default 5)")
    schedule.add_argument("--json", action="store_true", help="print a JSON list of ISO 8601 instants")
    schedule.set_defaults(run=payouts_schedule)
    run_now = payouts.add_parser("run", help="run the payout of a payout instant now, in the node's payout "
                                             "scheduler (idempotent: a batch already sent is only followed)")
    run_now.add_argument("--at", required=True, metavar="ISO_INSTANT",
                         help="the payout instant, e.g. 2026-11-27T19:00:00-08:00")
    run_now.add_argument("--json", action="store_true", help="print the run's report as JSON")
    run_now.add_argument("--timeout-s", type=float, default=50, help="how long to wait for the answer (default 50)")
    run_now.set_defaults(run=payouts_run)
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    settings = config.load()
    from rules.fees import check_policy
    check_policy(settings.policy)
    processes.raise_open_file_limit()  # children (node, gateway) inherit it
    logs.configure(settings.log_level)
    return args.run(settings, args) or 0


if __name__ == "__main__":
    sys.exit(main())
