//! Rotation schedules: AWS `RotationRules` (AutomaticallyAfterDays, ScheduleExpression, Duration)
//! validated into a [`Schedule`], which yields rotation [`Window`]s. Pure: times are arguments.
//!
//! Cron expressions are AWS's six fields in UTC, evaluated by `croner` in its Quartz weekday mode
//! (1 = Sunday). kura accepts only a single number in the minutes field (at most one rotation an
//! hour), and years 1970-2199 as AWS does.

use chrono::{DateTime, Datelike, Months, NaiveDateTime};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::{Error, Result, Timestamp};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = Timestamp::MS_PER_DAY;
/// 2200-01-01T00:00:00Z in seconds: no cron occurrence is at or after it.
const END_OF_2199_S: i64 = 7_258_118_400;
const FIELD_NAMES: &str = "minutes hours day-of-month month day-of-week year";
const FORMS: &str =
    "rate(N hours|days|months) or cron(minutes hours day-of-month month day-of-week year)";

/// RotationRules as AWS sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationRules {
    pub automatically_after_days: Option<i64>,
    pub schedule_expression: Option<String>,
    pub duration: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    Hours(u32),
    Days(u32),
    Months(u32),
}

/// A validated rotation schedule. `window` is the Duration in hours, when one was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `rate(...)`; `expr` is the expression as sent (trimmed), `None` for AutomaticallyAfterDays.
    Rate {
        every: Every,
        window: Option<u32>,
        expr: Option<String>,
    },
    /// `cron(...)`; `expr` is the expression as sent (trimmed).
    Cron {
        expr: String,
        cron: CronSpec,
        window: Option<u32>,
    },
}

/// A parsed cron pattern (opaque; made by [`Schedule::from_rules`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSpec(Box<Cron>);

/// A rotation window, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Window {
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }
}

impl Schedule {
    /// Validates and parses. `Ok(None)` when the rules hold no schedule at all.
    pub fn from_rules(r: &RotationRules) -> Result<Option<Schedule>> {
        let window = r.duration.as_deref().map(parse_duration).transpose()?;
        let schedule = match (r.automatically_after_days, r.schedule_expression.as_deref()) {
            (Some(_), Some(_)) => Err(
                "RotationRules: send AutomaticallyAfterDays or ScheduleExpression, not both."
                    .into(),
            ),
            (Some(n @ 1..=1000), None) => {
                let every = Every::Days(n as u32);
                Ok(Schedule::Rate {
                    every,
                    window,
                    expr: None,
                })
            }
            (Some(_), None) => Err("AutomaticallyAfterDays must be between 1 and 1000.".into()),
            (None, Some(e)) => parse_expression(e, window),
            (None, None) if window.is_none() => return Ok(None),
            (None, None) => Err(
                "RotationRules: Duration needs AutomaticallyAfterDays or ScheduleExpression."
                    .into(),
            ),
        };
        match schedule.map_err(Error::invalid_parameter)? {
            Schedule::Rate {
                every: Every::Hours(h),
                window: Some(w),
                expr,
            } if w > h => {
                let expr = expr.unwrap_or_default();
                let msg = format!("Duration \"{w}h\" is longer than the rotation interval {expr}.");
                Err(Error::invalid_parameter(msg))
            }
            schedule => Ok(Some(schedule)),
        }
    }

    /// The rules to echo back, as they were sent (Duration normalised to "Nh").
    pub fn to_rules(&self) -> RotationRules {
        let (days, expr) = match self {
            Schedule::Rate {
                every: Every::Days(n),
                expr: None,
                ..
            } => (Some(*n as i64), None),
            Schedule::Rate { expr, .. } => (None, expr.clone()),
            Schedule::Cron { expr, .. } => (None, Some(expr.clone())),
        };
        let duration = self.window_hours().map(|h| format!("{h}h"));
        RotationRules {
            automatically_after_days: days,
            schedule_expression: expr,
            duration,
        }
    }

    /// The Duration in hours, if one was given.
    pub fn window_hours(&self) -> Option<u32> {
        match self {
            Schedule::Rate { window, .. } | Schedule::Cron { window, .. } => *window,
        }
    }

    /// The first rotation window that starts strictly after `anchor` (the last rotation, or when
    /// the schedule was set). `None` when a cron schedule never fires again (its years are over)
    /// or the time is out of range; callers should reject a schedule that is `None` at "now".
    pub fn next_window(&self, anchor: Timestamp) -> Option<Window> {
        match self {
            Schedule::Rate { every, .. } => {
                let (a, e) = (anchor.0, *every);
                Some(self.window(rate_start(e, a, 1)?, rate_start(e, a, 2)))
            }
            Schedule::Cron { cron, .. } => self.cron_window(cron_next(&cron.0, anchor.0)?),
        }
    }

