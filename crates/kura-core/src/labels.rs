//! The stage-label state machine. A label sits on at most one version (the map's key makes that
//! impossible to break); these functions decide how labels move and nothing else.

use std::collections::BTreeMap;

use crate::{Error, Result, Timestamp};

pub const CURRENT: &str = "AWSCURRENT";
pub const PREVIOUS: &str = "AWSPREVIOUS";
pub const PENDING: &str = "AWSPENDING";

pub const MAX_LABELS: usize = 20;
pub const MAX_VERSIONS: usize = 100;

/// stage label → version id
pub type Stages = BTreeMap<String, String>;

/// The Alibaba names are aliases of the AWS ones; stored and returned labels are the AWS names.
pub fn canonical_stage(stage: &str) -> String {
    match stage {
        "ACSCurrent" => CURRENT.into(),
        "ACSPrevious" => PREVIOUS.into(),
        "ACSPending" => PENDING.into(),
        other => other.into(),
    }
}

pub fn validate_stage(stage: &str) -> Result<()> {
    let n = stage.chars().count();
    if !(1..=256).contains(&n) {
        return Err(Error::validation(format!(
            "A staging label must be 1 to 256 characters; this one has {n}."
        )));
    }
    Ok(())
}

/// Labels attached to `version`, sorted.
pub fn stages_of(stages: &Stages, version: &str) -> Vec<String> {
    stages
        .iter()
        .filter(|(_, v)| v.as_str() == version)
        .map(|(s, _)| s.clone())
        .collect()
}

/// `labels` with those a request named first, in the request's order, then the rest as they
/// were: PutSecretValue answers `VersionStages` in the order it was given them (as AWS).
pub fn order_as_requested(labels: Vec<String>, requested: Option<&[String]>) -> Vec<String> {
    let Some(requested) = requested else {
        return labels;
    };
    let mut out: Vec<String> = Vec::with_capacity(labels.len());
    for r in requested {
        let c = canonical_stage(r);
        if labels.contains(&c) && !out.contains(&c) {
            out.push(c);
        }
    }
    for l in labels {
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

/// version id → its labels, for DescribeSecret / ListSecrets.
pub fn versions_to_stages(stages: &Stages) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (stage, version) in stages {
        out.entry(version.clone()).or_default().push(stage.clone());
    }
    out
}

/// Moves `stage` onto `version`; moving AWSCURRENT drags AWSPREVIOUS onto the version it left.
fn put_stage(stages: &mut Stages, stage: &str, version: &str) {
    let previous = stages.insert(stage.to_string(), version.to_string());
    if stage == CURRENT
        && let Some(old) = previous
        && old != version
    {
        stages.insert(PREVIOUS.to_string(), old);
    }
}

/// Labels a newly written version. With no `requested` labels it becomes AWSCURRENT. The first
/// version holding a value always gets AWSCURRENT, so a readable secret always has one.
pub fn attach_new_version(
    stages: &mut Stages,
    version: &str,
    requested: Option<&[String]>,
    has_value: bool,
) -> Result<()> {
    match requested {
        None => put_stage(stages, CURRENT, version),
        Some(list) => {
            if list.is_empty() || list.len() > MAX_LABELS {
                return Err(Error::validation(format!(
                    "VersionStages must list 1 to {MAX_LABELS} staging labels."
                )));
            }
            for s in list {
                validate_stage(s)?;
                put_stage(stages, &canonical_stage(s), version);
            }
        }
    }
    if has_value && !stages.contains_key(CURRENT) {
        stages.insert(CURRENT.into(), version.into());
    }
    check_limits(stages)
}

/// What UpdateSecretVersionStage asks for.
pub struct StageMove<'a> {
    pub stage: &'a str,
    pub remove_from: Option<&'a str>,
    pub move_to: Option<&'a str>,
}

