"""Self-serve upgrade by PayPal subscription: the operator's plan (`interkanect upgrade-plan`), a
member subscribing (`POST /api/me/upgrade`, PayPal's consent page, its return to
`/paypal/subscription-return`), cancelling (`POST /api/me/upgrade/cancel`), and PayPal's
subscription webhooks (each cycle's payment is booked as platform revenue by the refunds actor:
actors/subscription_sales.py).

How the tier follows the subscription (see accounts.effective_tier): the member document keeps
`subscription` {id, status, plan_id, price_cents, interval, next_billing_time, ends_at}; ACTIVE
upgrades, and a CANCELLED, SUSPENDED or EXPIRED one keeps upgrading until `ends_at` (the paid
period's end, PayPal's next_billing_time before it stopped). Nothing runs at that instant: every
read of the tier compares with the clock. The member's shard learns the tier when a page opens
and whenever the subscription changes (`member_changed`, pushed to a live member); the
lazy end of a paid period reaches it at the next page open.

PayPal calls go over its REST API on Tornado's loop, never blocking it (interkanect/paypal/
subscriptions.py: paypal-server-sdk covers plans and subscriptions but blocks, and has no
catalog products).
"""
import datetime
import logging
import secrets
import urllib.parse

import pymongo
import tornado.web

from gateway.accounts import ClientError, effective_tier, now, own_profile, subscription_view
from gateway.http import BaseHandler
from interkanect.db import object_id
from interkanect.paypal import PayPalError, PayPalUnavailable
from interkanect.paypal.subscriptions import PayPalSubscriptions

log = logging.getLogger(__name__)

PLAN_ID = "upgrade_plan"          # the platform settings document holding the plan
INTERVALS = ("DAY", "WEEK", "MONTH", "YEAR")
CANCEL_REASON = "Cancelled by the member on interKanect"
# Statuses a subscription cannot come back from: a late ACTIVATED for it is stale.
FINAL = ("CANCELLED", "EXPIRED")


def paypal_time(value):
    """PayPal's 2026-03-06T19:00:00Z as an aware datetime; None for None."""
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def approve_link(resource):
    return next(link["href"] for link in resource.get("links", []) if link.get("rel") == "approve")


# The operator's plan -------------------------------------------------------------------------

def parse_price_cents(text):
    """'9.99' -> 999; a SystemExit-free ValueError for anything else (the CLI words it)."""
    whole, dot, fraction = str(text).strip().partition(".")
    if not whole.isdigit() or (dot and not (fraction.isdigit() and len(fraction) <= 2)):
        raise ValueError(f"the price is dollars and cents, such as 9.99, not {text!r}")
    cents = int(whole) * 100 + int((fraction + "00")[:2] if dot else 0)
    if cents <= 0:
        raise ValueError("the price is more than 0.00")
    return cents


async def create_plan(db, paypal, price_cents, interval, name="interKanect Upgraded"):
    """A product (once) and a plan at PayPal, stored as the platform's upgrade plan. Members who
    subscribed before keep their plan; new subscriptions use this one."""
    if interval not in INTERVALS:
        raise ValueError(f"the interval is one of {', '.join(INTERVALS)}")
    current = await db.platform.find_one({"_id": PLAN_ID}) or {}
    product_id = current.get("product_id")
    if not product_id:
        product_id = (await paypal.create_product(name, f"interkanect-product-{secrets.token_hex(8)}"))["id"]
    plan = await paypal.create_plan(product_id, f"{name} ({interval.lower()}ly)", price_cents, interval,
                                    f"interkanect-plan-{secrets.token_hex(8)}")
    document = {"product_id": product_id, "plan_id": plan["id"], "price_cents": price_cents, "interval": interval,
                "name": name, "created_at": now()}
    await db.platform.replace_one({"_id": PLAN_ID}, dict(document, _id=PLAN_ID), upsert=True)
    return document


def plan_view(plan):
    return {"plan_id": plan["plan_id"], "price_cents": plan["price_cents"], "interval": plan["interval"],
            "name": plan.get("name", "")} if plan else None


# What a subscription resource means for its member (pure) -----------------------------------

