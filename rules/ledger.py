"""The money ledger: append-only double entry in integer cents. Every movement of money is one
transaction whose entries sum to zero; balances are sums of entries, never stored. Pure: the
builders turn money events (a capture, a refund, a payout ...) into transactions, and `Ledger`
is the in-memory model of the stored ledger that the database adapter mirrors.

Accounts are buckets, and a balance is the money in a bucket (no debit/credit sign flipping):
- `caller:<id>`              the payer's side: goes negative by what they paid, back up by refunds
- `paypal:fees`              what PayPal kept (processing and dispute fees)
- `platform:costs`           the platform's own money spent (PayPal's fee on a late capture refunded whole)
- `member:<id>:pending`      a call's net earnings while held (refund window, open request)
- `member:<id>:available`    earnings the next payout pays (negative: the member owes it back)
- `member:<id>:frozen`       earnings held by an open PayPal dispute
- `member:<id>:paid_out`     what the Payouts API sent to the member's PayPal account
- `subscriber:<id>`          a member paying for their upgrade: negative by what they paid
- `platform:revenue`         what the platform earned (upgrade subscriptions, net of PayPal's fee)
The money the platform holds at PayPal is not a separate account: it is the sum of every
member's pending, available and frozen (`held_at_paypal_cents`), and it always equals captures
- fees (processing and dispute) - refunds - payouts + returned payouts - dispute reversals.
That is the figure to reconcile against PayPal's balance (plus the platform's own money there,
`platform:revenue` + `platform:costs`).

Decisions:
- A call payment's net goes to pending; it is released to available by one `release`
  transaction per call once the hold is over (24 h after the call ends) and no refund request
  or dispute on it is open.
- A tip's net goes straight to available: tips are never refunded (DESIGN: "tips excluded"), so
  the refund hold has nothing to protect. A PayPal dispute can still take one back; that case
  is a dispute like any other.
- A refund is one transaction per refunded capture (each is its own PayPal refund call) for
  the capture's amount minus its fee; PayPal keeps the fee. It takes from the call's pending
  first, then from available, which may go negative when the money was already paid out; later
  earnings then fill the hole before anything is paid (payouts pay positive available only).
- A dispute freezes an amount: from the call's pending first, then from available. Won, the
  freeze is reversed exactly (money goes back where it came from); lost, PayPal's reversal
  goes back to the caller from the frozen money, any difference (PayPal reverses the gross)
  and any dispute fee from available.
- A payout item that did not reach the member puts its amount back in available once per
  item, whatever status reported it (RETURNED, FAILED, BLOCKED, CANCELED ...). An UNCLAIMED
  item can still be claimed for 30 days: book it back only once the money is back (RETURNED,
  or after cancelling the unclaimed item), or a late claim would pay it twice.
- A call payment captured after its call was over is refunded whole (gross) to the caller: the
  member's pending net goes back and the platform pays PayPal's kept fee from `platform:costs`
  (the caller got nothing, the member delivered nothing; the race is the platform's).
- A subscription payment (one PAYMENT.SALE.COMPLETED per billing cycle of a member's upgrade)
  is platform revenue: it never touches a member's earnings buckets, so nothing holds or pays
  it out. Keyed by PayPal's sale id.
- Idempotency keys name the money movement, not the message that told us about it: a
  capture is `capture:<capture id>` whether the capture response or the webhook came first.
  The same key again with the same content is a no-op; with other content it is an error.
"""
import collections
import dataclasses

CALL_PAYMENT = "call_payment"
TIP = "tip"
RELEASE = "release"
REFUND = "refund"
PAYOUT = "payout"
PAYOUT_RETURNED = "payout_returned"
DISPUTE_FREEZE = "dispute_freeze"
DISPUTE_WON = "dispute_won"
DISPUTE_LOST = "dispute_lost"
KINDS = frozenset({CALL_PAYMENT, TIP, RELEASE, REFUND, PAYOUT, PAYOUT_RETURNED, DISPUTE_FREEZE, DISPUTE_WON,
                   DISPUTE_LOST})
