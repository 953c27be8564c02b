//! Calendar windows in UTC: which window an instant falls in, its id and its bounds.
//!
//! A cap counts spend per window: `total` (never resets), or the UTC `hour`, `day`, ISO `week`
//! (Monday 00:00 to Monday 00:00) or calendar `month` that contains the instant. The id names the
//! window in bucket keys (`day:2026-11-27`), so a new window is simply a new bucket: windows roll
//! over without a restart and without a reset job, and the old bucket's key expires.
//!
//! Times are Unix seconds (UTC, no leap seconds), dates use the proleptic Gregorian calendar
//! (the days-from-civil algorithm of H. Hinnant), and only the years 1..=9999 are accepted so
//! that an id is always four digits of year.

use crate::spend::error::SpendError;

/// The kinds of window a cap can count over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WindowKind {
    /// Never resets.
    Total,
    /// The UTC hour.
    Hour,
    /// The UTC day.
    Day,
    /// The ISO week: Monday 00:00 UTC to the next Monday.
    Week,
    /// The calendar month in UTC.
    Month,
}

/// One window: its id and its bounds in Unix seconds (`None` for the total window).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// The id used in bucket keys: `total`, `hour:2026-11-27T08`, `day:2026-11-27`,
    /// `week:2026-W48`, `month:2026-11`.
    pub id: String,
    /// First second of the window.
    pub start: Option<i64>,
    /// First second after the window: the reset time.
    pub end: Option<i64>,
}

const SECS_PER_DAY: i64 = 86_400;
// 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z as Unix seconds.
const MIN_TIME: i64 = -62_135_596_800;
const MAX_TIME: i64 = 253_402_300_800;

impl WindowKind {
    /// The kind named `name` (`total`, `hour`, `day`, `week`, `month`).
    ///
    /// # Errors
    /// Any other name.
    pub fn parse(name: &str) -> Result<Self, SpendError> {
        match name {
            "total" => Ok(WindowKind::Total),
            "hour" => Ok(WindowKind::Hour),
            "day" => Ok(WindowKind::Day),
            "week" => Ok(WindowKind::Week),
            "month" => Ok(WindowKind::Month),
            other => Err(SpendError::unknown_window(other)),
        }
    }

    /// The window of this kind that contains `unix_s`.
    ///
    /// # Errors
    /// An instant outside the years 1..=9999 (or whose window ends after them).
    ///
    /// # Example
    /// ```
    /// use _core::spend::window::WindowKind;
    /// let w = WindowKind::Day.window_at(1_795_737_600 + 3_600).unwrap(); // 2026-11-27T01:00Z
    /// assert_eq!(w.id, "day:2026-11-27");
    /// assert_eq!(w.end, Some(1_795_737_600 + 86_400));
    /// ```
    pub fn window_at(self, unix_s: i64) -> Result<Window, SpendError> {
        if !(MIN_TIME..MAX_TIME).contains(&unix_s) {
            return Err(SpendError::time_out_of_range());
        }
        let days = unix_s.div_euclid(SECS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let (id, start, end) = match self {
            WindowKind::Total => {
                return Ok(Window {
                    id: "total".to_owned(),
                    start: None,
                    end: None,
                })
            }
            WindowKind::Hour => {
                let hour = unix_s.rem_euclid(SECS_PER_DAY) / 3_600;
                let start = days * SECS_PER_DAY + hour * 3_600;
                (
                    format!("hour:{year:04}-{month:02}-{day:02}T{hour:02}"),
                    start,
                    start + 3_600,
                )
            }
            WindowKind::Day => {
                let start = days * SECS_PER_DAY;
                (
                    format!("day:{year:04}-{month:02}-{day:02}"),
                    start,
                    start + SECS_PER_DAY,
                )
            }
            WindowKind::Week => {
                let monday = days - weekday_from_monday(days);
                let (iso_year, iso_week) = iso_week(monday);
                let start = monday * SECS_PER_DAY;
                (
                    format!("week:{iso_year:04}-W{iso_week:02}"),
                    start,
                    start + 7 * SECS_PER_DAY,
                )
            }
            WindowKind::Month => {
                let first = days_from_civil(year, month, 1);
                let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
                let next = days_from_civil(next_year, next_month, 1);
                (
                    format!("month:{year:04}-{month:02}"),
                    first * SECS_PER_DAY,
                    next * SECS_PER_DAY,
                )
            }
        };
        if end > MAX_TIME {
            return Err(SpendError::time_out_of_range());
        }
        Ok(Window {
            id,
            start: Some(start),
            end: Some(end),
        })
    }
}

/// Days since 1970-01-01 of the civil date `(year, month, day)`.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of `days` since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (1..=31, 1..=12).
    (year, day_u32(month), day_u32(day))
}

fn day_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// 0 for Monday … 6 for Sunday (1970-01-01 was a Thursday).
fn weekday_from_monday(days: i64) -> i64 {
    (days + 3).rem_euclid(7)
}

