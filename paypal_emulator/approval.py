"""The payer's side of checkout: the page behind the order's approve / payer-action link
(PayPal's www.paypal.com/checkoutnow?token=…), a plain HTML form with Approve and Cancel."""
import html
import urllib.parse

from paypal_emulator.money import format_cents

DEFAULT_PAYER_EMAIL = "buyer@example.com"

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:28rem;margin:3rem auto}}button{{font-size:1rem;margin-right:1rem}}</style>
</head>
<body>
<h1>{title}</h1>
{content}
</body>
</html>
"""


def checkout_page(order, merchant_name):
    """The form: who is paid, how much, and the payer's two choices."""
    amount = format_cents(order.amount_cents)
    token = html.escape(order.id)
    content = f"""<p class="emulator-note">PayPal emulator: no real account is charged.</p>
<p>Pay <strong id="payee">{html.escape(order.brand_name or merchant_name)}</strong>
<strong id="amount">${amount} USD</strong></p>
<form method="post" action="/checkoutnow">
<input type="hidden" name="token" value="{token}">
<label>Pay as <input type="email" name="payer_email" value="{DEFAULT_PAYER_EMAIL}"></label>
<p><button type="submit" name="action" value="approve" id="approve">Approve</button>
<button type="submit" name="action" value="cancel" id="cancel">Cancel</button></p>
</form>"""
    return PAGE.format(title="Pay with PayPal", content=content)


def message_page(title, message):
    return PAGE.format(title=html.escape(title), content=f"<p id=\"message\">{html.escape(message)}</p>")


def with_query(url, **params):
    """The return or cancel URL with PayPal's parameters added (token, PayerID)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