# A capture that completed after its call was over, returned whole to the caller.
LATE_CAPTURE_REFUND = "late_capture_refund"
KINDS = KINDS | {LATE_CAPTURE_REFUND}
# One billing cycle of a member's upgrade subscription, paid.
SUBSCRIPTION = "subscription"
SUBSCRIPTION_REFUND = "subscription_refund"
DISPUTE_FEE = "dispute_fee"
KINDS = KINDS | {SUBSCRIPTION, SUBSCRIPTION_REFUND, DISPUTE_FEE}
# PayPal's fee on a payout item it delivered: the platform's cost, on top of the member's amount.
PAYOUT_FEE = "payout_fee"
KINDS = KINDS | {PAYOUT_FEE}

PAYPAL_FEES = "paypal:fees"
# The platform's own money: what it pays out of its pocket (PayPal's fee on a late capture it
# refunds in full). Negative: spent.
PLATFORM_COSTS = "platform:costs"
# What the platform earned: upgrade subscriptions, net of PayPal's fee.
PLATFORM_REVENUE = "platform:revenue"
# Member buckets whose money still sits in the platform's PayPal account.
HELD = ("pending", "available", "frozen")


class LedgerError(Exception):
    """A transaction the ledger will not take; nothing was applied."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


# Accounts ---------------------------------------------------------------------------------

def _id(value):
    if not isinstance(value, str) or not value or ":" in value:
        raise LedgerError("invalid_id", f"an id in an account name is a non-empty string without ':', not {value!r}")
    return value


def member_account(member_id, bucket):
    return f"member:{_id(member_id)}:{bucket}"


def pending(member_id):
    return member_account(member_id, "pending")


def available(member_id):
    return member_account(member_id, "available")


def frozen(member_id):
    return member_account(member_id, "frozen")


def paid_out(member_id):
    return member_account(member_id, "paid_out")


def caller(caller_id):
    return f"caller:{_id(caller_id)}"


def subscriber(member_id):
    return f"subscriber:{_id(member_id)}"


def parse_member_account(account):
    """(member_id, bucket) of a member account, else None."""
    parts = account.split(":")
    return (parts[1], parts[2]) if len(parts) == 3 and parts[0] == "member" else None


# Entries and transactions -----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Entry:
    account: str
    amount_cents: int       # + money into the account, - money out of it


@dataclasses.dataclass(frozen=True)
class Transaction:
    key: str                # idempotency key of the money movement
    kind: str
    entries: tuple
    call_id: str = None     # lets a call's money be followed (what of it is still pending)
    capture_id: str = None  # a refund's capture: what of a capture is refunded already

    def __post_init__(self):
        object.__setattr__(self, "entries", tuple(self.entries))   # frozen all the way down
        if not isinstance(self.key, str) or not self.key:
            raise LedgerError("invalid_key", "a transaction needs an idempotency key")
        if self.kind not in KINDS:
            raise LedgerError("invalid_kind", f"unknown transaction kind {self.kind!r}")
        if not self.entries:
            raise LedgerError("empty_transaction", f"transaction {self.key} moves no money")
        for entry in self.entries:
            cents = entry.amount_cents
            if isinstance(cents, bool) or not isinstance(cents, int) or cents == 0:
                raise LedgerError("invalid_amount", f"transaction {self.key}: {cents!r} on {entry.account} "
                                                    f"is not a non-zero whole number of cents")
        if sum(entry.amount_cents for entry in self.entries) != 0:
            raise LedgerError("unbalanced", f"transaction {self.key} creates or loses money")

    def document(self):
        """The stored shape: one document per transaction, so one insert writes it whole and a
        unique _id makes a repeat fail instead of applying twice."""
        document = {"_id": self.key, "kind": self.kind, "call_id": self.call_id,
                    "entries": [{"account": e.account, "amount_cents": e.amount_cents} for e in self.entries]}
        if self.capture_id is not None:
            document["capture_id"] = self.capture_id
        return document

    @classmethod
    def from_document(cls, document):
        entries = tuple(Entry(e["account"], e["amount_cents"]) for e in document["entries"])
        return cls(document["_id"], document["kind"], entries, document.get("call_id"), document.get("capture_id"))


def _moves(*moves):
    """Entries for (cents, from_account, to_account) moves, skipping the empty ones."""
    entries = []
    for cents, source, destination in moves:
        if cents < 0:
            cents, source, destination = -cents, destination, source
        if cents:
            entries += [Entry(source, -cents), Entry(destination, cents)]
    return tuple(entries)


def _positive(cents, what):
    if isinstance(cents, bool) or not isinstance(cents, int) or cents <= 0:
        raise LedgerError("invalid_amount", f"the {what} is a positive whole number of cents, not {cents!r}")
    return cents


def _split(cents, first_cents):
    """Take `cents` from a first source holding `first_cents`, the rest from a second one."""
    from_first = min(cents, max(first_cents, 0))
    return from_first, cents - from_first


# Builders: one per money event --------------------------------------------------------------

def _capture(kind, destination, call_id, member_id, caller_id, capture_id, amount_cents, fee_cents):
    _positive(amount_cents, "amount")
    if isinstance(fee_cents, bool) or not isinstance(fee_cents, int) or not 0 <= fee_cents <= amount_cents:
        raise LedgerError("invalid_fee", f"a fee of {fee_cents!r} cents cannot be taken from {amount_cents}")
    # Gross out of the payer, fee to PayPal, net to the member (a zero fee or net has no entry).
    entries = tuple(Entry(account, cents) for account, cents in ((caller(caller_id), -amount_cents),
                                                                 (PAYPAL_FEES, fee_cents),
                                                                 (destination(member_id), amount_cents - fee_cents))
                    if cents)
    return Transaction(f"capture:{_id(capture_id)}", kind, entries, call_id)


def capture_transaction(call_id, member_id, caller_id, capture_id, amount_cents, fee_cents):
    """A call payment captured: PayPal keeps the fee, the net is the member's, held."""
    return _capture(CALL_PAYMENT, pending, call_id, member_id, caller_id, capture_id, amount_cents, fee_cents)


