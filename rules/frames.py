"""Every frame the server sends to a browser that is not a call's view (`call.Call.view`) or a
relayed signal: built here, in one place, with the fields schemas/server.json names. Pure and
standard library only: member shards import it, and the schemas' validators stay out of their
processes. The gateway checks every outgoing frame against schemas/server.json when the
`check_frames` setting is on (the tests turn it on; gateway/ws.py)."""


def error(request_id, code, message):
    """A refusal: `request_id` is the refused frame's id (None when it had none or it was not
    a whole number), `code` a stable word the page acts on, `message` a sentence for people."""
    return {"type": "error", "id": request_id if isinstance(request_id, int) and not isinstance(request_id, bool)
            else None, "code": code, "message": message}


def hello(member_id, status):
    return {"type": "hello", "member_id": member_id, "status": status}


def pong(request_id):
    return {"type": "pong", "id": request_id}


def presence(member_id, status):
    return {"type": "presence", "member_id": member_id, "status": status}


def followed_online(member_id, name):
    return {"type": "followed_online", "member_id": member_id, "name": name}


def incoming_call(call_id, caller_id, caller_name, deadline_ms):
    return {"type": "incoming_call", "call_id": call_id, "caller": {"id": caller_id, "name": caller_name},
            "deadline_ms": deadline_ms}


def ring_stopped(call_id, reason):
    return {"type": "ring_stopped", "call_id": call_id, "reason": reason}
