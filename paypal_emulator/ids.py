"""Identifiers shaped like PayPal's: 17 upper-case alphanumerics for orders, captures and
refunds, 13 for payout batches and items, hex debug ids, WH-… event ids."""
import secrets
import string
import uuid

_ALNUM = string.ascii_uppercase + string.digits


def _alnum(length):
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def order_id():
    return _alnum(17)


def capture_id():
    return _alnum(17)


def refund_id():
    return _alnum(17)


def payout_batch_id():
    return _alnum(13)


def payout_item_id():
    return _alnum(13)


def transaction_id():
    return _alnum(17)


def payer_id():
    return _alnum(13)


def dispute_id():
    return f"PP-D-{secrets.randbelow(90000) + 10000}"


def debug_id():
    return secrets.token_hex(7)[:13]


def event_id():
    return f"WH-{_alnum(17)}-{_alnum(17)}"


def transmission_id():
    return str(uuid.uuid4())


def access_token():
    return "A21AA" + secrets.token_urlsafe(60)