def tip_transaction(call_id, member_id, caller_id, capture_id, amount_cents, fee_cents):
    """A tip captured: as a payment, but available at once (tips are not refundable)."""
    return _capture(TIP, available, call_id, member_id, caller_id, capture_id, amount_cents, fee_cents)


def release_transaction(call_id, member_id, amount_cents):
    """The call's hold is over and nothing is open on it: its pending earnings become payable."""
    _positive(amount_cents, "released amount")
    return Transaction(f"release:{_id(call_id)}", RELEASE,
                       _moves((amount_cents, pending(member_id), available(member_id))), call_id)


def refund_transaction(call_id, member_id, caller_id, refund_id, refund_cents, call_pending_cents, capture_id=None):
    """An approved refund of one capture (its amount minus its fee), or one made on PayPal's
    dashboard, reached the caller."""
    from_pending, from_available = _split(_positive(refund_cents, "refund"), call_pending_cents)
    entries = _moves((from_pending, pending(member_id), caller(caller_id)),
                     (from_available, available(member_id), caller(caller_id)))
    return Transaction(f"refund:{_id(refund_id)}", REFUND, entries, call_id, capture_id)


def late_capture_refund_transaction(call_id, member_id, caller_id, capture_id, amount_cents, fee_cents):
    """A call payment captured after its call was over (approval racing the payment window, a
    PENDING capture that cleared later) goes back to the caller whole: nothing was delivered.
    The member gives back the net they were credited (it is still pending: the call never ran
    on it); PayPal keeps its fee, so the platform pays that out of its own pocket. Keyed by
    the capture: it can happen once per capture."""
    _positive(amount_cents, "amount")
    if isinstance(fee_cents, bool) or not isinstance(fee_cents, int) or not 0 <= fee_cents <= amount_cents:
        raise LedgerError("invalid_fee", f"a fee of {fee_cents!r} cents cannot be taken from {amount_cents}")
    entries = _moves((amount_cents - fee_cents, pending(member_id), caller(caller_id)),
                     (fee_cents, PLATFORM_COSTS, caller(caller_id)))
    return Transaction(f"capture:{_id(capture_id)}:late-refund", LATE_CAPTURE_REFUND, entries, call_id, capture_id)


