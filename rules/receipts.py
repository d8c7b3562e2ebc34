"""The mails money sends: the caller's receipt for each captured call payment and tip, the
member's earnings notice for each capture, and the caller's notice of a late capture refunded.
Pure: each function takes what the mail says and returns (subject, body).

Decisions:
- The receipt shows what the caller paid, to whom, for which call and terms (with the terms'
  fingerprint both sides saw when they agreed); PayPal's fee is the member's business and is
  not on it. The earnings notice shows gross, fee and net and when the net becomes payable.
- Times are printed in UTC with the zone named: the platform does not know the reader's zone.
"""
import datetime

from rules.terms import dollars


def _when(at):
    return at.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _length(length_s):
    minutes, seconds = divmod(int(length_s), 60)
    text = f"{minutes} minute{'' if minutes == 1 else 's'}"
    return text + (f" {seconds} s" if seconds else "")


def _hours(seconds):
    hours = seconds / 3600
    return f"{hours:g} hour{'' if hours == 1 else 's'}"


def payment_receipt(host_name, call_id, terms, capture_id, amount_cents, at, refund_window_s):
    """To the caller: a call payment was captured."""
    return (f"Receipt: {dollars(amount_cents)} for your call with {host_name}", "\n".join([
        f"You paid {dollars(amount_cents)} for a call with {host_name} on interKanect.", "",
        f"Call:               {call_id}" + (f" (round {terms['round']})" if terms else ""),
        *([f"Terms:              {_length(terms['length_s'])} for {dollars(terms['price_cents'])}",
           f"Terms fingerprint:  {terms['fingerprint']} (as both of you saw it when you agreed)"] if terms else []),
        f"Amount:             {dollars(amount_cents)} USD",
        f"PayPal transaction: {capture_id}",
        f"Date:               {_when(at)}", "",
        f"You can ask for a refund within {_hours(refund_window_s)} after the call ends, from the call's page.",
        "interKanect never asks for your password by email."]))


def tip_receipt(host_name, call_id, capture_id, amount_cents, at):
    """To the caller: a tip was captured (tips are not refunded)."""
    return (f"Receipt: your {dollars(amount_cents)} tip to {host_name}", "\n".join([
        f"You tipped {host_name} {dollars(amount_cents)} during your call on interKanect. Thank you!", "",
        f"Call:               {call_id}",
        f"Amount:             {dollars(amount_cents)} USD",
        f"PayPal transaction: {capture_id}",
        f"Date:               {_when(at)}", "",
        "Tips are a gift to the host and are not refunded.",
        "interKanect never asks for your password by email."]))


def earnings_notice(caller_name, call_id, capture_id, amount_cents, fee_cents, tip, hold_s):
    """To the member: what a capture earned them and when it becomes payable."""
    net_cents = amount_cents - fee_cents
    what = "a tip" if tip else "a call payment"
    payable = ("It is available now and goes out with the next weekly payout (Fridays, 19:00 Los Angeles "
               "time; the next business day after a U.S. federal holiday)." if tip else
               f"It becomes payable {_hours(hold_s)} after the call ends and goes out with the first weekly "
               f"payout after that (Fridays, 19:00 Los Angeles time; the next business day after a U.S. federal "
               f"holiday). If the caller asks for a refund within that time, it waits for the decision.")
    return (f"You earned {dollars(net_cents)} from {caller_name}", "\n".join([
        f"{caller_name} paid you {what} on interKanect.", "",
        f"Call:               {call_id}",
        f"Paid:               {dollars(amount_cents)}",
        f"PayPal fee:         {dollars(fee_cents)}",
        f"Your earnings:      {dollars(net_cents)}",
        f"PayPal transaction: {capture_id}", "",
        payable]))


