"""When money moves on the calendar: the weekly payout instants, U.S. business days (for the
refund review deadline), and when a call's held earnings become payable. Pure: the time is
passed in as aware datetimes; the holiday table comes from the holidays package.

Decisions:
- A U.S. federal holiday is one of the holidays package's PUBLIC category for the U.S. with no
  subdivision: the eleven holidays of 5 U.S.C. 6103 with their observed dates (a Saturday
  holiday is observed the Friday before, a Sunday one the Monday after; New Year's Day 2028 is
  observed Friday 2027-12-31). One-off executive-order closings (the package's GOVERNMENT
  category: Christmas Eve 2024, days of mourning) are not federal holidays here, and the day
  after Thanksgiving is an ordinary business day.
- Business days are counted in America/Los_Angeles, the zone the payouts run in.
- The payout of a week is Friday 19:00 Los Angeles time, or, when that Friday is a federal
  holiday, 19:00 on the next business day. 19:00 local stays 19:00 across DST (the UTC offset
  is -07:00 in summer, -08:00 in winter).
- `business_days_after(start, n)`: the n-th business day strictly after start's day; a
  datetime keeps its Los Angeles wall-clock time, so a request at 10:00 on a Monday is due at
  10:00 on the Wednesday of the next week (7 business days).
- A payout at instant P pays what is available at P: earnings whose hold ends exactly at P are
  in it (`first_payout_for`).
"""
import datetime
import functools
import re
import types
from zoneinfo import ZoneInfo

import holidays

LOS_ANGELES = ZoneInfo("America/Los_Angeles")
FRIDAY = 4
PAYOUT_TIME = datetime.time(19, 0)
REFUND_REVIEW_BUSINESS_DAYS = 7
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


@functools.lru_cache(maxsize=None)
def federal_holidays(year):
    """{date: name} of the year's U.S. federal holidays as observed; read-only, as it is memoised."""
    table = holidays.country_holidays("US", years=year, categories=(holidays.PUBLIC,), observed=True)
    return types.MappingProxyType({day: name for day, name in table.items() if day.year == year})


def federal_holiday(day):
    """The name of the federal holiday observed on this date, or None."""
    return federal_holidays(day.year).get(day)


def is_business_day(day):
    return day.weekday() < 5 and federal_holiday(day) is None


def next_business_day(day):
    """The first business day strictly after `day`."""
    day += datetime.timedelta(days=1)
    while not is_business_day(day):
        day += datetime.timedelta(days=1)
    return day


def business_days_after(start, days):
    """The `days`-th business day strictly after start's day (a date in, a date out; an aware
    datetime in, the same Los Angeles wall-clock time on that day out)."""
    if days < 0:
        raise ValueError(f"cannot count {days} business days")
    if isinstance(start, datetime.datetime):
        local = _require_aware(start, "start").astimezone(LOS_ANGELES)
        day = business_days_after(local.date(), days)
        return datetime.datetime.combine(day, local.time(), tzinfo=LOS_ANGELES)
    for _ in range(days):
        start = next_business_day(start)
    return start


def refund_review_deadline(requested_at, business_days=REFUND_REVIEW_BUSINESS_DAYS):
    return business_days_after(requested_at, business_days)


def friday_on_or_before(day):
    """The Friday whose payout week `day` is in (a moved payout runs after its Friday)."""
    return day - datetime.timedelta(days=(day.weekday() - FRIDAY) % 7)


def payout_day(friday):
    """The day the payout of this Friday's week runs: the Friday, or the next business day."""
    return friday if federal_holiday(friday) is None else next_business_day(friday)


def payout_instant(friday):
    return datetime.datetime.combine(payout_day(friday), PAYOUT_TIME, tzinfo=LOS_ANGELES)


def next_payouts(after, count):
    """The next `count` payout instants strictly after `after`, as Los Angeles datetimes."""
    local = _require_aware(after, "after").astimezone(LOS_ANGELES)
    # Start at the Friday on or before `after`: its payout may have moved past `after` (Friday
    # holiday, asked on Saturday). An earlier Friday's payout is always over by this one.
    friday = friday_on_or_before(local.date())
    instants = []
    while len(instants) < count:
        instant = payout_instant(friday)
        if instant > after:
            instants.append(instant)
        friday += datetime.timedelta(weeks=1)
    return instants


def payable_at(call_ended_at, hold_s):
    """When a call's earnings may leave the hold (if no refund request or dispute keeps them)."""
    return _require_aware(call_ended_at, "call_ended_at") + datetime.timedelta(seconds=hold_s)


def first_payout_for(call_ended_at, hold_s):
    """The first payout that can carry a call's earnings when nothing else holds them."""
    ready = payable_at(call_ended_at, hold_s)
    return next_payouts(ready - datetime.timedelta(microseconds=1), 1)[0]


def payout_batch_id(instant, part=1):
    """PayPal's sender_batch_id for the payout at this instant: fixed per payout (and per part
    of it when more members are paid than one batch holds), so a retry or a restart mid-payout
    reuses it and PayPal refuses a second batch (for 30 days)."""
    base = f"interkanect-payout-{instant.astimezone(LOS_ANGELES):%Y-%m-%d}"
    return base if part == 1 else f"{base}-{part}"


def parse_moment(text):
    """'YYYY-MM-DD' (its 00:00 in Los Angeles) or an ISO 8601 datetime with an offset."""
    text = text.strip()
    try:
        if _DATE.fullmatch(text):
            return datetime.datetime.combine(datetime.date.fromisoformat(text), datetime.time(), tzinfo=LOS_ANGELES)
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError(f"{text!r} is neither a date like 2026-11-27 nor a datetime with an offset "
                         f"like 2026-11-27T10:00:00-08:00")
    return moment


def _require_aware(moment, name):
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must carry its time zone: {moment.isoformat()} has none")
    return moment
