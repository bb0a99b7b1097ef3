//! IAM policy documents: the JSON grammar AWS accepts, parsed into types an evaluator can walk.
//!
//! Parsing goes through `serde_json::Value` rather than derived structs so that every rejection
//! can name the element at fault (`Statement[1].Effect`) and say how to fix it. Element names
//! are case-sensitive, as in AWS; action names and condition keys are kept as written and are
//! case-insensitive for whoever evaluates them.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Secrets Manager's limit on the `ResourcePolicy` parameter.
pub const MAX_RESOURCE_POLICY_BYTES: usize = 20_480;

const STATEMENT_KEYS: &str =
    "Sid, Effect, Principal, NotPrincipal, Action, NotAction, Resource, NotResource, Condition";
const PRINCIPAL_TYPES: [&str; 4] = ["AWS", "Service", "Federated", "CanonicalUser"];
/// Condition keys that tie a grant to a known account, organisation or network.
const NARROWING_KEYS: [&str; 8] = [
    "aws:SourceAccount",
    "aws:SourceArn",
    "aws:PrincipalAccount",
    "aws:PrincipalArn",
    "aws:PrincipalOrgID",
    "aws:SourceVpc",
    "aws:SourceVpce",
    "aws:SourceIp",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    pub version: Option<String>,
    pub id: Option<String>,
    pub statements: Vec<Statement>,
}

/// One statement. The parser guarantees exactly one of `action`/`not_action` and of
/// `resource`/`not_resource`, and for resource policies exactly one of
/// `principal`/`not_principal` (for identity policies, neither).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    pub principal: Option<PrincipalSpec>,
    pub not_principal: Option<PrincipalSpec>,
    pub action: Option<Vec<String>>,
    pub not_action: Option<Vec<String>>,
    pub resource: Option<Vec<String>>,
    pub not_resource: Option<Vec<String>>,
    /// All clauses must hold (AND); within a clause any one value may match (OR).
    pub condition: Vec<ConditionClause>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalSpec {
    /// `"Principal": "*"`: everyone, anonymous callers included.
    Any,
    /// Principal type (`AWS`, `Service`, `Federated`, `CanonicalUser`) to identifiers.
    Typed(BTreeMap<String, Vec<String>>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionClause {
    /// As written, e.g. `"ForAnyValue:StringLike"`; see [`ConditionClause::operator_parts`].
    pub operator: String,
    pub key: String,
    /// JSON strings, numbers and booleans, each in its string form (`3600`, `true`).
    pub values: Vec<String>,
}

/// The set-operator prefix of a condition operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQualifier {
    ForAllValues,
    ForAnyValue,
}

/// A condition operator split into prefix, base operator and `IfExists` suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatorParts<'a> {
    pub qualifier: Option<SetQualifier>,
    /// A base operator such as `"StringLike"` or `"Null"`.
    pub base: &'a str,
    pub if_exists: bool,
}

