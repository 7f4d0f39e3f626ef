//! Cron schedules as a CronJob's `spec.schedule` gives them, and the
//! times they name.
//!
//! Five fields, minute (0-59), hour (0-23), day of month (1-31), month
//! (1-12 or `jan`-`dec`) and day of week (0-6 or `sun`-`sat`), each a
//! comma-separated list of `*` (or `?`), a value, or a range `a-b`, any of
//! them with a step `/n` (`a/n` stepping from `a` to the field's end).
//! Names are case-insensitive. `@yearly` (or `@annually`), `@monthly`,
//! `@weekly`, `@daily` (or `@midnight`) and `@hourly` stand for their
//! usual five fields. When both day fields are restricted a day matching
//! either runs; when one of them is `*` (a step over the whole range
//! other than 1 counts as restricted, as in Kubernetes) only the other
//! decides.
//!
//! Times are wall-clock times in a time zone: [`Schedule::next_after`]
//! and [`Schedule::last_at_or_before`] walk the zone's calendar minute by
//! minute (skipping days and hours that cannot match). A wall-clock time
//! that a daylight-saving change skips runs at the shifted instant (02:30
//! on a day clocks jump from 02:00 to 03:00 runs at 03:30); wall-clock
//! times that repeat when clocks go back run once, at their first
//! occurrence.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// How many days [`Schedule::next_after`] and
/// [`Schedule::last_at_or_before`] look through before deciding a
/// schedule never matches (`0 0 30 2 *`): five years, leap days included.
const SEARCHED_DAYS: usize = 5 * 366;

const MINUTES_PER_DAY: i32 = 24 * 60;

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    minutes: Field,
    hours: Field,
    days: Field,
    months: Field,
    weekdays: Field,
}

/// Why a schedule does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

/// The values a field allows, as bits; `star` when it was written as the
/// whole range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Field {
    bits: u64,
    star: bool,
}

impl Field {
    fn has(self, value: i32) -> bool {
        u32::try_from(value).is_ok_and(|v| v < 64 && self.bits & (1 << v) != 0)
    }
}

/// A field's name, bounds and value names.
struct Kind {
    name: &'static str,
    min: i32,
    max: i32,
    names: &'static [&'static str],
    /// The value of the first name.
    first_named: i32,
}

const MINUTE: Kind = Kind {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    first_named: 0,
};
const HOUR: Kind = Kind {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    first_named: 0,
};
const DAY: Kind = Kind {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
    first_named: 0,
};
const MONTH: Kind = Kind {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
    first_named: 1,
};
const WEEKDAY: Kind = Kind {
    name: "day of week",
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    first_named: 0,
};

impl Kind {
    fn value(&self, text: &str) -> Result<i32, ParseError> {
        let lower = text.to_ascii_lowercase();
        if let Some(i) = self.names.iter().position(|n| *n == lower) {
            return Ok(self.first_named + i32::try_from(i).unwrap_or(0));
        }
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError(format!("{}: {text:?} is not a number", self.name)));
        }
        text.parse()
            .map_err(|_| ParseError(format!("{}: {text:?} is out of range", self.name)))
    }

    fn parse(&self, field: &str) -> Result<Field, ParseError> {
        let mut parsed = Field { bits: 0, star: false };
        for term in field.split(',') {
            let (range, step) = match term.split_once('/') {
                Some((range, step)) => {
                    let step: i32 =
                        step.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                            ParseError(format!("{}: step {step:?} is not a positive number", self.name))
                        })?;
                    (range, Some(step))
                }
                None => (term, None),
            };
            let (low, high, whole) = if range == "*" || range == "?" {
                (self.min, self.max, true)
            } else if let Some((low, high)) = range.split_once('-') {
                (self.value(low)?, self.value(high)?, false)
            } else {
                let value = self.value(range)?;
                // `a/n` steps from `a` to the end of the field.
                (value, if step.is_some() { self.max } else { value }, false)
            };
            if low < self.min || high > self.max {
                return Err(ParseError(format!(
                    "{}: {term:?} is outside {}-{}",
                    self.name, self.min, self.max
                )));
            }
            if low > high {
                return Err(ParseError(format!("{}: {term:?} ends before it starts", self.name)));
            }
            let step = step.unwrap_or(1);
            parsed.star |= whole && step == 1;
            let mut value = low;
            while value <= high {
                parsed.bits |= 1 << value;
                value += step;
            }
        }
        Ok(parsed)
    }
}

