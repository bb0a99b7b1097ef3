//! Property tests for the parsers of kura-core that read what a client sends: secret names and
//! ARNs (`names.rs`) and rotation schedules (`schedule.rs`). Arbitrary and hostile input must
//! never panic nor take more than linear time (a hang is the failure: no timings are asserted),
//! and what parses, prints and parses again is the same value.
//!
//! The default case count runs in CI; `PROPTEST_CASES=1000000` runs a long soak.

use kura_core::Timestamp;
use kura_core::names::{
    SecretRef, validate_description, validate_name, validate_tag, validate_version_id,
};
use kura_core::schedule::{RotationRules, Schedule};
use proptest::prelude::*;

/// Strings from the characters parsers treat specially, plus arbitrary unicode.
fn hostile_text(max: usize) -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("arn:".to_string()),
        Just(":".to_string()),
        Just("secret".to_string()),
        Just("secretsmanager".to_string()),
        Just("-".to_string()),
        Just("*".to_string()),
        Just("?".to_string()),
        Just("/".to_string()),
        Just(" ".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("é".to_string()),
        Just("\u{0}".to_string()),
        Just("𝄞".to_string()),
        Just("99999999999999999999".to_string()),
        any::<char>().prop_map(String::from),
        "[a-zA-Z0-9/_+=.@-]{1,8}",
    ];
    prop::collection::vec(pieces, 0..max).prop_map(|v| v.concat())
}

/// A name AWS accepts.
fn valid_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9/_+=.@-]{1,512}"
}

/// A SecretId that parses: a name, or a secret ARN with or without its suffix.
fn secret_id() -> impl Strategy<Value = String> {
    prop_oneof![
        valid_name(),
        (
            "[a-z0-9-]{0,20}",
            "[0-9]{0,12}",
            valid_name(),
            prop::option::of("[a-zA-Z0-9]{6}")
        )
            .prop_map(|(region, account, name, suffix)| {
                let suffix = suffix.map(|s| format!("-{s}")).unwrap_or_default();
                format!("arn:aws:secretsmanager:{region}:{account}:secret:{name}{suffix}")
            }),
    ]
}

proptest! {
    #[test]
    fn names_never_panic(s in hostile_text(64)) {
        let _ = validate_name(&s);
        let _ = validate_description(&s);
        let _ = validate_version_id("VersionId", &s);
        let _ = validate_tag(&s, &s);
        let _ = SecretRef::parse(&s);
    }

    #[test]
    fn names_never_panic_on_any_string(s in any::<String>()) {
        let _ = validate_name(&s);
        let _ = validate_description(&s);
        let _ = validate_version_id("ClientRequestToken", &s);
        let _ = validate_tag(&s, &s);
        let _ = SecretRef::parse(&s);
    }

    /// A parsed SecretId prints as itself and parses to the same reference.
    #[test]
    fn secret_ref_round_trips(id in prop_oneof![secret_id(), hostile_text(32)]) {
        if let Ok(r) = SecretRef::parse(&id) {
            let printed = r.to_string();
            prop_assert_eq!(&printed, &id);
            prop_assert_eq!(SecretRef::parse(&printed).ok(), Some(r));
        }
    }

    #[test]
    fn valid_secret_ids_parse(id in secret_id()) {
        prop_assert!(SecretRef::parse(&id).is_ok(), "{id:?}");
    }

    #[test]
    fn valid_names_validate(name in valid_name()) {
        prop_assert!(validate_name(&name).is_ok());
    }
}

/// A cron or rate field drawn from what the parser handles specially, plus junk.
fn cron_field() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("*".to_string()),
        Just("?".to_string()),
        Just("L".to_string()),
        Just("LW".to_string()),
        Just("W".to_string()),
        Just("#".to_string()),
        Just("-".to_string()),
        Just("/".to_string()),
        Just(",".to_string()),
        Just("MON".to_string()),
        Just("sun".to_string()),
        Just("JAN".to_string()),
        Just("dec".to_string()),
        Just("é".to_string()),
        Just("4294967296".to_string()),
        Just("99999999999999999999999".to_string()),
        (0u32..2300).prop_map(|n| n.to_string()),
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(atom, 1..6).prop_map(|v| v.concat())
}

/// A field that is well-formed for its position more often than not.
fn likely_field(pool: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(pool).prop_map(str::to_string),
        1 => cron_field(),
    ]
}

fn cron_expression() -> impl Strategy<Value = String> {
    (
        prop_oneof![(0u32..70).prop_map(|n| n.to_string()), cron_field()],
        likely_field(&["*", "0", "23", "0/6", "1-5", "*/3", "9"]),
        likely_field(&[
            "?", "*", "L", "LW", "15W", "31", "29", "1-31/7", "30,31", "0W",
        ]),
        likely_field(&["*", "JAN", "2", "FEB-MAR", "*/5", "4,6,9,11", "feb"]),
        likely_field(&[
            "?", "*", "MON-FRI", "6L", "2#5", "L", "1,7", "7#5", "SUN/3", "1#1",
        ]),
        likely_field(&[
            "*",
            "2027",
            "2199",
            "1970-1980",
            "*/50",
            "2020",
            "2100",
            "1970/229",
        ]),
    )
        .prop_map(|(a, b, c, d, e, f)| format!("cron({a} {b} {c} {d} {e} {f})"))
}

