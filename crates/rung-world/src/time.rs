//! Dates and times of the world as ISO-8601 text (`2024-05-20T10:00:00`), with the little calendar
//! arithmetic the world needs (days between dates, shifting by days) and no time zones.

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Day number of the date part of `2024-05-20` or `2024-05-20T10:00:00`; `None` if malformed.
pub fn day_number(text: &str) -> Option<i64> {
    let date = text.get(..10)?;
    let mut parts = date.split('-');
    let year = parts.next()?.parse().ok()?;
    let month = parts
        .next()?
        .parse()
        .ok()
        .filter(|m| (1..=12).contains(m))?;
    let day = parts
        .next()?
        .parse()
        .ok()
        .filter(|d| (1..=31).contains(d))?;
    Some(days_from_civil(year, month, day))
}

/// `YYYY-MM-DD` of a day number.
pub fn date_text(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The date `delta` days after the date part of `base` (negative for before).
pub fn shift_date(base: &str, delta: i64) -> String {
    date_text(day_number(base).expect("world dates are well-formed") + delta)
}

/// A timestamp `delta` days after `base` at the given hour and minute.
pub fn timestamp(base: &str, delta: i64, hour: u32, minute: u32) -> String {
    format!("{}T{hour:02}:{minute:02}:00", shift_date(base, delta))
}

/// Whether `text` is a valid `YYYY-MM-DD` date.
pub fn is_date(text: &str) -> bool {
    text.len() == 10 && day_number(text).is_some_and(|d| date_text(d) == text)
}

/// English name of a month (1–12).
pub fn month_name(month: u32) -> &'static str {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    NAMES[(month as usize).clamp(1, 12) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_and_known_values() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(
            days_from_civil(2024, 3, 1) - days_from_civil(2024, 2, 28),
            2,
            "2024 is a leap year"
        );
        for d in -1000..40_000 {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(shift_date("2024-05-20T10:00:00", -20), "2024-04-30");
        assert_eq!(timestamp("2024-12-31", 1, 9, 5), "2025-01-01T09:05:00");
    }

    #[test]
    fn date_validation() {
        assert!(is_date("2024-02-29"));
        assert!(!is_date("2023-02-29"));
        assert!(!is_date("2024-13-01"));
        assert!(!is_date("May 3"));
    }
}