/// Applies UpdateSecretVersionStage. `has_value(v)` is `None` for an unknown version.
pub fn update_stage(
    stages: &mut Stages,
    req: StageMove<'_>,
    has_value: impl Fn(&str) -> Option<bool>,
) -> Result<()> {
    validate_stage(req.stage)?;
    let stage = canonical_stage(req.stage);
    let attached = stages.get(&stage).cloned();
    for v in [req.remove_from, req.move_to].into_iter().flatten() {
        if has_value(v).is_none() {
            return Err(Error::not_found(format!(
                "Secrets Manager can't find the specified secret version: {v}"
            )));
        }
    }
    match (req.move_to, req.remove_from) {
        (None, None) => Err(Error::invalid_parameter(
            "Specify MoveToVersionId to attach the label, RemoveFromVersionId to detach it, or both to move it.",
        )),
        (Some(to), remove_from) => {
            if let Some(on) = attached.as_deref()
                && on != to
            {
                match remove_from {
                    None => {
                        return Err(Error::invalid_parameter(format!(
                            "The parameter RemoveFromVersionId can't be empty. Staging label {stage} is currently attached to version {on}, so you must explicitly reference that version in RemoveFromVersionId."
                        )));
                    }
                    Some(from) if from != on => {
                        return Err(Error::invalid_parameter(format!(
                            "Staging label {stage} is attached to version {on}, not to version {from}; name {on} in RemoveFromVersionId."
                        )));
                    }
                    Some(_) => {}
                }
            }
            if stage == CURRENT && has_value(to) == Some(false) {
                return Err(Error::invalid_request(format!(
                    "Version {to} has no value yet, so it can't be labelled {CURRENT}."
                )));
            }
            put_stage(stages, &stage, to);
            check_limits(stages)
        }
        (None, Some(from)) => {
            if attached.as_deref() != Some(from) {
                return Err(Error::invalid_parameter(format!(
                    "Staging label {stage} is not attached to version {from}, so it can't be removed from it."
                )));
            }
            if stage == CURRENT {
                return Err(Error::invalid_parameter(format!(
                    "{CURRENT} can only be moved to another version (set MoveToVersionId), never removed."
                )));
            }
            stages.remove(&stage);
            Ok(())
        }
    }
}

pub fn check_limits(stages: &Stages) -> Result<()> {
    if stages.len() > MAX_LABELS {
        return Err(Error::limit_exceeded(format!(
            "A secret can carry at most {MAX_LABELS} staging labels; remove one first."
        )));
    }
    Ok(())
}