fn rate_expression() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            (0u64..30_000).prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            cron_field(),
        ],
        prop::sample::select(
            &[
                "hour", "hours", "day", "days", "month", "months", "HOURS", "x", "",
            ][..],
        ),
    )
        .prop_map(|(n, unit)| format!("rate({n} {unit})"))
}

fn rules() -> impl Strategy<Value = RotationRules> {
    let expression = prop_oneof![
        3 => cron_expression(),
        2 => rate_expression(),
        1 => hostile_text(24),
        // Deep nesting and long inputs: the parser must stay linear.
        1 => (1usize..2000).prop_map(|n| format!("{}cron(0 0 * * ? *){}", "(".repeat(n), ")".repeat(n))),
        1 => (1usize..5000).prop_map(|n| format!("cron(0 0 {} * ? *)", vec!["1"; n].join(","))),
    ];
    let duration = prop_oneof![
        4 => (0u32..30).prop_map(|h| format!("{h}h")),
        1 => any::<u64>().prop_map(|h| format!("{h}h")),
        1 => hostile_text(8),
    ];
    // Both AutomaticallyAfterDays and an expression is an error: mostly send one of them.
    let days = prop_oneof![-5i64..1200, any::<i64>()];
    let which = prop_oneof![
        (days.clone(), Just(None)).prop_map(|(d, e)| (Some(d), e)),
        expression.clone().prop_map(|e| (None, Some(e))),
        expression.prop_map(|e| (None, Some(e))),
        (prop::option::of(days), Just(None::<String>)).prop_map(|(d, e)| (d, e)),
    ];
    (which, prop::option::weighted(0.4, duration)).prop_map(|((days, expr), duration)| {
        RotationRules {
            automatically_after_days: days,
            schedule_expression: expr,
            duration,
        }
    })
}

fn instant() -> impl Strategy<Value = i64> {
    prop_oneof![
        // 1900..2300, where schedules live.
        -2_208_988_800_000i64..10_413_792_000_000,
        any::<i64>(),
        Just(i64::MIN),
        Just(i64::MAX),
    ]
}

proptest! {
    /// Parsing never panics; what parses echoes rules that parse to the same schedule, and
    /// every window it yields is non-empty and after its anchor.
    #[test]
    fn schedules_round_trip_and_yield_sane_windows(
        r in rules(),
        anchor in instant(),
        now in instant(),
    ) {
        let Ok(Some(s)) = Schedule::from_rules(&r) else {
            return Ok(());
        };
        let echoed = s.to_rules();
        let again = Schedule::from_rules(&echoed).ok().flatten();
        prop_assert_eq!(again.as_ref(), Some(&s));
        if let Some(w) = s.next_window(Timestamp(anchor)) {
            prop_assert!(w.start.0 > anchor && w.start < w.end, "{r:?} after {anchor}: {w:?}");
        }
        if let Some(w) = s.due_window(Timestamp(anchor), Timestamp(now)) {
            prop_assert!(w.start < w.end, "{r:?}: {w:?}");
        }
    }

    #[test]
    fn schedule_parsing_never_panics_on_any_string(
        expr in any::<String>(),
        duration in prop::option::of(any::<String>()),
    ) {
        let _ = Schedule::from_rules(&RotationRules {
            automatically_after_days: None,
            schedule_expression: Some(expr),
            duration,
        });
    }
}

/// Large adversarial inputs, once each: they finish (a hang is the failure) and are refused
/// or accepted without panicking.
#[test]
fn large_adversarial_inputs_finish() {
    let long = "*".repeat(10_000);
    let many_fields = vec!["*"; 10_000].join(" ");
    let commas = vec!["1"; 10_000].join(",");
    for expr in [
        format!("cron({long})"),
        format!("cron(0 0 {long} * ? *)"),
        format!("cron({many_fields})"),
        format!("cron(0 0 {commas} * ? *)"),
        format!("cron(0 0 ? * {commas} *)"),
        format!("rate({} days)", "9".repeat(10_000)),
        format!("{}{}", "(".repeat(10_000), ")".repeat(10_000)),
    ] {
        let _ = Schedule::from_rules(&RotationRules {
            schedule_expression: Some(expr),
            duration: Some(format!("{}h", "9".repeat(10_000))),
            ..Default::default()
        });
    }
    let long_arn = format!("arn:aws:secretsmanager:{}:secret:x", ":".repeat(10_000));
    assert!(SecretRef::parse(&long_arn).is_err());
    assert!(validate_name(&"é".repeat(10_000)).is_err());
}

/// The generators reach the interesting part: many of their rules parse, so the round-trip
/// property above is not vacuous.
#[test]
fn generated_rules_often_parse() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = rules();
    let parsed = (0..1000)
        .filter(|_| {
            let r = strategy.new_tree(&mut runner).expect("a value").current();
            matches!(Schedule::from_rules(&r), Ok(Some(_)))
        })
        .count();
    assert!(parsed > 100, "only {parsed} of 1000 generated rules parse");
}
