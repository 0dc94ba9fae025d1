//! `metav1.MicroTime` as the apiserver decodes it: Go's `time.Parse` with the layout
//! `2006-01-02T15:04:05.000000Z07:00` (exactly six fractional digits, then `Z` or `±hh:mm`),
//! encoded back in UTC. A value that does not parse makes the whole request a 400, whose
//! message carries Go's `time.ParseError` text, so that text is reproduced here.

/// The layout `metav1.RFC3339Micro`.
pub const LAYOUT: &str = "2006-01-02T15:04:05.000000Z07:00";

/// Go's `time` quoting: `"`, with `"` and `\` escaped and bytes outside printable ASCII as
/// `\xNN`.
fn quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

/// Go's `time.atoi`: an optional sign, then digits only (none at all is 0).
fn atoi(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut x: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        x = x.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some(if neg { -x } else { x })
}

/// Go's `time.getnum`: one or two digits (exactly two when `fixed`).
fn getnum(s: &[u8], fixed: bool) -> Option<(i64, &[u8])> {
    let digit = |i: usize| s.get(i).is_some_and(u8::is_ascii_digit);
    if !digit(0) {
        return None;
    }
    if !digit(1) {
        if fixed {
            return None;
        }
        return Some((i64::from(s[0] - b'0'), &s[1..]));
    }
    Some((
        i64::from(s[0] - b'0') * 10 + i64::from(s[1] - b'0'),
        &s[2..],
    ))
}

fn days_in(month: i64, year: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Walks the layout's elements over the value, failing as Go does.
struct Parser<'a> {
    whole: &'a [u8],
    rest: &'a [u8],
}

impl<'a> Parser<'a> {
    /// `cannot parse "<value>" as "<element>"`.
    fn cannot(&self, value: &[u8], element: &str) -> String {
        format!(
            "parsing time {} as {}: cannot parse {} as {}",
            quote(self.whole),
            quote(LAYOUT.as_bytes()),
            quote(value),
            quote(element.as_bytes())
        )
    }

    fn out_of_range(&self, what: &str) -> String {
        format!("parsing time {}: {what} out of range", quote(self.whole))
    }

    fn literal(&mut self, c: u8) -> Result<(), String> {
        match self.rest.split_first() {
            Some((&first, rest)) if first == c => {
                self.rest = rest;
                Ok(())
            }
            _ => Err(self.cannot(self.rest, &(c as char).to_string())),
        }
    }

    /// A one- or two-digit number that must lie below `limit` (`what` names it in the error).
    fn number(
        &mut self,
        element: &str,
        fixed: bool,
        limit: Option<(i64, &str)>,
    ) -> Result<i64, String> {
        let hold = self.rest;
        let (n, rest) = getnum(hold, fixed).ok_or_else(|| self.cannot(hold, element))?;
        self.rest = rest;
        match limit {
            Some((limit, what)) if n >= limit => Err(self.out_of_range(what)),
            _ => Ok(n),
        }
    }

    fn year(&mut self) -> Result<i64, String> {
        let hold = self.rest;
        let year = hold
            .get(..4)
            .and_then(atoi)
            .ok_or_else(|| self.cannot(hold, "2006"))?;
        self.rest = &hold[4..];
        Ok(year)
    }

    fn micros(&mut self) -> Result<i64, String> {
        let hold = self.rest;
        let element = ".000000";
        let frac = hold
            .get(..element.len())
            .filter(|f| matches!(f[0], b'.' | b','))
            .ok_or_else(|| self.cannot(hold, element))?;
        let micros = atoi(&frac[1..]).ok_or_else(|| self.cannot(hold, element))?;
        if micros < 0 {
            return Err(self.out_of_range("fractional second"));
        }
        self.rest = &hold[element.len()..];
        Ok(micros)
    }

    /// The zone offset in seconds east of UTC.
    fn zone(&mut self) -> Result<i64, String> {
        let hold = self.rest;
        let element = "Z07:00";
        if let Some(rest) = hold.strip_prefix(b"Z") {
            self.rest = rest;
            return Ok(0);
        }
        if hold.len() < 6 || hold[3] != b':' {
            return Err(self.cannot(hold, element));
        }
        // As in Go: minutes are read only when the hours were, and a range error wins.
        let hours = getnum(&hold[1..3], true).map(|(h, _)| h);
        let minutes = hours.and_then(|_| getnum(&hold[4..6], true).map(|(m, _)| m));
        if hours.is_some_and(|h| h > 24) {
            return Err(self.out_of_range("time zone offset hour"));
        }
        if minutes.is_some_and(|m| m > 60) {
            return Err(self.out_of_range("time zone offset minute"));
        }
        let (Some(h), Some(m)) = (hours, minutes) else {
            return Err(self.cannot(hold, element));
        };
        let offset = (h * 60 + m) * 60;
        let offset = match hold[0] {
            b'+' => offset,
            b'-' => -offset,
            _ => return Err(self.cannot(hold, element)),
        };
        self.rest = &hold[6..];
        Ok(offset)
    }
}

