"""When members get paid and when a refund review is due: payout instants around U.S. federal
holidays and DST, business days, the earnings hold, and `interkanect payouts schedule`."""
import datetime
import json

import pytest
from hypothesis import given, settings, strategies as st

from rules.payout_calendar import (FRIDAY, LOS_ANGELES, business_days_after, federal_holiday, federal_holidays,
                                    first_payout_for, is_business_day, next_payouts, parse_moment, payable_at,
                                    payout_batch_id, refund_review_deadline)
from interkanect import cli

FEW_SECONDS = settings(max_examples=200, deadline=None)
DAY = datetime.timedelta(days=1)
HOLD_S = 24 * 3600


def la(text):
    """A Los Angeles wall-clock time, 'YYYY-MM-DD HH:MM'."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=LOS_ANGELES)


def iso(instants):
    return [instant.isoformat() for instant in instants]


MOMENTS = st.datetimes(min_value=datetime.datetime(2020, 1, 1), max_value=datetime.datetime(2045, 12, 31),
                       timezones=st.just(datetime.timezone.utc))
DATES = st.dates(min_value=datetime.date(2020, 1, 1), max_value=datetime.date(2045, 12, 31))


# --- federal holidays ---------------------------------------------------------------------------

@pytest.mark.parametrize("day, holiday", [
    ("2026-11-26", "Thanksgiving Day"),
    ("2026-11-27", None),                            # the day after Thanksgiving is a business day
    ("2026-12-25", "Christmas Day"),
    ("2027-12-24", "Christmas Day (observed)"),      # Christmas 2027 is a Saturday
    ("2027-12-31", "New Year's Day (observed)"),     # New Year's Day 2028 is a Saturday
    ("2026-07-03", "Independence Day (observed)"),
    ("2024-12-24", None),                            # closed by executive order, not a federal holiday
])
def test_federal_holidays_with_observed_dates(day, holiday):
    assert federal_holiday(datetime.date.fromisoformat(day)) == holiday


def test_the_holiday_table_is_the_eleven_federal_holidays():
    for year in range(2026, 2031):
        names = {name.removesuffix(" (observed)") for name in federal_holidays(year).values()}
        assert names == {"New Year's Day", "Martin Luther King Jr. Day", "Washington's Birthday", "Memorial Day",
                         "Juneteenth National Independence Day", "Independence Day", "Labor Day", "Columbus Day",
                         "Veterans Day", "Thanksgiving Day", "Christmas Day"}


# --- payout instants --------------------------------------------------------------------------

def test_weekly_payouts_around_thanksgiving_christmas_and_new_year_2026():
    assert iso(next_payouts(la("2026-11-20 00:00"), 8)) == [
        "2026-11-20T19:00:00-08:00",
        "2026-11-27T19:00:00-08:00",    # Black Friday is no holiday
        "2026-12-04T19:00:00-08:00",
        "2026-12-11T19:00:00-08:00",
        "2026-12-18T19:00:00-08:00",
        "2026-12-28T19:00:00-08:00",    # Friday 2026-12-25 is Christmas: next business day, Monday
        "2027-01-04T19:00:00-08:00",    # Friday 2027-01-01 is New Year's Day
        "2027-01-08T19:00:00-08:00",
    ]


def test_observed_holidays_on_fridays_move_the_payout():
    assert iso(next_payouts(la("2027-12-18 00:00"), 3)) == [
        "2027-12-27T19:00:00-08:00",    # Friday 2027-12-24 observes Christmas (a Saturday)
        "2028-01-03T19:00:00-08:00",    # Friday 2027-12-31 observes New Year's Day 2028
        "2028-01-07T19:00:00-08:00",
    ]
    assert iso(next_payouts(la("2026-06-13 00:00"), 4)) == [
        "2026-06-22T19:00:00-07:00",    # Juneteenth, a Friday
        "2026-06-26T19:00:00-07:00",
        "2026-07-06T19:00:00-07:00",    # Friday 2026-07-03 observes Independence Day
        "2026-07-10T19:00:00-07:00",
    ]
    assert iso(next_payouts(la("2028-11-04 00:00"), 1)) == ["2028-11-13T19:00:00-08:00"]  # Veterans Day observed


def test_payouts_stay_at_19h_local_across_dst():
    assert iso(next_payouts(la("2026-10-24 00:00"), 2)) == ["2026-10-30T19:00:00-07:00", "2026-11-06T19:00:00-08:00"]
    assert iso(next_payouts(la("2026-03-01 00:00"), 2)) == ["2026-03-06T19:00:00-08:00", "2026-03-13T19:00:00-07:00"]
    utc = [instant.astimezone(datetime.timezone.utc).isoformat() for instant in next_payouts(la("2026-10-24 00:00"), 2)]
    assert utc == ["2026-10-31T02:00:00+00:00", "2026-11-07T03:00:00+00:00"]


def test_payouts_are_strictly_after_the_moment_asked():
    payout = la("2026-12-04 19:00")
    assert next_payouts(payout, 1) == [la("2026-12-11 19:00")]
    assert next_payouts(payout - datetime.timedelta(microseconds=1), 1) == [payout]
    # Asked on the Saturday after a Friday holiday: that week's payout is still to come.
    assert next_payouts(la("2026-12-26 12:00"), 1) == [la("2026-12-28 19:00")]
    # Any zone: 03:00 UTC on Monday is 19:00 on Sunday in Los Angeles.
    assert iso(next_payouts(parse_moment("2026-12-28T03:00:00Z"), 1)) == ["2026-12-28T19:00:00-08:00"]


def test_a_moment_without_a_zone_is_refused():
    with pytest.raises(ValueError, match="time zone"):
        next_payouts(datetime.datetime(2026, 12, 1), 1)


@FEW_SECONDS
@given(MOMENTS, st.integers(min_value=1, max_value=6))
def test_one_payout_a_week_on_friday_or_the_first_business_day_after(after, count):
    instants = next_payouts(after, count)
    assert len(instants) == count and instants[0] > after
    fridays = []
    for instant in instants:
        assert instant.tzinfo is LOS_ANGELES and instant.time() == datetime.time(19, 0)
        assert is_business_day(instant.date())
        friday = instant.date() - datetime.timedelta(days=(instant.weekday() - FRIDAY) % 7)
        # Every day from the Friday up to the payout day is no business day.
        assert all(not is_business_day(friday + n * DAY) for n in range((instant.date() - friday).days))
        fridays.append(friday)
    assert all(b - a == datetime.timedelta(weeks=1) for a, b in zip(fridays, fridays[1:]))
    # None skipped: the payout before the first one is not after the moment asked.
    previous = [p for p in next_payouts(instants[0] - datetime.timedelta(weeks=3), 4) if p < instants[0]][-1]
    assert previous <= after
    assert next_payouts(instants[0], count - 1) == instants[1:]


def test_each_payout_has_its_own_batch_id():
    instants = next_payouts(la("2026-01-01 00:00"), 60)
    ids = {payout_batch_id(instant) for instant in instants}
    assert len(ids) == 60
    assert payout_batch_id(la("2026-12-28 19:00")) == payout_batch_id(parse_moment("2026-12-29T03:00:00Z"))


# --- business days and the refund review deadline ------------------------------------------------------

@pytest.mark.parametrize("start, expected", [
    ("2026-11-20", "2026-12-02"),   # Friday before Thanksgiving
    ("2026-11-21", "2026-12-02"),   # asked on a Saturday: counting starts Monday
    ("2026-12-21", "2026-12-31"),   # Christmas skipped
    ("2026-12-24", "2027-01-06"),   # Christmas and New Year's Day skipped
    ("2027-12-23", "2028-01-05"),   # both observed on Fridays in 2027
])
def test_seven_business_days_skip_weekends_and_federal_holidays(start, expected):
    assert business_days_after(datetime.date.fromisoformat(start), 7) == datetime.date.fromisoformat(expected)


def test_the_review_deadline_keeps_the_local_time_of_the_request():
    assert refund_review_deadline(la("2026-11-02 10:00")).isoformat() == "2026-11-12T10:00:00-08:00"  # Veterans Day
    # Across the end of DST the wall clock stays, the offset changes.
    assert refund_review_deadline(parse_moment("2026-10-30T10:00:00-07:00")).isoformat() == "2026-11-10T10:00:00-08:00"
    # A request at 23:30 on a Friday at UTC-4 is 19:30 that Friday in Los Angeles.
    assert refund_review_deadline(parse_moment("2026-11-20T23:30:00-04:00")).isoformat() == "2026-12-02T19:30:00-08:00"
    # At 01:00 on a Saturday at UTC-4 it is still Friday (21:00) in Los Angeles.
    assert refund_review_deadline(parse_moment("2026-11-21T01:00:00-04:00")).isoformat() == "2026-12-02T21:00:00-08:00"


@FEW_SECONDS
@given(DATES, st.integers(min_value=0, max_value=30))
def test_business_days_after_counts_exactly_that_many_business_days(start, days):
    end = business_days_after(start, days)
    between = [start + n * DAY for n in range(1, (end - start).days + 1)]
    assert sum(is_business_day(day) for day in between) == days
    assert days == 0 and end == start or is_business_day(end)


def test_negative_business_days_are_refused():
    with pytest.raises(ValueError):
        business_days_after(datetime.date(2026, 1, 5), -1)


# --- the hold ----------------------------------------------------------------------------------

def test_earnings_join_the_first_payout_after_the_hold():
    ended = la("2026-11-26 18:00")          # a call on Thanksgiving evening
    assert payable_at(ended, HOLD_S) == la("2026-11-27 18:00")
    assert first_payout_for(ended, HOLD_S) == la("2026-11-27 19:00")
    # Held until 19:00 exactly: still in that payout; a minute later: next week's.
    assert first_payout_for(la("2026-11-26 19:00"), HOLD_S) == la("2026-11-27 19:00")
    assert first_payout_for(la("2026-11-26 19:01"), HOLD_S) == la("2026-12-04 19:00")
    # Ended on Christmas Eve: held over Christmas, paid the Monday the payout moved to.
    assert first_payout_for(la("2026-12-24 21:00"), HOLD_S) == la("2026-12-28 19:00")


# --- `interkanect payouts schedule` ----------------------------------------------------------------

def test_schedule_json_from_a_date(capsys):
    cli.main(["payouts", "schedule", "--from", "2026-12-18", "--count", "3", "--json"])
    assert json.loads(capsys.readouterr().out) == ["2026-12-18T19:00:00-08:00", "2026-12-28T19:00:00-08:00",
                                                   "2027-01-04T19:00:00-08:00"]


def test_schedule_json_from_a_datetime_with_offset(capsys):
    cli.main(["payouts", "schedule", "--from", "2026-12-18T19:00:00-08:00", "--count", "1", "--json"])
    assert json.loads(capsys.readouterr().out) == ["2026-12-28T19:00:00-08:00"]


def test_schedule_readable_says_why_a_payout_moved(capsys):
    cli.main(["payouts", "schedule", "--from", "2026-12-19", "--count", "1"])
    assert capsys.readouterr().out.strip() == "2026-12-28T19:00:00-08:00  Monday  (Friday 2026-12-25 is Christmas Day)"


@pytest.mark.parametrize("args", [["--from", "2026-13-01"], ["--from", "2026-12-01T10:00"], ["--from", "soon"],
                                  ["--count", "0"]])
def test_schedule_refuses_bad_input_with_a_message(args):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["payouts", "schedule", "--json"] + args)
    assert str(exit_.value.code).startswith("error: ")
