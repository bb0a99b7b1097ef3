//! `kura audit lookup`: the audit trail's records, filtered, through Kura.LookupAuditEvents.

use clap::Args;
use serde_json::{Value as Json, json};

use super::{ClientArgs, Format};
use crate::client::{Client, ClientError};

#[derive(Args)]
pub struct LookupArgs {
    /// Records from this moment: an RFC 3339 time (2026-12-01T08:00:00Z) or a time ago
    /// (90s, 15m, 2h, 7d).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Records up to this moment (same forms as --since).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// The principal's ARN (e.g. arn:aws:iam::ACCOUNT:user/billing).
    #[arg(long, value_name = "ARN")]
    principal: Option<String>,
    /// The action, e.g. secretsmanager:GetSecretValue.
    #[arg(long)]
    action: Option<String>,
    /// The resource's ARN.
    #[arg(long, value_name = "ARN")]
    resource: Option<String>,
    /// Success or Error.
    #[arg(long, value_parser = ["Success", "Error"])]
    outcome: Option<String>,
    /// At most this many records, oldest first.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,
}

/// A moment as epoch seconds: RFC 3339, or a duration ago (`15m`) counted from `now`.
pub fn moment(text: &str, now: chrono::DateTime<chrono::Utc>) -> Result<f64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis() as f64 / 1000.0);
    }
    let bad = || {
        format!(
            "{text:?} is neither an RFC 3339 time (2026-12-01T08:00:00Z) nor a time ago (15m, 2h, 7d)"
        )
    };
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: u32 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    Ok(now.timestamp() as f64 - f64::from(n) * seconds as f64)
}

pub async fn lookup(a: LookupArgs, args: &ClientArgs) -> Result<(), ClientError> {
    let out = args.out();
    let now = chrono::Utc::now();
    let mut body = json!({});
    if let Some(t) = &a.since {
        body["StartTime"] = json!(moment(t, now).map_err(ClientError::Usage)?);
    }
    if let Some(t) = &a.until {
        body["EndTime"] = json!(moment(t, now).map_err(ClientError::Usage)?);
    }
    for (key, value) in [
        ("Principal", &a.principal),
        ("Action", &a.action),
        ("Resource", &a.resource),
        ("Outcome", &a.outcome),
    ] {
        if let Some(v) = value {
            body[key] = json!(v);
        }
    }
    let client = Client::connect(&args.connect_options())?;
    let limit = a.limit as usize;
    let mut events: Vec<Json> = Vec::new();
    while events.len() < limit {
        body["MaxResults"] = json!((limit - events.len()).min(100));
        let mut page = client
            .call("Kura.LookupAuditEvents", &body)
            .await
            .map_err(|e| client.hinted(e))?;
        if let Some(items) = page["Events"].as_array_mut() {
            events.append(items);
        }
        match page["NextToken"].as_str() {
            Some(t) if !t.is_empty() => body["NextToken"] = json!(t),
            _ => break,
        }
    }
    events.truncate(limit);
    if out.format == Format::Json {
        return out.json(&json!({"Events": events}));
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let time = e["Time"]
                .as_i64()
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
                .unwrap_or_default();
            let text = |k: &str| e[k].as_str().unwrap_or("-").to_string();
            vec![
                time,
                text("Principal"),
                text("Action"),
                text("Resource"),
                text("Decision"),
                text("Outcome"),
                text("ErrorCode"),
            ]
        })
        .collect();
    out.rows(
        &[
            "TIME (UTC)",
            "PRINCIPAL",
            "ACTION",
            "RESOURCE",
            "DECISION",
            "OUTCOME",
            "ERROR",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_absolute_and_ago() {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(moment("90s", now), Ok(1_800_000_000.0 - 90.0));
        assert_eq!(moment("2h", now), Ok(1_800_000_000.0 - 7200.0));
        assert_eq!(moment("7d", now), Ok(1_800_000_000.0 - 604_800.0));
        assert_eq!(moment("2026-12-01T00:00:00Z", now), Ok(1_796_083_200.0));
        for bad in ["", "h", "5y", "-3m", "yesterday"] {
            assert!(moment(bad, now).is_err(), "{bad}");
        }
    }
}
