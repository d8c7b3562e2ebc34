"""A call as a stored document and back: what a replacement call session needs to carry on
(terms, payments, deadlines, connections) and what the history pages read."""
import dataclasses
import datetime
import pickle

from bson import Binary

from rules.call import Call, CallPolicy, Side
from rules.terms import Terms


def _when(seconds):
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


def to_document(call, now_s):
    state = dataclasses.asdict(call)
    for shown in ("rounds", "payments", "log", "quality"):  # stored once, at the top level
        del state[shown]
    for who in ("host", "caller"):
        # The page's address stays valid while its gateway lives; keep it so a replacement
        # session can reach the same sockets.
        state[who]["connection"] = Binary(pickle.dumps(getattr(call, who).connection))
    return {
        "_id": call.call_id,
        "host_id": call.host.member_id, "caller_id": call.caller.member_id,
        "host_name": call.host.name, "caller_name": call.caller.name,
        "state": call.state, "end_reason": call.end_reason, "ended_by": call.ended_by,
        "created_at": _when(call.created_at_s), "answered_at": _when(call.answered_at_s),
        "ended_at": _when(call.ended_at_s), "updated_at": _when(now_s),
        "rounds": call.rounds, "payments": call.payments, "paid_s": call.paid_s,
        "tips": [{k: tip[k] for k in ("tip", "amount_cents", "state", "order_id")} for tip in call.tips],
        "used_s": round(call.used_s + (now_s - call.clock_since_s if call.clock_running else 0), 3),
        "connected_s": {who: round(getattr(call, who).connected_time(now_s), 3) for who in ("host", "caller")},
        "log": call.log,
        "quality": call.quality,
        "rules": state,
    }


def from_document(document):
    state = dict(document["rules"], rounds=document["rounds"], payments=document["payments"], log=document["log"])
    if "quality" in document:  # a call stored before quality timelines loads with empty ones
        state["quality"] = document["quality"]
    for who in ("host", "caller"):
        side = dict(state[who])
        side["connection"] = pickle.loads(side["connection"])
        state[who] = Side(**side)
    state["policy"] = CallPolicy(**state["policy"])
    for name in ("proposal", "pending"):
        if state[name] is not None:
            state[name] = Terms(**state[name])
    return Call(**state)