/// Which versions to delete so that at most [`MAX_VERSIONS`] remain: the oldest unlabelled
/// ones, but never one younger than 24 hours. Too many young versions → LimitExceededException.
/// `versions` is in creation order.
pub fn versions_to_prune(
    versions: &[(String, Timestamp)],
    stages: &Stages,
    now: Timestamp,
) -> Result<Vec<String>> {
    if versions.len() <= MAX_VERSIONS {
        return Ok(Vec::new());
    }
    let excess = versions.len() - MAX_VERSIONS;
    let labelled: std::collections::HashSet<&str> = stages.values().map(String::as_str).collect();
    let cutoff = Timestamp(now.0 - Timestamp::MS_PER_DAY);
    let mut candidates: Vec<&(String, Timestamp)> = versions
        .iter()
        .filter(|(id, created)| !labelled.contains(id.as_str()) && *created < cutoff)
        .collect();
    if candidates.len() < excess {
        return Err(Error::limit_exceeded(format!(
            "A secret can keep at most {MAX_VERSIONS} versions, and unlabelled versions younger than 24 hours are not removed; wait, or stop creating versions this fast."
        )));
    }
    // Stable: versions created in the same millisecond keep their creation order.
    candidates.sort_by_key(|(_, created)| *created);
    Ok(candidates[..excess]
        .iter()
        .map(|(id, _)| id.clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(pairs: &[(&str, &str)]) -> Stages {
        pairs
            .iter()
            .map(|(s, v)| (s.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn new_versions_take_current_and_push_previous() {
        let mut s = Stages::new();
        attach_new_version(&mut s, "v1", None, true).unwrap();
        assert_eq!(s, st(&[(CURRENT, "v1")]));
        attach_new_version(&mut s, "v2", None, true).unwrap();
        assert_eq!(s, st(&[(CURRENT, "v2"), (PREVIOUS, "v1")]));
        attach_new_version(&mut s, "v3", None, true).unwrap();
        assert_eq!(s, st(&[(CURRENT, "v3"), (PREVIOUS, "v2")]));
    }

    #[test]
    fn custom_stages_leave_current_alone() {
        let mut s = st(&[(CURRENT, "v1")]);
        attach_new_version(&mut s, "v2", Some(&["blue".into()]), true).unwrap();
        assert_eq!(s, st(&[(CURRENT, "v1"), ("blue", "v2")]));
        attach_new_version(&mut s, "v3", Some(&["ACSPending".into()]), true).unwrap();
        assert_eq!(s[PENDING], "v3");
        attach_new_version(&mut s, "v4", Some(&["blue".into()]), true).unwrap();
        assert_eq!(s["blue"], "v4");
    }

    #[test]
    fn first_valued_version_always_current() {
        let mut s = Stages::new();
        attach_new_version(&mut s, "v1", Some(&["x".into()]), true).unwrap();
        assert_eq!(s, st(&[(CURRENT, "v1"), ("x", "v1")]));
        let mut s = Stages::new();
        attach_new_version(&mut s, "p", Some(&[PENDING.into()]), false).unwrap();
        assert_eq!(s, st(&[(PENDING, "p")]));
    }

    #[test]
    fn empty_or_too_many_requested_labels() {
        let mut s = Stages::new();
        assert!(attach_new_version(&mut s, "v", Some(&[]), true).is_err());
        let many: Vec<String> = (0..21).map(|i| format!("l{i}")).collect();
        assert!(attach_new_version(&mut s, "v", Some(&many), true).is_err());
    }

    fn known(v: &str) -> Option<bool> {
        match v {
            "v1" | "v2" | "v3" => Some(true),
            "p" => Some(false),
            _ => None,
        }
    }

    fn mv<'a>(stage: &'a str, from: Option<&'a str>, to: Option<&'a str>) -> StageMove<'a> {
        StageMove {
            stage,
            remove_from: from,
            move_to: to,
        }
    }

    #[test]
    fn moving_current_requires_remove_from_and_drags_previous() {
        let mut s = st(&[(CURRENT, "v2"), (PREVIOUS, "v1")]);
        let e = update_stage(&mut s, mv(CURRENT, None, Some("v1")), known).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidParameter);
        assert!(e.message.contains("attached to version v2"));
        let e = update_stage(&mut s, mv(CURRENT, Some("v3"), Some("v1")), known).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidParameter);
        update_stage(&mut s, mv(CURRENT, Some("v2"), Some("v1")), known).unwrap();
        assert_eq!(s, st(&[(CURRENT, "v1"), (PREVIOUS, "v2")]));
    }

    #[test]
    fn attach_remove_and_errors() {
        let mut s = st(&[(CURRENT, "v1")]);
        update_stage(&mut s, mv("blue", None, Some("v2")), known).unwrap();
        assert_eq!(s["blue"], "v2");
        // Already there: nothing to do.
        update_stage(&mut s, mv("blue", None, Some("v2")), known).unwrap();
        update_stage(&mut s, mv("blue", Some("v2"), None), known).unwrap();
        assert!(!s.contains_key("blue"));
        assert!(update_stage(&mut s, mv("blue", Some("v2"), None), known).is_err());
        assert!(update_stage(&mut s, mv(CURRENT, Some("v1"), None), known).is_err());
        assert!(update_stage(&mut s, mv("x", None, None), known).is_err());
        let e = update_stage(&mut s, mv("x", None, Some("nope")), known).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::ResourceNotFound);
        let e = update_stage(&mut s, mv(CURRENT, Some("v1"), Some("p")), known).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidRequest);
        assert_eq!(s[CURRENT], "v1");
    }

    #[test]
    fn aliases() {
        let mut s = st(&[(CURRENT, "v1")]);
        update_stage(&mut s, mv("ACSCurrent", Some("v1"), Some("v2")), known).unwrap();
        assert_eq!(s, st(&[(CURRENT, "v2"), (PREVIOUS, "v1")]));
        assert_eq!(canonical_stage("ACSPrevious"), PREVIOUS);
        assert_eq!(canonical_stage("acscurrent"), "acscurrent");
    }

    #[test]
    fn label_limit() {
        let mut s = Stages::new();
        for i in 0..MAX_LABELS {
            s.insert(format!("l{i}"), "v1".into());
        }
        let e = update_stage(&mut s, mv("one-more", None, Some("v2")), known).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::LimitExceeded);
    }

    #[test]
    fn pruning() {
        let now = Timestamp(100 * Timestamp::MS_PER_DAY);
        let old = Timestamp(0);
        let mut versions: Vec<(String, Timestamp)> = (0..100)
            .map(|i| (format!("v{i:03}"), Timestamp(old.0 + i)))
            .collect();
        let s = st(&[(CURRENT, "v000")]);
        assert!(versions_to_prune(&versions, &s, now).unwrap().is_empty());
        versions.push(("new".into(), now));
        // v000 is labelled, so the oldest unlabelled one goes.
        assert_eq!(versions_to_prune(&versions, &s, now).unwrap(), vec!["v001"]);
        let young: Vec<(String, Timestamp)> = (0..101).map(|i| (format!("y{i}"), now)).collect();
        let e = versions_to_prune(&young, &s, now).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::LimitExceeded);
    }

    #[test]
    fn answers_keep_the_requested_order() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let got = order_as_requested(
            v(&["AWSCURRENT", "alpha", "zeta"]),
            Some(&v(&["zeta", "ACSCurrent", "zeta"])),
        );
        assert_eq!(got, v(&["zeta", "AWSCURRENT", "alpha"]));
        assert_eq!(order_as_requested(v(&["b", "a"]), None), v(&["b", "a"]));
        // A requested label the version no longer has is not invented.
        assert_eq!(
            order_as_requested(v(&["a"]), Some(&v(&["gone", "a"]))),
            v(&["a"])
        );
    }
}