impl FromStr for Schedule {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Schedule, ParseError> {
        let text = text.trim();
        let fields = match text.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            macro_ if macro_.starts_with('@') => {
                return Err(ParseError(format!("unknown macro {text:?}")));
            }
            _ => text,
        };
        let fields: Vec<&str> = fields.split_whitespace().collect();
        let [minutes, hours, days, months, weekdays] = fields.as_slice() else {
            return Err(ParseError(format!("expected 5 fields, found {}", fields.len())));
        };
        Ok(Schedule {
            minutes: MINUTE.parse(minutes)?,
            hours: HOUR.parse(hours)?,
            days: DAY.parse(days)?,
            months: MONTH.parse(months)?,
            weekdays: WEEKDAY.parse(weekdays)?,
        })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = |field: Field, kind: &Kind| {
            let values: Vec<String> = (kind.min..=kind.max)
                .filter(|v| field.has(*v))
                .map(|v| v.to_string())
                .collect();
            values.join(",")
        };
        write!(
            f,
            "{} {} {} {} {}",
            field(self.minutes, &MINUTE),
            field(self.hours, &HOUR),
            field(self.days, &DAY),
            field(self.months, &MONTH),
            field(self.weekdays, &WEEKDAY)
        )
    }
}

impl Schedule {
    fn runs_on(&self, date: Date) -> bool {
        if !self.months.has(i32::from(date.month())) {
            return false;
        }
        let day = self.days.has(i32::from(date.day()));
        let weekday = self.weekdays.has(i32::from(date.weekday().to_sunday_zero_offset()));
        if self.days.star || self.weekdays.star {
            day && weekday
        } else {
            day || weekday
        }
    }

    fn runs_at(&self, minute_of_day: i32) -> bool {
        self.hours.has(minute_of_day / 60) && self.minutes.has(minute_of_day % 60)
    }

    /// The instant wall-clock `minute_of_day` on `date` is in `tz`.
    fn instant(date: Date, minute_of_day: i32, tz: &TimeZone) -> Option<Timestamp> {
        let hour = i8::try_from(minute_of_day / 60).ok()?;
        let minute = i8::try_from(minute_of_day % 60).ok()?;
        let time = jiff::civil::Time::new(hour, minute, 0, 0).ok()?;
        tz.to_ambiguous_timestamp(date.to_datetime(time)).compatible().ok()
    }

