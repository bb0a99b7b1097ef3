//! Policy evaluation: AWS's decision logic for one request inside one account.
//!
//! [`evaluate`] walks identity policies and an optional resource policy and returns a
//! [`Decision`]:
//!
//! 1. An applicable `Deny` statement anywhere wins ([`Decision::ExplicitDeny`]).
//! 2. Otherwise an applicable `Allow` in any identity policy *or* in the resource policy allows
//!    (within one account either is enough). The account root user is allowed as well: AWS gives
//!    it full access unless something denies it explicitly.
//! 3. Otherwise the request is implicitly denied.
//!
//! A statement applies when its principal (resource policies only), action, resource and every
//! condition match. Details, each following the IAM User Guide:
//!
//! * **Principal** (resource policies). `"*"`, `{"AWS": "*"}` and the caller's exact ARN match.
//!   An account entry (`"123456789012"` or `arn:aws:iam::123456789012:root`) stands for the
//!   account: in a `Deny` it covers every principal of the account; in an `Allow` it *delegates*
//!   to the account, which grants nothing by itself to IAM users of that account (they need an
//!   identity-policy allow; only the root user is the account itself). No other wildcards.
//!   `NotPrincipal` applies unless the caller *and* its account are both listed, since AWS
//!   checks the account before the user ("NotPrincipal" key points).
//! * **Action / NotAction**: `*` and `?` wildcards, case-insensitive.
//! * **Resource / NotResource**: `*` and `?` wildcards, case-sensitive. A wildcard stays within
//!   its colon-separated ARN segment unless `*` ends the segment, in which case it may run past
//!   the colons ("Using wildcards in resource ARNs"). A request on resource `*` (an operation
//!   without one) is matched only by `"Resource": "*"`.
//! * **Condition**: operators AND, keys AND, a key's values OR (NOR for negated operators).
//!   Key names are case-insensitive; values are case-sensitive unless the operator is
//!   `...IgnoreCase`. A key that is absent from the request (or set with no values) makes
//!   positive operators false and negated ones (`StringNotEquals`, `NotIpAddress`,
//!   `ArnNotLike`, ...) true; `...IfExists` makes an absent key true; `Null: true` means
//!   absent; `ForAllValues:` holds for an absent key and `ForAnyValue:` does not.
//!   A request value the operator cannot read (a non-number for `NumericLessThan`, a non-IP for
//!   `IpAddress`, ...) satisfies neither the operator nor its negation.
//! * **Policy variables** (`${aws:username}`, `${key, 'default'}`, `${*}`, `${?}`, `${$}`) are
//!   substituted in `Resource`/`NotResource` and in the values of string, ARN and `Bool`
//!   conditions, only for `"Version": "2012-10-17"` policies. A variable that cannot be resolved
//!   (absent or multi-valued key, no default) makes the whole statement not apply.
//!
//! Besides the keys the caller supplies, `aws:PrincipalArn`, `aws:PrincipalAccount`,
//! `aws:PrincipalType` and, for IAM users, `aws:username` are derived from the context unless
//! set explicitly. Request-time keys must be supplied (see [`ConditionKeys::set_request_time`]).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

use crate::policy::{
    ConditionClause, Effect, PolicyDocument, PrincipalSpec, SetQualifier, Statement,
};

/// The policy version in which `${...}` is a policy variable rather than literal text.
const VARIABLES_VERSION: &str = "2012-10-17";

/// Request context keys and their values. Key names are case-insensitive; values are kept as
/// given. A key set with no values counts as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConditionKeys {
    /// Lower-cased key name to values.
    map: BTreeMap<String, Vec<String>>,
}

impl ConditionKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (replaces) a key, e.g. `keys.set("aws:SourceIp", ["10.0.0.1"])`.
    pub fn set<I>(&mut self, key: &str, values: I) -> &mut Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let values = values.into_iter().map(Into::into).collect();
        self.map.insert(key.to_lowercase(), values);
        self
    }

    /// Builder form of [`ConditionKeys::set`].
    #[must_use]
    pub fn with<I>(mut self, key: &str, values: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.set(key, values);
        self
    }

    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.map.get(&key.to_lowercase()).map(Vec::as_slice)
    }

    pub fn remove(&mut self, key: &str) -> Option<Vec<String>> {
        self.map.remove(&key.to_lowercase())
    }

    /// Sets `aws:CurrentTime` (ISO 8601, UTC) and `aws:EpochTime` (seconds) to `now`.
    pub fn set_request_time(&mut self, now: DateTime<Utc>) -> &mut Self {
        self.set(
            "aws:CurrentTime",
            [now.to_rfc3339_opts(SecondsFormat::Secs, true)],
        );
        self.set("aws:EpochTime", [now.timestamp().to_string()]);
        self
    }
}

/// One request, as the evaluator sees it.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// e.g. `arn:aws:iam::123456789012:user/alice`, or `arn:aws:iam::123456789012:root`.
    pub principal_arn: &'a str,
    /// The 12-digit account that holds both the caller and the resource.
    pub account: &'a str,
    /// e.g. `secretsmanager:GetSecretValue` or `kura:CreateUser`.
    pub action: &'a str,
    /// The secret ARN, or `*` for operations without a resource.
    pub resource: &'a str,
    pub keys: &'a ConditionKeys,
}

/// Which policy a statement came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySource {
    /// Index into the `identity` slice given to [`evaluate`].
    Identity {
        index: usize,
    },
    Resource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    ExplicitDeny {
        /// The denying statement's Sid, if it has a non-empty one.
        statement: Option<String>,
        policy: PolicySource,
    },
    ImplicitDeny,
}

impl Decision {
    pub fn is_allow(&self) -> bool {
        *self == Decision::Allow
    }

    /// The `AccessDeniedException` message AWS would give, or `None` for [`Decision::Allow`].
    /// Sids are not revealed to the caller, as in AWS; [`Decision`]'s `Display` (for logs)
    /// names them.
    pub fn denial_message(&self, ctx: &RequestContext<'_>) -> Option<String> {
        let on = if ctx.resource == "*" {
            String::new()
        } else {
            format!(" on resource: {}", ctx.resource)
        };
        let why = match self {
            Decision::Allow => return None,
            Decision::ExplicitDeny {
                policy: PolicySource::Resource,
                ..
            } => "with an explicit deny in a resource-based policy".to_owned(),
            Decision::ExplicitDeny { .. } => {
                "with an explicit deny in an identity-based policy".to_owned()
            }
            Decision::ImplicitDeny => format!(
                "because no identity-based policy allows the {} action",
                ctx.action
            ),
        };
        Some(format!(
            "User: {} is not authorized to perform: {}{on} {why}",
            ctx.principal_arn, ctx.action
        ))
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Allow => f.write_str("allowed"),
            Decision::ImplicitDeny => f.write_str("implicitly denied: no statement allows it"),
            Decision::ExplicitDeny { statement, policy } => {
                f.write_str("explicitly denied by ")?;
                match statement {
                    Some(sid) => write!(f, "statement \"{sid}\"")?,
                    None => f.write_str("a statement without Sid")?,
                }
                match policy {
                    PolicySource::Identity { index } => write!(f, " of identity policy #{index}"),
                    PolicySource::Resource => f.write_str(" of the resource policy"),
                }
            }
        }
    }
}

