"""Fault switches, per emulator instance: each fault fires on the next `count` requests (or
captures, payout items, webhook events) it matches, then is gone. Pure bookkeeping: the
handlers and the webhook sender ask `take(kind, …)` and act on what they get."""
import dataclasses
import fnmatch
import itertools

from paypal_emulator.money import AmountError, parse_cents

# Kinds that match HTTP requests by path (a glob: /v2/checkout/orders/*/capture) and method.
REQUEST_KINDS = ("error", "timeout", "lost_response", "refusal")
KINDS = REQUEST_KINDS + ("capture_outcome", "capture_mismatch", "sale_mismatch", "refund_outcome",
                         "payout_item_outcome", "webhook_duplicate", "webhook_out_of_order")
# What a capture or a subscription's sale is for instead of what was agreed.
MISMATCH_KINDS = ("capture_mismatch", "sale_mismatch")
CAPTURE_OUTCOMES = ("PENDING", "DECLINED", "INSTRUMENT_DECLINED")
# A refund that stays PENDING (until /emulator/refunds/{id}/complete|fail|cancel), goes
# PENDING then COMPLETED or FAILED by itself after `settle_s`, or FAILED at once.
REFUND_OUTCOMES = ("PENDING", "PENDING_COMPLETED", "PENDING_FAILED", "FAILED")
DEFAULT_REFUND_SETTLE_S = 1.0
PAYOUT_ITEM_OUTCOMES = ("SUCCESS", "UNCLAIMED", "RETURNED", "FAILED", "BLOCKED", "ONHOLD")
ERROR_STATUSES = (500, 503)
# Held out-of-order webhooks go out (reversed) once `count` are held, or after this long.
DEFAULT_HOLD_S = 2.0


class FaultError(ValueError):
    """A fault specification the control API refuses."""


@dataclasses.dataclass
class Fault:
    id: str
    kind: str
    remaining: int
    path: str = None
    method: str = None
    status: int = 500
    delay_s: float = 0.0
    # timeout: after the hang, perform the request (True) or close the connection untouched.
    commit: bool = True
    outcome: str = None
    # refusal: the 422 UNPROCESSABLE_ENTITY issue PayPal answers instead (e.g. PERMISSION_DENIED).
    issue: str = None
    hold_s: float = DEFAULT_HOLD_S
    settle_s: float = DEFAULT_REFUND_SETTLE_S
    # capture_mismatch / sale_mismatch: what the next capture (instead of its order's) or
    # subscription sale (instead of its plan's) is for: amount and currency.
    amount_cents: int = None
    currency: str = None

    def matches(self, kind, method, path):
        if self.kind != kind or self.remaining <= 0:
            return False
        if self.method and method and self.method != method:
            return False
        return self.path is None or path is None or fnmatch.fnmatchcase(path, self.path)

    def to_json(self):
        fields = {"error": ("path", "method", "status"), "timeout": ("path", "method", "delay_s", "commit"),
                  "lost_response": ("path", "method"), "capture_outcome": ("outcome",),
                  "refund_outcome": ("outcome", "settle_s"), "capture_mismatch": ("amount_cents", "currency"),
                  "sale_mismatch": ("amount_cents", "currency"),
                  "payout_item_outcome": ("outcome",), "webhook_out_of_order": ("hold_s",),
                  "refusal": ("path", "method", "issue")}.get(self.kind, ())
        shown = {"id": self.id, "kind": self.kind, "remaining": self.remaining}
        shown.update({name: getattr(self, name) for name in fields if getattr(self, name) is not None})
        return shown


def parse_fault(spec, fault_id):
    """A Fault from the control API's JSON, or FaultError saying what is wrong."""
    if not isinstance(spec, dict):
        raise FaultError("send a JSON object")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise FaultError(f"kind must be one of {', '.join(KINDS)}")
    count = spec.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise FaultError("count must be a positive integer")
    fault = Fault(fault_id, kind, count)
    if kind in REQUEST_KINDS:
        fault.path = _text(spec, "path", required=True)
        method = _text(spec, "method")
        fault.method = method.upper() if method else None
    if kind == "error":
        fault.status = spec.get("status", 500)
        if fault.status not in ERROR_STATUSES:
            raise FaultError(f"status must be one of {', '.join(map(str, ERROR_STATUSES))}")
    if kind == "refusal":
        fault.issue = _text(spec, "issue", required=True)
        if not fault.issue.replace("_", "").isalnum() or not fault.issue.isupper():
            raise FaultError("issue must be PayPal's word in capitals, such as PERMISSION_DENIED")
    if kind == "timeout":
        fault.delay_s = _seconds(spec, "delay_s", required=True)
        fault.commit = spec.get("commit", True)
        if not isinstance(fault.commit, bool):
            raise FaultError("commit must be true or false")
    if kind in ("capture_outcome", "refund_outcome", "payout_item_outcome"):
        allowed = {"capture_outcome": CAPTURE_OUTCOMES, "refund_outcome": REFUND_OUTCOMES,
                   "payout_item_outcome": PAYOUT_ITEM_OUTCOMES}[kind]
        fault.outcome = spec.get("outcome")
        if fault.outcome not in allowed:
            raise FaultError(f"outcome must be one of {', '.join(allowed)}")
    if kind in MISMATCH_KINDS:
        amount = spec.get("amount")
        if amount is not None:
            try:
                fault.amount_cents = parse_cents(amount)
            except AmountError:
                raise FaultError("amount must be a dollar value such as \"12.00\"") from None
        fault.currency = spec.get("currency")
        if fault.currency is not None and not (isinstance(fault.currency, str) and len(fault.currency) == 3
                                               and fault.currency.isalpha() and fault.currency.isupper()):
            raise FaultError("currency must be a three-letter code such as EUR")
        if fault.amount_cents is None and fault.currency is None:
            raise FaultError("give amount, currency or both")
    if kind == "refund_outcome" and "settle_s" in spec:
        fault.settle_s = _seconds(spec, "settle_s")
    if kind == "webhook_out_of_order":
        fault.hold_s = _seconds(spec, "hold_s") if "hold_s" in spec else DEFAULT_HOLD_S
    return fault


def _text(spec, name, required=False):
    value = spec.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise FaultError(f"{name} must be a non-empty string")
    return value


def _seconds(spec, name, required=False):
    value = spec.get(name)
    if (value is None and required) or not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise FaultError(f"{name} must be a number of seconds (0 or more)")
    return float(value)


class Faults:
    def __init__(self):
        self._faults = []
        self._ids = (f"F{n}" for n in itertools.count(1))

    def add(self, spec):
        fault = parse_fault(spec, next(self._ids))
        self._faults.append(fault)
        return fault

    def take(self, kind, method=None, path=None):
        """The first armed fault of `kind` matching the request, spent once; else None."""
        for fault in self._faults:
            if fault.matches(kind, method, path):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def remove(self, fault_id):
        before = len(self._faults)
        self._faults = [fault for fault in self._faults if fault.id != fault_id]
        return len(self._faults) < before

    def clear(self):
        self._faults.clear()

    def armed(self):
        return list(self._faults)