def subscription_change(current, resource, at, plan=None):
    """The $set for the member's `subscription` that PayPal's view `resource` of a subscription
    calls for, or None when it changes nothing (a repeat, a late event, another subscription)."""
    status, sub_id = resource.get("status"), resource.get("id")
    current = current or {}
    same = current.get("id") == sub_id
    info = resource.get("billing_info") or {}
    if status == "ACTIVE":
        if same and current.get("status") in FINAL:
            return None  # ACTIVATED arriving after CANCELLED: no way back
        if not same and current.get("status") == "ACTIVE":
            return None  # another one is active: the caller cancels this duplicate
        change = {"id": sub_id, "status": "ACTIVE", "plan_id": resource.get("plan_id"),
                  "next_billing_time": paypal_time(info.get("next_billing_time")) or current.get("next_billing_time"),
                  "ends_at": None}
        for name in ("price_cents", "interval"):
            change[name] = current.get(name) if same else (plan or {}).get(name)
        if same and all(current.get(k) == v for k, v in change.items()):
            return None
        return change
    if status in ("CANCELLED", "SUSPENDED", "EXPIRED"):
        if not same or current.get("status") == status:
            return None
        paid_until = paypal_time(info.get("next_billing_time")) or current.get("next_billing_time")
        ends_at = at if status == "EXPIRED" or paid_until is None else max(paid_until, at)
        if status == "EXPIRED" and paid_until is not None:
            ends_at = min(paid_until, at)
        return dict(current, status=status, ends_at=ends_at)
    return None


def is_duplicate(current, resource):
    """An ACTIVE subscription for a member who already has another one ACTIVE."""
    return (resource.get("status") == "ACTIVE" and (current or {}).get("status") == "ACTIVE"
            and current.get("id") != resource.get("id"))


# The flow --------------------------------------------------------------------------------------

class Upgrades:
    def __init__(self, settings, db, paypal=None, member_changed=None, mailer=None):
        self.settings = settings
        self.db = db
        self.mailer = mailer                # operators hear of a sale that did not match its plan
        self.member_changed = member_changed or (lambda member: None)  # the gateway tells the member's shard
        self.paypal = paypal or PayPalSubscriptions(settings.paypal_url, settings.paypal_client_id_in_use,
                                                    settings.paypal_client_secret_in_use)

    async def plan(self):
        return await self.db.platform.find_one({"_id": PLAN_ID})

    async def start(self, member):
        """Create the member's subscription at PayPal; the URL where they consent."""
        plan = await self.plan()
        if plan is None:
            raise ClientError(409, "no_upgrade_plan", "upgrading is not open yet: no upgrade plan is set")
        self._refuse_if_upgraded(member)
        member_id = str(member["_id"])
        try:
            resource = await self.paypal.create_subscription(
                plan["plan_id"], member_id, f"{self.settings.url}paypal/subscription-return",
                f"{self.settings.url}account?upgrade=cancelled", f"upgrade-{member_id}-{secrets.token_hex(8)}")
        except PayPalError as refused:
            log.error("PayPal refused a subscription on plan %s: %s", plan["plan_id"], refused)
            raise ClientError(502, "paypal_refused", "PayPal refused the subscription; try again later") from None
        except PayPalUnavailable:
            raise ClientError(503, "paypal_unavailable", "PayPal is not answering; try again in a minute") from None
        # A pending one is only remembered while nothing better is there (an active one wins).
        pending = {"id": resource["id"], "status": "APPROVAL_PENDING", "plan_id": plan["plan_id"],
                   "price_cents": plan["price_cents"], "interval": plan["interval"], "created_at": now()}
        await self.db.members.update_one({"_id": member["_id"], "subscription.status": {"$nin": ["ACTIVE"]}},
                                         {"$set": {"subscription": pending}})
        return approve_link(resource)

    def _refuse_if_upgraded(self, member):
        if effective_tier(member) != "upgraded":
            return
        subscription = member.get("subscription") or {}
        if subscription.get("status") in ("CANCELLED", "SUSPENDED", "EXPIRED") and subscription.get("ends_at"):
            message = (f"you are upgraded until {subscription['ends_at'].isoformat()}; "
                       f"subscribe again once that has passed")
        else:
            message = "you are upgraded already"
        raise ClientError(409, "already_upgraded", message)

    async def follow(self, resource, attempts=5):
        """Apply PayPal's view of a subscription to its member (from the return, a webhook, or a
        read after a payment). Idempotent; a second ACTIVE subscription is cancelled at PayPal."""
        member_id = object_id(resource.get("custom_id"))
        member = await self.db.members.find_one({"_id": member_id}) if member_id else None
        if member is None:
            member = await self.db.members.find_one({"subscription.id": resource.get("id")})
        if member is None:
            log.warning("subscription %s belongs to no member", resource.get("id"))
            return None
        current = member.get("subscription")
        if is_duplicate(current, resource):
            log.info("member %s subscribed twice; cancelling %s", member["_id"], resource["id"])
            await self._cancel_at_paypal(resource["id"], "A second subscription; the first one is active")
            return member
        change = subscription_change(current, resource, now(), await self.plan())
        if change is None:
            return member
        # Compare-and-set on what was read, so two deliveries at once apply one after the other.
        found = await self.db.members.find_one_and_update(
            {"_id": member["_id"], "subscription": current}, {"$set": {"subscription": change}},
            return_document=pymongo.ReturnDocument.AFTER)
        if found is None and attempts > 1:  # changed meanwhile: read again and decide again
            return await self.follow(resource, attempts - 1)
        self.member_changed(found)
        return found

    async def returned(self, subscription_id):
        """PayPal sent the member back: believe only what PayPal says of the subscription."""
        return await self.follow(await self.paypal.subscription(subscription_id))

    async def cancel(self, member):
        current = member.get("subscription") or {}
        if current.get("status") != "ACTIVE":
            raise ClientError(409, "no_active_subscription", "you have no active upgrade subscription to cancel")
        try:
            fresh = await self.paypal.subscription(current["id"])  # the paid period's end, as PayPal has it
            await self.follow(fresh)
            await self._cancel_at_paypal(current["id"], CANCEL_REASON)
            cancelled = await self.paypal.subscription(current["id"])
        except PayPalUnavailable:
            raise ClientError(503, "paypal_unavailable", "PayPal is not answering; try again in a minute") from None
        # PayPal drops next_billing_time on cancel: the one read before it is the paid period's end.
        cancelled.setdefault("billing_info", {}).setdefault(
            "next_billing_time", (fresh.get("billing_info") or {}).get("next_billing_time"))
        return await self.follow(cancelled)

    async def _cancel_at_paypal(self, subscription_id, reason):
        try:
            await self.paypal.cancel(subscription_id, reason)
        except PayPalError as refused:
            if refused.issue != "SUBSCRIPTION_STATUS_INVALID":  # cancelled or expired already: fine
                raise

    async def on_webhook(self, event):
        """BILLING.SUBSCRIPTION.* and each cycle's PAYMENT.SALE.COMPLETED (whose money the
        refunds actor books: actors/subscription_sales.py)."""
        kind, resource = event.get("event_type", ""), event.get("resource") or {}
        if kind in ("BILLING.SUBSCRIPTION.ACTIVATED", "BILLING.SUBSCRIPTION.CANCELLED",
                    "BILLING.SUBSCRIPTION.EXPIRED", "BILLING.SUBSCRIPTION.SUSPENDED"):
            await self.follow(resource)
        elif kind == "PAYMENT.SALE.COMPLETED" and resource.get("billing_agreement_id"):
            # The renewal moved next_billing_time: read it from PayPal (the sale does not carry it).
            await self.follow(await self.paypal.subscription(resource["billing_agreement_id"]))