    /// The next `n` windows after `anchor`, each counted from the one before: the dates a
    /// schedule set at `anchor` (or rotated then) would rotate, for a preview.
    pub fn upcoming(&self, anchor: Timestamp, n: usize) -> Vec<Window> {
        let mut out: Vec<Window> = Vec::with_capacity(n);
        let mut at = anchor;
        while out.len() < n {
            let Some(w) = self.next_window(at) else { break };
            at = w.start;
            out.push(w);
        }
        out
    }

    /// The window to act on at `now`, counting from `anchor`: the first window after `anchor`
    /// that ends after `now` (the open one, else the next). Windows missed entirely are skipped.
    pub fn due_window(&self, anchor: Timestamp, now: Timestamp) -> Option<Window> {
        let (a, t) = (anchor.0, now.0);
        match self {
            Schedule::Rate { every, .. } => {
                // Every window before the k-th ends by `now`.
                let k = match *every {
                    Every::Hours(n) => t.saturating_sub(a) / (n as i64 * HOUR_MS),
                    Every::Days(n) => {
                        let since_midnight =
                            t.saturating_sub(a).saturating_add(a.rem_euclid(DAY_MS));
                        since_midnight / (n as i64 * DAY_MS)
                    }
                    Every::Months(n) => (month_index(t)? - month_index(a)?) / n as i64 - 1,
                };
                (k.max(1)..k.max(1).saturating_add(8))
                    .map_while(|k| {
                        Some(self.window(rate_start(*every, a, k)?, rate_start(*every, a, k + 1)))
                    })
                    .find(|w| w.end.0 > t)
            }
            Schedule::Cron { cron, .. } => {
                let open = cron_last_at_or_before(&cron.0, t)
                    .filter(|&p| p > a)
                    .and_then(|p| self.cron_window(p))
                    .filter(|w| w.end.0 > t);
                open.or_else(|| self.cron_window(cron_next(&cron.0, a.max(t))?))
            }
        }
    }

    fn cron_window(&self, start: i64) -> Option<Window> {
        let Schedule::Cron { cron, .. } = self else {
            return None;
        };
        Some(self.window(start, cron_next(&cron.0, start)))
    }

    /// The window opening at `start`: Duration long, or by default 1 hour for hour rates and the
    /// rest of the UTC day otherwise; never past midnight UTC nor the next window's start.
    fn window(&self, start: i64, next_start: Option<i64>) -> Window {
        let len = match (self.window_hours(), self) {
            (Some(h), _) => h as i64 * HOUR_MS,
            (
                None,
                Schedule::Rate {
                    every: Every::Hours(_),
                    ..
                },
            ) => HOUR_MS,
            (None, _) => DAY_MS,
        };
        let midnight = start
            .saturating_sub(start.rem_euclid(DAY_MS))
            .saturating_add(DAY_MS);
        let end = start.saturating_add(len).min(midnight);
        let end = next_start
            .filter(|&n| n > start)
            .map_or(end, |n| end.min(n));
        Window {
            start: Timestamp(start),
            end: Timestamp(end),
        }
    }
}

