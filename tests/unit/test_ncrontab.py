from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devhost.ncrontab import CronSyntaxError, IntervalSchedule, parse_ncrontab, parse_schedule
from devhost.settings import SettingsError

# 2024-01-01 was a Monday.
MONDAY_NOON = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def occurrences(expression: str, start: datetime, count: int) -> list[datetime]:
    schedule = parse_ncrontab(expression)
    found, moment = [], start
    for _ in range(count):
        moment = schedule.next_after(moment)
        found.append(moment)
    return found


def test_the_first_field_is_seconds() -> None:
    assert parse_ncrontab("30 * * * * *").next_after(MONDAY_NOON) == at(2024, 1, 1, 12, 0, 30)


def test_daily_at_two_in_the_morning_runs_on_the_next_day_once_two_has_passed() -> None:
    assert parse_ncrontab("0 0 2 * * *").next_after(MONDAY_NOON) == at(2024, 1, 2, 2, 0, 0)


def test_next_occurrence_is_strictly_after_the_given_moment() -> None:
    assert parse_ncrontab("0 0 12 * * *").next_after(MONDAY_NOON) == at(2024, 1, 2, 12, 0, 0)


def test_sub_second_moments_round_up_to_the_next_whole_second() -> None:
    moment = MONDAY_NOON + timedelta(milliseconds=400)
    assert parse_ncrontab("* * * * * *").next_after(moment) == at(2024, 1, 1, 12, 0, 1)


def test_every_second() -> None:
    assert occurrences("*/1 * * * * *", MONDAY_NOON, 3) == [
        at(2024, 1, 1, 12, 0, 1),
        at(2024, 1, 1, 12, 0, 2),
        at(2024, 1, 1, 12, 0, 3),
    ]


def test_step_over_a_wildcard_starts_at_the_lowest_value() -> None:
    assert occurrences("0 */15 * * * *", MONDAY_NOON, 5)[-2:] == [at(2024, 1, 1, 13, 0), at(2024, 1, 1, 13, 15)]


def test_range_with_a_step() -> None:
    assert occurrences("0 0 9-17/4 * * *", MONDAY_NOON, 3) == [
        at(2024, 1, 1, 13, 0),
        at(2024, 1, 1, 17, 0),
        at(2024, 1, 2, 9, 0),
    ]


def test_value_with_a_step_runs_to_the_end_of_the_range() -> None:
    schedule = parse_ncrontab("50/5 * * * * *")
    assert schedule.seconds == (50, 55)


def test_lists_mix_values_and_ranges() -> None:
    assert parse_ncrontab("0 5,10-12,40 * * * *").minutes == (5, 10, 11, 12, 40)


def test_day_of_week_counts_from_sunday_as_zero() -> None:
    assert parse_ncrontab("0 0 8 * * 0").next_after(MONDAY_NOON) == at(2024, 1, 7, 8, 0)


def test_weekdays_only_skip_the_weekend() -> None:
    friday_evening = at(2024, 1, 5, 18, 0, 0)
    assert parse_ncrontab("0 30 9 * * 1-5").next_after(friday_evening) == at(2024, 1, 8, 9, 30)


def test_month_and_day_names_are_accepted() -> None:
    assert parse_ncrontab("0 0 0 * * MON-FRI").days_of_week == frozenset({1, 2, 3, 4, 5})
    assert parse_ncrontab("0 0 0 1 jan,Jul *").months == frozenset({1, 7})


def test_day_of_month_and_month_roll_over_the_year() -> None:
    assert parse_ncrontab("0 0 0 1 1 *").next_after(MONDAY_NOON) == at(2025, 1, 1)


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    # The 13th that falls on a Friday, after 2024-01-01: September 2024.
    assert parse_ncrontab("0 0 0 13 * 5").next_after(MONDAY_NOON) == at(2024, 9, 13)


def test_leap_day_is_found_years_ahead() -> None:
    assert parse_ncrontab("0 0 0 29 2 *").next_after(at(2024, 3, 1)) == at(2028, 2, 29)


def test_naive_moments_are_taken_as_utc() -> None:
    naive = datetime(2024, 1, 1, 12, 0, 0)  # noqa: DTZ001 - the point of the test
    assert parse_ncrontab("30 * * * * *").next_after(naive) == at(2024, 1, 1, 12, 0, 30)


def test_moments_in_other_time_zones_are_converted_to_utc() -> None:
    moment = datetime(2024, 1, 1, 13, 0, 0, tzinfo=UTC).astimezone(tz=None)
    assert parse_ncrontab("0 0 14 * * *").next_after(moment) == at(2024, 1, 1, 14, 0)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 0 * * *", "expected 6 fields"),
        ("0 0 0 * * * *", "expected 6 fields"),
        ("60 * * * * *", "second '60' is outside 0-59"),
        ("* * 24 * * *", "hour '24' is outside 0-23"),
        ("* * * 0 * *", "day '0' is outside 1-31"),
        ("* * * * 13 *", "month '13' is outside 1-12"),
        ("* * * * * 7", "day-of-week '7' is outside 0-6"),
        ("*/0 * * * * *", "second step '0' must be at least 1"),
        ("10-5 * * * * *", "second range '10-5' runs backwards"),
        ("a * * * * *", "second 'a' is not a number"),
        ("1,,2 * * * * *", "second '' is not a number"),
    ],
)
def test_invalid_expressions_raise_an_error_naming_the_field(expression: str, message: str) -> None:
    with pytest.raises(CronSyntaxError, match=message) as error:
        parse_ncrontab(expression)
    assert expression in str(error.value)


def test_an_expression_that_never_occurs_is_an_error() -> None:
    with pytest.raises(CronSyntaxError, match="never occurs"):
        parse_ncrontab("0 0 0 31 2 *").next_after(MONDAY_NOON)


def test_schedule_resolves_an_app_setting() -> None:
    schedule = parse_schedule("%RETENTION_SCHEDULE%", {"RETENTION_SCHEDULE": "0 0 2 * * *"})
    assert schedule.next_after(MONDAY_NOON) == at(2024, 1, 2, 2, 0)


def test_schedule_naming_a_missing_setting_is_an_error_naming_it() -> None:
    with pytest.raises(SettingsError, match="RETENTION_SCHEDULE"):
        parse_schedule("%RETENTION_SCHEDULE%", {})


def test_timespan_schedule_is_an_interval() -> None:
    schedule = parse_schedule("00:05:00", {})
    assert schedule == IntervalSchedule(timedelta(minutes=5))
    assert schedule.next_after(MONDAY_NOON) == at(2024, 1, 1, 12, 5)


def test_zero_timespan_is_rejected() -> None:
    with pytest.raises(CronSyntaxError, match="must be positive"):
        parse_schedule("00:00:00", {})
