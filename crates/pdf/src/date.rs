//! PDF dates (ISO 32000-1 §7.9.4): `D:YYYYMMDDHHmmSSOHH'mm'`, what a signature dictionary's
//! `/M` holds.

/// Unix seconds as a PDF date in UTC: `D:YYYYMMDDHHmmSS+00'00'`.
pub fn format(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("D:{:04}{:02}{:02}{:02}{:02}{:02}+00'00'", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
}

/// Unix seconds as people read them, to the minute: `YYYY-MM-DD HH:MM UTC` (what a visible
/// signature shows).
pub fn display_utc(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
}

/// A PDF date to Unix seconds: `D:` is optional, the fourteen digits up to the seconds are
/// required, and the offset from UT (`+HH'mm'`, `-HH'mm'`) is honoured when present (§7.9.4:
/// absent, the time is "unknown" relative to UT; it is read as UT).
pub fn parse(s: &str) -> Option<i64> {
    let s = s.strip_prefix("D:").unwrap_or(s);
    s.get(0..14)?;
    let digits = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok());
    let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hour, minute) = (digits(8..10)?, digits(10..12)?);
    // As the GeneralizedTime reader this replaces: unreadable seconds count as zero.
    let second = digits(12..14).unwrap_or(0);
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let t = time::Time::from_hms(u8::try_from(hour).ok()?, u8::try_from(minute).ok()?, u8::try_from(second).ok()?).ok()?;
    let base = time::PrimitiveDateTime::new(date, t).assume_utc().unix_timestamp();
    let offset = match s.as_bytes().get(14) {
        Some(b'+') => digits(15..17).unwrap_or(0) * 3600 + digits(18..20).unwrap_or(0) * 60,
        Some(b'-') => -(digits(15..17).unwrap_or(0) * 3600 + digits(18..20).unwrap_or(0) * 60),
        _ => 0,
    };
    Some(base - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_and_parse() {
        assert_eq!(format(0), "D:19700101000000+00'00'");
        assert_eq!(format(1_700_000_000), "D:20231114221320+00'00'");
        assert_eq!(display_utc(1_700_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(parse("D:20231114221320+00'00'"), Some(1_700_000_000));
        assert_eq!(parse("20231114221320Z"), Some(1_700_000_000));
        assert_eq!(parse("D:20231114231320+01'00'"), Some(1_700_000_000));
        assert_eq!(parse("D:20231114211320-01'00'"), Some(1_700_000_000));
        assert_eq!(parse("D:2023111422"), None);
        assert_eq!(parse("D:20231314221320Z"), None);
    }
}