def payout_transaction(batch_id, amounts_by_member):
    """One payout batch sent, as one transaction (how batches were booked before 2026-12):
    each member's amount leaves available for their PayPal account. Kept to read old batches."""
    moves = [(_positive(cents, "payout"), available(member_id), paid_out(member_id))
             for member_id, cents in sorted(amounts_by_member.items())]
    return Transaction(f"payout:{_id(batch_id)}", PAYOUT, _moves(*moves))


def payout_item_transaction(batch_id, member_id, amount_cents):
    """One member's item of a payout batch sent: their amount leaves available for their PayPal
    account. One transaction per item, so a member's earnings read their own entries only."""
    return Transaction(f"payout:{_id(batch_id)}:{_id(member_id)}", PAYOUT,
                       _moves((_positive(amount_cents, "payout"), available(member_id), paid_out(member_id))))


def payout_fee_transaction(item_id, fee_cents):
    """PayPal's fee on a delivered payout item, charged to the platform on top of the amount
    the member got (members are paid what they earned). Keyed by the item: once."""
    return Transaction(f"payout-item:{_id(item_id)}:fee", PAYOUT_FEE,
                       _moves((_positive(fee_cents, "payout fee"), PLATFORM_COSTS, PAYPAL_FEES)))


def payout_returned_transaction(item_id, member_id, amount_cents):
    """A payout item did not reach the member (returned, unclaimed, failed, blocked): the money
    is theirs to be paid again. Keyed by item, so two reports of one item return it once."""
    entries = _moves((_positive(amount_cents, "returned amount"), paid_out(member_id), available(member_id)))
    return Transaction(f"payout-item:{_id(item_id)}:returned", PAYOUT_RETURNED, entries)


def dispute_freeze_transaction(call_id, member_id, dispute_id, amount_cents, call_pending_cents):
    """A PayPal dispute opened on the call: its earnings stop moving until it is resolved."""
    from_pending, from_available = _split(_positive(amount_cents, "frozen amount"), call_pending_cents)
    entries = _moves((from_pending, pending(member_id), frozen(member_id)),
                     (from_available, available(member_id), frozen(member_id)))
    return Transaction(f"dispute:{_id(dispute_id)}:freeze", DISPUTE_FREEZE, entries, call_id)


def dispute_won_transaction(freeze, dispute_id):
    """Resolved in the member's favour: the freeze is undone, money back where it was."""
    entries = tuple(Entry(e.account, -e.amount_cents) for e in freeze.entries)
    return Transaction(f"dispute:{_id(dispute_id)}:resolved", DISPUTE_WON, entries, freeze.call_id)


def dispute_lost_transaction(call_id, member_id, caller_id, dispute_id, reversed_cents, frozen_cents,
                             dispute_fee_cents=0, capture_id=None):
    """Resolved for the payer: PayPal took `reversed_cents` back to them (and maybe a fee). The
    frozen money pays it; what it does not cover comes from available, negative if need be.
    `capture_id`, the disputed capture: a refund of it later gives back only what is left."""
    _positive(reversed_cents, "reversed amount")
    for cents, what in ((frozen_cents, "frozen amount"), (dispute_fee_cents, "dispute fee")):
        if isinstance(cents, bool) or not isinstance(cents, int) or cents < 0:
            raise LedgerError("invalid_amount", f"the {what} is a whole number of cents >= 0, not {cents!r}")
    entries = _moves((frozen_cents, frozen(member_id), caller(caller_id)),
                     (reversed_cents - frozen_cents, available(member_id), caller(caller_id)),
                     (dispute_fee_cents, available(member_id), PAYPAL_FEES))
    return Transaction(f"dispute:{_id(dispute_id)}:resolved", DISPUTE_LOST, entries, call_id, capture_id)


def subscription_transaction(member_id, sale_id, amount_cents, fee_cents):
    """One billing cycle of a member's upgrade paid: the gross out of the member as a
    subscriber, PayPal's fee to PayPal, the rest the platform's revenue."""
    _positive(amount_cents, "amount")
    if isinstance(fee_cents, bool) or not isinstance(fee_cents, int) or not 0 <= fee_cents <= amount_cents:
        raise LedgerError("invalid_fee", f"a fee of {fee_cents!r} cents cannot be taken from {amount_cents}")
    entries = tuple(Entry(account, cents) for account, cents in ((subscriber(member_id), -amount_cents),
                                                                 (PAYPAL_FEES, fee_cents),
                                                                 (PLATFORM_REVENUE, amount_cents - fee_cents))
                    if cents)
    return Transaction(f"sale:{_id(sale_id)}", SUBSCRIPTION, entries)