/// The k-th (k >= 1) start after `anchor`, counted from the anchor so month ends don't drift.
fn rate_start(every: Every, anchor: i64, k: i64) -> Option<i64> {
    match every {
        Every::Hours(n) => anchor.checked_add(k.checked_mul(n as i64 * HOUR_MS)?),
        Every::Days(n) => {
            let day = anchor
                .div_euclid(DAY_MS)
                .checked_add(k.checked_mul(n as i64)?)?;
            day.checked_mul(DAY_MS)
        }
        Every::Months(n) => {
            let date = DateTime::from_timestamp_millis(anchor)?.date_naive();
            let months = Months::new(u32::try_from(k.checked_mul(n as i64)?).ok()?);
            let due = date.checked_add_months(months)?; // clamps to the month's last day
            Some(due.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
        }
    }
}

fn month_index(t: i64) -> Option<i64> {
    let d = DateTime::from_timestamp_millis(t)?;
    Some(d.year() as i64 * 12 + d.month0() as i64)
}

fn naive(secs: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp(secs, 0).map(|d| d.naive_utc())
}

/// The first occurrence strictly after `after` (ms). Occurrences fall on whole seconds in
/// 1970..=2199, so the search starts from the whole second, no earlier than 1969-12-31T23:59:59.
fn cron_next(cron: &Cron, after: i64) -> Option<i64> {
    let secs = after.div_euclid(1000).max(-1);
    let found =
        (secs < END_OF_2199_S).then(|| cron.find_next_occurrence(&naive(secs)?, false).ok());
    Some(found??.and_utc().timestamp_millis())
}

/// The last occurrence at or before `at` (ms).
fn cron_last_at_or_before(cron: &Cron, at: i64) -> Option<i64> {
    let secs = at.div_euclid(1000).min(END_OF_2199_S);
    let found = (secs >= 0).then(|| cron.find_previous_occurrence(&naive(secs)?, true).ok());
    Some(found??.and_utc().timestamp_millis())
}

fn parse_duration(s: &str) -> Result<u32> {
    let num = s
        .strip_suffix('h')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    let msg = match num.map(str::parse::<u32>) {
        Some(Ok(h @ 1..=24)) => return Ok(h),
        Some(_) => format!("Duration \"{}\" must be between 1h and 24h.", clip(s)),
        None => format!(
            "Duration \"{}\" must be a number of hours like \"3h\", 1h-24h.",
            clip(s)
        ),
    };
    Err(Error::invalid_parameter(msg))
}

/// Bounds what an error message repeats of the caller's input.
fn clip(s: &str) -> String {
    match s.char_indices().nth(100) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

fn parse_expression(raw: &str, window: Option<u32>) -> Result<Schedule, String> {
    let expr = raw.trim();
    let bad = || {
        format!(
            "ScheduleExpression must be {FORMS}; got \"{}\".",
            clip(expr)
        )
    };
    let (kind, body) = expr.split_once('(').ok_or_else(bad)?;
    let words: Vec<&str> = body
        .strip_suffix(')')
        .ok_or_else(bad)?
        .split_whitespace()
        .collect();
    let kind = kind.trim().to_ascii_lowercase();
    let shown = clip(&format!("{kind}({})", words.join(" ")));
    let fail = |what: String| format!("ScheduleExpression {shown}: {what}");
    let expr = expr.to_string();
    match kind.as_str() {
        "rate" => {
            let every = parse_rate(&words).map_err(fail)?;
            Ok(Schedule::Rate {
                every,
                window,
                expr: Some(expr),
            })
        }
        "cron" => Ok(Schedule::Cron {
            expr,
            cron: parse_cron(&words).map_err(fail)?,
            window,
        }),
        _ => Err(bad()),
    }
}

fn parse_rate(words: &[&str]) -> Result<Every, String> {
    let [value, unit] = words else {
        return Err("must be rate(N hours|days|months), e.g. rate(12 hours).".into());
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "the value \"{}\" must be a whole number.",
            clip(value)
        ));
    }
    let n = value.parse::<u32>().unwrap_or(u32::MAX);
    let unit_lc = unit.to_ascii_lowercase();
    let (every, plural, max): (fn(u32) -> Every, _, _) = match unit_lc.as_str() {
        "hour" | "hours" => (Every::Hours, "hours", 24_000),
        "day" | "days" => (Every::Days, "days", 1000),
        "month" | "months" => (Every::Months, "months", 33),
        _ => {
            return Err(format!(
                "the unit \"{}\" must be hours, days or months.",
                clip(unit)
            ));
        }
    };
    if unit_lc != plural && n != 1 {
        Err(format!(
            "the unit must be \"{plural}\" unless the value is 1."
        ))
    } else if !(1..=max).contains(&n) {
        Err(format!("{plural} must be between 1 and {max}."))
    } else {
        Ok(every(n))
    }
}

/// A field after minutes: name, min, max, names for min.., what is allowed.
struct Field(
    &'static str,
    u32,
    u32,
    &'static [&'static str],
    &'static str,
);
const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const DOM: &str = "1-31, L, LW, NW (the weekday nearest day N) or ?";
const DOW: &str = "1-7 or SUN-SAT (1 = Sunday), L, NL (last), N#K (K-th) or ?";
const FIELDS: [Field; 5] = [
    Field("hours", 0, 23, &[], "0-23"),
    Field("day-of-month", 1, 31, &[], DOM),
    Field("month", 1, 12, MONTHS, "1-12 or JAN-DEC"),
    Field("day-of-week", 1, 7, DAYS, DOW),
    Field("year", 1970, 2199, &[], "1970-2199"),
];

