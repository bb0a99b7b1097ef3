//! Kura.LookupAuditEvents: the audit trail, filtered and paged.

use kura_core::{Error, Result};
use kura_store::AuditQuery;

use super::types::{LookupAuditEventsRequest, LookupAuditEventsResponse};
use super::{Caller, Service};

fn millis(field: &str, v: Option<f64>) -> Result<Option<i64>> {
    match v {
        None => Ok(None),
        Some(t) if t.is_finite() && t >= 0.0 => Ok(Some((t * 1000.0) as i64)),
        Some(_) => Err(Error::validation(format!(
            "{field} must be epoch seconds (a non-negative number)."
        ))),
    }
}

impl Service {
    pub async fn lookup_audit_events(
        &self,
        _p: &Caller,
        req: LookupAuditEventsRequest,
    ) -> Result<LookupAuditEventsResponse> {
        let limit = match req.max_results {
            None => 50,
            Some(n @ 1..=1000) => n as usize,
            Some(n) => {
                return Err(Error::invalid_parameter(format!(
                    "MaxResults must be between 1 and 1000; got {n}."
                )));
            }
        };
        if let Some(o) = &req.outcome
            && o != "Success"
            && o != "Error"
        {
            return Err(Error::invalid_parameter(format!(
                "Outcome {o:?} is not Success or Error."
            )));
        }
        let mut q = AuditQuery {
            start_time: millis("StartTime", req.start_time)?,
            end_time: millis("EndTime", req.end_time)?,
            principal: req.principal,
            action: req.action,
            resource: req.resource,
            outcome: req.outcome,
            after_seq: None,
            before_seq: None,
            newest_first: req.newest_first.unwrap_or(false),
            limit: limit + 1,
        };
        // A token is valid only for the query it was issued for.
        let query_id = format!(
            "LookupAuditEvents {:?} {:?} {:?} {:?} {:?} {:?} {}",
            q.start_time, q.end_time, q.principal, q.action, q.resource, q.outcome, q.newest_first
        );
        if let Some(t) = &req.next_token {
            let seq = self
                .redeem_token(&query_id, t)?
                .as_i64()
                .ok_or_else(super::tokens::invalid)?;
            if q.newest_first {
                q.before_seq = Some(seq);
            } else {
                q.after_seq = Some(seq);
            }
        }
        let mut events = self.store.query_audit(&q).await?;
        let next_token = (events.len() > limit).then(|| {
            events.truncate(limit);
            let last = events.last().map(|r| r.seq).unwrap_or_default();
            self.issue_token(&query_id, last.into())
        });
        Ok(LookupAuditEventsResponse { events, next_token })
    }
}