def dispute_fee_transaction(dispute_id, fee_cents):
    """PayPal's fee on a dispute the buyer won: the platform's cost, not the member's (they lose
    the disputed amount only). Keyed by the dispute: once."""
    _positive(fee_cents, "fee")
    return Transaction(f"dispute:{_id(dispute_id)}:fee", DISPUTE_FEE, _moves((fee_cents, PLATFORM_COSTS, PAYPAL_FEES)))


def subscription_refund_transaction(member_id, sale_id, amount_cents, fee_cents):
    """A sale given back whole (it did not match the member's plan): the subscriber gets the
    gross back, the revenue its net, and PayPal's kept fee is the platform's cost. Keyed by the
    sale: once per sale."""
    _positive(amount_cents, "amount")
    if isinstance(fee_cents, bool) or not isinstance(fee_cents, int) or not 0 <= fee_cents <= amount_cents:
        raise LedgerError("invalid_fee", f"a fee of {fee_cents!r} cents cannot be taken from {amount_cents}")
    entries = _moves((amount_cents - fee_cents, PLATFORM_REVENUE, subscriber(member_id)),
                     (fee_cents, PLATFORM_COSTS, subscriber(member_id)))
    return Transaction(f"sale:{_id(sale_id)}:refund", SUBSCRIPTION_REFUND, entries)


# Balances ---------------------------------------------------------------------------------

def balances(entries):
    """{account: cents} summed from entries; accounts that net to zero are kept (as 0)."""
    totals = collections.defaultdict(int)
    for entry in entries:
        totals[entry.account] += entry.amount_cents
    return dict(totals)


def held_at_paypal_cents(balances_by_account):
    """The money in the platform's PayPal account: every member's pending, available and frozen."""
    return sum(cents for account, cents in balances_by_account.items()
               if (parsed := parse_member_account(account)) and parsed[1] in HELD)


def paypal_balance_cents(balances_by_account):
    """What the platform's PayPal account holds by the ledger: every member's pending, available
    and frozen money, plus the platform's revenue, less what it paid from its pocket (PayPal's
    fees on late-capture refunds and payout items)."""
    return (held_at_paypal_cents(balances_by_account) + balances_by_account.get(PLATFORM_REVENUE, 0)
            + balances_by_account.get(PLATFORM_COSTS, 0))


def payout_amounts(balances_by_account):
    """{member_id: cents} the next payout owes: positive available balances only (a negative one
    is a debt recovered from later earnings, never asked back)."""
    return {parsed[0]: cents for account, cents in balances_by_account.items()
            if (parsed := parse_member_account(account)) and parsed[1] == "available" and cents > 0}


class Ledger:
    """The transactions in the order applied. Nothing in it is ever changed or removed."""

    def __init__(self, transactions=()):
        self._transactions = []
        self._by_key = {}
        for transaction in transactions:
            self.apply(transaction)

    def apply(self, transaction):
        """Append the transaction; False if this key was applied already (a repeat is a no-op)."""
        seen = self._by_key.get(transaction.key)
        if seen is not None:
            if seen != transaction:
                raise LedgerError("key_reused", f"{transaction.key} was applied with other entries")
            return False
        self._transactions.append(transaction)
        self._by_key[transaction.key] = transaction
        return True

    def get(self, key):
        return self._by_key.get(key)

    @property
    def transactions(self):
        return tuple(self._transactions)

    def entries(self):
        return tuple(entry for transaction in self._transactions for entry in transaction.entries)

    def balances(self):
        return balances(self.entries())

    def balance(self, account):
        return sum(entry.amount_cents for entry in self.entries() if entry.account == account)

    def call_balance(self, call_id, account):
        """What this call's transactions put in (or took from) the account, e.g. its pending."""
        return sum(entry.amount_cents for transaction in self._transactions if transaction.call_id == call_id
                   for entry in transaction.entries if entry.account == account)