/// Parses `value` as the apiserver does. Ok holds the stored form (UTC, six digits), or None
/// for Go's zero time, which is encoded as `null` and so drops out of the object. Err holds
/// Go's error text.
pub fn parse(value: &str) -> Result<Option<String>, String> {
    let mut p = Parser {
        whole: value.as_bytes(),
        rest: value.as_bytes(),
    };
    let year = p.year()?;
    p.literal(b'-')?;
    let month = p.number("01", true, None)?;
    if !(1..=12).contains(&month) {
        return Err(p.out_of_range("month"));
    }
    p.literal(b'-')?;
    let day = p.number("02", true, None)?;
    p.literal(b'T')?;
    let hour = p.number("15", false, Some((24, "hour")))?;
    p.literal(b':')?;
    let minute = p.number("04", true, Some((60, "minute")))?;
    p.literal(b':')?;
    let second = p.number("05", true, Some((60, "second")))?;
    let micros = p.micros()?;
    let offset = p.zone()?;
    if !p.rest.is_empty() {
        return Err(format!(
            "parsing time {}: extra text: {}",
            quote(p.whole),
            quote(p.rest)
        ));
    }
    if day < 1 || day > days_in(month, year) {
        return Err(p.out_of_range("day"));
    }
    let local = i32::try_from(year)
        .ok()
        .and_then(|y| chrono::NaiveDate::from_ymd_opt(y, month as u32, day as u32))
        .and_then(|d| d.and_hms_micro_opt(hour as u32, minute as u32, second as u32, micros as u32))
        .ok_or_else(|| p.out_of_range("day"))?;
    let utc = local - chrono::Duration::seconds(offset);
    let zero = chrono::NaiveDate::from_ymd_opt(1, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
    if Some(utc) == zero {
        return Ok(None);
    }
    let y = chrono::Datelike::year(&utc);
    let year = if y < 0 {
        format!("-{:04}", -y)
    } else {
        format!("{y:04}")
    };
    Ok(Some(format!(
        "{year}-{}",
        utc.format("%m-%dT%H:%M:%S%.6fZ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(v: &str) -> String {
        parse(v).unwrap().unwrap()
    }

    fn err(v: &str) -> String {
        parse(v).unwrap_err()
    }

    const L: &str = "\"2006-01-02T15:04:05.000000Z07:00\"";

    #[test]
    fn canonical_form_is_utc_with_six_digits() {
        assert_eq!(
            ok("2026-12-05T02:21:08.123456Z"),
            "2026-12-05T02:21:08.123456Z"
        );
        assert_eq!(
            ok("2026-12-05T03:21:08.000001+01:00"),
            "2026-12-05T02:21:08.000001Z"
        );
        assert_eq!(
            ok("2026-12-31T23:30:00,500000-01:00"),
            "2027-01-01T00:30:00.500000Z"
        );
        assert_eq!(
            ok("2024-02-29T1:02:03.000000Z"),
            "2024-02-29T01:02:03.000000Z"
        );
        assert_eq!(parse("0001-01-01T00:00:00.000000Z"), Ok(None));
    }

    #[test]
    fn go_parse_errors() {
        // Python's isoformat() drops the fraction when it is zero; Go refuses that.
        assert_eq!(
            err("2026-12-05T02:21:08+00:00"),
            format!("parsing time \"2026-12-05T02:21:08+00:00\" as {L}: cannot parse \"+00:00\" as \".000000\"")
        );
        // Nanoseconds: six digits are read, the rest is not a zone.
        assert_eq!(
            err("2020-02-28T20:11:41.636526400Z"),
            format!("parsing time \"2020-02-28T20:11:41.636526400Z\" as {L}: cannot parse \"400Z\" as \"Z07:00\"")
        );
        assert_eq!(
            err("2026-12-05T02:21:08.123456"),
            format!("parsing time \"2026-12-05T02:21:08.123456\" as {L}: cannot parse \"\" as \"Z07:00\"")
        );
        assert_eq!(
            err("yesterday"),
            format!("parsing time \"yesterday\" as {L}: cannot parse \"yesterday\" as \"2006\"")
        );
        assert_eq!(
            err("2026-12-05 02:21:08.123456Z"),
            format!("parsing time \"2026-12-05 02:21:08.123456Z\" as {L}: cannot parse \" 02:21:08.123456Z\" as \"T\"")
        );
        assert_eq!(
            err("2026-13-05T02:21:08.123456Z"),
            "parsing time \"2026-13-05T02:21:08.123456Z\": month out of range"
        );
        assert_eq!(
            err("2026-02-30T02:21:08.123456Z"),
            "parsing time \"2026-02-30T02:21:08.123456Z\": day out of range"
        );
        assert_eq!(
            err("2026-02-03T24:21:08.123456Z"),
            "parsing time \"2026-02-03T24:21:08.123456Z\": hour out of range"
        );
        assert_eq!(
            err("2026-02-03T01:21:08.123456Zjunk"),
            "parsing time \"2026-02-03T01:21:08.123456Zjunk\": extra text: \"junk\""
        );
        assert_eq!(
            err("2026-02-03T01:21:08.123456+25:00"),
            "parsing time \"2026-02-03T01:21:08.123456+25:00\": time zone offset hour out of range"
        );
        assert!(err("2026-02-03T01:21:08.12345\u{e9}Z")
            .contains("cannot parse \".12345\\xc3\\xa9Z\" as \".000000\""));
    }
}
