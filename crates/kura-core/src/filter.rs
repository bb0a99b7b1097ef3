//! How ListSecrets' (and BatchGetSecretValue's) `Filters` match a secret, as AWS documents it
//! ("Find secrets in AWS Secrets Manager" and the API reference's `Filter`):
//!
//! - `name`, `tag-key`, `tag-value`: the value is a case-sensitive prefix of the field.
//! - `description`, `all`: the value is broken into [`words`]; every word of it must be the
//!   beginning of a word of the description (`all`: of the name, description, a tag key or a
//!   tag value), in any case. A value of special characters alone has no words and matches
//!   nothing.
//! - `primary-region`, `owning-service`: kura neither replicates nor hosts service-owned
//!   secrets, so nothing has them.
//! - `kura:expires-before` (kura's): the secret expires before the value's time (epoch
//!   seconds or RFC 3339); a secret without an expiration does not. A value that is not a
//!   time matches nothing (the service refuses it before it gets here).
//! - A leading `!` negates its value; the values of one filter are alternatives (OR), and
//!   all filters must hold (AND).
//!
//! The store answers the same question in SQL from words computed by [`indexed_words`], so
//! both agree by construction; a property test in kura-store checks it.

use std::collections::BTreeSet;

use crate::model::Tag;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKey {
    Name,
    Description,
    TagKey,
    TagValue,
    PrimaryRegion,
    OwningService,
    All,
    ExpiresBefore,
}

impl FilterKey {
    /// Every key, for checks that must cover them all.
    pub const ALL: [FilterKey; 8] = [
        FilterKey::Name,
        FilterKey::Description,
        FilterKey::TagKey,
        FilterKey::TagValue,
        FilterKey::PrimaryRegion,
        FilterKey::OwningService,
        FilterKey::All,
        FilterKey::ExpiresBefore,
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    pub key: FilterKey,
    /// Values as sent; a leading `!` negates.
    pub values: Vec<String>,
}

/// The fields of a secret that filters look at.
#[derive(Debug, Clone, Copy)]
pub struct SecretText<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub tags: &'a [Tag],
    pub expires_at: Option<crate::Timestamp>,
}

/// Whether a word boundary falls between `prev` and `c` (both letters or digits): a change
/// between letter and digit, from lower to upper case (`credsDatabase`), or before the last
/// capital of a run that starts a word (`HTMLParser` is `HTML`, `Parser`).
fn boundary(prev: char, c: char, next: Option<char>) -> bool {
    prev.is_alphabetic() != c.is_alphabetic()
        || (prev.is_lowercase() && c.is_uppercase())
        || (prev.is_uppercase() && c.is_uppercase() && next.is_some_and(char::is_lowercase))
}

/// The words of `text`, lower-cased, in order: runs of letters and digits, split where
/// [`boundary`] says; everything else separates words and is dropped. `credsDatabase#892`
/// is `creds`, `database`, `892`. Linear in the length of `text`.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut prev: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if !c.is_alphanumeric() {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            prev = None;
            continue;
        }
        if let Some(p) = prev
            && boundary(p, c, chars.peek().copied())
            && !word.is_empty()
        {
            out.push(std::mem::take(&mut word));
        }
        word.extend(c.to_lowercase());
        prev = Some(c);
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Where a word was found: the description, or elsewhere (name, tag key, tag value).
pub const IN_DESCRIPTION: i64 = 1;
pub const ELSEWHERE: i64 = 0;

/// The distinct words a secret can be found by, with where each was found; what the store
/// keeps beside the secret so `description` and `all` filters are index lookups.
pub fn indexed_words(s: &SecretText) -> BTreeSet<(i64, String)> {
    let mut out = BTreeSet::new();
    for w in words(s.description.unwrap_or_default()) {
        out.insert((IN_DESCRIPTION, w));
    }
    let others = std::iter::once(s.name).chain(
        s.tags
            .iter()
            .flat_map(|t| [t.key.as_str(), t.value.as_str()]),
    );
    for text in others {
        for w in words(text) {
            out.insert((ELSEWHERE, w));
        }
    }
    out
}

/// Whether every word of `query` begins some word in `found`.
fn words_match(query: &[String], found: &[String]) -> bool {
    !query.is_empty() && query.iter().all(|q| found.iter().any(|w| w.starts_with(q)))
}