impl ConditionClause {
    /// `None` only for a clause built by hand with an unknown operator.
    pub fn operator_parts(&self) -> Option<OperatorParts<'_>> {
        operator_parts(&self.operator)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// Where the fault is, e.g. `"Statement[1].Effect"`; empty for the document as a whole.
    pub path: String,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for PolicyError {}

/// Resource policies name their principals; identity policies apply to whoever holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Resource,
    Identity,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> PolicyError {
    let (path, message) = (path.into(), message.into());
    PolicyError { path, message }
}

/// `return Err(..)` with a formatted message.
macro_rules! bail {
    ($path:expr, $($fmt:tt)+) => {
        return Err(err($path, format!($($fmt)+)))
    };
}

/// A JSON value for an error message, cut short so a huge value can't flood it.
fn show(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

impl PolicyDocument {
    /// The document as policy JSON, in the grammar [`parse`] reads: parsing it again gives an
    /// equal document. Lists are always written as arrays, statements always as an array.
    pub fn to_json(&self) -> String {
        let strings = |v: &[String]| Value::from(v.to_vec());
        let principal = |p: &PrincipalSpec| match p {
            PrincipalSpec::Any => Value::from("*"),
            PrincipalSpec::Typed(m) => Value::Object(
                m.iter()
                    .map(|(ty, ids)| (ty.clone(), strings(ids)))
                    .collect(),
            ),
        };
        let statement = |s: &Statement| {
            let mut o = Map::new();
            if let Some(sid) = &s.sid {
                o.insert("Sid".into(), sid.clone().into());
            }
            let effect = match s.effect {
                Effect::Allow => "Allow",
                Effect::Deny => "Deny",
            };
            o.insert("Effect".into(), effect.into());
            let parts = [
                ("Principal", s.principal.as_ref().map(principal)),
                ("NotPrincipal", s.not_principal.as_ref().map(principal)),
                ("Action", s.action.as_deref().map(strings)),
                ("NotAction", s.not_action.as_deref().map(strings)),
                ("Resource", s.resource.as_deref().map(strings)),
                ("NotResource", s.not_resource.as_deref().map(strings)),
            ];
            for (name, value) in parts {
                if let Some(v) = value {
                    o.insert(name.into(), v);
                }
            }
            if !s.condition.is_empty() {
                let mut ops = Map::new();
                for c in &s.condition {
                    let keys = ops
                        .entry(c.operator.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(keys) = keys {
                        keys.insert(c.key.clone(), strings(&c.values));
                    }
                }
                o.insert("Condition".into(), Value::Object(ops));
            }
            Value::Object(o)
        };
        let mut top = Map::new();
        if let Some(v) = &self.version {
            top.insert("Version".into(), v.clone().into());
        }
        if let Some(id) = &self.id {
            top.insert("Id".into(), id.clone().into());
        }
        let statements = self.statements.iter().map(statement).collect();
        top.insert("Statement".into(), Value::Array(statements));
        Value::Object(top).to_string()
    }
}

/// Parses and validates. Errors point at the faulty element.
pub fn parse(text: &str, kind: PolicyKind) -> Result<PolicyDocument, PolicyError> {
    if kind == PolicyKind::Resource && text.len() > MAX_RESOURCE_POLICY_BYTES {
        let n = text.len();
        bail!(
            "",
            "The policy is {n} bytes; a resource policy may be at most {MAX_RESOURCE_POLICY_BYTES} bytes."
        );
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = UniqueKeys
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| err("", format!("The policy is not valid JSON: {e}.")))?;
    let Value::Object(top) = value else {
        bail!(
            "",
            "The policy must be a JSON object with \"Version\" and \"Statement\"."
        );
    };
    if let Some(key) = top
        .keys()
        .find(|k| !["Version", "Id", "Statement"].contains(&k.as_str()))
    {
        bail!(
            key,
            "unknown element \"{key}\"; a policy has only Version, Id and Statement."
        );
    }
    let version = match top.get("Version") {
        None => None,
        Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => Some(v.clone()),
        Some(v) => bail!(
            "Version",
            "Version must be \"2012-10-17\" (or the older \"2008-10-17\"), not {}.",
            show(v)
        ),
    };
    let id = match top.get("Id") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => bail!("Id", "Id must be a string, not {}.", show(v)),
    };
    // A lone statement object is as valid as a one-element array; paths follow what was written.
    let raw: Vec<(String, &Value)> = match top.get("Statement") {
        None => bail!("", "The policy needs a \"Statement\" element."),
        Some(v @ Value::Object(_)) => vec![("Statement".to_owned(), v)],
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("Statement[{i}]"), v))
            .collect(),
        Some(_) => bail!(
            "Statement",
            "Statement must be a statement object or a non-empty array of them."
        ),
    };
    let mut statements = Vec::with_capacity(raw.len());
    let mut sids: HashMap<&str, &str> = HashMap::new();
    for (path, v) in &raw {
        statements.push(parse_statement(v, path, kind)?);
    }
    for (stmt, (path, _)) in statements.iter().zip(&raw) {
        // Empty Sids are exempt: some generators (e.g. Terraform) emit `"Sid": ""` everywhere.
        if let Some(sid) = stmt.sid.as_deref().filter(|s| !s.is_empty())
            && let Some(first) = sids.insert(sid, path)
        {
            bail!(
                format!("{path}.Sid"),
                "Sid \"{sid}\" is already used by {first}; each Sid must be unique."
            );
        }
    }
    Ok(PolicyDocument {
        version,
        id,
        statements,
    })
}

fn parse_statement(v: &Value, path: &str, kind: PolicyKind) -> Result<Statement, PolicyError> {
    let Value::Object(obj) = v else {
        bail!(path, "a statement must be a JSON object.");
    };
    if let Some(key) = obj
        .keys()
        .find(|k| !STATEMENT_KEYS.split(", ").any(|s| s == *k))
    {
        bail!(
            format!("{path}.{key}"),
            "unknown element \"{key}\"; a statement may contain only {STATEMENT_KEYS}."
        );
    }
    let sid = match obj.get("Sid") {
        None => None,
        Some(Value::String(s)) if s.bytes().all(|b| b.is_ascii_alphanumeric()) => Some(s.clone()),
        Some(v) => bail!(
            format!("{path}.Sid"),
            "Sid may contain only ASCII letters and digits, not {}.",
            show(v)
        ),
    };
    let effect = match obj.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => match obj.get("Effect") {
            None => bail!(path, "a statement needs \"Effect\": \"Allow\" or \"Deny\"."),
            Some(v) => bail!(
                format!("{path}.Effect"),
                "Effect must be \"Allow\" or \"Deny\", not {}.",
                show(v)
            ),
        },
    };
    let (principal, not_principal) = match kind {
        PolicyKind::Resource => pair(obj, path, "Principal", "NotPrincipal", parse_principal)?,
        PolicyKind::Identity => {
            if let Some(k) = ["Principal", "NotPrincipal"]
                .into_iter()
                .find(|k| obj.contains_key(*k))
            {
                bail!(
                    format!("{path}.{k}"),
                    "{k} is not allowed in an identity policy: it applies to the user or role it is attached to."
                );
            }
            (None, None)
        }
    };
    let actions = |v: &Value, p: &str, name: &str| strings(v, p, name, check_action);
    let (action, not_action) = pair(obj, path, "Action", "NotAction", actions)?;
    let resources = |v: &Value, p: &str, name: &str| strings(v, p, name, check_resource);
    let (resource, not_resource) = pair(obj, path, "Resource", "NotResource", resources)?;
    let condition = match obj.get("Condition") {
        None => Vec::new(),
        Some(c) => parse_condition(c, &format!("{path}.Condition"))?,
    };
    Ok(Statement {
        sid,
        effect,
        principal,
        not_principal,
        action,
        not_action,
        resource,
        not_resource,
        condition,
    })
}