fn parse_cron(words: &[&str]) -> Result<CronSpec, String> {
    let ([minutes, rest @ ..], 6) = (words, words.len()) else {
        let n = words.len();
        return Err(format!("expected 6 fields ({FIELD_NAMES}), found {n}."));
    };
    let Some(minute @ 0..=59) = digits(minutes) else {
        let m = clip(minutes);
        return Err(format!(
            "the minutes field \"{m}\" must be a single number 0-59: kura rotates at most once an hour."
        ));
    };
    let mut norm = Vec::with_capacity(5);
    for (field, text) in FIELDS.iter().zip(rest) {
        let Some(n) = normalize_field(field, &text.to_ascii_uppercase()) else {
            let Field(name, .., allowed) = field;
            return Err(format!(
                "the {name} field \"{}\" must be {allowed}.",
                clip(text)
            ));
        };
        norm.push(n);
    }
    if (norm[1] == "?") == (norm[3] == "?") {
        return Err("exactly one of day-of-month and day-of-week must be \"?\".".into());
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Required);
    let cron = (parser.alternative_weekdays(true).build())
        .parse(&format!("0 {minute} {}", norm.join(" ")))
        .map_err(|e| format!("not a valid cron expression ({e})."))?;
    match cron_next(&cron, -1) {
        Some(_) => Ok(CronSpec(Box::new(cron))),
        None => Err("it never fires (no matching date in 1970-2199).".into()),
    }
}

/// 1 to 4 ASCII digits.
fn digits(s: &str) -> Option<u32> {
    let ok = (1..=4).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| s.parse().ok()).flatten()
}

