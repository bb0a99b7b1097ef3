//! Expiry of secrets: when the notices before an expiration fall due, when a certificate is
//! renewed, and how a time is written in a filter. Pure: `now` is a parameter.

use crate::Timestamp;

const DAY: i64 = Timestamp::MS_PER_DAY;

/// The most days before an expiration a notification target may ask to hear of it.
pub const MAX_NOTICE_DAYS: i64 = 365;
/// The days a target that asks for `SecretExpiring` is told, unless it names its own.
pub const DEFAULT_NOTICE_DAYS: [i64; 3] = [30, 7, 1];
/// A certificate that lives this long or longer renews `RENEW_BEFORE_DAYS` before it expires;
/// a shorter-lived one when two thirds of its life has passed (IBM's rule).
pub const LONG_LIVED_DAYS: i64 = 93;
pub const RENEW_BEFORE_DAYS: i64 = 31;
/// A renewal that failed is tried again this much later, until the certificate expires.
pub const RENEWAL_RETRY_MS: i64 = DAY;

/// The first notice time after `after`: one of `expires − d days` (d from 1 to
/// [`MAX_NOTICE_DAYS`]), or the expiration itself; `None` once it has passed. Every day a
/// target could ask for is a notice time, so what is due does not depend on the targets.
pub fn next_notice(expires: Timestamp, after: Timestamp) -> Option<Timestamp> {
    let left = expires.0 - after.0;
    if left <= 0 {
        return None;
    }
    let days = ((left - 1) / DAY).min(MAX_NOTICE_DAYS);
    Some(Timestamp(expires.0 - days * DAY))
}

/// What falls due in `[from, now]` for a secret expiring at `expires`: the days-before of each
/// notice crossed, largest first, or that it expired (then no days: it is past them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notices {
    Expiring(Vec<i64>),
    Expired,
}

pub fn notices_due(expires: Timestamp, from: Timestamp, now: Timestamp) -> Notices {
    if from <= expires && expires <= now {
        return Notices::Expired;
    }
    let days = (1..=MAX_NOTICE_DAYS)
        .rev()
        .filter(|d| {
            let at = expires.0 - d * DAY;
            from.0 <= at && at <= now.0
        })
        .collect();
    Notices::Expiring(days)
}

/// When a certificate issued at `issued` that expires at `expires` is renewed: 31 days before
/// it expires, or when two thirds of its life has passed if it lives under 93 days.
pub fn renewal_at(issued: Timestamp, expires: Timestamp) -> Timestamp {
    let life = expires.0 - issued.0;
    if life < LONG_LIVED_DAYS * DAY {
        Timestamp(issued.0 + life.max(0) * 2 / 3)
    } else {
        Timestamp(expires.0 - RENEW_BEFORE_DAYS * DAY)
    }
}

/// A time as a filter or a request writes it: epoch seconds (a fraction allowed) or RFC 3339.
pub fn parse_time(s: &str) -> Option<Timestamp> {
    if let Ok(secs) = s.parse::<f64>() {
        return (0.0..1e14)
            .contains(&secs)
            .then_some(Timestamp((secs * 1000.0) as i64));
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| Timestamp(d.timestamp_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timestamp = Timestamp(1_893_456_000_000);

    #[test]
    fn notices_fall_on_whole_days_before_and_at_the_expiration() {
        let exp = T.plus_days(40);
        assert_eq!(next_notice(exp, T), Some(T.plus_days(1)), "39 days before");
        assert_eq!(next_notice(exp, exp.plus_days(-1)), Some(exp));
        assert_eq!(next_notice(exp, exp), None);
        let far = T.plus_days(1000);
        assert_eq!(next_notice(far, T), Some(far.plus_days(-365)));
    }

    #[test]
    fn what_is_due_between_two_times() {
        let exp = T.plus_days(40);
        assert_eq!(
            notices_due(exp, exp.plus_days(-31), exp.plus_days(-7)),
            Notices::Expiring((7..=31).rev().collect())
        );
        assert_eq!(
            notices_due(exp, exp.plus_days(-2), exp.plus_ms(1)),
            Notices::Expired
        );
        assert_eq!(notices_due(exp, T, T), Notices::Expiring(vec![40]));
        let later = T.plus_ms(1);
        assert_eq!(notices_due(exp, later, later), Notices::Expiring(vec![]));
    }

    #[test]
    fn renewal_is_31_days_before_or_at_two_thirds() {
        assert_eq!(renewal_at(T, T.plus_days(365)), T.plus_days(334));
        assert_eq!(renewal_at(T, T.plus_days(93)), T.plus_days(62));
        assert_eq!(renewal_at(T, T.plus_days(30)), T.plus_days(20));
    }

    #[test]
    fn times_are_epoch_seconds_or_rfc_3339() {
        assert_eq!(parse_time("1893456000"), Some(T));
        assert_eq!(parse_time("2030-01-01T00:00:00Z"), Some(T));
        assert_eq!(parse_time("2030-01-01T01:00:00+01:00"), Some(T));
        assert_eq!(parse_time("soon"), None);
        assert_eq!(parse_time("-5"), None);
    }
}