/// Whether one (not negated) filter value matches the secret.
pub fn term_matches(key: FilterKey, term: &str, s: &SecretText) -> bool {
    match key {
        FilterKey::Name => s.name.starts_with(term),
        FilterKey::TagKey => s.tags.iter().any(|t| t.key.starts_with(term)),
        FilterKey::TagValue => s.tags.iter().any(|t| t.value.starts_with(term)),
        FilterKey::Description => {
            words_match(&words(term), &words(s.description.unwrap_or_default()))
        }
        FilterKey::All => {
            let found: Vec<String> = indexed_words(s).into_iter().map(|(_, w)| w).collect();
            words_match(&words(term), &found)
        }
        FilterKey::PrimaryRegion | FilterKey::OwningService => false,
        FilterKey::ExpiresBefore => match crate::expiry::parse_time(term) {
            Some(t) => s.expires_at.is_some_and(|e| e < t),
            None => false,
        },
    }
}

/// Whether a filter value (`!` negating) matches the secret.
pub fn value_matches(key: FilterKey, value: &str, s: &SecretText) -> bool {
    match value.strip_prefix('!') {
        Some(term) => !term_matches(key, term, s),
        None => term_matches(key, value, s),
    }
}

/// Whether the secret passes every filter (one of each filter's values matching).
pub fn matches(filters: &[ListFilter], s: &SecretText) -> bool {
    filters
        .iter()
        .all(|f| f.values.iter().any(|v| value_matches(f.key, v, s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str, value: &str) -> Tag {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }

    fn secret<'a>(name: &'a str, description: Option<&'a str>, tags: &'a [Tag]) -> SecretText<'a> {
        SecretText {
            name,
            description,
            tags,
            expires_at: None,
        }
    }

    fn one(key: FilterKey, values: &[&str]) -> Vec<ListFilter> {
        vec![ListFilter {
            key,
            values: values.iter().map(|v| v.to_string()).collect(),
        }]
    }

    #[test]
    fn words_split_like_aws() {
        // The user guide's example.
        assert_eq!(words("credsDatabase#892"), ["creds", "database", "892"]);
        assert_eq!(words("My_Secret"), ["my", "secret"]);
        assert_eq!(words("prod/db-main_1"), ["prod", "db", "main", "1"]);
        assert_eq!(words("HTMLParser2x"), ["html", "parser", "2", "x"]);
        assert_eq!(words("DatabaseSecret"), ["database", "secret"]);
        assert_eq!(words("Ünïcode Straße"), ["ünïcode", "straße"]);
        assert!(words("#/_= .-!@").is_empty());
        assert!(words("").is_empty());
    }

    #[test]
    fn name_is_a_case_sensitive_prefix() {
        // The user guide: `Name: Data` finds DatabaseSecret, not databaseSecret nor MyData.
        let f = one(FilterKey::Name, &["Data"]);
        assert!(matches(&f, &secret("DatabaseSecret", None, &[])));
        assert!(!matches(&f, &secret("databaseSecret", None, &[])));
        assert!(!matches(&f, &secret("MyData", None, &[])));
    }

    #[test]
    fn tag_keys_and_values_are_case_sensitive_prefixes() {
        let tags = [tag("Environment", "production")];
        let s = secret("x", None, &tags);
        assert!(matches(&one(FilterKey::TagKey, &["Env"]), &s));
        assert!(!matches(&one(FilterKey::TagKey, &["env"]), &s));
        assert!(!matches(&one(FilterKey::TagKey, &["ment"]), &s));
        assert!(matches(&one(FilterKey::TagValue, &["prod"]), &s));
        assert!(!matches(&one(FilterKey::TagValue, &["Prod"]), &s));
        assert!(!matches(
            &one(FilterKey::TagValue, &["x"]),
            &secret("x", None, &[])
        ));
    }

    #[test]
    fn description_matches_words_in_any_case_and_order() {
        // The user guide: `Description: My Description` finds all of these.
        let f = one(FilterKey::Description, &["My Description"]);
        for d in [
            "My Description",
            "my description",
            "My basic description",
            "Description of my secret",
        ] {
            assert!(matches(&f, &secret("x", Some(d), &[])), "{d}");
        }
        assert!(!matches(&f, &secret("x", Some("my secret"), &[])));
        assert!(!matches(&f, &secret("x", None, &[])));
        // The API reference: a prefix match (of a word).
        assert!(matches(
            &one(FilterKey::Description, &["DESC"]),
            &secret("x", Some("My Description"), &[])
        ));
        assert!(!matches(
            &one(FilterKey::Description, &["scription"]),
            &secret("x", Some("My Description"), &[])
        ));
        // The description filter looks at the description only.
        assert!(!matches(
            &one(FilterKey::Description, &["prod"]),
            &secret("prod", Some("other"), &[])
        ));
    }

    #[test]
    fn all_searches_name_description_and_tags_by_words() {
        let tags = [tag("CostCenter", "team42")];
        let s = secret("prod/credsDatabase", Some("The main store"), &tags);
        let all = |v: &str| matches(&one(FilterKey::All, &[v]), &s);
        assert!(!all("credsDatabase#892"), "892 is nowhere");
        assert!(all("creds database"));
        assert!(all("DATA"));
        assert!(all("MAIN"));
        assert!(all("center"));
        assert!(all("team 42"));
        assert!(all("cost store prod"));
        assert!(!all("base"), "words match from their beginning");
        assert!(!all("missing"));
        // Special characters alone match nothing, and their negation everything.
        assert!(!all("#/_"));
        assert!(!all(""));
        assert!(matches(&one(FilterKey::All, &["!/"]), &s));
        // The user guide's unfiltered example.
        assert!(matches(
            &one(FilterKey::All, &["My_Secret"]),
            &secret("MySecret", None, &[])
        ));
    }

    #[test]
    fn values_or_filters_and_negation_applies_to_its_own_value() {
        let s = secret("one/x", Some("first"), &[]);
        let t = secret("two/y", Some("second"), &[]);
        let u = secret("three/z", Some("third"), &[]);
        let f = one(FilterKey::Name, &["one", "!two"]);
        assert!(matches(&f, &s));
        assert!(!matches(&f, &t));
        assert!(matches(&f, &u));
        let f = one(FilterKey::Name, &["!one", "two"]);
        assert!(!matches(&f, &s));
        assert!(matches(&f, &t));
        assert!(matches(&f, &u));
        let mut both = one(FilterKey::Name, &["one", "two"]);
        both.extend(one(FilterKey::Description, &["SEC"]));
        assert!(!matches(&both, &s));
        assert!(matches(&both, &t));
        assert!(!matches(&both, &u));
        assert!(matches(&[], &u));
        // A filter without values lets nothing through.
        assert!(!matches(&one(FilterKey::Name, &[]), &u));
    }

    #[test]
    fn replication_and_service_attributes_are_never_set() {
        let s = secret("a", None, &[]);
        assert!(!matches(&one(FilterKey::PrimaryRegion, &["us"]), &s));
        assert!(matches(&one(FilterKey::OwningService, &["!rds"]), &s));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn key() -> impl Strategy<Value = FilterKey> {
            proptest::sample::select(&FilterKey::ALL[..])
        }

        proptest! {
            #[test]
            fn never_panics(
                name in any::<String>(),
                description in proptest::option::of(any::<String>()),
                tags in proptest::collection::vec((any::<String>(), any::<String>()), 0..4),
                filters in proptest::collection::vec(
                    (key(), proptest::collection::vec(any::<String>(), 0..4)), 0..4),
            ) {
                let tags: Vec<Tag> = tags.into_iter().map(|(key, value)| Tag { key, value }).collect();
                let filters: Vec<ListFilter> =
                    filters.into_iter().map(|(key, values)| ListFilter { key, values }).collect();
                let s = SecretText { name: &name, description: description.as_deref(), tags: &tags, expires_at: None };
                let _ = matches(&filters, &s);
            }

            #[test]
            fn words_are_lower_case_pieces_of_the_text(text in any::<String>()) {
                let ws = words(&text);
                for w in &ws {
                    prop_assert!(!w.is_empty());
                    prop_assert_eq!(w.clone(), w.to_lowercase());
                }
                // Every letter and digit of the text is in some word; nothing else is.
                let kept: usize = ws.iter().map(|w| w.chars().count()).sum();
                let alnum: usize = text.chars().filter(|c| c.is_alphanumeric())
                    .map(|c| c.to_lowercase().count()).sum();
                prop_assert_eq!(kept, alnum);
            }

            #[test]
            fn negation_is_the_complement(
                k in key(), term in "[a-zA-Z0-9 /_]{0,6}", name in "[a-zA-Z0-9/_]{1,8}",
                description in "[a-zA-Z0-9 ]{0,12}",
            ) {
                let s = SecretText { name: &name, description: Some(&description), tags: &[], expires_at: None };
                prop_assert_ne!(
                    value_matches(k, &term, &s),
                    value_matches(k, &format!("!{term}"), &s)
                );
            }
        }
    }
}