def mismatch_refund(host_name, call_id, capture_id, captured, expected_cents, refund_id):
    """To the caller: PayPal took another amount or currency than the agreed price; all of it
    went back. `captured` is PayPal's words for it ("EUR 15.00")."""
    return (f"Refunded: your PayPal payment for your call with {host_name}", "\n".join([
        f"PayPal took {captured} for your call with {host_name}, but the price you agreed was "
        f"{dollars(expected_cents)}, so we could not accept it.",
        f"We refunded all of it ({captured}) to your PayPal account; nothing was charged for the call.", "",
        f"Call:               {call_id}",
        f"PayPal transaction: {capture_id}",
        f"PayPal refund:      {refund_id}", "",
        "interKanect never asks for your password by email."]))


def mismatch_alert(call_id, order_id, capture_id, captured, expected_cents):
    """To operators: a capture that did not match its order."""
    return (f"A PayPal payment did not match its terms (call {call_id})",
            f"PayPal captured {captured} on order {order_id} (capture {capture_id}), but the order was for "
            f"{dollars(expected_cents)}. It is refunded in full to the payer and the call was not paid with it. "
            f"Look at the order on PayPal's dashboard: an amount changed after we created it is not ours.")


def late_refund_stuck_alert(call_id, capture_id, amount_cents, why):
    """To operators: a capture its call never used that we could not give back."""
    amount = dollars(amount_cents) if amount_cents is not None else "The payment"
    return (f"A late payment could not be refunded (call {call_id})",
            f"{amount} captured by PayPal (capture {capture_id}) after call {call_id} was over belongs to the caller, "
            f"but its refund did not go through: {why}. It is held from the host's payout. Refund it on PayPal's "
            f"dashboard, or find out from PayPal why it cannot be refunded.")


def sale_mismatch_alert(member_id, subscription_id, sale_id, sold, expected_cents, refund_id):
    """To operators: a subscription payment that did not match the member's plan."""
    return (f"A PayPal subscription payment did not match its plan (subscription {subscription_id})",
            f"PayPal billed {sold} (sale {sale_id}) on subscription {subscription_id} of member {member_id}, but "
            f"their plan is {dollars(expected_cents) if expected_cents is not None else 'not known here'}. It was refunded in full to the member (refund "
            f"{refund_id}) and booked as nothing earned; PayPal's fee on it is the platform's cost. Look at the "
            f"plan on PayPal's dashboard: a price changed behind our back is not ours.")


def late_capture_refund(host_name, call_id, capture_id, amount_cents, refund_id):
    """To the caller: their payment completed after the call was over and went back in full."""
    return (f"Refunded: {dollars(amount_cents)} for your call with {host_name}", "\n".join([
        f"Your payment of {dollars(amount_cents)} for a call with {host_name} completed after the call was "
        f"over, so the call could not go on with it.",
        f"We refunded all of it ({dollars(amount_cents)}) to your PayPal account; PayPal's fee is on us.", "",
        f"Call:               {call_id}",
        f"PayPal transaction: {capture_id}",
        f"PayPal refund:      {refund_id}", "",
        "PayPal shows the refund in your account within a few days.",
        "interKanect never asks for your password by email."]))


def call_record_mail(other_name, call_id, role, head, entries, ended_at, base_url):
    """To each side of a paid call that has ended: the head of its record's hash chain, so a
    record shown later (by either side, to anyone) can be checked against what we sent then."""
    with_whom = f"your call with {other_name}" if role == "caller" else f"{other_name}'s call to you"
    return (f"The record of {with_whom}", "\n".join([
        f"{with_whom[0].upper()}{with_whom[1:]} on interKanect ended {_when(ended_at)}.", "",
        f"Call:         {call_id}",
        f"Record head:  {head}",
        f"Entries:      {entries} (the call's facts, then its log)", "",
        "The record is the call's facts and log, each entry chained to the one before by its SHA-256",
        "hash; this head is the last entry's. Download the record, signed by interKanect, from the",
        f"call's page: {base_url}history/{call_id}",
        "Its head must read as above (a later money event on the call, such as a refund, adds entries",
        "and so a new head). `interkanect verify-record FILE` or the page's \"Check a record\" says",
        "whether a record is intact and signed by us. Nothing of what was said or shown is in it."]))