/// Enforces "exactly one of `yes` / `no`" and parses whichever is present.
fn pair<T>(
    obj: &Map<String, Value>,
    path: &str,
    yes: &str,
    no: &str,
    parse: impl Fn(&Value, &str, &str) -> Result<T, PolicyError>,
) -> Result<(Option<T>, Option<T>), PolicyError> {
    let one = |name: &str| {
        let parsed = obj
            .get(name)
            .map(|v| parse(v, &format!("{path}.{name}"), name));
        parsed.transpose()
    };
    match (obj.contains_key(yes), obj.contains_key(no)) {
        (true, true) => bail!(
            path,
            "a statement may have \"{yes}\" or \"{no}\", not both."
        ),
        (false, false) => bail!(path, "a statement needs \"{yes}\" or \"{no}\"."),
        _ => Ok((one(yes)?, one(no)?)),
    }
}

/// A string or a non-empty array of strings, each passing `check`.
fn strings(
    v: &Value,
    path: &str,
    name: &str,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<Vec<String>, PolicyError> {
    let items: Vec<(String, &Value)> = match v {
        Value::String(_) => vec![(path.to_owned(), v)],
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .enumerate()
            .map(|(i, x)| (format!("{path}[{i}]"), x))
            .collect(),
        _ => bail!(
            path,
            "{name} must be a string or a non-empty array of strings, not {}.",
            show(v)
        ),
    };
    let item = |(p, x): (String, &Value)| match x {
        Value::String(s) if s.is_empty() => bail!(p, "{name} entries must not be empty."),
        Value::String(s) => check(s).map(|()| s.clone()).map_err(|m| err(p, m)),
        x => bail!(p, "{name} entries must be strings, not {}.", show(x)),
    };
    items.into_iter().map(item).collect()
}

/// `*`, or `service:Pattern` with wildcards only in the action name. AWS treats both parts
/// case-insensitively, so mixed-case prefixes such as `SecretsManager:` are accepted.
fn check_action(a: &str) -> Result<(), String> {
    let valid = a == "*"
        || a.split_once(':').is_some_and(|(service, name)| {
            !service.is_empty()
                && service
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?')
        });
    valid.then_some(()).ok_or_else(|| {
        format!("\"{a}\" is not an action; write \"service:ActionName\" (e.g. \"secretsmanager:GetSecretValue\"), a pattern like \"secretsmanager:Get*\", or \"*\".")
    })
}

/// `*` or `arn:partition:service:region:account:resource`, any part possibly empty or wildcarded.
fn check_resource(r: &str) -> Result<(), String> {
    let valid = r == "*" || (r.starts_with("arn:") && r.split(':').count() >= 6);
    valid.then_some(()).ok_or_else(|| {
        format!("\"{r}\" is not a resource; write \"*\" or an ARN such as \"arn:aws:secretsmanager:us-east-1:123456789012:secret:MySecret-a1b2c3\".")
    })
}

fn parse_principal(v: &Value, path: &str, name: &str) -> Result<PrincipalSpec, PolicyError> {
    match v {
        Value::String(s) if s == "*" => Ok(PrincipalSpec::Any),
        Value::Object(m) if !m.is_empty() => {
            let mut typed = BTreeMap::new();
            for (ty, ids) in m {
                let p = format!("{path}.{ty}");
                if !PRINCIPAL_TYPES.contains(&ty.as_str()) {
                    bail!(
                        p,
                        "unknown principal type \"{ty}\"; use AWS, Service, Federated or CanonicalUser."
                    );
                }
                typed.insert(ty.clone(), strings(ids, &p, ty, |_| Ok(()))?);
            }
            Ok(PrincipalSpec::Typed(typed))
        }
        _ => bail!(
            path,
            "{name} must be \"*\" or an object such as {{\"AWS\": \"arn:aws:iam::123456789012:root\"}}, not {}.",
            show(v)
        ),
    }
}

fn parse_condition(v: &Value, path: &str) -> Result<Vec<ConditionClause>, PolicyError> {
    let Value::Object(ops) = v else {
        bail!(
            path,
            "Condition must be an object of operator to {{key: value}}, e.g. {{\"StringEquals\": {{\"aws:SourceVpce\": \"vpce-1a2b3c4d\"}}}}."
        );
    };
    let mut clauses = Vec::new();
    for (op, keys) in ops {
        let op_path = format!("{path}.{op}");
        if operator_parts(op).is_none() {
            bail!(
                op_path,
                "unknown condition operator \"{op}\"; use e.g. StringEquals, StringLike, ArnLike, NumericLessThan, DateGreaterThan, Bool, IpAddress or Null, optionally with an IfExists suffix (not on Null) or a ForAllValues:/ForAnyValue: prefix."
            );
        }
        let Value::Object(keys) = keys else {
            bail!(
                op_path,
                "{op} must map condition keys to values, e.g. {{\"aws:PrincipalAccount\": \"123456789012\"}}."
            );
        };
        for (key, raw) in keys {
            let key_path = format!("{op_path}.{key}");
            if key.is_empty() {
                bail!(key_path, "a condition key must not be empty.");
            }
            let values = match raw {
                Value::Array(a) if a.is_empty() => {
                    bail!(key_path, "give at least one value to compare against.")
                }
                Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .map(|(i, x)| condition_value(x, format!("{key_path}[{i}]")))
                    .collect::<Result<_, _>>()?,
                x => vec![condition_value(x, key_path)?],
            };
            clauses.push(ConditionClause {
                operator: op.clone(),
                key: key.clone(),
                values,
            });
        }
    }
    Ok(clauses)
}

fn condition_value(v: &Value, path: String) -> Result<String, PolicyError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => bail!(
            path,
            "a condition value must be a string, number or boolean, not {}.",
            show(v)
        ),
    }
}

