"""PayPal's REST API as our processes call it: one package for payments (orders, captures and
refunds, through PayPal's SDK: `payments.py`), payouts (`payouts.py`) and subscriptions
(`subscriptions.py`, asynchronous, for the gateway), over one client (`rest.py`: one token cache,
one retry rule with the same PayPal-Request-Id on every retry, one shape of PayPal's refusals in
`errors.py`) and one dollar format (`money.py`). It imports nothing else of ours.

`payments.py` loads PayPal's SDK: import it only in the processes that pay (the payments
adapter, the refunds actor), never from this package's top.
"""
from interkanect.paypal.errors import PayPalError, PayPalUnavailable
from interkanect.paypal.money import cents_to_value, value_to_cents

__all__ = ["PayPalError", "PayPalUnavailable", "cents_to_value", "value_to_cents"]