# HTTP ------------------------------------------------------------------------------------------

class UpgradeHandler(BaseHandler):
    """GET: the plan on offer and the member's subscription; POST: start subscribing."""

    async def get(self):
        member = self.require_member()
        self.send_json({"plan": plan_view(await self.app.upgrades.plan()), "tier": effective_tier(member),
                        "subscription": subscription_view(member)})

    async def post(self):
        member = self.require_member()
        self.send_json({"approve_url": await self.app.upgrades.start(member)})


class CancelUpgradeHandler(BaseHandler):
    async def post(self):
        member = await self.app.upgrades.cancel(self.require_member())
        self.send_json({"member": own_profile(member)})


class SubscriptionReturnHandler(BaseHandler):
    """PayPal's return_url: ?subscription_id=I-…&ba_token=BA-…&token=…; on to /account. Only
    the member's own subscription, in their own session, makes us ask PayPal: anyone can open
    this URL, and the ACTIVATED webhook upgrades them without it anyway."""

    async def get(self):
        subscription_id = self.get_query_argument("subscription_id", "")
        if not subscription_id:
            raise ClientError(400, "missing_subscription_id", "PayPal's return carries a subscription_id")
        if self.member is None:
            # Logged out meanwhile (or another browser): log in, then come back here.
            self.redirect("/login?next=" + urllib.parse.quote(self.request.uri, safe=""))
            return
        own = self.member.get("subscription") or {}
        if own.get("id") != subscription_id:
            raise ClientError(404, "no_such_subscription", "you have no subscription with this id")
        if own.get("status") != "APPROVAL_PENDING":
            self.redirect("/account?upgrade=done")  # the webhook came first: nothing to ask PayPal
            return
        try:
            member = await self.app.upgrades.returned(subscription_id)
        except PayPalError:
            raise ClientError(404, "no_such_subscription", "PayPal knows no such subscription") from None
        except PayPalUnavailable:
            # The ACTIVATED webhook will still come; the account page shows what is known.
            log.warning("PayPal did not answer for subscription %s on its return", subscription_id)
            member = None
        self.redirect("/account?upgrade=" + ("done" if member is not None else "pending"))