/// Splits `ForAnyValue:StringLikeIfExists` into its parts; `None` for an unknown operator.
pub fn operator_parts(op: &str) -> Option<OperatorParts<'_>> {
    // Base operators by family: prefix followed by one of the space-separated tails.
    const ORDER: &str = "Equals NotEquals LessThan LessThanEquals GreaterThan GreaterThanEquals";
    const STRING: &str = "Equals NotEquals EqualsIgnoreCase NotEqualsIgnoreCase Like NotLike";
    const ARN: &str = "Equals Like NotEquals NotLike";
    const OTHER: &str = "Bool BinaryEquals IpAddress NotIpAddress Null";
    let (qualifier, rest) = if let Some(r) = op.strip_prefix("ForAllValues:") {
        (Some(SetQualifier::ForAllValues), r)
    } else if let Some(r) = op.strip_prefix("ForAnyValue:") {
        (Some(SetQualifier::ForAnyValue), r)
    } else {
        (None, op)
    };
    let (base, if_exists) = rest
        .strip_suffix("IfExists")
        .map_or((rest, false), |b| (b, true));
    let family = |prefix: &str, tails: &str| {
        let tail = base.strip_prefix(prefix);
        tail.is_some_and(|t| tails.split(' ').any(|x| x == t))
    };
    let known = family("String", STRING)
        || family("Numeric", ORDER)
        || family("Date", ORDER)
        || family("Arn", ARN)
        || family("", OTHER);
    // NullIfExists would be meaningless: Null itself tests whether the key exists.
    (known && !(if_exists && base == "Null")).then_some(OperatorParts {
        qualifier,
        base,
        if_exists,
    })
}

/// True when some Allow statement grants access to everyone without a condition that narrows
/// it to a known account, organisation or network. Used for BlockPublicPolicy.
pub fn is_public(doc: &PolicyDocument) -> bool {
    doc.statements.iter().any(|s| {
        // Allow + NotPrincipal grants everyone except those named, anonymous callers included.
        let everyone = s.not_principal.is_some()
            || match &s.principal {
                Some(PrincipalSpec::Any) => true,
                Some(PrincipalSpec::Typed(m)) => {
                    m.get("AWS").is_some_and(|ids| ids.iter().any(|p| p == "*"))
                }
                None => false,
            };
        s.effect == Effect::Allow && everyone && !s.condition.iter().any(narrows)
    })
}

/// A clause narrows only if it *requires* a narrowing key to match: negated operators, `Null`,
/// `IfExists` and `ForAllValues` all hold when the key is absent or different, and a Like
/// pattern of `*` matches anything. Condition key names are case-insensitive in AWS.
fn narrows(c: &ConditionClause) -> bool {
    let Some(p) = c.operator_parts() else {
        return false;
    };
    let negated = p.base.contains("Not") || p.base == "Null";
    let matches_all = p.base.ends_with("Like") && c.values.iter().any(|v| v == "*");
    NARROWING_KEYS
        .iter()
        .any(|k| k.eq_ignore_ascii_case(&c.key))
        && !negated
        && !matches_all
        && !p.if_exists
        && p.qualifier != Some(SetQualifier::ForAllValues)
}

/// Builds a `Value` as serde_json does but rejects duplicate object keys, which serde_json
/// would silently resolve to the last (`"Effect": "Deny", "Effect": "Allow"` must not pass).
struct UniqueKeys;