/// The ISO year and week number of the week that starts on the Monday `monday` (days since epoch):
/// the week belongs to the year of its Thursday.
fn iso_week(monday: i64) -> (i64, i64) {
    let thursday = monday + 3;
    let (year, _, _) = civil_from_days(thursday);
    let jan1 = days_from_civil(year, 1, 1);
    (year, (thursday - jan1) / 7 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(year: i64, month: u32, day: u32, hour: i64) -> i64 {
        days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3_600
    }

    macro_rules! t {
        ($name:ident, $kind:expr, $at:expr, $id:expr, $start:expr, $end:expr) => {
            #[test]
            fn $name() {
                let w = $kind.window_at($at).unwrap();
                assert_eq!(w.id, $id);
                assert_eq!(w.start, $start);
                assert_eq!(w.end, $end);
            }
        };
    }

    t!(total001, WindowKind::Total, 0, "total", None, None);
    t!(
        hour001,
        WindowKind::Hour,
        ts(2026, 11, 27, 8) + 59 * 60,
        "hour:2026-11-27T08",
        Some(ts(2026, 11, 27, 8)),
        Some(ts(2026, 11, 27, 9))
    );
    t!(
        hour002,
        WindowKind::Hour,
        ts(2026, 12, 31, 23) + 1,
        "hour:2026-12-31T23",
        Some(ts(2026, 12, 31, 23)),
        Some(ts(2027, 1, 1, 0))
    );
    t!(
        day001,
        WindowKind::Day,
        ts(2026, 11, 27, 23) + 3_599,
        "day:2026-11-27",
        Some(ts(2026, 11, 27, 0)),
        Some(ts(2026, 11, 28, 0))
    );
    t!(
        day002,
        WindowKind::Day,
        ts(2028, 2, 29, 12),
        "day:2028-02-29",
        Some(ts(2028, 2, 29, 0)),
        Some(ts(2028, 3, 1, 0))
    );
    t!(
        day003,
        WindowKind::Day,
        -1,
        "day:1969-12-31",
        Some(-SECS_PER_DAY),
        Some(0)
    );
    // 2026-11-27 is a Friday in ISO week 48.
    t!(
        week001,
        WindowKind::Week,
        ts(2026, 11, 27, 10),
        "week:2026-W48",
        Some(ts(2026, 11, 23, 0)),
        Some(ts(2026, 11, 30, 0))
    );
    // 2026-01-01 is a Thursday: week 1 of 2026 starts on Monday 2025-12-29.
    t!(
        week002,
        WindowKind::Week,
        ts(2025, 12, 29, 0),
        "week:2026-W01",
        Some(ts(2025, 12, 29, 0)),
        Some(ts(2026, 1, 5, 0))
    );
    // 2027-01-01 is a Friday: it still belongs to 2026-W53.
    t!(
        week003,
        WindowKind::Week,
        ts(2027, 1, 3, 23),
        "week:2026-W53",
        Some(ts(2026, 12, 28, 0)),
        Some(ts(2027, 1, 4, 0))
    );
    t!(
        month001,
        WindowKind::Month,
        ts(2026, 11, 30, 23) + 3_599,
        "month:2026-11",
        Some(ts(2026, 11, 1, 0)),
        Some(ts(2026, 12, 1, 0))
    );
    t!(
        month002,
        WindowKind::Month,
        ts(2026, 12, 1, 0),
        "month:2026-12",
        Some(ts(2026, 12, 1, 0)),
        Some(ts(2027, 1, 1, 0))
    );
    t!(
        month003,
        WindowKind::Month,
        ts(2100, 2, 28, 5),
        "month:2100-02",
        Some(ts(2100, 2, 1, 0)),
        Some(ts(2100, 3, 1, 0))
    );

    #[test]
    fn parse_names() {
        for (name, kind) in [
            ("total", WindowKind::Total),
            ("hour", WindowKind::Hour),
            ("day", WindowKind::Day),
            ("week", WindowKind::Week),
            ("month", WindowKind::Month),
        ] {
            assert_eq!(WindowKind::parse(name).unwrap(), kind);
        }
        assert!(WindowKind::parse("Day").is_err());
        assert!(WindowKind::parse("").is_err());
    }

    #[test]
    fn out_of_range_is_an_error() {
        assert!(WindowKind::Day.window_at(MAX_TIME).is_err());
        assert!(WindowKind::Day.window_at(MIN_TIME - 1).is_err());
        assert_eq!(WindowKind::Month.window_at(MAX_TIME - 1).unwrap().end, Some(MAX_TIME));
        assert_eq!(
            WindowKind::Week.window_at(MAX_TIME - 1).unwrap_err(),
            SpendError::time_out_of_range()
        );
        assert!(WindowKind::Day.window_at(MIN_TIME).is_ok());
    }

    #[test]
    fn known_epoch_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(-719_162), (1, 1, 1));
    }

    proptest! {
        #[test]
        fn civil_round_trips(days in -719_162i64..2_932_896) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn an_instant_lies_in_its_window_and_the_next_starts_at_the_end(t in MIN_TIME..MAX_TIME - 40 * SECS_PER_DAY) {
            for kind in [WindowKind::Hour, WindowKind::Day, WindowKind::Week, WindowKind::Month] {
                let w = kind.window_at(t).unwrap();
                let (start, end) = (w.start.unwrap(), w.end.unwrap());
                prop_assert!(start <= t && t < end);
                let next = kind.window_at(end).unwrap();
                prop_assert_eq!(next.start, Some(end));
                prop_assert_ne!(next.id, w.id.clone());
                prop_assert_eq!(kind.window_at(end - 1).unwrap(), w);
            }
        }
    }
}
