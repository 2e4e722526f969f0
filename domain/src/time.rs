//! RFC 3339 timestamps <-> unix seconds, without a date library.

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0i64, |n, c| n * 10 + (c - b'0') as i64))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` into unix seconds (fractions truncated).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    parse(s, true)
}

/// Like [`parse_rfc3339`], but a time without an offset (`2026-11-28T12:00:00`, ISO 8601's
/// local form) is read as UTC: what the orchestrator may send in account requests.
pub fn parse_iso8601_utc(s: &str) -> Option<i64> {
    parse(s, false)
}

fn parse(s: &str, offset_required: bool) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < if offset_required { 20 } else { 19 } || b.len() > 40 {
        return None;
    }
    let sep = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(sep(4, b'-')
        && sep(7, b'-')
        && (sep(10, b'T') || sep(10, b't'))
        && sep(13, b':')
        && sep(16, b':'))
    {
        return None;
    }
    let (y, mo, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (h, mi, sec) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60
    {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match &b[i..] {
        [] if !offset_required => 0,
        [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), oh1, oh2, b':', om1, om2] => {
            let oh = digits(&[*oh1, *oh2])?;
            let om = digits(&[*om1, *om2])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    // A leap second (":60") is read as the next second's start.
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// Formats unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_rfc3339(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Seconds to wait before retry `attempts` of a step an outage stopped: 2 s doubling, at most
/// 5 minutes.
pub fn backoff(attempts: u32) -> i64 {
    (1i64 << attempts.min(8)).min(300)
}

/// The first second of the calendar month (UTC) containing `t`, and of the next one.
pub fn month_bounds(t: i64) -> (i64, i64) {
    let (y, m, _) = civil_from_days(t.div_euclid(86_400));
    let start = days_from_civil(y, m, 1) * 86_400;
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (start, days_from_civil(ny, nm, 1) * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_instants() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-11-28T12:00:00Z"), Some(1_795_867_200));
        assert_eq!(
            parse_rfc3339("2026-11-28T12:00:00.123456Z"),
            Some(1_795_867_200)
        );
        assert_eq!(
            parse_rfc3339("2026-11-28T13:30:00+01:30"),
            Some(1_795_867_200)
        );
        assert_eq!(
            parse_rfc3339("2026-11-28T10:00:00-02:00"),
            Some(1_795_867_200)
        );
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800));
    }

    #[test]
    fn refuses_malformed_or_impossible_dates() {
        for s in [
            "",
            "2026-11-28",
            "2026-11-28 12:00:00Z",
            "2026-11-28T12:00:00",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2026-11-28T24:00:00Z",
            "2026-11-28T12:00:00.Z",
            "2026-11-28T12:00:00+0100",
            "2026-11-28T12:00:00+25:00",
            "+2026-11-28T12:00:00Z",
            "2026-11-28T12:00:00ZZ",
            "２０２６-11-28T12:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s}");
        }
    }

    #[test]
    fn iso8601_without_an_offset_is_utc() {
        assert_eq!(
            parse_iso8601_utc("2026-11-28T12:00:00"),
            Some(1_795_867_200)
        );
        assert_eq!(
            parse_iso8601_utc("2026-11-28T12:00:00.5"),
            Some(1_795_867_200)
        );
        // With an offset it is RFC 3339 exactly.
        assert_eq!(
            parse_iso8601_utc("2026-11-28T13:30:00+01:30"),
            Some(1_795_867_200)
        );
        for s in [
            "2026-11-28",
            "2026-11-28T12:00",
            "2026-11-28T12:00:00.",
            "2026-11-28 12:00:00",
            "2026-11-28T12:00:00+0100",
        ] {
            assert_eq!(parse_iso8601_utc(s), None, "{s}");
        }
        assert_eq!(parse_rfc3339("2026-11-28T12:00:00"), None);
    }

    #[test]
    fn formats_and_round_trips() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_795_867_200), "2026-11-28T12:00:00Z");
        for t in [0, 951_782_400, 1_709_164_800, 1_795_867_199, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&format_rfc3339(t)), Some(t));
        }
    }

    #[test]
    fn month_bounds_cover_the_month() {
        let t = parse_rfc3339("2026-12-15T08:00:00Z").unwrap();
        let (a, b) = month_bounds(t);
        assert_eq!(format_rfc3339(a), "2026-12-01T00:00:00Z");
        assert_eq!(format_rfc3339(b), "2027-01-01T00:00:00Z");
        let (a, _) = month_bounds(b);
        assert_eq!(a, b);
    }
}