impl<'de> DeserializeSeed<'de> for UniqueKeys {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        let n = serde_json::Number::from_f64(v);
        n.map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(UniqueKeys)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key \"{key}\"")));
            }
            let v = map.next_value_seed(UniqueKeys)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(text: &str) -> PolicyDocument {
        parse(text, PolicyKind::Resource).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// Parses as a resource policy, expecting an error at `path` whose message contains `phrase`.
    fn fails(text: &str, path: &str, phrase: &str) {
        fails_as(PolicyKind::Resource, text, path, phrase);
    }

    fn fails_as(kind: PolicyKind, text: &str, path: &str, phrase: &str) {
        match parse(text, kind) {
            Ok(doc) => panic!("accepted {text}: {doc:?}"),
            Err(e) => {
                assert_eq!(e.path, path, "{e}");
                assert!(e.message.contains(phrase), "{e:?} lacks {phrase:?}");
            }
        }
    }

    /// A one-statement resource policy with the given extra statement members.
    fn stmt(members: &str) -> String {
        format!(r#"{{"Version":"2012-10-17","Statement":[{{{members}}}]}}"#)
    }

    const GRANT: &str =
        r#""Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*""#;

    fn public_with(principal: &str, condition: &str) -> bool {
        let cond = if condition.is_empty() {
            String::new()
        } else {
            format!(r#","Condition":{condition}"#)
        };
        is_public(&resource(&stmt(&format!(
            r#"{GRANT},"Principal":{principal}{cond}"#
        ))))
    }

    // AWS Secrets Manager user guide, "Read one secret (attach to a secret)".
    #[test]
    fn aws_example_role_reads_one_secret() {
        let doc = resource(
            r#"{
              "Version": "2012-10-17",
              "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:role/EC2RoleToAccessSecrets"},
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*"
              }]
            }"#,
        );
        assert_eq!(doc.version.as_deref(), Some("2012-10-17"));
        let s = &doc.statements[0];
        assert_eq!(s.effect, Effect::Allow);
        assert_eq!(
            s.principal,
            Some(PrincipalSpec::Typed(BTreeMap::from([(
                "AWS".to_owned(),
                vec!["arn:aws:iam::123456789012:role/EC2RoleToAccessSecrets".to_owned()]
            )])))
        );
        assert_eq!(
            s.action,
            Some(vec!["secretsmanager:GetSecretValue".to_owned()])
        );
        assert_eq!(s.resource, Some(vec!["*".to_owned()]));
        assert!(s.not_action.is_none() && s.not_resource.is_none() && s.condition.is_empty());
        assert!(!is_public(&doc));
    }

    // AWS Secrets Manager permissions reference, "VPC endpoint conditions".
    #[test]
    fn aws_example_deny_unless_vpc_endpoint() {
        let doc = resource(
            r#"{
              "Id": "example-policy-1",
              "Version": "2012-10-17",
              "Statement": [{
                "Sid": "RestrictGetSecretValueoperation",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:sourceVpce": "vpce-1234a5678b9012c"}}
              }]
            }"#,
        );
        assert_eq!(doc.id.as_deref(), Some("example-policy-1"));
        let s = &doc.statements[0];
        assert_eq!(s.sid.as_deref(), Some("RestrictGetSecretValueoperation"));
        assert_eq!(s.principal, Some(PrincipalSpec::Any));
        assert_eq!(
            s.condition,
            vec![ConditionClause {
                operator: "StringNotEquals".into(),
                key: "aws:sourceVpce".into(),
                values: vec!["vpce-1234a5678b9012c".into()],
            }]
        );
        assert!(!is_public(&doc), "a Deny never makes a policy public");
    }

    // AWS knowledge center: full access for one user, then an explicit deny.
    #[test]
    fn aws_example_user_full_access_and_explicit_deny() {
        for effect in ["Allow", "Deny"] {
            let doc = resource(&format!(
                r#"{{"Version": "2012-10-17", "Statement": [{{
                  "Effect": "{effect}", "Action": "secretsmanager:*",
                  "Principal": {{"AWS": "arn:aws:iam::123456789999:user/Mary"}}, "Resource": "*"}}]}}"#
            ));
            assert!(!is_public(&doc));
        }
    }

    #[test]
    fn cross_account_with_version_stage_condition_and_lists() {
        let doc = resource(
            r#"{"Version":"2012-10-17","Statement":[{
              "Sid": "CrossAccount1",
              "Effect": "Allow",
              "Principal": {"AWS": ["arn:aws:iam::111122223333:root", "444455556666"],
                            "Service": "lambda.amazonaws.com"},
              "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "kms:Decrypt"],
              "Resource": ["arn:aws:secretsmanager:us-east-1:123456789012:secret:Prod-*"],
              "Condition": {"ForAnyValue:StringEquals": {"secretsmanager:VersionStage": "AWSCURRENT"}}
            }]}"#,
        );
        let s = &doc.statements[0];
        let Some(PrincipalSpec::Typed(m)) = &s.principal else {
            panic!("{s:?}")
        };
        assert_eq!(m["AWS"].len(), 2);
        assert_eq!(m["Service"], vec!["lambda.amazonaws.com"]);
        assert_eq!(s.action.as_ref().map(Vec::len), Some(3));
        let parts = s.condition[0].operator_parts();
        assert_eq!(
            parts,
            Some(OperatorParts {
                qualifier: Some(SetQualifier::ForAnyValue),
                base: "StringEquals",
                if_exists: false
            })
        );
    }

    #[test]
    fn single_statement_object_and_missing_or_old_version() {
        let doc = resource(&format!(
            r#"{{"Statement":{{{GRANT},"Principal":{{"AWS":"123456789012"}}}}}}"#
        ));
        assert_eq!(doc.version, None);
        assert_eq!(doc.statements.len(), 1);
        resource(&format!(
            r#"{{"Version":"2008-10-17","Statement":{{{GRANT},"Principal":"*"}}}}"#
        ));
        // Paths follow the form written: no index for a lone statement object.
        fails(
            r#"{"Statement":{"Effect":"Permit","Action":"*","Resource":"*","Principal":"*"}}"#,
            "Statement.Effect",
            "Permit",
        );
    }

    #[test]
    fn condition_values_keep_their_string_form() {
        let doc = resource(&stmt(&format!(
            r#"{GRANT},"Principal":{{"AWS":"111122223333"}},"Condition":{{
              "NumericLessThan": {{"aws:MultiFactorAuthAge": 3600}},
              "Bool": {{"aws:SecureTransport": true}},
              "DateGreaterThan": {{"aws:CurrentTime": ["2024-01-01T00:00:00Z", 1.5]}}}}"#
        )));
        let values: BTreeMap<&str, &[String]> = doc.statements[0]
            .condition
            .iter()
            .map(|c| (c.key.as_str(), c.values.as_slice()))
            .collect();
        assert_eq!(values["aws:MultiFactorAuthAge"], ["3600"]);
        assert_eq!(values["aws:SecureTransport"], ["true"]);
        assert_eq!(values["aws:CurrentTime"], ["2024-01-01T00:00:00Z", "1.5"]);
    }

    #[test]
    fn identity_policy_with_not_action_and_not_resource() {
        let doc = parse(
            r#"{"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","NotAction":"iam:*","NotResource":"arn:aws:iam::123456789012:user/admin"},
              {"Effect":"Allow","Action":"kura:CreateUser","Resource":"*"}]}"#,
            PolicyKind::Identity,
        )
        .unwrap();
        let s = &doc.statements[0];
        assert!(s.principal.is_none() && s.not_principal.is_none());
        assert_eq!(s.not_action, Some(vec!["iam:*".to_owned()]));
        assert!(s.action.is_none() && s.resource.is_none());
        assert!(!is_public(&doc));
    }

    #[test]
    fn action_patterns() {
        for ok in [
            "*",
            "secretsmanager:GetSecretValue",
            "secretsmanager:*",
            "secretsmanager:Get*",
            "secretsmanager:?etSecretValue",
            "kura:CreateUser",
            "SecretsManager:getsecretvalue",
            "resource-groups:List*",
        ] {
            resource(&stmt(&format!(
                r#""Effect":"Allow","Principal":"*","Resource":"*","Action":"{ok}""#
            )));
        }
        for bad in [
            "secretsmanager",
            "secretsmanager:",
            ":GetSecretValue",
            "secrets manager:Get",
            "secretsmanager:Get-Secret",
            "secretsmanager:Get:Value",
            "*:GetSecretValue",
        ] {
            fails(
                &stmt(&format!(
                    r#""Effect":"Allow","Principal":"*","Resource":"*","Action":"{bad}""#
                )),
                "Statement[0].Action",
                "is not an action",
            );
        }
    }

    #[test]
    fn operator_forms() {
        for op in [
            "StringEqualsIfExists",
            "ForAnyValue:StringLike",
            "ForAllValues:StringNotEqualsIgnoreCase",
            "ArnNotLikeIfExists",
            "NumericGreaterThanEquals",
            "DateLessThanEquals",
            "BinaryEquals",
            "NotIpAddress",
            "Null",
        ] {
            assert!(operator_parts(op).is_some(), "{op}");
        }
        let p = operator_parts("ForAllValues:ArnLikeIfExists").unwrap();
        assert_eq!(
            (p.qualifier, p.base, p.if_exists),
            (Some(SetQualifier::ForAllValues), "ArnLike", true)
        );
        for op in [
            "NullIfExists",
            "IfExists",
            "StringEqualz",
            "stringequals",
            "ForSomeValues:StringEquals",
        ] {
            assert!(operator_parts(op).is_none(), "{op}");
        }
    }

    #[test]
    fn error_display_matches_documented_format() {
        let text = format!(
            r#"{{"Statement":[{{{GRANT},"Principal":"*"}},{{"Effect":"Permit","Principal":"*","Action":"*","Resource":"*"}}]}}"#
        );
        let e = parse(&text, PolicyKind::Resource).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"Statement[1].Effect: Effect must be "Allow" or "Deny", not "Permit"."#
        );
        let e = parse(
            r#"{"Statement":[{"Effect":"Deny","Principal":"*","Resource":"*"}]}"#,
            PolicyKind::Resource,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"Statement[0]: a statement needs "Action" or "NotAction"."#
        );
        let e = parse("[]", PolicyKind::Resource).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("The policy must be a JSON object"),
            "{e}"
        );
    }

    #[test]
    fn invalid_json_and_duplicate_keys() {
        fails("{", "", "not valid JSON");
        fails(&format!("{} trailing", stmt(GRANT)), "", "not valid JSON");
        fails(
            r#"{"Statement":[{"Effect":"Deny","Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#,
            "",
            "duplicate key \"Effect\"",
        );
        // serde_json's depth limit still applies through the custom visitor: no stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        fails_as(PolicyKind::Identity, &deep, "", "recursion limit");
    }

    #[test]
    fn top_level_shape() {
        fails(r#""policy""#, "", "must be a JSON object");
        fails(
            r#"{"Version":"2012-10-17","Statment":[]}"#,
            "Statment",
            "unknown element \"Statment\"",
        );
        fails(
            r#"{"Version":"2012-10-18","Statement":[]}"#,
            "Version",
            "2012-10-17",
        );
        fails(
            r#"{"Version":20121017,"Statement":[]}"#,
            "Version",
            "not 20121017",
        );
        fails(
            r#"{"Version":"2012-10-17","Id":7,"Statement":[]}"#,
            "Id",
            "must be a string",
        );
    }

    #[test]
    fn statement_element_shape() {
        fails(r#"{"Version":"2012-10-17"}"#, "", "needs a \"Statement\"");
        fails(
            r#"{"Version":"2012-10-17","Statement":[]}"#,
            "Statement",
            "non-empty array",
        );
        fails(
            r#"{"Version":"2012-10-17","Statement":"Allow"}"#,
            "Statement",
            "non-empty array",
        );
        fails(
            r#"{"Version":"2012-10-17","Statement":["Allow"]}"#,
            "Statement[0]",
            "must be a JSON object",
        );
    }

    #[test]
    fn statement_keys_and_effect() {
        fails(
            &stmt(&format!(r#"{GRANT},"Principal":"*","Actions":"*""#)),
            "Statement[0].Actions",
            "unknown element \"Actions\"",
        );
        fails(
            &stmt(r#""Principal":"*","Action":"*","Resource":"*""#),
            "Statement[0]",
            "needs \"Effect\"",
        );
        fails(
            &stmt(r#""Effect":"allow","Principal":"*","Action":"*","Resource":"*""#),
            "Statement[0].Effect",
            "not \"allow\"",
        );
        fails(
            &stmt(r#""Effect":["Allow"],"Principal":"*","Action":"*","Resource":"*""#),
            "Statement[0].Effect",
            "must be \"Allow\" or \"Deny\"",
        );
    }

    #[test]
    fn action_and_resource_presence_and_shape() {
        fails(
            &stmt(
                r#""Effect":"Allow","Principal":"*","Action":"*","NotAction":"iam:*","Resource":"*""#,
            ),
            "Statement[0]",
            "not both",
        );
        fails(
            &stmt(r#""Effect":"Allow","Principal":"*","Action":"*""#),
            "Statement[0]",
            "needs \"Resource\" or \"NotResource\"",
        );
        fails(
            &stmt(r#""Effect":"Allow","Principal":"*","Action":[],"Resource":"*""#),
            "Statement[0].Action",
            "non-empty array",
        );
        fails(
            &stmt(
                r#""Effect":"Allow","Principal":"*","Action":["secretsmanager:GetSecretValue",5],"Resource":"*""#,
            ),
            "Statement[0].Action[1]",
            "must be strings",
        );
        fails(
            &stmt(r#""Effect":"Allow","Principal":"*","Action":"*","Resource":["*",""]"#),
            "Statement[0].Resource[1]",
            "must not be empty",
        );
        fails(
            &stmt(r#""Effect":"Allow","Principal":"*","Action":"*","NotResource":"MySecret""#),
            "Statement[0].NotResource",
            "\"MySecret\" is not a resource",
        );
    }

    #[test]
    fn principal_rules_by_kind() {
        fails(
            &stmt(GRANT),
            "Statement[0]",
            "needs \"Principal\" or \"NotPrincipal\"",
        );
        fails(
            &stmt(&format!(
                r#"{GRANT},"Principal":"*","NotPrincipal":{{"AWS":"1"}}"#
            )),
            "Statement[0]",
            "not both",
        );
        fails_as(
            PolicyKind::Identity,
            &stmt(&format!(r#"{GRANT},"Principal":"*""#)),
            "Statement[0].Principal",
            "not allowed in an identity policy",
        );
        fails_as(
            PolicyKind::Identity,
            &stmt(&format!(r#"{GRANT},"NotPrincipal":{{"AWS":"1"}}"#)),
            "Statement[0].NotPrincipal",
            "not allowed in an identity policy",
        );
    }

    #[test]
    fn principal_shape() {
        fails(
            &stmt(&format!(
                r#"{GRANT},"Principal":"arn:aws:iam::123456789012:root""#
            )),
            "Statement[0].Principal",
            "must be \"*\" or an object",
        );
        fails(
            &stmt(&format!(r#"{GRANT},"Principal":{{}}"#)),
            "Statement[0].Principal",
            "must be \"*\"",
        );
    }

    #[test]
    fn principal_map_entries() {
        fails(
            &stmt(&format!(r#"{GRANT},"Principal":{{"User":"bob"}}"#)),
            "Statement[0].Principal.User",
            "unknown principal type \"User\"",
        );
        fails(
            &stmt(&format!(r#"{GRANT},"NotPrincipal":{{"AWS":[]}}"#)),
            "Statement[0].NotPrincipal.AWS",
            "non-empty array",
        );
        fails(
            &stmt(&format!(
                r#"{GRANT},"Principal":{{"AWS":["111122223333",null]}}"#
            )),
            "Statement[0].Principal.AWS[1]",
            "must be strings",
        );
    }

    #[test]
    fn sid_characters() {
        fails(
            &stmt(&format!(r#"{GRANT},"Principal":"*","Sid":"allow-read""#)),
            "Statement[0].Sid",
            "only ASCII letters and digits",
        );
    }

    #[test]
    fn sids_must_be_unique_unless_empty() {
        let two = |a: &str, b: &str| {
            format!(
                r#"{{"Statement":[{{"Sid":"{a}",{GRANT},"Principal":"*"}},{{"Sid":"{b}",{GRANT},"Principal":"*"}}]}}"#
            )
        };
        fails(
            &two("Read", "Read"),
            "Statement[1].Sid",
            "already used by Statement[0]",
        );
        resource(&two("Read", "read"));
        resource(&two("", ""));
    }

    #[test]
    fn condition_operator_rules() {
        let with = |cond: &str| stmt(&format!(r#"{GRANT},"Principal":"*","Condition":{cond}"#));
        fails(
            &with(r#""aws:SourceVpce""#),
            "Statement[0].Condition",
            "must be an object",
        );
        fails(
            &with(r#"{"StringEqualz":{"aws:SourceVpce":"vpce-1"}}"#),
            "Statement[0].Condition.StringEqualz",
            "unknown condition operator \"StringEqualz\"",
        );
        fails(
            &with(r#"{"NullIfExists":{"aws:SourceVpce":"true"}}"#),
            "Statement[0].Condition.NullIfExists",
            "unknown condition operator",
        );
    }

    #[test]
    fn condition_value_rules() {
        let with = |cond: &str| stmt(&format!(r#"{GRANT},"Principal":"*","Condition":{cond}"#));
        fails(
            &with(r#"{"StringEquals":["aws:SourceVpce","vpce-1"]}"#),
            "Statement[0].Condition.StringEquals",
            "must map condition keys to values",
        );
        fails(
            &with(r#"{"StringEquals":{"aws:SourceVpce":[]}}"#),
            "Statement[0].Condition.StringEquals.aws:SourceVpce",
            "at least one value",
        );
        fails(
            &with(r#"{"StringEquals":{"aws:SourceVpce":null}}"#),
            "Statement[0].Condition.StringEquals.aws:SourceVpce",
            "string, number or boolean",
        );
        fails(
            &with(r#"{"StringLike":{"aws:PrincipalArn":["arn:aws:iam::1:role/a",{"x":1}]}}"#),
            "Statement[0].Condition.StringLike.aws:PrincipalArn[1]",
            "not {\"x\":1}",
        );
        fails(
            &with(r#"{"StringEquals":{"":"x"}}"#),
            "Statement[0].Condition.StringEquals.",
            "must not be empty",
        );
    }

    #[test]
    fn size_limit_applies_to_resource_policies_only() {
        let base = stmt(&format!(r#"{GRANT},"Principal":"*""#));
        let at_limit = format!(
            "{base}{}",
            " ".repeat(MAX_RESOURCE_POLICY_BYTES - base.len())
        );
        resource(&at_limit);
        let over = format!("{at_limit} ");
        fails(&over, "", "at most 20480 bytes");
        let identity = stmt(GRANT);
        let big_identity = format!("{identity}{}", " ".repeat(MAX_RESOURCE_POLICY_BYTES));
        assert!(parse(&big_identity, PolicyKind::Identity).is_ok());
    }

    #[test]
    fn long_values_are_cut_short_in_messages() {
        let long = "x".repeat(500);
        let e = parse(
            &stmt(&format!(
                r#""Effect":"{long}","Principal":"*","Action":"*","Resource":"*""#
            )),
            PolicyKind::Resource,
        )
        .unwrap_err();
        assert!(e.message.len() < 150 && e.message.contains("..."), "{e}");
    }

    #[test]
    fn public_principals() {
        assert!(public_with(r#""*""#, ""));
        assert!(public_with(r#"{"AWS":"*"}"#, ""));
        assert!(public_with(
            r#"{"AWS":["arn:aws:iam::111122223333:root","*"]}"#,
            ""
        ));
        assert!(!public_with(r#"{"AWS":"111122223333"}"#, ""));
        assert!(!public_with(r#"{"Service":"lambda.amazonaws.com"}"#, ""));
    }

    #[test]
    fn allow_with_not_principal_is_public() {
        let doc = resource(&stmt(&format!(
            r#"{GRANT},"NotPrincipal":{{"AWS":"arn:aws:iam::1:user/bob"}}"#
        )));
        assert!(is_public(&doc));
    }

    #[test]
    fn narrowing_conditions_make_it_private() {
        for cond in [
            r#"{"StringEquals":{"aws:PrincipalOrgID":"o-a1b2c3d4e5"}}"#,
            r#"{"StringEquals":{"aws:PrincipalAccount":["111122223333"]}}"#,
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/*"}}"#,
            r#"{"StringEquals":{"aws:sourcevpce":"vpce-1a2b3c4d"}}"#,
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            r#"{"ForAnyValue:StringEquals":{"AWS:SourceVpc":"vpc-1"}}"#,
            r#"{"Bool":{"aws:SecureTransport":"true"},"StringEquals":{"aws:SourceAccount":"111122223333"}}"#,
        ] {
            assert!(!public_with(r#""*""#, cond), "{cond}");
        }
    }

    #[test]
    fn conditions_that_do_not_narrow() {
        for cond in [
            r#"{"Bool":{"aws:SecureTransport":"true"}}"#,
            r#"{"StringEquals":{"secretsmanager:VersionStage":"AWSCURRENT"}}"#,
            r#"{"StringNotEquals":{"aws:SourceAccount":"111122223333"}}"#,
            r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            r#"{"StringEqualsIfExists":{"aws:SourceVpce":"vpce-1a2b3c4d"}}"#,
            r#"{"ForAllValues:StringEquals":{"aws:PrincipalOrgID":"o-a1b2c3d4e5"}}"#,
            r#"{"Null":{"aws:SourceVpc":"false"}}"#,
            r#"{"StringLike":{"aws:PrincipalArn":"*"}}"#,
        ] {
            assert!(public_with(r#"{"AWS":"*"}"#, cond), "{cond}");
        }
    }

    #[test]
    fn empty_condition_block_and_hand_built_clauses() {
        let doc = resource(&stmt(&format!(
            r#"{GRANT},"Principal":"*","Condition":{{}}"#
        )));
        assert!(doc.statements[0].condition.is_empty());
        assert!(is_public(&doc));
        // A clause the parser would have refused never counts as narrowing.
        let mut doc = doc;
        doc.statements[0].condition.push(ConditionClause {
            operator: "StringEqualz".into(),
            key: "aws:PrincipalAccount".into(),
            values: vec!["111122223333".into()],
        });
        assert_eq!(doc.statements[0].condition[0].operator_parts(), None);
        assert!(is_public(&doc));
    }

    #[test]
    fn only_allow_statements_count() {
        let doc = resource(
            r#"{"Statement":[
              {"Effect":"Deny","Principal":"*","Action":"*","Resource":"*"},
              {"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"*","Resource":"*"}]}"#,
        );
        assert!(!is_public(&doc));
    }
}