/// Decides one request. `identity` holds the caller's identity policies (user and group
/// policies alike); `resource_policy` is the policy attached to the secret, if any.
pub fn evaluate(
    ctx: &RequestContext<'_>,
    identity: &[&PolicyDocument],
    resource_policy: Option<&PolicyDocument>,
) -> Decision {
    let env = Env::new(ctx);
    let docs = identity
        .iter()
        .enumerate()
        .map(|(index, doc)| (PolicySource::Identity { index }, *doc))
        .chain(resource_policy.map(|doc| (PolicySource::Resource, doc)));
    let mut allowed = false;
    for (source, doc) in docs {
        let variables = doc.version.as_deref() == Some(VARIABLES_VERSION);
        for s in &doc.statements {
            // A statement that cannot be evaluated (unresolvable variable, unknown operator)
            // applies neither way.
            if !env.applies(s, source, variables).unwrap_or(false) {
                continue;
            }
            match s.effect {
                Effect::Deny => {
                    return Decision::ExplicitDeny {
                        statement: s.sid.clone().filter(|sid| !sid.is_empty()),
                        policy: source,
                    };
                }
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed || env.is_root {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

/// Decides the use of a KMS key as AWS KMS does: the key policy is the root of access. A
/// key-policy Allow naming the caller grants on its own; one naming the caller's account
/// delegates to IAM, so the caller's identity policies must allow too; without either the
/// request is denied whatever the identity policies say. An explicit Deny in any policy wins.
pub fn evaluate_key_policy(
    ctx: &RequestContext<'_>,
    identity: &[&PolicyDocument],
    key_policy: &PolicyDocument,
) -> Decision {
    let env = Env::new(ctx);
    let variables = key_policy.version.as_deref() == Some(VARIABLES_VERSION);
    let (mut direct, mut delegated) = (false, false);
    for s in &key_policy.statements {
        if s.effect == Effect::Deny {
            if env
                .applies(s, PolicySource::Resource, variables)
                .unwrap_or(false)
            {
                return Decision::ExplicitDeny {
                    statement: s.sid.clone().filter(|sid| !sid.is_empty()),
                    policy: PolicySource::Resource,
                };
            }
            continue;
        }
        if !env.applies_to_anyone(s, variables).unwrap_or(false) {
            continue;
        }
        if env.principal_applies(s) {
            direct = true;
        } else if s
            .principal
            .as_ref()
            .is_some_and(|p| listed(p, Identity::Account(ctx.account)))
        {
            delegated = true;
        }
    }
    let by_iam = evaluate(ctx, identity, None);
    if let Decision::ExplicitDeny { .. } = by_iam {
        return by_iam;
    }
    if direct || (delegated && by_iam.is_allow()) {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

/// The statement can't be evaluated; it applies neither as Allow nor as Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unusable;

/// What a principal entry is compared with: the caller's account, or the caller itself.
#[derive(Debug, Clone, Copy)]
enum Identity<'a> {
    Account(&'a str),
    Principal(&'a str),
}

struct Env<'c, 'a> {
    ctx: &'c RequestContext<'a>,
    is_root: bool,
    /// Keys derived from the context: lower-cased name and value.
    derived: Vec<(&'static str, String)>,
}

impl<'c, 'a> Env<'c, 'a> {
    fn new(ctx: &'c RequestContext<'a>) -> Self {
        let is_root = is_account_root(ctx.principal_arn, ctx.account);
        let mut derived = vec![
            ("aws:principalarn", ctx.principal_arn.to_owned()),
            ("aws:principalaccount", ctx.account.to_owned()),
        ];
        if is_root {
            derived.push(("aws:principaltype", "Account".to_owned()));
        } else if let Some(name) = iam_user_name(ctx.principal_arn) {
            derived.push(("aws:principaltype", "User".to_owned()));
            derived.push(("aws:username", name.to_owned()));
        }
        Env {
            ctx,
            is_root,
            derived,
        }
    }

    /// The values of a key, or `None` when it is absent (or has no values).
    fn lookup(&self, key: &str) -> Option<Vec<&str>> {
        let key = key.to_lowercase();
        if let Some(values) = self.ctx.keys.map.get(&key) {
            return (!values.is_empty()).then(|| values.iter().map(String::as_str).collect());
        }
        let (_, value) = self.derived.iter().find(|(k, _)| *k == key)?;
        Some(vec![value.as_str()])
    }

    fn applies(&self, s: &Statement, source: PolicySource, vars: bool) -> Result<bool, Unusable> {
        if source == PolicySource::Resource && !self.principal_applies(s) {
            return Ok(false);
        }
        if !self.action_applies(s) || !self.resource_applies(s, vars)? {
            return Ok(false);
        }
        for clause in &s.condition {
            if !self.clause_holds(clause, vars)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether the statement's action, resource and conditions apply, its principal aside.
    fn applies_to_anyone(&self, s: &Statement, vars: bool) -> Result<bool, Unusable> {
        if !self.action_applies(s) || !self.resource_applies(s, vars)? {
            return Ok(false);
        }
        for clause in &s.condition {
            if !self.clause_holds(clause, vars)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The identities AWS checks a resource policy against, account first.
    fn identities(&self) -> Vec<Identity<'a>> {
        let account = Identity::Account(self.ctx.account);
        if self.is_root {
            vec![account]
        } else {
            vec![account, Identity::Principal(self.ctx.principal_arn)]
        }
    }

    fn principal_applies(&self, s: &Statement) -> bool {
        match (&s.principal, &s.not_principal) {
            // Denying the account denies everyone in it.
            (Some(p), _) if s.effect == Effect::Deny => {
                self.identities().into_iter().any(|id| listed(p, id))
            }
            // Allowing the account only delegates to it: IAM users still need an identity
            // policy, so only the caller's own entry (or "*") grants anything here.
            (Some(p), _) => {
                let own = if self.is_root {
                    Identity::Account(self.ctx.account)
                } else {
                    Identity::Principal(self.ctx.principal_arn)
                };
                listed(p, own)
            }
            // Excluded only if every identity in the chain is listed.
            (None, Some(np)) => self.identities().into_iter().any(|id| !listed(np, id)),
            (None, None) => false,
        }
    }

    fn action_applies(&self, s: &Statement) -> bool {
        let matches = |list: &Vec<String>| {
            list.iter().any(|p| {
                let toks = tokens(p, Wildcards::Anywhere);
                glob(&toks, self.ctx.action, true)
            })
        };
        match (&s.action, &s.not_action) {
            (Some(list), _) => matches(list),
            (None, Some(list)) => !matches(list),
            (None, None) => false,
        }
    }

    fn resource_applies(&self, s: &Statement, vars: bool) -> Result<bool, Unusable> {
        let (list, negated) = match (&s.resource, &s.not_resource) {
            (Some(list), _) => (list, false),
            (None, Some(list)) => (list, true),
            (None, None) => return Ok(false),
        };
        let mut any = false;
        for pattern in list {
            if self.resource_matches(pattern, vars)? {
                any = true;
                break;
            }
        }
        Ok(any != negated)
    }

    fn resource_matches(&self, pattern: &str, vars: bool) -> Result<bool, Unusable> {
        if pattern == "*" {
            return Ok(true);
        }
        if self.ctx.resource == "*" {
            return Ok(false);
        }
        let toks = self.expand(pattern, vars, Wildcards::ArnSegments)?;
        Ok(glob(&toks, self.ctx.resource, false))
    }

    fn clause_holds(&self, c: &ConditionClause, vars: bool) -> Result<bool, Unusable> {
        let parts = c.operator_parts().ok_or(Unusable)?;
        let present = self.lookup(&c.key);
        if parts.base == "Null" {
            // "true" asks for an absent key, "false" for a present one; values OR.
            let absent = present.is_none();
            return Ok(c.values.iter().any(|v| parse_bool(v) == Some(absent)));
        }
        let (op, negated) = operator(parts.base).ok_or(Unusable)?;
        let Some(values) = present else {
            return Ok(parts.if_exists
                || match parts.qualifier {
                    Some(SetQualifier::ForAllValues) => true,
                    Some(SetQualifier::ForAnyValue) => false,
                    None => negated,
                });
        };
        let wanted = c
            .values
            .iter()
            .map(|raw| self.prepare(op, raw, vars))
            .collect::<Result<Vec<_>, _>>()?;
        // A negated operator holds for a value that is readable and matches none of the
        // policy's values; an unreadable value satisfies neither form.
        let holds = |v: &&str| match op.matches(v, &wanted) {
            Some(m) => m != negated,
            None => false,
        };
        Ok(match parts.qualifier {
            Some(SetQualifier::ForAllValues) => values.iter().all(holds),
            Some(SetQualifier::ForAnyValue) => values.iter().any(holds),
            // Without a qualifier a negated operator must hold for every value (no value may
            // match), a positive one for some value.
            None if negated => values.iter().all(holds),
            None => values.iter().any(holds),
        })
    }

    /// A policy-side condition value, parsed for `op` (variables substituted where allowed).
    fn prepare(&self, op: Op, raw: &str, vars: bool) -> Result<Wanted, Unusable> {
        let text = |wild| self.expand(raw, vars, wild);
        Ok(match op {
            Op::StringEquals | Op::StringEqualsIgnoreCase => {
                Wanted::Text(untokenize(&text(Wildcards::None)?))
            }
            Op::StringLike | Op::Arn => Wanted::Pattern(text(Wildcards::Anywhere)?),
            Op::Bool => match parse_bool(&untokenize(&text(Wildcards::None)?)) {
                Some(b) => Wanted::Flag(b),
                None => Wanted::Unreadable,
            },
            Op::Binary => Wanted::Text(raw.to_owned()),
            Op::Numeric(_) => parse_number(raw).map_or(Wanted::Unreadable, Wanted::Number),
            Op::Date(_) => parse_time(raw).map_or(Wanted::Unreadable, Wanted::Time),
            Op::IpAddress => {
                parse_cidr(raw).map_or(Wanted::Unreadable, |(net, len)| Wanted::Network(net, len))
            }
        })
    }

    /// Tokenizes `text`, substituting policy variables when `vars` is set.
    fn expand(&self, text: &str, vars: bool, wild: Wildcards) -> Result<Vec<Tok>, Unusable> {
        if !vars || !text.contains("${") {
            return Ok(tokens(text, wild));
        }
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.extend(tokens(&rest[..start], wild));
            let (value, after) = self.variable(&rest[start + 2..])?;
            // Substituted text is literal: wildcards in it are not wildcards.
            out.extend(value.chars().map(Tok::Lit));
            rest = after;
        }
        out.extend(tokens(rest, wild));
        if wild == Wildcards::ArnSegments {
            fix_arn_wildcards(&mut out);
        }
        Ok(out)
    }

    /// Parses `name}` or `name, 'default'}` (the text after `${`); returns the value and the
    /// text after the closing brace.
    fn variable<'t>(&self, text: &'t str) -> Result<(String, &'t str), Unusable> {
        let end = text.find([',', '}']).ok_or(Unusable)?;
        let name = text[..end].trim();
        let (default, after) = if text[end..].starts_with('}') {
            (None, &text[end + 1..])
        } else {
            let (default, after) = quoted(text[end + 1..].trim_start()).ok_or(Unusable)?;
            let after = after.trim_start().strip_prefix('}').ok_or(Unusable)?;
            (Some(default), after)
        };
        let value = match name {
            "*" | "?" | "$" => Some(name.to_owned()),
            "" => return Err(Unusable),
            _ => match self.lookup(name).as_deref() {
                Some([one]) => Some((*one).to_owned()),
                _ => None,
            },
        };
        value.or(default).map(|v| (v, after)).ok_or(Unusable)
    }
}

/// Parses `'text'` with `''` standing for a quote; returns the text and what follows.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut rest = text.strip_prefix('\'')?;
    let mut out = String::new();
    loop {
        let q = rest.find('\'')?;
        out.push_str(&rest[..q]);
        rest = &rest[q + 1..];
        match rest.strip_prefix('\'') {
            Some(r) => {
                out.push('\'');
                rest = r;
            }
            None => return Some((out, rest)),
        }
    }
}

fn listed(spec: &PrincipalSpec, id: Identity<'_>) -> bool {
    let ids = match spec {
        PrincipalSpec::Any => return true,
        PrincipalSpec::Typed(map) => match map.get("AWS") {
            Some(ids) => ids,
            None => return false,
        },
    };
    ids.iter().any(|entry| {
        entry == "*"
            || match id {
                Identity::Account(account) => entry == account || is_account_root(entry, account),
                Identity::Principal(arn) => entry == arn,
            }
    })
}

/// `arn:<partition>:iam::<account>:root`.
fn is_account_root(arn: &str, account: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", _, "iam", "", acct, "root"] if *acct == account)
}

/// The user name of `arn:<partition>:iam::<account>:user/<path/>name`.
fn iam_user_name(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "iam", "", _, resource] => resource.strip_prefix("user/")?.rsplit('/').next(),
        _ => None,
    }
}

/// A base operator, its negation stripped off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Binary,
    IpAddress,
    /// ArnEquals and ArnLike behave alike: per-segment matching with wildcards.
    Arn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    /// Whether `request <op> policy` holds, given how they compare.
    fn holds(self, ord: Ordering) -> bool {
        match self {
            Cmp::Eq => ord == Ordering::Equal,
            Cmp::Lt => ord == Ordering::Less,
            Cmp::Le => ord != Ordering::Greater,
            Cmp::Gt => ord == Ordering::Greater,
            Cmp::Ge => ord != Ordering::Less,
        }
    }
}

/// Maps a base operator name (no qualifier, no `IfExists`) to `(operator, negated)`.
fn operator(base: &str) -> Option<(Op, bool)> {
    let ordered = |tail: &str| match tail {
        "Equals" => Some((Cmp::Eq, false)),
        "NotEquals" => Some((Cmp::Eq, true)),
        "LessThan" => Some((Cmp::Lt, false)),
        "LessThanEquals" => Some((Cmp::Le, false)),
        "GreaterThan" => Some((Cmp::Gt, false)),
        "GreaterThanEquals" => Some((Cmp::Ge, false)),
        _ => None,
    };
    if let Some(tail) = base.strip_prefix("Numeric") {
        return ordered(tail).map(|(c, n)| (Op::Numeric(c), n));
    }
    if let Some(tail) = base.strip_prefix("Date") {
        return ordered(tail).map(|(c, n)| (Op::Date(c), n));
    }
    Some(match base {
        "StringEquals" => (Op::StringEquals, false),
        "StringNotEquals" => (Op::StringEquals, true),
        "StringEqualsIgnoreCase" => (Op::StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (Op::StringEqualsIgnoreCase, true),
        "StringLike" => (Op::StringLike, false),
        "StringNotLike" => (Op::StringLike, true),
        "Bool" => (Op::Bool, false),
        "BinaryEquals" => (Op::Binary, false),
        "IpAddress" => (Op::IpAddress, false),
        "NotIpAddress" => (Op::IpAddress, true),
        "ArnEquals" | "ArnLike" => (Op::Arn, false),
        "ArnNotEquals" | "ArnNotLike" => (Op::Arn, true),
        _ => return None,
    })
}

/// A policy value, read the way its operator reads it.
#[derive(Debug, Clone)]
enum Wanted {
    Text(String),
    Pattern(Vec<Tok>),
    Number(f64),
    Time(i128),
    Flag(bool),
    Network(IpAddr, u8),
    /// Not a value of the operator's type: matches nothing.
    Unreadable,
}

impl Op {
    /// Whether request value `v` matches any of the policy values (the positive form), or
    /// `None` if `v` is not a value of this operator's type.
    fn matches(self, v: &str, wanted: &[Wanted]) -> Option<bool> {
        let any = |f: &dyn Fn(&Wanted) -> bool| wanted.iter().any(f);
        Some(match self {
            Op::StringEquals | Op::Binary => any(&|w| matches!(w, Wanted::Text(t) if t == v)),
            Op::StringEqualsIgnoreCase => {
                let v = v.to_lowercase();
                any(&|w| matches!(w, Wanted::Text(t) if t.to_lowercase() == v))
            }
            Op::StringLike => any(&|w| matches!(w, Wanted::Pattern(p) if glob(p, v, false))),
            Op::Arn => {
                let value = arn_segments(v)?;
                any(&|w| matches!(w, Wanted::Pattern(p) if arn_like(p, &value)))
            }
            Op::Numeric(cmp) => {
                let x = parse_number(v)?;
                any(
                    &|w| matches!(w, Wanted::Number(n) if x.partial_cmp(n).is_some_and(|o| cmp.holds(o))),
                )
            }
            Op::Date(cmp) => {
                let t = parse_time(v)?;
                any(&|w| matches!(w, Wanted::Time(p) if cmp.holds(t.cmp(p))))
            }
            Op::Bool => {
                let b = parse_bool(v)?;
                any(&|w| matches!(w, Wanted::Flag(f) if *f == b))
            }
            Op::IpAddress => {
                let ip = v.parse::<IpAddr>().ok()?;
                any(&|w| matches!(w, Wanted::Network(net, len) if in_network(ip, *net, *len)))
            }
        })
    }
}

/// One element of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `*`: any run of characters; `colons` says whether it may include `:`.
    Star {
        colons: bool,
    },
    /// `?`: any one character; `colons` says whether it may be `:`.
    One {
        colons: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wildcards {
    /// `*` and `?` are literal characters.
    None,
    /// `*` and `?` match anything, colons included.
    Anywhere,
    /// Resource ARN rules: wildcards stay inside their segment, except a `*` that ends one.
    ArnSegments,
}

fn tokens(text: &str, wild: Wildcards) -> Vec<Tok> {
    let colons = wild != Wildcards::ArnSegments;
    let mut out: Vec<Tok> = text
        .chars()
        .map(|c| match c {
            '*' if wild != Wildcards::None => Tok::Star { colons },
            '?' if wild != Wildcards::None => Tok::One { colons },
            c => Tok::Lit(c),
        })
        .collect();
    if wild == Wildcards::ArnSegments {
        fix_arn_wildcards(&mut out);
    }
    out
}

/// A `*` at the end of an ARN segment (before a `:` or at the end) may cross colons.
fn fix_arn_wildcards(toks: &mut [Tok]) {
    for i in 0..toks.len() {
        if let Tok::Star { .. } = toks[i] {
            let ends_segment = matches!(toks.get(i + 1), None | Some(Tok::Lit(':')));
            toks[i] = Tok::Star {
                colons: ends_segment,
            };
        }
    }
}

/// The text of tokens made without wildcards.
fn untokenize(toks: &[Tok]) -> String {
    toks.iter()
        .map(|t| match t {
            Tok::Lit(c) => *c,
            Tok::Star { .. } => '*',
            Tok::One { .. } => '?',
        })
        .collect()
}

/// Whether `pattern` matches all of `text`. Dynamic programming over pattern positions, so
/// time is bounded by pattern length × text length whatever the wildcards.
fn glob(pattern: &[Tok], text: &str, ignore_case: bool) -> bool {
    let text: Vec<char> = text.chars().collect();
    let same = |a: char, b: char| a == b || (ignore_case && a.to_lowercase().eq(b.to_lowercase()));
    // reach[j]: the pattern so far matches text[..j].
    let mut reach = vec![false; text.len() + 1];
    let mut next = reach.clone();
    reach[0] = true;
    for tok in pattern {
        next[0] = matches!(tok, Tok::Star { .. }) && reach[0];
        match *tok {
            Tok::Star { colons } => {
                for j in 1..=text.len() {
                    next[j] = reach[j] || (next[j - 1] && (colons || text[j - 1] != ':'));
                }
            }
            Tok::One { colons } => {
                for j in 1..=text.len() {
                    next[j] = reach[j - 1] && (colons || text[j - 1] != ':');
                }
            }
            Tok::Lit(c) => {
                for j in 1..=text.len() {
                    next[j] = reach[j - 1] && same(c, text[j - 1]);
                }
            }
        }
        if !next.contains(&true) {
            return false;
        }
        std::mem::swap(&mut reach, &mut next);
    }
    reach[text.len()]
}

/// An ARN's six colon-separated components (the last may contain colons).
fn arn_segments(v: &str) -> Option<Vec<&str>> {
    let parts: Vec<&str> = v.splitn(6, ':').collect();
    (parts.len() == 6 && parts[0] == "arn").then_some(parts)
}

/// ArnLike/ArnEquals: each of the six components is matched on its own.
fn arn_like(pattern: &[Tok], value: &[&str]) -> bool {
    let mut segments: Vec<&[Tok]> = Vec::with_capacity(6);
    let mut rest = pattern;
    while segments.len() < 5 {
        let Some(i) = rest.iter().position(|t| *t == Tok::Lit(':')) else {
            return false;
        };
        segments.push(&rest[..i]);
        rest = &rest[i + 1..];
    }
    segments.push(rest);
    segments.iter().zip(value).all(|(p, v)| glob(p, v, false))
}

fn parse_bool(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A decimal number (`3600`, `-1.5`, `2e3`); not `inf`, `NaN` or hex.
fn parse_number(v: &str) -> Option<f64> {
    let plain = !v.is_empty()
        && v.bytes().any(|b| b.is_ascii_digit())
        && v.bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    plain
        .then(|| v.parse::<f64>().ok())
        .flatten()
        .filter(|x| x.is_finite())
}

/// Nanoseconds since the epoch. Accepts epoch seconds (`1700000000`, `1700000000.5`) and ISO
/// 8601: `2024-01-01T00:00:00Z`, with an offset or fraction, without seconds, a date alone
/// (`2024-01-01`, midnight UTC), or the basic form `20240101T000000Z`. No zone means UTC.
fn parse_time(v: &str) -> Option<i128> {
    const NANOS: i128 = 1_000_000_000;
    let nanos = |t: DateTime<Utc>| {
        i128::from(t.timestamp()) * NANOS + i128::from(t.timestamp_subsec_nanos())
    };
    let (negative, body) = v.strip_prefix('-').map_or((false, v), |r| (true, r));
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if !int.is_empty()
        && int.len() <= 20
        && frac.len() <= 9
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
    {
        let secs: i128 = int.parse().ok()?;
        let frac_nanos: i128 = format!("{frac:0<9}").parse().ok()?;
        let total = secs * NANOS + frac_nanos;
        return Some(if negative { -total } else { total });
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(nanos(t.with_timezone(&Utc)));
    }
    let naive = v.strip_suffix(['Z', 'z']).unwrap_or(v);
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y%m%dT%H%M%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, format) {
            return Some(nanos(t.and_utc()));
        }
    }
    let date = NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()?;
    Some(nanos(date.and_hms_opt(0, 0, 0)?.and_utc()))
}

/// `203.0.113.0/24`, `2001:db8::/32`, or a single address (a full-length prefix).
fn parse_cidr(v: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match v.split_once('/') {
        Some((a, l)) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => {
            (a, Some(l.parse::<u8>().ok()?))
        }
        Some(_) => return None,
        None => (v, None),
    };
    let ip = addr.parse::<IpAddr>().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((ip, len))
}

fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyKind, parse};

    const ACCOUNT: &str = "123456789012";
    const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
    const BOB: &str = "arn:aws:iam::123456789012:user/bob";
    const ROOT: &str = "arn:aws:iam::123456789012:root";
    const GET: &str = "secretsmanager:GetSecretValue";
    const PUT: &str = "secretsmanager:PutSecretValue";
    const DELETE: &str = "secretsmanager:DeleteSecret";
    const LIST: &str = "secretsmanager:ListSecrets";
    const CREATE_USER: &str = "kura:CreateUser";
    const PROD_DB: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf";
    const DEV_APP: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dev/app-123456";
    const ALICE_KEY: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:alice/key-a1b2c3";

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Expect {
        Allow,
        Implicit,
        /// Explicit deny from an identity policy, with this Sid.
        DenyId(Option<&'static str>),
        /// Explicit deny from the resource policy, with this Sid.
        DenyRp(Option<&'static str>),
    }
    use Expect::{Allow, DenyId, DenyRp, Implicit};

    type Keys = &'static [(&'static str, &'static [&'static str])];

    /// One row. Policy texts that don't start with `{"Version"` are statement lists, wrapped
    /// into a 2012-10-17 document.
    struct Case {
        name: &'static str,
        identity: &'static [&'static str],
        resource_policy: Option<&'static str>,
        principal: &'static str,
        action: &'static str,
        resource: &'static str,
        keys: Keys,
        expect: Expect,
    }

    const BASE: Case = Case {
        name: "",
        identity: &[],
        resource_policy: None,
        principal: ALICE,
        action: GET,
        resource: PROD_DB,
        keys: &[],
        expect: Implicit,
    };

    const ALLOW_ALL: &str = r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#;
    const ALLOW_SM: &str = r#"{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}"#;
    const TEAM_A: &str = r#"{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*",
        "Condition":{"StringEquals":{"secretsmanager:ResourceTag/team":"a"}}}"#;
    const OFFICE_ONLY: &str = r#"{"Sid":"OfficeOnly","Effect":"Deny","Action":"*","Resource":"*",
        "Condition":{"NotIpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:DB8:1234:5678::/64"]}}}"#;
    const TLS_ONLY: &str = r#"{"Sid":"TlsOnly","Effect":"Deny","Action":"*","Resource":"*",
        "Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#;
    const UNTIL_2030: &str = r#"{"Effect":"Allow","Action":"*","Resource":"*",
        "Condition":{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}"#;
    const MFA_FRESH: &str = r#"{"Effect":"Allow","Action":"*","Resource":"*",
        "Condition":{"NumericLessThan":{"aws:MultiFactorAuthAge":3600}}}"#;
    const TAGS_SUBSET: &str = r#"{"Effect":"Allow","Action":"secretsmanager:TagResource","Resource":"*",
        "Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["team","env"]}}}"#;
    const TAGS_ANY: &str = r#"{"Effect":"Allow","Action":"secretsmanager:TagResource","Resource":"*",
        "Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["team","env"]}}}"#;
    // IAM User Guide, "Multivalued context key examples": deny tag keys not prefixed key1.
    const DENY_TAG_PREFIX: &str = r#"{"Sid":"DenyRestrictedTags","Effect":"Deny","Action":"secretsmanager:TagResource",
        "Resource":"*","Condition":{"ForAllValues:StringNotLike":{"aws:TagKeys":"key1*"}}}"#;
    const ROTATION_FN: &str = r#"{"Effect":"Allow","Action":"secretsmanager:RotateSecret","Resource":"*",
        "Condition":{"ArnLike":{"secretsmanager:RotationLambdaARN":"arn:aws:lambda:*:123456789012:function:rotate-*"}}}"#;
    const OWN_SECRETS: &str = r#"{"Effect":"Allow","Action":"secretsmanager:*",
        "Resource":"arn:aws:secretsmanager:*:123456789012:secret:${aws:username}/*"}"#;
    const SHARE_WITH_ALICE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
    const RP_DENY_ALL: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Lockdown","Effect":"Deny",
        "Principal":"*","Action":"secretsmanager:*","Resource":"*"}]}"#;
    // Only alice (and, as AWS requires for NotPrincipal, her account) escapes the deny.
    const RP_ONLY_ALICE: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"OnlyAlice","Effect":"Deny",
        "NotPrincipal":{"AWS":["arn:aws:iam::123456789012:user/alice","arn:aws:iam::123456789012:root"]},
        "Action":"secretsmanager:*","Resource":"*"}]}"#;

    #[rustfmt::skip]
    const CASES: &[Case] = &[
        // --- Basics ---
        Case { name: "no policies: implicit deny", ..BASE },
        Case { name: "exact action and resource", identity: &[r#"{"Effect":"Allow","Action":"secretsmanager:GetSecretValue",
            "Resource":"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"}"#], expect: Allow, ..BASE },
        Case { name: "other action not granted", identity: &[r#"{"Effect":"Allow","Action":"secretsmanager:DescribeSecret","Resource":"*"}"#], ..BASE },
        Case { name: "service wildcard", identity: &[ALLOW_SM], action: PUT, expect: Allow, ..BASE },
        Case { name: "service wildcard does not cover other services", identity: &[ALLOW_SM], action: CREATE_USER, resource: "*", ..BASE },
        Case { name: "prefix wildcard Get*", identity: &[r#"{"Effect":"Allow","Action":"secretsmanager:Get*","Resource":"*"}"#], expect: Allow, ..BASE },
        Case { name: "prefix wildcard Get* vs Put", identity: &[r#"{"Effect":"Allow","Action":"secretsmanager:Get*","Resource":"*"}"#], action: PUT, ..BASE },
        Case { name: "single-character wildcard", identity: &[r#"{"Effect":"Allow","Action":"secretsmanager:?etSecretValue","Resource":"*"}"#], expect: Allow, ..BASE },
        Case { name: "action match is case-insensitive", identity: &[r#"{"Effect":"Allow","Action":"SecretsManager:getsecretVALUE","Resource":"*"}"#], expect: Allow, ..BASE },
        Case { name: "Action * covers kura actions", identity: &[ALLOW_ALL], action: CREATE_USER, resource: "*", expect: Allow, ..BASE },
        Case { name: "action list", identity: &[r#"{"Effect":"Allow","Action":["secretsmanager:DescribeSecret","kura:CreateUser"],"Resource":"*"}"#],
            action: CREATE_USER, resource: "*", expect: Allow, ..BASE },
        // --- Explicit deny beats allow ---
        Case { name: "deny in the same policy beats allow", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*"},
            {"Sid":"NoDelete","Effect":"Deny","Action":"secretsmanager:DeleteSecret","Resource":"*"}"#], action: DELETE, expect: DenyId(Some("NoDelete")), ..BASE },
        Case { name: "deny in a second identity policy beats allow", identity: &[ALLOW_ALL,
            r#"{"Effect":"Deny","Action":"secretsmanager:*","Resource":"*"}"#], expect: DenyId(None), ..BASE },
        Case { name: "identity deny beats resource-policy allow", identity: &[r#"{"Sid":"NoProd","Effect":"Deny","Action":"*",
            "Resource":"arn:aws:secretsmanager:*:*:secret:prod/*"}"#], resource_policy: Some(SHARE_WITH_ALICE), expect: DenyId(Some("NoProd")), ..BASE },
        Case { name: "resource-policy deny beats identity allow", identity: &[ALLOW_ALL], resource_policy: Some(RP_DENY_ALL), expect: DenyRp(Some("Lockdown")), ..BASE },
        Case { name: "deny for another action leaves allow", identity: &[ALLOW_ALL,
            r#"{"Effect":"Deny","Action":"secretsmanager:DeleteSecret","Resource":"*"}"#], expect: Allow, ..BASE },
        // --- NotAction ---
        Case { name: "Allow NotAction: everything except kura", identity: &[r#"{"Effect":"Allow","NotAction":"kura:*","Resource":"*"}"#], expect: Allow, ..BASE },
        Case { name: "Allow NotAction: the excepted action", identity: &[r#"{"Effect":"Allow","NotAction":"kura:*","Resource":"*"}"#],
            action: CREATE_USER, resource: "*", ..BASE },
        Case { name: "Deny NotAction: read-only except", identity: &[ALLOW_ALL, r#"{"Sid":"ReadOnly","Effect":"Deny",
            "NotAction":["secretsmanager:Get*","secretsmanager:Describe*","secretsmanager:List*"],"Resource":"*"}"#], action: PUT, expect: DenyId(Some("ReadOnly")), ..BASE },
        Case { name: "Deny NotAction: listed action passes", identity: &[ALLOW_ALL, r#"{"Sid":"ReadOnly","Effect":"Deny",
            "NotAction":["secretsmanager:Get*","secretsmanager:Describe*","secretsmanager:List*"],"Resource":"*"}"#], expect: Allow, ..BASE },
        // IAM User Guide: deny everything but self-service unless MFA (BoolIfExists).
        Case { name: "Deny NotAction with BoolIfExists MFA, no MFA key", identity: &[ALLOW_ALL, r#"{"Sid":"BlockMostAccessUnlessSignedInWithMFA",
            "Effect":"Deny","NotAction":["kura:ChangePassword","kura:GetUser"],"Resource":"*",
            "Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}}"#], expect: DenyId(Some("BlockMostAccessUnlessSignedInWithMFA")), ..BASE },
        Case { name: "Deny NotAction with BoolIfExists MFA, MFA present", identity: &[ALLOW_ALL, r#"{"Effect":"Deny",
            "NotAction":["kura:ChangePassword","kura:GetUser"],"Resource":"*",
            "Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}}"#], keys: &[("aws:MultiFactorAuthPresent", &["true"])], expect: Allow, ..BASE },
        // --- Resource / NotResource ---
        Case { name: "specific ARN vs other secret", identity: &[r#"{"Effect":"Allow","Action":"*",
            "Resource":"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"}"#], resource: DEV_APP, ..BASE },
        Case { name: "path wildcard matches", identity: &[r#"{"Effect":"Allow","Action":"*",
            "Resource":"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/*"}"#], expect: Allow, ..BASE },
        Case { name: "path wildcard excludes other paths", identity: &[r#"{"Effect":"Allow","Action":"*",
            "Resource":"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/*"}"#], resource: DEV_APP, ..BASE },
        Case { name: "? wildcards for the random suffix", identity: &[r#"{"Effect":"Allow","Action":"*",
            "Resource":"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-??????"}"#], expect: Allow, ..BASE },
        Case { name: "resource match is case-sensitive", identity: &[r#"{"Effect":"Allow","Action":"*",
            "Resource":"arn:aws:secretsmanager:us-east-1:123456789012:secret:PROD/*"}"#], ..BASE },
        Case { name: "region wildcard segment", identity: &[r#"{"Effect":"Allow","Action":"*",
            "Resource":"arn:aws:secretsmanager:*:123456789012:secret:prod/*"}"#], expect: Allow, ..BASE },
        Case { name: "segment-ending * crosses colons", identity: &[r#"{"Effect":"Allow","Action":"*",
            "Resource":"arn:aws:secretsmanager:us-east-1:123456789012:*"}"#], expect: Allow, ..BASE },
        Case { name: "mid-segment * stays inside its segment", identity: &[r#"{"Effect":"Allow","Action":"*",
            "Resource":"arn:aws:secretsmanager:us-east-1:123456789012:sec*db-AbCdEf"}"#], ..BASE },
        Case { name: "resource-less request vs specific Resource", identity: &[r#"{"Effect":"Allow","Action":"secretsmanager:*",
            "Resource":"arn:aws:secretsmanager:*:123456789012:secret:*"}"#], action: LIST, resource: "*", ..BASE },
        Case { name: "resource-less request vs Resource *", identity: &[ALLOW_SM], action: LIST, resource: "*", expect: Allow, ..BASE },
        Case { name: "NotResource: outside the list", identity: &[r#"{"Effect":"Allow","Action":"*",
            "NotResource":"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/*"}"#], resource: DEV_APP, expect: Allow, ..BASE },
        Case { name: "NotResource: inside the list", identity: &[r#"{"Effect":"Allow","Action":"*",
            "NotResource":"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/*"}"#], ..BASE },
        Case { name: "NotResource applies to resource-less requests", identity: &[r#"{"Effect":"Allow","Action":"*",
            "NotResource":"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/*"}"#], action: LIST, resource: "*", expect: Allow, ..BASE },
        Case { name: "Deny NotResource protects all but one", identity: &[ALLOW_ALL, r#"{"Sid":"OnlyDev","Effect":"Deny","Action":"*",
            "NotResource":"arn:aws:secretsmanager:us-east-1:123456789012:secret:dev/*"}"#], expect: DenyId(Some("OnlyDev")), ..BASE },
        // --- Resource policies and principals ---
        Case { name: "RP names the caller's ARN", resource_policy: Some(SHARE_WITH_ALICE), expect: Allow, ..BASE },
        Case { name: "RP names someone else: does not apply", resource_policy: Some(SHARE_WITH_ALICE), principal: BOB, ..BASE },
        Case { name: "RP grants only the named action", resource_policy: Some(SHARE_WITH_ALICE), action: DELETE, ..BASE },
        Case { name: "RP Principal *", resource_policy: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#), principal: BOB, expect: Allow, ..BASE },
        Case { name: "RP {\"AWS\":\"*\"}", resource_policy: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Principal":{"AWS":"*"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#), expect: Allow, ..BASE },
        Case { name: "RP account root: delegation, no grant to IAM users", resource_policy: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#), ..BASE },
        Case { name: "RP account id + identity allow", identity: &[TEAM_A], resource_policy: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Principal":{"AWS":"123456789012"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#),
            keys: &[("secretsmanager:ResourceTag/team", &["a"])], expect: Allow, ..BASE },
        Case { name: "RP account root grants the root user", resource_policy: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Principal":{"AWS":"123456789012"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#), principal: ROOT, expect: Allow, ..BASE },
        Case { name: "RP Deny to the account covers every user", identity: &[ALLOW_ALL], resource_policy: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny",
            "Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"secretsmanager:DeleteSecret","Resource":"*"}]}"#), action: DELETE, expect: DenyRp(None), ..BASE },
        Case { name: "RP Deny naming bob spares alice", identity: &[ALLOW_ALL], resource_policy: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny",
            "Principal":{"AWS":"arn:aws:iam::123456789012:user/bob"},"Action":"*","Resource":"*"}]}"#), expect: Allow, ..BASE },
        Case { name: "RP Deny naming bob denies bob", identity: &[ALLOW_ALL], resource_policy: Some(r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoBob","Effect":"Deny",
            "Principal":{"AWS":"arn:aws:iam::123456789012:user/bob"},"Action":"*","Resource":"*"}]}"#), principal: BOB, expect: DenyRp(Some("NoBob")), ..BASE },
        Case { name: "RP NotPrincipal user+account: alice excepted", identity: &[ALLOW_ALL], resource_policy: Some(RP_ONLY_ALICE), expect: Allow, ..BASE },
        Case { name: "RP NotPrincipal user+account: bob denied", identity: &[ALLOW_ALL], resource_policy: Some(RP_ONLY_ALICE), principal: BOB, expect: DenyRp(Some("OnlyAlice")), ..BASE },
        Case { name: "RP NotPrincipal user only: account still denied", identity: &[ALLOW_ALL], resource_policy: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny",
            "NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"*","Resource":"*"}]}"#), expect: DenyRp(None), ..BASE },
        Case { name: "RP wildcard inside a principal ARN is literal", resource_policy: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Principal":{"AWS":"arn:aws:iam::123456789012:user/*"},"Action":"*","Resource":"*"}]}"#), ..BASE },
        Case { name: "RP service principal does not match users", resource_policy: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Principal":{"Service":"lambda.amazonaws.com"},"Action":"*","Resource":"*"}]}"#), ..BASE },
        Case { name: "RP Resource naming another secret", resource_policy: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"*",
            "Resource":"arn:aws:secretsmanager:us-east-1:123456789012:secret:dev/*"}]}"#), ..BASE },
        Case { name: "RP allow with TLS condition, over TLS", resource_policy: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"*","Resource":"*",
            "Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#), keys: &[("aws:SecureTransport", &["true"])], expect: Allow, ..BASE },
        Case { name: "RP allow with TLS condition, key missing", resource_policy: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"*","Resource":"*",
            "Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#), ..BASE },
        // --- Root user ---
        Case { name: "root user has full access", principal: ROOT, action: CREATE_USER, resource: "*", expect: Allow, ..BASE },
        Case { name: "root user is still subject to explicit deny", principal: ROOT, resource_policy: Some(RP_DENY_ALL), expect: DenyRp(Some("Lockdown")), ..BASE },
        // --- String conditions on tags ---
        Case { name: "ResourceTag StringEquals match", identity: &[TEAM_A], keys: &[("secretsmanager:ResourceTag/team", &["a"])], expect: Allow, ..BASE },
        Case { name: "ResourceTag StringEquals mismatch", identity: &[TEAM_A], keys: &[("secretsmanager:ResourceTag/team", &["b"])], ..BASE },
        Case { name: "ResourceTag missing: positive operator false", identity: &[TEAM_A], ..BASE },
        Case { name: "condition key names are case-insensitive", identity: &[TEAM_A], keys: &[("SECRETSMANAGER:resourcetag/TEAM", &["a"])], expect: Allow, ..BASE },
        Case { name: "condition values are case-sensitive", identity: &[TEAM_A], keys: &[("secretsmanager:ResourceTag/team", &["A"])], ..BASE },
        Case { name: "StringEqualsIgnoreCase", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"StringEqualsIgnoreCase":{"secretsmanager:ResourceTag/team":"a"}}}"#], keys: &[("secretsmanager:ResourceTag/team", &["A"])], expect: Allow, ..BASE },
        Case { name: "values OR: second value matches", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"StringEquals":{"secretsmanager:ResourceTag/team":["a","b"]}}}"#], keys: &[("secretsmanager:ResourceTag/team", &["b"])], expect: Allow, ..BASE },
        Case { name: "keys AND: one key mismatches", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"StringEquals":{"secretsmanager:ResourceTag/team":"a","secretsmanager:ResourceTag/env":"prod"}}}"#],
            keys: &[("secretsmanager:ResourceTag/team", &["a"]), ("secretsmanager:ResourceTag/env", &["dev"])], ..BASE },
        Case { name: "operators AND: both hold", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"StringEquals":{"secretsmanager:ResourceTag/team":"a"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}"#],
            keys: &[("secretsmanager:ResourceTag/team", &["a"]), ("aws:SourceIp", &["10.1.2.3"])], expect: Allow, ..BASE },
        Case { name: "operators AND: one fails", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"StringEquals":{"secretsmanager:ResourceTag/team":"a"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}"#],
            keys: &[("secretsmanager:ResourceTag/team", &["a"]), ("aws:SourceIp", &["192.168.0.1"])], ..BASE },
        Case { name: "StringNotEquals deny: other value", identity: &[ALLOW_ALL, r#"{"Sid":"ProdOnly","Effect":"Deny","Action":"*","Resource":"*",
            "Condition":{"StringNotEquals":{"secretsmanager:ResourceTag/env":["prod","staging"]}}}"#],
            keys: &[("secretsmanager:ResourceTag/env", &["dev"])], expect: DenyId(Some("ProdOnly")), ..BASE },
        Case { name: "StringNotEquals deny: listed value (NOR)", identity: &[ALLOW_ALL, r#"{"Effect":"Deny","Action":"*","Resource":"*",
            "Condition":{"StringNotEquals":{"secretsmanager:ResourceTag/env":["prod","staging"]}}}"#],
            keys: &[("secretsmanager:ResourceTag/env", &["staging"])], expect: Allow, ..BASE },
        Case { name: "StringNotEquals deny: key missing means true", identity: &[ALLOW_ALL, r#"{"Effect":"Deny","Action":"*","Resource":"*",
            "Condition":{"StringNotEquals":{"secretsmanager:ResourceTag/env":"prod"}}}"#], expect: DenyId(None), ..BASE },
        Case { name: "StringNotEqualsIgnoreCase", identity: &[ALLOW_ALL, r#"{"Effect":"Deny","Action":"*","Resource":"*",
            "Condition":{"StringNotEqualsIgnoreCase":{"secretsmanager:ResourceTag/env":"prod"}}}"#],
            keys: &[("secretsmanager:ResourceTag/env", &["PROD"])], expect: Allow, ..BASE },
        Case { name: "StringLike", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"StringLike":{"secretsmanager:ResourceTag/owner":"team-*"}}}"#],
            keys: &[("secretsmanager:ResourceTag/owner", &["team-payments"])], expect: Allow, ..BASE },
        Case { name: "StringLike is case-sensitive", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"StringLike":{"secretsmanager:ResourceTag/owner":"team-*"}}}"#],
            keys: &[("secretsmanager:ResourceTag/owner", &["Team-payments"])], ..BASE },
        Case { name: "StringNotLike deny", identity: &[ALLOW_ALL, r#"{"Effect":"Deny","Action":"*","Resource":"*",
            "Condition":{"StringNotLike":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/admins/*"}}}"#], expect: DenyId(None), ..BASE },
        Case { name: "StringEquals on derived aws:PrincipalArn", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"StringEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/alice"}}}"#], expect: Allow, ..BASE },
        // --- VersionStage ---
        Case { name: "VersionStage AWSCURRENT", identity: &[r#"{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*",
            "Condition":{"StringEquals":{"secretsmanager:VersionStage":"AWSCURRENT"}}}"#],
            keys: &[("secretsmanager:VersionStage", &["AWSCURRENT"])], expect: Allow, ..BASE },
        Case { name: "VersionStage AWSPREVIOUS not granted", identity: &[r#"{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*",
            "Condition":{"StringEquals":{"secretsmanager:VersionStage":"AWSCURRENT"}}}"#],
            keys: &[("secretsmanager:VersionStage", &["AWSPREVIOUS"])], ..BASE },
        // --- IP addresses ---
        Case { name: "IpAddress inside IPv4 range", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}"#], keys: &[("aws:SourceIp", &["203.0.113.7"])], expect: Allow, ..BASE },
        Case { name: "IpAddress outside IPv4 range", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}"#], keys: &[("aws:SourceIp", &["198.51.100.1"])], ..BASE },
        Case { name: "IpAddress single address", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"IpAddress":{"aws:SourceIp":"198.51.100.1"}}}"#], keys: &[("aws:SourceIp", &["198.51.100.1"])], expect: Allow, ..BASE },
        Case { name: "IpAddress IPv6 inside /64", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"IpAddress":{"aws:SourceIp":"2001:DB8:1234:5678::/64"}}}"#], keys: &[("aws:SourceIp", &["2001:db8:1234:5678::abcd"])], expect: Allow, ..BASE },
        Case { name: "IpAddress IPv6 outside /64", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"IpAddress":{"aws:SourceIp":"2001:DB8:1234:5678::/64"}}}"#], keys: &[("aws:SourceIp", &["2001:db8:1234:5679::1"])], ..BASE },
        Case { name: "IpAddress IPv4 caller vs IPv6 range", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"IpAddress":{"aws:SourceIp":"::/0"}}}"#], keys: &[("aws:SourceIp", &["10.0.0.1"])], ..BASE },
        Case { name: "NotIpAddress deny: outside office", identity: &[ALLOW_ALL, OFFICE_ONLY], keys: &[("aws:SourceIp", &["192.0.2.10"])], expect: DenyId(Some("OfficeOnly")), ..BASE },
        Case { name: "NotIpAddress deny: inside office (IPv4)", identity: &[ALLOW_ALL, OFFICE_ONLY], keys: &[("aws:SourceIp", &["203.0.113.200"])], expect: Allow, ..BASE },
        Case { name: "NotIpAddress deny: inside office (IPv6)", identity: &[ALLOW_ALL, OFFICE_ONLY], keys: &[("aws:SourceIp", &["2001:db8:1234:5678:1::9"])], expect: Allow, ..BASE },
        Case { name: "NotIpAddress deny: IPv6 outside office", identity: &[ALLOW_ALL, OFFICE_ONLY], keys: &[("aws:SourceIp", &["2001:db8:ffff::1"])], expect: DenyId(Some("OfficeOnly")), ..BASE },
        Case { name: "NotIpAddress deny: SourceIp missing means true", identity: &[ALLOW_ALL, OFFICE_ONLY], expect: DenyId(Some("OfficeOnly")), ..BASE },
        Case { name: "NotIpAddressIfExists deny: SourceIp missing is true too", identity: &[ALLOW_ALL, r#"{"Effect":"Deny","Action":"*","Resource":"*",
            "Condition":{"NotIpAddressIfExists":{"aws:SourceIp":"203.0.113.0/24"}}}"#], expect: DenyId(None), ..BASE },
        Case { name: "IpAddressIfExists allow: SourceIp missing", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"IpAddressIfExists":{"aws:SourceIp":"203.0.113.0/24"}}}"#], expect: Allow, ..BASE },
        Case { name: "unreadable SourceIp satisfies neither form", identity: &[ALLOW_ALL, OFFICE_ONLY], keys: &[("aws:SourceIp", &["not-an-ip"])], expect: Allow, ..BASE },
        // --- Bool ---
        Case { name: "Bool deny: plain HTTP", identity: &[ALLOW_ALL, TLS_ONLY], keys: &[("aws:SecureTransport", &["false"])], expect: DenyId(Some("TlsOnly")), ..BASE },
        Case { name: "Bool deny: TLS", identity: &[ALLOW_ALL, TLS_ONLY], keys: &[("aws:SecureTransport", &["true"])], expect: Allow, ..BASE },
        Case { name: "Bool deny: key missing means false", identity: &[ALLOW_ALL, TLS_ONLY], expect: Allow, ..BASE },
        Case { name: "Bool values are case-insensitive", identity: &[ALLOW_ALL, TLS_ONLY], keys: &[("aws:SecureTransport", &["FALSE"])], expect: DenyId(Some("TlsOnly")), ..BASE },
        Case { name: "Bool with a JSON boolean", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"Bool":{"aws:SecureTransport":true}}}"#], keys: &[("aws:SecureTransport", &["true"])], expect: Allow, ..BASE },
        // --- Dates ---
        Case { name: "DateLessThan: before the end", identity: &[UNTIL_2030], keys: &[("aws:CurrentTime", &["2026-05-01T12:00:00Z"])], expect: Allow, ..BASE },
        Case { name: "DateLessThan: after the end", identity: &[UNTIL_2030], keys: &[("aws:CurrentTime", &["2031-01-01T00:00:00Z"])], ..BASE },
        Case { name: "DateLessThan: exactly the end", identity: &[UNTIL_2030], keys: &[("aws:CurrentTime", &["2030-01-01T00:00:00Z"])], ..BASE },
        Case { name: "DateLessThan: time key missing", identity: &[UNTIL_2030], ..BASE },
        Case { name: "DateLessThan: offset in the request", identity: &[UNTIL_2030], keys: &[("aws:CurrentTime", &["2030-01-01T00:30:00+01:00"])], expect: Allow, ..BASE },
        Case { name: "DateGreaterThan epoch seconds policy value", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"DateGreaterThan":{"aws:CurrentTime":1735689600}}}"#], keys: &[("aws:CurrentTime", &["2025-01-01T00:00:01Z"])], expect: Allow, ..BASE },
        Case { name: "DateGreaterThanEquals boundary", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"DateGreaterThanEquals":{"aws:EpochTime":"2025-01-01"}}}"#], keys: &[("aws:EpochTime", &["1735689600"])], expect: Allow, ..BASE },
        Case { name: "DateLessThanEquals with fraction", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"DateLessThanEquals":{"aws:CurrentTime":"2025-01-01T00:00:00.500Z"}}}"#], keys: &[("aws:CurrentTime", &["2025-01-01T00:00:00.501Z"])], ..BASE },
        Case { name: "DateEquals across notations", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"DateEquals":{"aws:CurrentTime":"2025-01-01T01:00:00+01:00"}}}"#], keys: &[("aws:CurrentTime", &["1735689600"])], expect: Allow, ..BASE },
        Case { name: "DateNotEquals deny", identity: &[ALLOW_ALL, r#"{"Effect":"Deny","Action":"*","Resource":"*",
            "Condition":{"DateNotEquals":{"aws:CurrentTime":"2025-01-01T00:00:00Z"}}}"#], keys: &[("aws:CurrentTime", &["2025-01-02T00:00:00Z"])], expect: DenyId(None), ..BASE },
        Case { name: "unreadable date satisfies neither form", identity: &[ALLOW_ALL, r#"{"Effect":"Deny","Action":"*","Resource":"*",
            "Condition":{"DateNotEquals":{"aws:CurrentTime":"2025-01-01T00:00:00Z"}}}"#], keys: &[("aws:CurrentTime", &["yesterday"])], expect: Allow, ..BASE },
        // --- Numbers ---
        Case { name: "NumericLessThan holds", identity: &[MFA_FRESH], keys: &[("aws:MultiFactorAuthAge", &["120"])], expect: Allow, ..BASE },
        Case { name: "NumericLessThan fails", identity: &[MFA_FRESH], keys: &[("aws:MultiFactorAuthAge", &["7200"])], ..BASE },
        Case { name: "NumericLessThan non-number", identity: &[MFA_FRESH], keys: &[("aws:MultiFactorAuthAge", &["soon"])], ..BASE },
        Case { name: "NumericEquals compares values, not text", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"NumericEquals":{"secretsmanager:RecoveryWindowInDays":"7.0"}}}"#], keys: &[("secretsmanager:RecoveryWindowInDays", &["7"])], expect: Allow, ..BASE },
        Case { name: "NumericGreaterThanEquals boundary", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"NumericGreaterThanEquals":{"secretsmanager:RecoveryWindowInDays":7}}}"#], keys: &[("secretsmanager:RecoveryWindowInDays", &["7"])], expect: Allow, ..BASE },
        Case { name: "NumericNotEquals deny", identity: &[ALLOW_ALL, r#"{"Effect":"Deny","Action":"*","Resource":"*",
            "Condition":{"NumericNotEquals":{"secretsmanager:RecoveryWindowInDays":[7,30]}}}"#], keys: &[("secretsmanager:RecoveryWindowInDays", &["14"])], expect: DenyId(None), ..BASE },
        // --- IfExists and Null ---
        Case { name: "StringEqualsIfExists: key missing", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"StringEqualsIfExists":{"secretsmanager:ResourceTag/team":"a"}}}"#], expect: Allow, ..BASE },
        Case { name: "StringEqualsIfExists: key present, mismatch", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"StringEqualsIfExists":{"secretsmanager:ResourceTag/team":"a"}}}"#], keys: &[("secretsmanager:ResourceTag/team", &["b"])], ..BASE },
        Case { name: "key set with no values counts as missing", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"StringEqualsIfExists":{"secretsmanager:ResourceTag/team":"a"}}}"#], keys: &[("secretsmanager:ResourceTag/team", &[])], expect: Allow, ..BASE },
        Case { name: "Null true: key absent", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"Null":{"secretsmanager:ResourceTag/team":"true"}}}"#], expect: Allow, ..BASE },
        Case { name: "Null true: key present", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"Null":{"secretsmanager:ResourceTag/team":"true"}}}"#], keys: &[("secretsmanager:ResourceTag/team", &["a"])], ..BASE },
        Case { name: "Null false: key present", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"Null":{"secretsmanager:ResourceTag/team":false}}}"#], keys: &[("secretsmanager:ResourceTag/team", &["a"])], expect: Allow, ..BASE },
        Case { name: "Null deny: untagged secrets are off limits", identity: &[ALLOW_ALL, r#"{"Sid":"Untagged","Effect":"Deny","Action":"*","Resource":"*",
            "Condition":{"Null":{"secretsmanager:ResourceTag/team":"true"}}}"#], expect: DenyId(Some("Untagged")), ..BASE },
        // --- Set operators ---
        Case { name: "ForAllValues: subset", identity: &[TAGS_SUBSET], action: "secretsmanager:TagResource", keys: &[("aws:TagKeys", &["team"])], expect: Allow, ..BASE },
        Case { name: "ForAllValues: not a subset", identity: &[TAGS_SUBSET], action: "secretsmanager:TagResource", keys: &[("aws:TagKeys", &["team", "cost"])], ..BASE },
        Case { name: "ForAllValues: key missing is true", identity: &[TAGS_SUBSET], action: "secretsmanager:TagResource", expect: Allow, ..BASE },
        Case { name: "ForAnyValue: one matches", identity: &[TAGS_ANY], action: "secretsmanager:TagResource", keys: &[("aws:TagKeys", &["cost", "env"])], expect: Allow, ..BASE },
        Case { name: "ForAnyValue: none matches", identity: &[TAGS_ANY], action: "secretsmanager:TagResource", keys: &[("aws:TagKeys", &["cost"])], ..BASE },
        Case { name: "ForAnyValue: key missing is false", identity: &[TAGS_ANY], action: "secretsmanager:TagResource", ..BASE },
        Case { name: "ForAnyValue:StringEqualsIfExists: key missing", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"ForAnyValue:StringEqualsIfExists":{"aws:TagKeys":"team"}}}"#], expect: Allow, ..BASE },
        Case { name: "ForAllValues:StringNotLike deny: key1 prefixed", identity: &[ALLOW_ALL, DENY_TAG_PREFIX], action: "secretsmanager:TagResource",
            keys: &[("aws:TagKeys", &["key1:hr", "key1:personnel"])], expect: Allow, ..BASE },
        Case { name: "ForAllValues:StringNotLike deny: other prefix", identity: &[ALLOW_ALL, DENY_TAG_PREFIX], action: "secretsmanager:TagResource",
            keys: &[("aws:TagKeys", &["key2:audit"])], expect: DenyId(Some("DenyRestrictedTags")), ..BASE },
        Case { name: "ForAllValues:StringNotLike deny: no tag keys", identity: &[ALLOW_ALL, DENY_TAG_PREFIX], action: "secretsmanager:TagResource",
            expect: DenyId(Some("DenyRestrictedTags")), ..BASE },
        Case { name: "ForAnyValue:StringLike", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"ForAnyValue:StringLike":{"aws:TagKeys":"team*"}}}"#], keys: &[("aws:TagKeys", &["cost", "team-x"])], expect: Allow, ..BASE },
        // --- ARN conditions ---
        Case { name: "RotationLambdaARN ArnLike match", identity: &[ROTATION_FN], action: "secretsmanager:RotateSecret",
            keys: &[("secretsmanager:RotationLambdaARN", &["arn:aws:lambda:us-east-1:123456789012:function:rotate-db"])], expect: Allow, ..BASE },
        Case { name: "RotationLambdaARN other account", identity: &[ROTATION_FN], action: "secretsmanager:RotateSecret",
            keys: &[("secretsmanager:RotationLambdaARN", &["arn:aws:lambda:us-east-1:999999999999:function:rotate-db"])], ..BASE },
        Case { name: "RotationLambdaARN not an ARN", identity: &[ROTATION_FN], action: "secretsmanager:RotateSecret",
            keys: &[("secretsmanager:RotationLambdaARN", &["rotate-db"])], ..BASE },
        Case { name: "ArnLike wildcard within one segment", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"ArnLike":{"secretsmanager:RotationLambdaARN":"arn:aws:lambda:us-*:123456789012:function:x"}}}"#],
            keys: &[("secretsmanager:RotationLambdaARN", &["arn:aws:lambda:us-east-1:123456789012:function:x"])], expect: Allow, ..BASE },
        Case { name: "ArnLike wildcard cannot span segments", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"ArnLike":{"secretsmanager:RotationLambdaARN":"arn:aws:lambda:*:function:x"}}}"#],
            keys: &[("secretsmanager:RotationLambdaARN", &["arn:aws:lambda:us-east-1:123456789012:function:x"])], ..BASE },
        Case { name: "ArnEquals exact", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/alice"}}}"#], expect: Allow, ..BASE },
        Case { name: "ArnNotLike deny", identity: &[ALLOW_ALL, r#"{"Sid":"AdminsOnly","Effect":"Deny","Action":"kura:*","Resource":"*",
            "Condition":{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/admins/*"}}}"#], action: CREATE_USER, resource: "*",
            expect: DenyId(Some("AdminsOnly")), ..BASE },
        // --- Policy variables ---
        Case { name: "${aws:username} in Resource: own prefix", identity: &[OWN_SECRETS], resource: ALICE_KEY, expect: Allow, ..BASE },
        Case { name: "${aws:username} in Resource: someone else's", identity: &[OWN_SECRETS], principal: BOB, resource: ALICE_KEY, ..BASE },
        Case { name: "variables are literal in 2008-10-17 policies", identity: &[r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow",
            "Action":"*","Resource":"arn:aws:secretsmanager:*:123456789012:secret:${aws:username}/*"}]}"#], resource: ALICE_KEY, ..BASE },
        Case { name: "variable in a condition value", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"StringEquals":{"secretsmanager:ResourceTag/owner":"${aws:username}"}}}"#],
            keys: &[("secretsmanager:ResourceTag/owner", &["alice"])], expect: Allow, ..BASE },
        Case { name: "variable default value", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"StringEquals":{"secretsmanager:ResourceTag/team":"${aws:PrincipalTag/team, 'none'}"}}}"#],
            keys: &[("secretsmanager:ResourceTag/team", &["none"])], expect: Allow, ..BASE },
        Case { name: "unresolvable variable voids a Deny", identity: &[ALLOW_ALL, r#"{"Effect":"Deny","Action":"*","Resource":"*",
            "Condition":{"StringNotEquals":{"secretsmanager:ResourceTag/team":"${aws:PrincipalTag/team}"}}}"#],
            keys: &[("secretsmanager:ResourceTag/team", &["a"])], expect: Allow, ..BASE },
        Case { name: "${*} is a literal star", identity: &[r#"{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"StringLike":{"secretsmanager:ResourceTag/team":"a${*}"}}}"#],
            keys: &[("secretsmanager:ResourceTag/team", &["ab"])], ..BASE },
    ];

    fn doc(text: &str, kind: PolicyKind) -> PolicyDocument {
        let text = if text.trim_start().starts_with(r#"{"Version""#) {
            text.to_owned()
        } else {
            format!(r#"{{"Version":"2012-10-17","Statement":[{text}]}}"#)
        };
        parse(&text, kind).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn keys(pairs: Keys) -> ConditionKeys {
        let mut keys = ConditionKeys::new();
        for (k, v) in pairs {
            keys.set(k, v.iter().copied());
        }
        keys
    }

    fn run(case: &Case) -> Decision {
        let identity: Vec<PolicyDocument> = case
            .identity
            .iter()
            .map(|t| doc(t, PolicyKind::Identity))
            .collect();
        let identity: Vec<&PolicyDocument> = identity.iter().collect();
        let rp = case.resource_policy.map(|t| doc(t, PolicyKind::Resource));
        let keys = keys(case.keys);
        let ctx = RequestContext {
            principal_arn: case.principal,
            account: ACCOUNT,
            action: case.action,
            resource: case.resource,
            keys: &keys,
        };
        evaluate(&ctx, &identity, rp.as_ref())
    }

    fn fits(expect: Expect, got: &Decision) -> bool {
        match (expect, got) {
            (Allow, Decision::Allow) | (Implicit, Decision::ImplicitDeny) => true,
            (
                DenyId(sid),
                Decision::ExplicitDeny {
                    statement,
                    policy: PolicySource::Identity { .. },
                },
            )
            | (
                DenyRp(sid),
                Decision::ExplicitDeny {
                    statement,
                    policy: PolicySource::Resource,
                },
            ) => statement.as_deref() == sid,
            _ => false,
        }
    }

    #[test]
    fn decision_table() {
        assert!(CASES.len() >= 60, "{} cases", CASES.len());
        let mut names = std::collections::HashSet::new();
        let failures: Vec<String> = CASES
            .iter()
            .filter_map(|case| {
                assert!(
                    names.insert(case.name),
                    "duplicate case name {:?}",
                    case.name
                );
                let got = run(case);
                (!fits(case.expect, &got))
                    .then(|| format!("{}: expected {:?}, got {got:?}", case.name, case.expect))
            })
            .collect();
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn deny_reports_which_policy() {
        let case = Case {
            identity: &[
                ALLOW_ALL,
                r#"{"Sid":"Second","Effect":"Deny","Action":"*","Resource":"*"}"#,
            ],
            ..BASE
        };
        assert_eq!(
            run(&case),
            Decision::ExplicitDeny {
                statement: Some("Second".into()),
                policy: PolicySource::Identity { index: 1 }
            }
        );
        // An empty Sid is reported as none.
        let case = Case {
            identity: &[r#"{"Sid":"","Effect":"Deny","Action":"*","Resource":"*"}"#],
            ..BASE
        };
        assert_eq!(
            run(&case),
            Decision::ExplicitDeny {
                statement: None,
                policy: PolicySource::Identity { index: 0 }
            }
        );
    }

    #[test]
    fn denial_messages_follow_aws_wording() {
        let keys = ConditionKeys::new();
        let ctx = RequestContext {
            principal_arn: ALICE,
            account: ACCOUNT,
            action: GET,
            resource: PROD_DB,
            keys: &keys,
        };
        assert_eq!(Decision::Allow.denial_message(&ctx), None);
        assert_eq!(
            Decision::ImplicitDeny.denial_message(&ctx).unwrap(),
            format!(
                "User: {ALICE} is not authorized to perform: {GET} on resource: {PROD_DB} because no identity-based policy allows the {GET} action"
            )
        );
        let rp = Decision::ExplicitDeny {
            statement: Some("Lockdown".into()),
            policy: PolicySource::Resource,
        };
        let msg = rp.denial_message(&ctx).unwrap();
        assert!(
            msg.ends_with("with an explicit deny in a resource-based policy"),
            "{msg}"
        );
        assert!(!msg.contains("Lockdown"), "Sids stay internal: {msg}");
        assert_eq!(
            rp.to_string(),
            "explicitly denied by statement \"Lockdown\" of the resource policy"
        );
        let id = Decision::ExplicitDeny {
            statement: None,
            policy: PolicySource::Identity { index: 2 },
        };
        let list = RequestContext {
            action: LIST,
            resource: "*",
            ..ctx
        };
        assert_eq!(
            id.denial_message(&list).unwrap(),
            format!(
                "User: {ALICE} is not authorized to perform: {LIST} with an explicit deny in an identity-based policy"
            )
        );
        assert_eq!(
            id.to_string(),
            "explicitly denied by a statement without Sid of identity policy #2"
        );
        assert_eq!(
            Decision::ImplicitDeny.to_string(),
            "implicitly denied: no statement allows it"
        );
        assert!(Decision::Allow.is_allow() && !id.is_allow());
    }

    #[test]
    fn condition_keys_are_case_insensitive() {
        let mut keys = ConditionKeys::new().with("aws:SourceIp", ["10.0.0.1"]);
        assert_eq!(keys.get("AWS:SOURCEIP"), Some(&["10.0.0.1".to_owned()][..]));
        keys.set("aws:sourceip", ["10.0.0.2", "10.0.0.3"]);
        assert_eq!(keys.get("aws:SourceIp").map(<[String]>::len), Some(2));
        assert_eq!(keys.remove("Aws:SourceIP").map(|v| v.len()), Some(2));
        assert_eq!(keys.get("aws:SourceIp"), None);
    }

    #[test]
    fn request_time_keys() {
        let now = DateTime::parse_from_rfc3339("2026-03-04T05:06:07.890Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut keys = ConditionKeys::new();
        keys.set_request_time(now);
        assert_eq!(
            keys.get("aws:CurrentTime"),
            Some(&["2026-03-04T05:06:07Z".to_owned()][..])
        );
        assert_eq!(
            keys.get("aws:EpochTime"),
            Some(&["1772600767".to_owned()][..])
        );
    }

    #[test]
    fn derived_keys_and_overrides() {
        let keys = ConditionKeys::new();
        let ctx = RequestContext {
            principal_arn: "arn:aws:iam::123456789012:user/ops/carol",
            account: ACCOUNT,
            action: GET,
            resource: PROD_DB,
            keys: &keys,
        };
        let env = Env::new(&ctx);
        assert_eq!(env.lookup("aws:username"), Some(vec!["carol"]));
        assert_eq!(env.lookup("AWS:PrincipalType"), Some(vec!["User"]));
        assert_eq!(env.lookup("aws:PrincipalAccount"), Some(vec![ACCOUNT]));
        let root = RequestContext {
            principal_arn: ROOT,
            ..ctx
        };
        let env = Env::new(&root);
        assert_eq!(env.lookup("aws:username"), None);
        assert_eq!(env.lookup("aws:PrincipalType"), Some(vec!["Account"]));
        // Supplied keys win over derived ones.
        let keys = ConditionKeys::new().with("aws:username", ["override"]);
        let ctx = RequestContext { keys: &keys, ..ctx };
        assert_eq!(
            Env::new(&ctx).lookup("aws:username"),
            Some(vec!["override"])
        );
    }

    #[test]
    fn glob_matching() {
        let any = |p: &str, t: &str| glob(&tokens(p, Wildcards::Anywhere), t, false);
        assert!(any("*", ""));
        assert!(any("a*b*c", "axxbyyc"));
        assert!(!any("a*b*c", "axxbyy"));
        assert!(any("a?c", "abc") && !any("a?c", "ac"));
        assert!(any("*:*", "x:y:z"));
        assert!(!any("abc", "ABC"));
        assert!(glob(&tokens("ABC*", Wildcards::Anywhere), "abcdef", true));
        // Literal wildcard characters with Wildcards::None.
        assert!(!glob(&tokens("a*", Wildcards::None), "ab", false));
        assert!(glob(&tokens("a*", Wildcards::None), "a*", false));
        // Pathological patterns stay polynomial.
        let long = "a".repeat(2000);
        assert!(!any(&"*a".repeat(200), &format!("{long}b")));
        let arn = |p: &str, t: &str| glob(&tokens(p, Wildcards::ArnSegments), t, false);
        assert!(arn("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a:b"));
        assert!(!arn("arn:aws:s3:::b*t", "arn:aws:s3:::b:t"));
        assert!(!arn("arn:aws:s3:::b?t", "arn:aws:s3:::b:t"));
        assert!(arn("arn:aws:*:bucket", "arn:aws:s3:::bucket"));
    }

    #[test]
    fn time_parsing() {
        let t = |v: &str| parse_time(v);
        let base = t("2025-01-01T00:00:00Z").unwrap();
        assert_eq!(t("1735689600"), Some(base));
        assert_eq!(t("1735689600.5"), Some(base + 500_000_000));
        assert_eq!(t("2025-01-01"), Some(base));
        assert_eq!(t("2025-01-01T00:00Z"), Some(base));
        assert_eq!(t("2025-01-01T00:00:00"), Some(base));
        assert_eq!(t("2025-01-01T02:00:00+02:00"), Some(base));
        assert_eq!(t("20250101T000000Z"), Some(base));
        assert_eq!(t("2025-01-01T00:00:00.25Z"), Some(base + 250_000_000));
        assert_eq!(t("-1"), Some(-1_000_000_000));
        for bad in [
            "",
            "tomorrow",
            "2025-13-01",
            "1.2.3",
            "2025-01-01T25:00:00Z",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn number_and_network_parsing() {
        assert_eq!(parse_number("3600"), Some(3600.0));
        assert_eq!(parse_number("-1.5e2"), Some(-150.0));
        for bad in ["", "inf", "NaN", "0x10", "1,000", "e", "-"] {
            assert_eq!(parse_number(bad), None, "{bad}");
        }
        assert!(parse_cidr("10.0.0.0/33").is_none());
        assert!(parse_cidr("10.0.0.0/").is_none());
        assert!(parse_cidr("::/129").is_none());
        let (net, len) = parse_cidr("203.0.113.9/24").unwrap();
        assert!(in_network("203.0.113.1".parse().unwrap(), net, len));
        let (net, len) = parse_cidr("0.0.0.0/0").unwrap();
        assert!(in_network("255.255.255.255".parse().unwrap(), net, len));
        let (net, len) = parse_cidr("2001:db8::1").unwrap();
        assert_eq!(len, 128);
        assert!(in_network("2001:db8::1".parse().unwrap(), net, len));
        assert!(!in_network("2001:db8::2".parse().unwrap(), net, len));
    }

    #[test]
    fn variable_syntax() {
        let keys = ConditionKeys::new()
            .with("aws:PrincipalTag/team", ["blue"])
            .with("aws:TagKeys", ["a", "b"]);
        let ctx = RequestContext {
            principal_arn: ALICE,
            account: ACCOUNT,
            action: GET,
            resource: PROD_DB,
            keys: &keys,
        };
        let env = Env::new(&ctx);
        let expand = |s: &str| {
            env.expand(s, true, Wildcards::None)
                .map(|toks| untokenize(&toks))
        };
        assert_eq!(
            expand("u-${aws:username}-${AWS:principaltag/TEAM}"),
            Ok("u-alice-blue".into())
        );
        assert_eq!(expand("${ aws:missing , 'it''s' }!"), Ok("it's!".into()));
        assert_eq!(expand("${*}${?}${$}"), Ok("*?$".into()));
        assert_eq!(expand("${aws:TagKeys}"), Err(Unusable), "multi-valued");
        assert_eq!(expand("${aws:TagKeys, 'x'}"), Ok("x".into()));
        for bad in ["${aws:missing}", "${", "${}", "${a, x}", "${a, 'x'"] {
            assert_eq!(expand(bad), Err(Unusable), "{bad}");
        }
        // Substituted text is literal even where wildcards are live.
        let toks = env.expand("x${*}", true, Wildcards::Anywhere).unwrap();
        assert_eq!(toks, vec![Tok::Lit('x'), Tok::Lit('*')]);
    }

    #[test]
    fn hand_built_unknown_operator_voids_the_statement() {
        let mut deny = doc(
            r#"{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#,
            PolicyKind::Identity,
        );
        deny.statements[0].condition[0].operator = "BoolIsh".into();
        let allow = doc(ALLOW_ALL, PolicyKind::Identity);
        let keys = ConditionKeys::new().with("aws:SecureTransport", ["false"]);
        let ctx = RequestContext {
            principal_arn: ALICE,
            account: ACCOUNT,
            action: GET,
            resource: PROD_DB,
            keys: &keys,
        };
        assert_eq!(evaluate(&ctx, &[&allow, &deny], None), Decision::Allow);
    }

    /// The obvious backtracking matcher: exponential, so only for short inputs, but plainly
    /// right. The dynamic-programming `glob` must agree with it.
    fn reference_glob(p: &[Tok], t: &[char], ignore_case: bool) -> bool {
        let same =
            |a: char, b: char| a == b || (ignore_case && a.to_lowercase().eq(b.to_lowercase()));
        match p.split_first() {
            None => t.is_empty(),
            Some((Tok::Lit(c), rest)) => {
                t.first().is_some_and(|x| same(*c, *x))
                    && reference_glob(rest, &t[1..], ignore_case)
            }
            Some((Tok::One { colons }, rest)) => t.first().is_some_and(|x| {
                (*colons || *x != ':') && reference_glob(rest, &t[1..], ignore_case)
            }),
            Some((Tok::Star { colons }, rest)) => (0..=t.len())
                .take_while(|&n| n == 0 || *colons || t[n - 1] != ':')
                .any(|n| reference_glob(rest, &t[n..], ignore_case)),
        }
    }

    proptest::proptest! {
        #[test]
        fn glob_agrees_with_backtracking(
            pattern in "[ab:*?A]{0,10}",
            text in "[ab:A]{0,10}",
            arn in proptest::bool::ANY,
            ignore_case in proptest::bool::ANY,
        ) {
            let wild = if arn { Wildcards::ArnSegments } else { Wildcards::Anywhere };
            let toks = tokens(&pattern, wild);
            let chars: Vec<char> = text.chars().collect();
            proptest::prop_assert_eq!(
                glob(&toks, &text, ignore_case),
                reference_glob(&toks, &chars, ignore_case)
            );
        }

        #[test]
        fn arn_like_never_panics(pattern in "[a*:?é]{0,40}", value in "[a*:é]{0,40}") {
            let toks = tokens(&pattern, Wildcards::Anywhere);
            if let Some(segments) = arn_segments(&format!("arn:{value}")) {
                let _ = arn_like(&toks, &segments);
            }
        }
    }

    #[test]
    fn key_policy_is_the_root_of_access_to_a_key() {
        const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/k1";
        let doc = |t: &str, kind| parse(t, kind).unwrap();
        let alice_may = doc(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#,
            PolicyKind::Identity,
        );
        let direct = doc(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/bob"},"Action":"kms:Decrypt","Resource":"*"}]}"#,
            PolicyKind::Resource,
        );
        let to_iam = doc(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"kms:*","Resource":"*"}]}"#,
            PolicyKind::Resource,
        );
        let deny_alice = doc(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"kms:*","Resource":"*"},{"Sid":"NoAlice","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"kms:Decrypt","Resource":"*"}]}"#,
            PolicyKind::Resource,
        );
        let keys = ConditionKeys::new();
        let ctx = |who, action| RequestContext {
            principal_arn: who,
            account: ACCOUNT,
            action,
            resource: KEY,
            keys: &keys,
        };
        let decrypt = "kms:Decrypt";
        // Named in the key policy: allowed without any identity policy; others are not.
        assert!(evaluate_key_policy(&ctx(BOB, decrypt), &[], &direct).is_allow());
        assert_eq!(
            evaluate_key_policy(&ctx(BOB, "kms:GenerateDataKey"), &[], &direct),
            Decision::ImplicitDeny
        );
        // An identity policy alone does not open a key whose policy does not delegate.
        assert_eq!(
            evaluate_key_policy(&ctx(ALICE, decrypt), &[&alice_may], &direct),
            Decision::ImplicitDeny
        );
        // Delegated to the account: the identity policy decides.
        assert!(evaluate_key_policy(&ctx(ALICE, decrypt), &[&alice_may], &to_iam).is_allow());
        assert_eq!(
            evaluate_key_policy(&ctx(BOB, decrypt), &[], &to_iam),
            Decision::ImplicitDeny
        );
        // An explicit Deny in the key policy wins over the delegation and the identity Allow.
        assert_eq!(
            evaluate_key_policy(&ctx(ALICE, decrypt), &[&alice_may], &deny_alice),
            Decision::ExplicitDeny {
                statement: Some("NoAlice".into()),
                policy: PolicySource::Resource
            }
        );
        assert!(
            evaluate_key_policy(
                &ctx(ALICE, "kms:GenerateDataKey"),
                &[&alice_may],
                &deny_alice
            )
            .is_allow()
        );
    }
}