/// Checks one (upper-cased) field and rewrites it for croner: names to numbers, `L` in
/// day-of-week to 7 (Saturday), `N/S` to `N-max/S`, and `*` in the year to 1970-2199.
fn normalize_field(&Field(name, min, max, names, _): &Field, text: &str) -> Option<String> {
    let (dom, dow) = (name == "day-of-month", name == "day-of-week");
    if text == "?" && (dom || dow) {
        return Some(text.into());
    }
    let num = |s: &str| {
        let n = names
            .iter()
            .position(|n| *n == s)
            .map(|i| min + i as u32)
            .or_else(|| digits(s))?;
        (min..=max).contains(&n).then_some(n)
    };
    let mut out = Vec::new();
    for item in text.split(',') {
        let head = item.get(..item.len().saturating_sub(1)).unwrap_or("");
        out.push(match item {
            "L" | "LW" if dom => item.into(),
            _ if dom && item.ends_with('W') => format!("{}W", num(head)?),
            "L" if dow => "7".into(),
            _ if dow && item.ends_with('L') => format!("{}L", num(head)?),
            _ if dow && item.contains('#') => {
                let (d, k) = item.split_once('#')?;
                let k = digits(k).filter(|k| (1..=5).contains(k))?;
                format!("{}#{k}", num(d)?)
            }
            _ => {
                let (range, step) = match item.split_once('/') {
                    Some((r, s)) => (r, Some(digits(s).filter(|s| (1..=max).contains(s))?)),
                    None => (item, None),
                };
                let range = match (range, range.split_once('-')) {
                    ("*", _) if name == "year" => format!("{min}-{max}"),
                    ("*", _) => "*".into(),
                    (_, Some((a, b))) => {
                        let (a, b) = (num(a)?, num(b)?);
                        (a <= b).then(|| format!("{a}-{b}"))?
                    }
                    _ if step.is_some() => format!("{}-{max}", num(range)?),
                    _ => num(range)?.to_string(),
                };
                step.map_or(range.clone(), |s| format!("{range}/{s}"))
            }
        });
    }
    Some(out.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "2026-03-01T15:20" (UTC) as a Timestamp.
    fn t(s: &str) -> Timestamp {
        let dt = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").unwrap();
        Timestamp(dt.and_utc().timestamp_millis())
    }
    fn rules(expr: &str, duration: Option<&str>) -> RotationRules {
        let (expr, duration) = (Some(expr.into()), duration.map(Into::into));
        RotationRules {
            schedule_expression: expr,
            duration,
            ..Default::default()
        }
    }
    fn parse(expr: &str, duration: Option<&str>) -> Schedule {
        Schedule::from_rules(&rules(expr, duration))
            .unwrap()
            .unwrap()
    }
    fn err(r: &RotationRules) -> String {
        let e = Schedule::from_rules(r).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidParameter);
        e.message
    }
    #[test]
    fn upcoming_lists_the_next_windows_in_order() {
        let starts = |expr: &str, from: &str| {
            parse(expr, None)
                .upcoming(t(from), 5)
                .iter()
                .map(|w| w.start)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            starts("cron(0 4 ? * MON *)", "2026-03-01T15:20"),
            [
                "2026-03-02T04:00",
                "2026-03-09T04:00",
                "2026-03-16T04:00",
                "2026-03-23T04:00",
                "2026-03-30T04:00"
            ]
            .map(t)
        );
        assert_eq!(
            starts("rate(12 hours)", "2026-03-01T15:20"),
            [
                "2026-03-02T03:20",
                "2026-03-02T15:20",
                "2026-03-03T03:20",
                "2026-03-03T15:20",
                "2026-03-04T03:20"
            ]
            .map(t)
        );
        // Month ends clamp, counted each from the last.
        assert_eq!(
            starts("rate(1 months)", "2026-01-31T09:00"),
            [
                "2026-02-28T00:00",
                "2026-03-28T00:00",
                "2026-04-28T00:00",
                "2026-05-28T00:00",
                "2026-06-28T00:00"
            ]
            .map(t)
        );
        // A schedule whose years end yields what is left.
        assert_eq!(
            starts("cron(0 4 1 1 ? 2027-2028)", "2026-03-01T15:20").len(),
            2
        );
    }

    fn by_days(n: i64) -> RotationRules {
        RotationRules {
            automatically_after_days: Some(n),
            ..Default::default()
        }
    }

    /// "anchor first-start-strictly-after-it expression"; "-" for no start.
    const NEXT: &[&str] = &[
        "2026-03-01T15:20 2026-03-01T21:20 rate(6 hours)",
        "2026-03-01T15:20 2026-03-01T16:20 rate(1 hour)",
        "2026-03-01T15:20 2026-03-01T16:20 rate(1 hours)",
        "2026-03-01T15:20 2026-03-01T16:20 RATE(1 Hour)",
        "2026-03-01T15:20 2028-11-25T15:20 rate(24000 hours)",
        "2026-03-01T15:00 2026-03-02T00:00 rate(1 day)",
        "2026-03-01T00:00 2026-03-02T00:00 rate(1 days)",
        "2026-03-01T23:59 2026-03-31T00:00 rate(30 days)",
        "2027-01-31T12:00 2027-02-28T00:00 rate(1 month)",
        "2028-01-31T12:00 2028-02-29T00:00 rate(1 months)",
        "2026-03-31T00:00 2026-04-30T00:00 rate(1 month)",
        "2028-02-29T05:00 2029-02-28T00:00 rate(12 months)",
        "2026-01-15T05:00 2028-10-15T00:00 rate(33 months)",
        // Leap days and L (last day of month).
        "2026-03-01T00:00 2028-02-29T00:00 cron(0 0 29 2 ? *)",
        "2028-03-01T00:00 2032-02-29T00:00 cron(0 0 29 2 ? *)",
        "2027-02-01T00:00 2027-02-28T09:00 cron(0 9 L * ? *)",
        "2028-02-01T00:00 2028-02-29T09:00 cron(0 9 L * ? *)",
        "2026-04-05T00:00 2026-04-30T09:00 cron(0 9 L * ? *)",
        "2026-04-30T09:00 2026-05-31T09:00 cron(0 9 L * ? *)",
        "2026-04-30T08:59 2026-04-30T09:00 cron(0 9 L * ? *)",
        // W: 2026-08-15 is a Saturday, 2026-02-15 a Sunday, 2026-08-01 a Saturday (W does not
        // leave the month), 2026-05-31 a Sunday. LW: 2026-01-31 is a Saturday.
        "2026-08-01T00:00 2026-08-14T09:00 cron(0 9 15W * ? *)",
        "2026-02-01T00:00 2026-02-16T09:00 cron(0 9 15W * ? *)",
        "2026-07-02T00:00 2026-08-03T09:00 cron(0 9 1W * ? *)",
        "2026-05-01T00:00 2026-05-29T09:00 cron(0 9 31W * ? *)",
        "2026-01-02T00:00 2026-01-30T09:00 cron(0 9 LW * ? *)",
        "2026-03-01T00:00 2026-03-31T09:00 cron(0 9 lw * ? *)",
        // Day of week, 1 = Sunday; 2026-03-02 is a Monday, 2027-01-01 a Friday.
        "2026-03-02T00:00 2026-03-08T09:00 cron(0 9 ? * 1 *)",
        "2026-03-01T00:00 2026-03-02T09:00 cron(0 9 ? * 2#1 *)",
        "2026-03-03T00:00 2026-04-06T09:00 cron(0 9 ? * MON#1 *)",
        "2026-05-01T00:00 2026-05-15T09:00 cron(0 9 ? * 6#3 *)",
        "2026-07-01T00:00 2026-07-31T09:00 cron(0 9 ? * 6L *)",
        "2026-01-01T00:00 2026-01-30T09:00 cron(0 9 ? * 6L *)",
        "2026-03-04T00:00 2026-03-07T09:00 cron(0 9 ? * L *)",
        "2026-03-02T00:00 2026-03-03T09:00 cron(0 9 ? * 1/2 *)",
        "2026-12-31T13:00 2027-01-01T12:00 cron(0 12 ? JAN MON-FRI *)",
        "2027-01-01T12:00 2027-01-04T12:00 cron(0 12 ? JAN MON-FRI *)",
        "2026-03-02T00:00 2026-03-07T08:30 cron(30 8 ? * sat,sun *)",
        "2026-02-01T00:00 2026-04-01T00:00 cron(0 0/6 1 */3 ? *)",
        "2026-04-01T00:00 2026-04-01T06:00 cron(0 0/6 1 */3 ? *)",
        // Years.
        "2026-06-01T00:00 2027-01-01T10:00 cron(0 10 * * ? 2027)",
        "2028-01-01T00:00 - cron(0 10 * * ? 2027)",
        "2026-01-01T00:00 - cron(0 10 * * ? 2020)",
        "2030-06-01T00:00 2035-01-01T10:00 cron(0 10 1 1 ? 2030/5)",
        "2026-06-01T00:00 2028-01-01T10:00 cron(0 10 1 1 ? */2)",
        "2199-06-01T00:00 - cron(0 10 1 1 ? *)",
        "1900-06-01T00:00 1970-01-01T10:00 cron(0 10 1 1 ? *)",
    ];

    #[test]
    fn next_window_starts() {
        for row in NEXT {
            let [anchor, want, expr] = row.splitn(3, ' ').collect::<Vec<_>>()[..] else {
                panic!()
            };
            let got = parse(expr, None).next_window(t(anchor)).map(|w| w.start);
            assert_eq!(got, (want != "-").then(|| t(want)), "{row}");
        }
    }

    /// "anchor window-start window-end Duration expression"; "-" for no Duration.
    const WINDOWS: &[&str] = &[
        "2026-03-01T15:20 2026-03-01T21:20 2026-03-01T22:20 - rate(6 hours)",
        "2026-03-01T17:30 2026-03-01T23:30 2026-03-02T00:00 - rate(6 hours)",
        "2026-03-01T15:20 2026-03-01T21:20 2026-03-02T00:00 4h rate(6 hours)",
        "2026-03-01T15:20 2026-03-01T21:20 2026-03-01T23:20 2h rate(6 hours)",
        "2026-03-01T15:00 2026-03-02T00:00 2026-03-03T00:00 - rate(1 day)",
        "2026-03-01T15:00 2026-03-02T00:00 2026-03-02T03:00 3h rate(1 day)",
        "2026-01-05T09:00 2026-03-05T00:00 2026-03-06T00:00 - rate(2 months)",
        "2026-03-01T12:00 2026-03-01T22:00 2026-03-02T00:00 - cron(0 22 * * ? *)",
        "2026-03-01T12:00 2026-03-01T22:00 2026-03-01T23:00 1h cron(0 22 * * ? *)",
        "2026-03-01T12:00 2026-03-01T23:00 2026-03-02T00:00 3h cron(0 23 * * ? *)",
        // Never past the next occurrence.
        "2026-03-01T12:00 2026-03-01T13:00 2026-03-01T14:00 - cron(0 * * * ? *)",
        "2026-03-02T09:00 2026-03-02T10:15 2026-03-02T12:15 4h cron(15 10,12 * * ? *)",
        "2026-03-02T11:00 2026-03-02T12:15 2026-03-02T16:15 4h cron(15 10,12 * * ? *)",
        "2026-01-01T00:00 2026-01-01T10:00 2026-01-01T12:00 2h  cron( 0  10 * *\t?  * ) ",
    ];

    #[test]
    fn windows_and_clamping() {
        for row in WINDOWS {
            let v = row.splitn(5, ' ').collect::<Vec<_>>();
            let [anchor, start, end, dur, expr] = v[..] else {
                panic!()
            };
            let dur = (dur != "-").then_some(dur);
            let w = parse(expr, dur).next_window(t(anchor)).unwrap();
            assert_eq!((w.start, w.end), (t(start), t(end)), "{row}");
            assert!(w.contains(w.start) && !w.contains(w.end));
        }
    }

    #[test]
    fn automatically_after_days_is_rate_days() {
        let a = t("2026-03-01T15:00");
        let s = Schedule::from_rules(&by_days(10)).unwrap().unwrap();
        assert_eq!(
            s.next_window(a),
            parse("rate(10 days)", None).next_window(a)
        );
        assert_eq!(s.next_window(a).unwrap().start, t("2026-03-11T00:00"));
        assert_eq!(s.to_rules(), by_days(10));
        assert!(Schedule::from_rules(&by_days(1000)).is_ok());
        for n in [0, -1, 1001, i64::MAX] {
            assert_eq!(
                err(&by_days(n)),
                "AutomaticallyAfterDays must be between 1 and 1000."
            );
        }
        let both = RotationRules {
            automatically_after_days: Some(1),
            ..rules("rate(1 day)", None)
        };
        assert!(err(&both).contains("AutomaticallyAfterDays or ScheduleExpression, not both"));
        assert_eq!(
            Schedule::from_rules(&RotationRules::default()).unwrap(),
            None
        );
        let lone = RotationRules {
            duration: Some("2h".into()),
            ..Default::default()
        };
        assert!(err(&lone).contains("Duration needs"));
        // Echoed back as sent.
        let echo = rules("cron( 0  10 * *\t?  * )", Some("2h"));
        assert_eq!(
            parse(" cron( 0  10 * *\t?  * ) ", Some("2h")).to_rules(),
            echo
        );
        assert_eq!(
            parse(" rate( 1  day ) ", None).to_rules(),
            rules("rate( 1  day )", None)
        );
    }

    #[test]
    fn due_window_when_late() {
        let a = t("2026-03-01T15:00");
        let due = |s: &Schedule, anchor, now| s.due_window(t(anchor), t(now)).unwrap().start;
        let days = parse("rate(1 day)", Some("2h"));
        assert_eq!(days.due_window(a, a), days.next_window(a));
        let w = days.due_window(a, t("2026-03-05T01:00")).unwrap();
        assert_eq!(
            (w.start, w.end),
            (t("2026-03-05T00:00"), t("2026-03-05T02:00"))
        );
        assert_eq!(
            due(&days, "2026-03-01T15:00", "2026-03-05T03:00"),
            t("2026-03-06T00:00")
        );
        let hours = parse("rate(5 hours)", None);
        assert_eq!(
            due(&hours, "2026-03-01T15:00", "2026-03-02T02:30"),
            t("2026-03-02T06:00")
        );
        assert_eq!(
            due(&hours, "2026-03-01T15:00", "2026-03-02T01:30"),
            t("2026-03-02T01:00")
        );
        // Months count from the anchor, so month ends don't drift: Jan 31 -> Feb 28 -> Mar 31.
        let months = parse("rate(1 month)", None);
        assert_eq!(
            due(&months, "2027-01-31T00:00", "2027-03-01T00:00"),
            t("2027-03-31T00:00")
        );
        let cron = parse("cron(0 22 * * ? *)", None);
        assert_eq!(
            due(&cron, "2026-03-01T15:00", "2026-03-04T23:00"),
            t("2026-03-04T22:00")
        );
        assert_eq!(
            due(&cron, "2026-03-01T15:00", "2026-03-04T21:00"),
            t("2026-03-04T22:00")
        );
        // A window starting at or before the anchor is not due again.
        assert_eq!(
            due(&cron, "2026-03-04T22:00", "2026-03-04T23:00"),
            t("2026-03-05T22:00")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse("rate(1 day)", Some("24h")).window_hours(), Some(24));
        for d in ["0h", "25h", "99999999999h"] {
            let want = format!("Duration \"{d}\" must be between 1h and 24h.");
            assert_eq!(err(&rules("rate(1 day)", Some(d))), want);
        }
        for d in ["", "3", "h", "3 h", "-1h", "3H", " 3h", "1.5h"] {
            let m = err(&rules("rate(1 day)", Some(d)));
            assert!(m.contains("must be a number of hours"), "{d:?}: {m}");
        }
        let m = err(&rules("rate(4 hours)", Some("6h")));
        assert_eq!(
            m,
            "Duration \"6h\" is longer than the rotation interval rate(4 hours)."
        );
    }

    /// "expression|part of the error message".
    const INVALID: &[&str] = &[
        "cron(0 25 * * ? *)|ScheduleExpression cron(0 25 * * ? *): the hours field \"25\" must be 0-23.",
        "cron(*/5 10 * * ? *)|the minutes field \"*/5\" must be a single number 0-59",
        "cron(0/30 10 * * ? *)|the minutes field \"0/30\"",
        "cron(60 10 * * ? *)|the minutes field \"60\"",
        "cron(0,30 10 * * ? *)|at most once an hour",
        "cron(0 10 * * MON *)|exactly one of day-of-month and day-of-week must be \"?\"",
        "cron(0 10 ? * ? *)|exactly one of day-of-month and day-of-week must be \"?\"",
        "cron(0 10 ? * 9 *)|the day-of-week field \"9\" must be 1-7 or SUN-SAT",
        "cron(0 10 ? * 0 *)|the day-of-week field \"0\"",
        "cron(0 10 ? * 2#6 *)|the day-of-week field \"2#6\"",
        "cron(0 10 32 * ? *)|the day-of-month field \"32\"",
        "cron(0 10 5-1 * ? *)|the day-of-month field \"5-1\"",
        "cron(0 10 1 13 ? *)|the month field \"13\" must be 1-12 or JAN-DEC",
        "cron(0 10 1 FOO ? *)|the month field \"FOO\"",
        "cron(0 10 1 * ? 1969)|the year field \"1969\" must be 1970-2199",
        "cron(0 10 1 * ? 2200)|the year field \"2200\"",
        "cron(0 0 30 2 ? *)|never fires",
        "cron(0 10 1 * ?)|expected 6 fields",
        "cron(0 10 1 * ? * *)|found 7",
        "cron()|found 0",
        "rate(0 days)|ScheduleExpression rate(0 days): days must be between 1 and 1000.",
        "rate(1001 days)|days must be between 1 and 1000.",
        "rate(24001 hours)|hours must be between 1 and 24000.",
        "rate(34 months)|months must be between 1 and 33.",
        "rate(2 weeks)|the unit \"weeks\" must be hours, days or months.",
        "rate(2 day)|the unit must be \"days\" unless the value is 1.",
        "rate(-1 days)|the value \"-1\" must be a whole number.",
        "rate(99999999999 days)|days must be between 1 and 1000.",
        "rate(days)|must be rate(N hours|days|months)",
        "|ScheduleExpression must be rate(N hours|days|months) or cron(minutes hours",
        "garbage|got \"garbage\"",
        "at(2026-01-01T00:00:00)|ScheduleExpression must be",
        "cron(0 10 * * ? *|ScheduleExpression must be",
    ];

    #[test]
    fn invalid_expressions_name_the_field() {
        for row in INVALID {
            let (expr, want) = row.split_once('|').unwrap();
            let m = err(&rules(expr, None));
            assert!(m.contains(want), "{expr}: {m}");
        }
    }

    #[test]
    fn odd_inputs_never_panic() {
        let junk = [
            "0", "7", "59", "31", "2199", "*", "?", "L", "LW", "15W", "W", "#", "2#1", "6L", "-",
            "/", ",", "*/0", "*/99999", "1-", "MON", "JAN", "FRI-MON", "1,,2", "L-2", "", "é",
            "6#L",
        ];
        let pools: [&[&str]; 5] = [
            &["*", "0", "23", "0/6", "1-5", "x", "24"],
            &["?", "*", "L", "LW", "15W", "31", "1-31/7", "30,31", "0W"],
            &["*", "JAN", "2", "FEB-MAR", "*/5", "4,6,9,11"],
            &["?", "*", "MON-FRI", "6L", "2#5", "L", "1,7", "7#5", "SUN/3"],
            &["*", "2027", "2199", "1970-1980", "*/50", "2020", "2100"],
        ];
        let far = [
            i64::MIN,
            -1,
            0,
            t("2026-03-01T00:00").0,
            t("2199-12-31T23:59").0,
            i64::MAX,
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = |n: usize| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) as usize % n
        };
        let mut parsed = 0;
        for i in 0..2000 {
            let f: Vec<&str> = (0..4 + rnd(4)).map(|_| junk[rnd(junk.len())]).collect();
            let body = f.join(" ");
            let expr = match i % 4 {
                0 => format!("cron({body})"),
                1 => {
                    let f: Vec<&str> = pools.iter().map(|p| p[rnd(p.len())]).collect();
                    format!("cron({} {})", rnd(61), f.join(" "))
                }
                2 => format!("rate({} {})", f[0], ["hour", "days", "months", "x"][rnd(4)]),
                _ => body.replace(' ', ["(", ")", " ", ""][rnd(4)]),
            };
            let dur = [None, Some("1h"), Some("24h"), Some("x")][rnd(4)];
            let Ok(Some(s)) = Schedule::from_rules(&rules(&expr, dur)) else {
                continue;
            };
            parsed += 1;
            for a in far {
                if let Some(w) = s.next_window(Timestamp(a)) {
                    assert!(w.start.0 > a && w.start < w.end, "{expr} after {a}");
                }
                for now in far {
                    let w = s.due_window(Timestamp(a), Timestamp(now));
                    assert!(w.is_none_or(|w| w.start < w.end), "{expr}");
                }
            }
        }
        assert!(parsed > 50, "only {parsed} parsed");
    }
}