    /// The first scheduled time after `after`.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local = tz.to_datetime(after);
        let mut date = local.date();
        let mut from = i32::from(local.hour()) * 60 + i32::from(local.minute()) + 1;
        for _ in 0..SEARCHED_DAYS {
            if self.runs_on(date) {
                for minute in from..MINUTES_PER_DAY {
                    if !self.runs_at(minute) {
                        continue;
                    }
                    match Schedule::instant(date, minute, tz) {
                        Some(at) if at > after => return Some(at),
                        _ => {}
                    }
                }
            }
            date = date.tomorrow().ok()?;
            from = 0;
        }
        None
    }

    /// The last scheduled time at or before `at`.
    pub fn last_at_or_before(&self, at: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local = tz.to_datetime(at);
        let mut date = local.date();
        let mut from = i32::from(local.hour()) * 60 + i32::from(local.minute());
        for _ in 0..SEARCHED_DAYS {
            if self.runs_on(date) {
                for minute in (0..=from).rev() {
                    if !self.runs_at(minute) {
                        continue;
                    }
                    match Schedule::instant(date, minute, tz) {
                        Some(when) if when <= at => return Some(when),
                        _ => {}
                    }
                }
            }
            date = date.yesterday().ok()?;
            from = MINUTES_PER_DAY - 1;
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn fields_parse_to_the_times_they_name() {
        let cases = [
            ("* * * * *", "0-59 0-23 1-31 1-12 0-6"),
            ("*/15 * * * *", "0,15,30,45 0-23 1-31 1-12 0-6"),
            ("5 4 * * *", "5 4 1-31 1-12 0-6"),
            ("0 22 * * 1-5", "0 22 1-31 1-12 1,2,3,4,5"),
            ("23 0-20/2 * * *", "23 0,2,4,6,8,10,12,14,16,18,20 1-31 1-12 0-6"),
            ("0 0,12 1 */2 *", "0 0,12 1 1,3,5,7,9,11 0-6"),
            ("0 9 * JAN-mar Mon,FRI", "0 9 1-31 1,2,3 1,5"),
            ("30 5/6 ? * sun", "30 5,11,17,23 1-31 1-12 0"),
            ("  1 2 3 4 5  ", "1 2 3 4 5"),
            ("@hourly", "0 0-23 1-31 1-12 0-6"),
            ("@daily", "0 0 1-31 1-12 0-6"),
            ("@midnight", "0 0 1-31 1-12 0-6"),
            ("@weekly", "0 0 1-31 1-12 0"),
            ("@monthly", "0 0 1 1-12 0-6"),
            ("@yearly", "0 0 1 1 0-6"),
            ("@ANNUALLY", "0 0 1 1 0-6"),
        ];
        let compact = |s: &str, kind: &Kind| {
            // Whole ranges read better as `a-b` in the table.
            let all: Vec<String> = (kind.min..=kind.max).map(|v| v.to_string()).collect();
            if s == all.join(",") {
                format!("{}-{}", kind.min, kind.max)
            } else {
                s.to_string()
            }
        };
        for (text, want) in cases {
            let schedule: Schedule = text.parse().unwrap();
            let shown = schedule.to_string();
            let parts: Vec<&str> = shown.split(' ').collect();
            let kinds = [&MINUTE, &HOUR, &DAY, &MONTH, &WEEKDAY];
            let shown: Vec<String> = parts.iter().zip(kinds).map(|(p, k)| compact(p, k)).collect();
            assert_eq!(shown.join(" "), want, "{text}");
        }
    }

    #[test]
    fn malformed_schedules_are_refused() {
        for text in [
            "",
            "* * * *",
            "* * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * 32 * *",
            "* * * 13 *",
            "* * * * 7",
            "5-1 * * * *",
            "*/0 * * * *",
            "*/x * * * *",
            "a * * * *",
            "-1 * * * *",
            "1-2-3 * * * *",
            "1,,2 * * * *",
            "* * * foo *",
            "@every 5m",
            "@reboot",
        ] {
            assert!(text.parse::<Schedule>().is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn next_and_last_times_in_utc() {
        let utc = TimeZone::UTC;
        // (schedule, from, next after it, last at or before it)
        let cases = [
            (
                "* * * * *",
                "2026-03-10T10:15:30Z",
                "2026-03-10T10:16:00Z",
                "2026-03-10T10:15:00Z",
            ),
            (
                "* * * * *",
                "2026-03-10T10:15:00Z",
                "2026-03-10T10:16:00Z",
                "2026-03-10T10:15:00Z",
            ),
            (
                "*/15 * * * *",
                "2026-03-10T10:59:59Z",
                "2026-03-10T11:00:00Z",
                "2026-03-10T10:45:00Z",
            ),
            (
                "0 0 * * *",
                "2026-12-31T23:59:00Z",
                "2027-01-01T00:00:00Z",
                "2026-12-31T00:00:00Z",
            ),
            (
                "30 2 29 2 *",
                "2026-03-01T00:00:00Z",
                "2028-02-29T02:30:00Z",
                "2024-02-29T02:30:00Z",
            ),
            // 2026-03-10 is a Tuesday.
            (
                "0 9 * * mon",
                "2026-03-10T08:00:00Z",
                "2026-03-16T09:00:00Z",
                "2026-03-09T09:00:00Z",
            ),
            // Both day fields restricted: the 13th or a Friday.
            (
                "0 0 13 * 5",
                "2026-03-10T00:00:00Z",
                "2026-03-13T00:00:00Z",
                "2026-03-06T00:00:00Z",
            ),
            (
                "0 0 13 * 5",
                "2026-03-13T00:00:00Z",
                "2026-03-20T00:00:00Z",
                "2026-03-13T00:00:00Z",
            ),
            // A stepped day of month counts as restricted (the 11th or a
            // Monday), `*` and `*/1` do not (Mondays).
            (
                "0 0 */10 * 1",
                "2026-03-10T00:00:00Z",
                "2026-03-11T00:00:00Z",
                "2026-03-09T00:00:00Z",
            ),
            (
                "0 0 * * 1",
                "2026-03-10T00:00:00Z",
                "2026-03-16T00:00:00Z",
                "2026-03-09T00:00:00Z",
            ),
            (
                "0 0 */1 * 1",
                "2026-03-10T00:00:00Z",
                "2026-03-16T00:00:00Z",
                "2026-03-09T00:00:00Z",
            ),
            (
                "@monthly",
                "2026-01-31T12:00:00Z",
                "2026-02-01T00:00:00Z",
                "2026-01-01T00:00:00Z",
            ),
        ];
        for (text, from, next, last) in cases {
            let schedule: Schedule = text.parse().unwrap();
            assert_eq!(
                schedule.next_after(at(from), &utc),
                Some(at(next)),
                "{text} after {from}"
            );
            assert_eq!(
                schedule.last_at_or_before(at(from), &utc),
                Some(at(last)),
                "{text} at or before {from}"
            );
        }
        let never: Schedule = "0 0 30 2 *".parse().unwrap();
        assert_eq!(never.next_after(at("2026-01-01T00:00:00Z"), &utc), None);
        assert_eq!(never.last_at_or_before(at("2026-01-01T00:00:00Z"), &utc), None);
    }

    #[test]
    fn wall_clock_times_follow_the_time_zone_through_daylight_saving() {
        let tz = jiff::tz::db().get("America/New_York").unwrap();
        let cases = [
            // 09:00 in New York is 14:00 UTC in winter, 13:00 in summer.
            (
                "0 9 * * *",
                "2026-03-07T15:00:00Z",
                "2026-03-08T13:00:00Z",
                "2026-03-07T14:00:00Z",
            ),
            // Clocks jump from 02:00 to 03:00 on 2026-03-08: 02:30 runs at
            // 03:30 EDT.
            (
                "30 2 * * *",
                "2026-03-08T06:00:00Z",
                "2026-03-08T07:30:00Z",
                "2026-03-07T07:30:00Z",
            ),
            // Clocks go back from 02:00 to 01:00 on 2026-11-01: 01:30 runs
            // once, at its first occurrence (EDT), and not again an hour
            // later.
            (
                "30 1 * * *",
                "2026-11-01T05:00:00Z",
                "2026-11-01T05:30:00Z",
                "2026-10-31T05:30:00Z",
            ),
            (
                "30 1 * * *",
                "2026-11-01T05:30:00Z",
                "2026-11-02T06:30:00Z",
                "2026-11-01T05:30:00Z",
            ),
            (
                "30 1 * * *",
                "2026-11-01T06:45:00Z",
                "2026-11-02T06:30:00Z",
                "2026-11-01T05:30:00Z",
            ),
        ];
        for (text, from, next, last) in cases {
            let schedule: Schedule = text.parse().unwrap();
            assert_eq!(
                schedule.next_after(at(from), &tz),
                Some(at(next)),
                "{text} after {from}"
            );
            assert_eq!(
                schedule.last_at_or_before(at(from), &tz),
                Some(at(last)),
                "{text} at or before {from}"
            );
        }
    }
}
