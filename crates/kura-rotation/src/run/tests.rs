use proptest::prelude::*;

use super::*;

const HOUR: i64 = 3_600_000;
const T0: Timestamp = Timestamp(1_767_225_600_000); // 2026-01-01T00:00:00Z

fn daily() -> RotationConfig {
    let mut cfg = RotationConfig {
        enabled: true,
        function_arn: Some("arn:aws:lambda:us-east-1:000000000000:function:kura-password".into()),
        after_days: Some(1),
        ..Default::default()
    };
    plan_next(&mut cfg, T0);
    cfg
}

fn running(token: &str, step: RotationStep, attempt: i64, window_end: Timestamp) -> RotationRun {
    RotationRun {
        step: Some(step),
        attempt,
        ..started(token, window_end, T0)
    }
}

fn stages(pairs: &[(&str, &str)]) -> Stages {
    pairs
        .iter()
        .map(|(s, v)| (s.to_string(), v.to_string()))
        .collect()
}

fn state() -> SecretState {
    let secret = SecretRecord::new(
        "db".into(),
        "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf".into(),
        None,
        Vec::new(),
        T0,
    );
    SecretState {
        secret,
        versions: vec![VersionMeta {
            version_id: "v0".into(),
            created_at: T0,
            accessed_at: None,
            has_value: true,
        }],
        stages: stages(&[(labels::CURRENT, "v0")]),
        new_versions: Vec::new(),
        events: Vec::new(),
    }
}

#[test]
fn the_four_steps_in_order_then_success() {
    let cfg = daily();
    let mut run = started("tok", T0.plus_ms(24 * HOUR), T0);
    let labels_before = stages(&[(labels::CURRENT, "v0"), (labels::PENDING, "tok")]);
    let mut now = T0;
    for next in [
        RotationStep::SetSecret,
        RotationStep::TestSecret,
        RotationStep::FinishSecret,
    ] {
        now = now.plus_ms(1_000);
        let step = run.step.unwrap();
        let t = on_step_succeeded(&run, &cfg, &labels_before, "tok", step, now);
        assert_eq!(t.outcome, Outcome::NextStep { next });
        assert_eq!(t.outcome.announcement(), None);
        assert_eq!(t.run.step, Some(next));
        assert_eq!(t.run.resume_at, Some(now), "the next step is due at once");
        assert_eq!(t.run.phase, RotationPhase::InProgress);
        assert_eq!(t.config, cfg);
        run = t.run;
    }
    now = now.plus_ms(1_000);
    let moved = stages(&[(labels::CURRENT, "tok"), (labels::PREVIOUS, "v0")]);
    let t = on_step_succeeded(&run, &cfg, &moved, "tok", RotationStep::FinishSecret, now);
    assert_eq!(
        t.outcome,
        Outcome::Succeeded {
            version: "tok".into()
        }
    );
    assert_eq!(
        t.outcome.announcement(),
        Some(Announcement::RotationSucceeded { version: "tok" })
    );
    assert_eq!(t.run.phase, RotationPhase::Succeeded);
    assert_eq!(t.run.step, None);
    assert_eq!(t.run.resume_at, None);
    assert_eq!(t.run.window_end, None);
    assert_eq!(t.run.last_error, None);
    assert_eq!(t.run.token.as_deref(), Some("tok"));
    assert_eq!(t.config.last_rotated_at, Some(now));
    // The next window counts from this rotation: tomorrow.
    let next = t.config.next_rotation_at.unwrap();
    assert!(next > now && next <= now.plus_ms(48 * HOUR), "{next:?}");
}

#[test]
fn finish_without_awscurrent_moved_is_reported_and_changes_nothing() {
    let cfg = daily();
    let run = running("tok", RotationStep::FinishSecret, 1, T0.plus_ms(HOUR));
    let labels = stages(&[(labels::CURRENT, "v0"), (labels::PENDING, "tok")]);
    let t = on_step_succeeded(&run, &cfg, &labels, "tok", RotationStep::FinishSecret, T0);
    assert_eq!(
        t.outcome,
        Outcome::CurrentNotMoved {
            message: "finishSecret succeeded but AWSCURRENT is still on version v0, not on tok"
                .into()
        }
    );
    assert_eq!((t.run, t.config), (run.clone(), cfg.clone()));

    let t = on_step_succeeded(
        &run,
        &cfg,
        &Stages::new(),
        "tok",
        RotationStep::FinishSecret,
        T0,
    );
    let Outcome::CurrentNotMoved { message } = t.outcome else {
        panic!("{:?}", t.outcome)
    };
    assert!(message.contains("still on version (none)"), "{message}");
}

#[test]
fn backoff_doubles_from_a_minute_and_stops_at_an_hour() {
    let got: Vec<i64> = (1..=8).map(backoff_ms).collect();
    assert_eq!(
        got,
        [
            60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000, 3_600_000, 3_600_000
        ]
    );
    // Out-of-range attempts neither shrink the wait nor overflow it.
    assert_eq!(backoff_ms(0), 60_000);
    assert_eq!(backoff_ms(-5), 60_000);
    assert_eq!(backoff_ms(i64::MAX), MAX_BACKOFF_MS);
}

#[test]
fn failed_attempts_retry_with_growing_backoff() {
    let cfg = daily();
    let mut run = running("tok", RotationStep::SetSecret, 1, T0.plus_ms(24 * HOUR));
    let mut now = T0;
    for attempt in 1..=4 {
        let t = on_step_failed(&run, &cfg, "tok", RotationStep::SetSecret, "boom", 10, now);
        let at = now.plus_ms(backoff_ms(attempt));
        assert_eq!(t.outcome, Outcome::Retry { at });
        assert_eq!(t.outcome.announcement(), None);
        assert_eq!(t.run.phase, RotationPhase::InProgress);
        assert_eq!(t.run.attempt, attempt + 1);
        assert_eq!(t.run.resume_at, Some(at));
        assert_eq!(t.run.last_attempt_at, Some(now));
        assert_eq!(t.run.last_error.as_deref(), Some("setSecret: boom"));
        assert_eq!(
            t.run.step,
            Some(RotationStep::SetSecret),
            "the same step again"
        );
        assert_eq!(t.config, cfg);
        run = t.run;
        now = at;
    }
}

#[test]
fn the_last_allowed_attempt_fails_the_cycle() {
    let cfg = daily();
    let run = running("tok", RotationStep::TestSecret, 3, T0.plus_ms(24 * HOUR));
    let t = on_step_failed(
        &run,
        &cfg,
        "tok",
        RotationStep::TestSecret,
        "no login",
        3,
        T0,
    );
    assert_eq!(
        t.outcome,
        Outcome::Failed {
            version: Some("tok".into()),
            message: "no login".into()
        }
    );
    assert_eq!(
        t.outcome.announcement(),
        Some(Announcement::RotationFailed {
            version: Some("tok"),
            message: "no login"
        })
    );
    assert_eq!(t.run.phase, RotationPhase::Failed);
    assert_eq!(t.run.resume_at, None);
    assert_eq!(t.run.attempt, 3);
    assert_eq!(
        t.run.step,
        Some(RotationStep::TestSecret),
        "the step that failed"
    );
    assert_eq!(t.run.last_error.as_deref(), Some("testSecret: no login"));
    assert_eq!(t.run.last_attempt_at, Some(T0));
    // The schedule already moved on when the cycle opened.
    assert_eq!(t.config, cfg);

    // A function that cannot even be loaded gets one attempt.
    let first = running("tok", RotationStep::CreateSecret, 1, T0.plus_ms(HOUR * 24));
    let t = on_step_failed(&first, &cfg, "tok", RotationStep::CreateSecret, "x", 1, T0);
    assert!(matches!(t.outcome, Outcome::Failed { .. }));
}

#[test]
fn a_retry_must_fall_inside_the_window() {
    let cfg = daily();
    let retry_at = T0.plus_ms(backoff_ms(1));
    let run = running("tok", RotationStep::CreateSecret, 1, retry_at);
    let t = on_step_failed(&run, &cfg, "tok", RotationStep::CreateSecret, "e", 5, T0);
    assert!(
        matches!(t.outcome, Outcome::Failed { .. }),
        "a retry exactly at the window's end is too late: {:?}",
        t.outcome
    );
    assert_eq!(t.run.resume_at, None);

    let run = running("tok", RotationStep::CreateSecret, 1, retry_at.plus_ms(1));
    let t = on_step_failed(&run, &cfg, "tok", RotationStep::CreateSecret, "e", 5, T0);
    assert_eq!(t.outcome, Outcome::Retry { at: retry_at });

    // A run without a recorded window retries until its attempts run out.
    let mut run = running("tok", RotationStep::CreateSecret, 1, T0);
    run.window_end = None;
    let t = on_step_failed(&run, &cfg, "tok", RotationStep::CreateSecret, "e", 2, T0);
    assert_eq!(t.outcome, Outcome::Retry { at: retry_at });
}

#[test]
fn events_for_another_cycle_change_nothing() {
    let cfg = daily();
    let labels = stages(&[(labels::CURRENT, "old"), (labels::PENDING, "tok")]);
    let live = running("tok", RotationStep::FinishSecret, 2, T0.plus_ms(HOUR));
    let mut failed = live.clone();
    failed.phase = RotationPhase::Failed;
    failed.resume_at = None;
    let idle = RotationRun::default();
    for (run, token) in [(&live, "old"), (&failed, "tok"), (&idle, "tok")] {
        let all = [
            on_step_succeeded(run, &cfg, &labels, token, RotationStep::FinishSecret, T0),
            on_step_failed(run, &cfg, token, RotationStep::FinishSecret, "e", 9, T0),
            on_step_starting(run, &cfg, token, T0, T0.plus_ms(HOUR)),
        ];
        for t in all {
            assert_eq!(t.outcome, Outcome::Stale);
            assert_eq!(&t.run, run);
            assert_eq!(t.config, cfg);
        }
    }
}

#[test]
fn a_late_result_of_an_earlier_step_changes_nothing() {
    // A node whose lease ran out reports setSecret after another node went on to testSecret.
    let cfg = daily();
    let labels = stages(&[(labels::CURRENT, "old"), (labels::PENDING, "tok")]);
    let run = running("tok", RotationStep::TestSecret, 1, T0.plus_ms(HOUR));
    let late = [
        on_step_succeeded(&run, &cfg, &labels, "tok", RotationStep::SetSecret, T0),
        on_step_failed(&run, &cfg, "tok", RotationStep::SetSecret, "e", 9, T0),
    ];
    for t in late {
        assert_eq!(t.outcome, Outcome::Stale);
        assert_eq!(t.run, run);
    }
}

#[test]
fn a_leased_step_is_due_again_when_the_lease_ends() {
    let cfg = daily();
    let run = running("tok", RotationStep::SetSecret, 2, T0.plus_ms(24 * HOUR));
    let now = T0.plus_ms(5_000);
    let until = now.plus_ms(120_000);
    let t = on_step_starting(&run, &cfg, "tok", now, until);
    assert_eq!(t.outcome, Outcome::StepLeased { resume_at: until });
    assert_eq!(t.run.resume_at, Some(until));
    assert_eq!(t.run.last_attempt_at, Some(now));
    assert_eq!(
        (t.run.attempt, t.run.step),
        (2, Some(RotationStep::SetSecret))
    );
}

#[test]
fn scheduled_start_inside_its_window() {
    let mut cfg = daily();
    let start = cfg.next_rotation_at.unwrap();
    let end = cfg.next_rotation_end.unwrap();
    let idle = RotationRun::default();
    assert_eq!(on_scheduled_start(&idle, &cfg, start.plus_ms(-1)), None);
    assert_eq!(
        on_scheduled_start(&idle, &cfg, start),
        Some(CycleWindow { end, missed: false })
    );
    assert_eq!(
        on_scheduled_start(&idle, &cfg, end.plus_ms(-1)),
        Some(CycleWindow { end, missed: false })
    );
    // A cycle already running, or rotation turned off: nothing to start.
    let live = running("tok", RotationStep::SetSecret, 1, end);
    assert_eq!(on_scheduled_start(&live, &cfg, start), None);
    cfg.enabled = false;
    assert_eq!(on_scheduled_start(&idle, &cfg, start), None);
    cfg.enabled = true;
    cfg.next_rotation_at = None;
    assert_eq!(on_scheduled_start(&idle, &cfg, start), None);
}

#[test]
fn a_missed_window_rotates_now_with_a_window_as_long() {
    let idle = RotationRun::default();
    let mut cfg = daily();
    let now = T0.plus_ms(100 * HOUR);
    cfg.next_rotation_at = Some(now.plus_ms(-5 * HOUR));
    cfg.next_rotation_end = Some(now.plus_ms(-2 * HOUR));
    assert_eq!(
        on_scheduled_start(&idle, &cfg, now),
        Some(CycleWindow {
            end: now.plus_ms(3 * HOUR),
            missed: true
        })
    );
    // Ending exactly now counts as missed.
    cfg.next_rotation_end = Some(now);
    assert_eq!(
        on_scheduled_start(&idle, &cfg, now),
        Some(CycleWindow {
            end: now.plus_ms(5 * HOUR),
            missed: true
        })
    );
    // A short missed window still gets an hour.
    cfg.next_rotation_at = Some(now.plus_ms(-HOUR));
    cfg.next_rotation_end = Some(now.plus_ms(-HOUR + 60_000));
    assert_eq!(
        on_scheduled_start(&idle, &cfg, now).map(|w| w.end),
        Some(now.plus_ms(DEFAULT_WINDOW_MS))
    );
    // No recorded end: the window is an hour from its start.
    cfg.next_rotation_end = None;
    cfg.next_rotation_at = Some(now.plus_ms(-30 * 60_000));
    assert_eq!(
        on_scheduled_start(&idle, &cfg, now),
        Some(CycleWindow {
            end: now.plus_ms(30 * 60_000),
            missed: false
        })
    );
}

#[test]
fn a_cycle_that_cannot_open_fails_and_waits_for_the_next_window() {
    let mut cfg = daily();
    let now = cfg.next_rotation_at.unwrap();
    cfg.last_rotated_at = Some(T0);
    let before = RotationRun::default();
    let t = on_start_failed(&before, &cfg, "AWSPENDING is elsewhere", now);
    assert_eq!(
        t.outcome.announcement(),
        Some(Announcement::RotationFailed {
            version: None,
            message: "AWSPENDING is elsewhere"
        })
    );
    assert_eq!(t.run.phase, RotationPhase::Failed);
    assert_eq!(t.run.last_error.as_deref(), Some("AWSPENDING is elsewhere"));
    assert_eq!(t.run.last_attempt_at, Some(now));
    assert_eq!(t.run.resume_at, None);
    assert!(
        t.config.next_rotation_at.unwrap() > now,
        "not again this poll"
    );
    assert_eq!(t.config.last_rotated_at, Some(T0));
}

#[test]
fn cancel_stops_a_running_cycle_and_the_schedule() {
    let cfg = daily();
    let mut run = running("tok", RotationStep::TestSecret, 2, T0.plus_ms(HOUR));
    let now = T0.plus_ms(60_000);
    let t = on_cancel(&run, &cfg, now);
    assert_eq!(t.outcome, Outcome::Cancelled { stopped: true });
    assert_eq!(t.outcome.announcement(), None);
    assert_eq!(t.run.phase, RotationPhase::Failed);
    assert_eq!(
        t.run.last_error.as_deref(),
        Some("cancelled by CancelRotateSecret")
    );
    assert_eq!(t.run.resume_at, None);
    assert_eq!(t.run.last_attempt_at, Some(now), "never attempted: now");
    assert_eq!(t.run.token.as_deref(), Some("tok"));
    assert!(!t.config.enabled);
    assert_eq!(t.config.next_rotation_at, None);
    assert_eq!(t.config.next_rotation_end, None);
    assert_eq!(
        t.config.function_arn, cfg.function_arn,
        "kept for RotateSecret"
    );

    run.last_attempt_at = Some(T0);
    let t = on_cancel(&run, &cfg, now);
    assert_eq!(t.run.last_attempt_at, Some(T0), "an attempt keeps its time");

    let done = RotationRun {
        phase: RotationPhase::Succeeded,
        ..Default::default()
    };
    let t = on_cancel(&done, &cfg, now);
    assert_eq!(t.outcome, Outcome::Cancelled { stopped: false });
    assert_eq!(t.run, done);
    assert!(!t.config.enabled);
}

#[test]
fn apply_writes_run_and_config() {
    let mut st = state();
    st.secret.rotation = daily();
    st.secret.run = running("tok", RotationStep::SetSecret, 1, T0.plus_ms(HOUR));
    let t = on_cancel(&st.secret.run, &st.secret.rotation, T0);
    let expected = (t.run.clone(), t.config.clone());
    let outcome = t.apply(&mut st.secret);
    assert_eq!(outcome, Outcome::Cancelled { stopped: true });
    assert_eq!((st.secret.run, st.secret.rotation), expected);
}

#[test]
fn opening_a_cycle_adds_a_pending_placeholder() {
    let mut st = state();
    st.secret.rotation = daily();
    let now = T0.plus_ms(HOUR);
    let end = now.plus_ms(24 * HOUR);
    assert_eq!(open_cycle(&mut st, "tok", false, end, now).unwrap(), "tok");
    assert_eq!(st.stages[labels::PENDING], "tok");
    assert_eq!(st.stages[labels::CURRENT], "v0");
    assert!(st.version("tok").is_some_and(|v| !v.has_value));
    assert_eq!(st.new_versions.len(), 1);
    assert!(st.new_versions[0].value.is_none());
    assert_eq!(st.secret.run, started("tok", end, now));
    assert!(st.secret.rotation.next_rotation_at.unwrap() > now);
}

#[test]
fn opening_a_cycle_adopts_or_refuses_a_staged_pending_value() {
    let staged = |st: &mut SecretState| {
        st.versions.push(VersionMeta {
            version_id: "mine".into(),
            created_at: T0,
            accessed_at: None,
            has_value: true,
        });
        st.stages.insert(labels::PENDING.into(), "mine".into());
    };
    let end = T0.plus_ms(HOUR);
    // RotateSecret naming the staged version, or a scheduled cycle: the staged value is used.
    let mut st = state();
    staged(&mut st);
    assert_eq!(open_cycle(&mut st, "mine", false, end, T0).unwrap(), "mine");
    assert!(st.new_versions.is_empty());
    let mut st = state();
    staged(&mut st);
    assert_eq!(open_cycle(&mut st, "fresh", true, end, T0).unwrap(), "mine");
    // RotateSecret with another token: someone else's rotation is not overwritten.
    let mut st = state();
    staged(&mut st);
    let e = open_cycle(&mut st, "fresh", false, end, T0).unwrap_err();
    assert!(
        e.message.contains("AWSPENDING is on version mine"),
        "{}",
        e.message
    );
    // A version id cannot be reused as a new cycle's token.
    let mut st = state();
    let e = open_cycle(&mut st, "v0", false, end, T0).unwrap_err();
    assert!(
        e.message.contains("already names a version"),
        "{}",
        e.message
    );
}

#[test]
fn opening_a_cycle_clears_the_placeholder_of_our_failed_one() {
    let mut st = state();
    st.secret.rotation = daily();
    open_cycle(&mut st, "first", false, T0.plus_ms(HOUR), T0).unwrap();
    let t = on_cancel(&st.secret.run, &st.secret.rotation, T0);
    let _ = t.apply(&mut st.secret);
    open_cycle(&mut st, "second", false, T0.plus_ms(HOUR), T0).unwrap();
    assert_eq!(st.stages[labels::PENDING], "second");
    assert!(
        st.version("first").is_none(),
        "the empty placeholder is gone"
    );
    assert_eq!(st.secret.run.token.as_deref(), Some("second"));
}

#[test]
fn a_manual_move_of_awscurrent_counts_as_a_rotation() {
    let mut st = state();
    st.secret.rotation = daily();
    let planned = st.secret.rotation.next_rotation_at;
    let later = T0.plus_ms(30 * HOUR);
    assert!(!after_manual_change(&mut st, Some("v0"), later));
    assert_eq!(st.secret.rotation.next_rotation_at, planned);
    st.stages.insert(labels::CURRENT.into(), "v1".into());
    assert!(after_manual_change(&mut st, Some("v0"), later));
    assert!(st.secret.rotation.next_rotation_at > planned);
    // Not while a cycle runs: it plans the next window itself.
    let mut st2 = state();
    st2.secret.rotation = daily();
    st2.secret.run = running("tok", RotationStep::SetSecret, 1, later);
    st2.stages.insert(labels::CURRENT.into(), "v1".into());
    assert!(after_manual_change(&mut st2, Some("v0"), later));
    assert_eq!(st2.secret.rotation.next_rotation_at, planned);
}

#[test]
fn long_errors_are_clipped() {
    assert_eq!(clip_error("short"), "short");
    let long = "é".repeat(MAX_ERROR_CHARS + 10);
    let c = clip_error(&long);
    assert_eq!(c.chars().count(), MAX_ERROR_CHARS + 1);
    assert!(c.ends_with('…'));
    assert_eq!(
        clip_error(&"x".repeat(MAX_ERROR_CHARS)).chars().count(),
        MAX_ERROR_CHARS
    );
}

/// What can happen to a secret's rotation, as the engine and the API drive it.
#[derive(Debug, Clone)]
enum Event {
    /// Time passes.
    Wait(i64),
    /// The scheduler finds the secret and tries to open a cycle.
    Scheduled,
    /// RotateSecret with a fresh token, rotating immediately.
    RotateNow,
    /// Someone stages a value as AWSPENDING on a new version.
    StagePending,
    /// The engine takes the step's lease (live cycle, or a stale token).
    Starting {
        stale: bool,
        lease_ms: i64,
    },
    /// The running step succeeds; at finishSecret the function may or may not move AWSCURRENT.
    Succeeded {
        stale: bool,
        moves_current: bool,
    },
    /// The running step fails.
    Failed {
        stale: bool,
    },
    Cancel,
    /// RotateSecret(RotateImmediately=false) turning the schedule back on.
    Enable,
    /// UpdateSecretVersionStage moves AWSCURRENT by hand onto the n-th version with a value.
    ManualMove(usize),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (1i64..48 * HOUR).prop_map(Event::Wait),
        Just(Event::Scheduled),
        Just(Event::RotateNow),
        Just(Event::StagePending),
        (any::<bool>(), 1i64..3 * HOUR)
            .prop_map(|(stale, lease_ms)| Event::Starting { stale, lease_ms }),
        (any::<bool>(), any::<bool>()).prop_map(|(stale, moves_current)| Event::Succeeded {
            stale,
            moves_current
        }),
        any::<bool>().prop_map(|stale| Event::Failed { stale }),
        Just(Event::Cancel),
        Just(Event::Enable),
        any::<usize>().prop_map(Event::ManualMove),
    ]
}

fn check_invariants(st: &SecretState, max_attempts: i64, now: Timestamp) {
    let run = &st.secret.run;
    match run.phase {
        RotationPhase::InProgress => {
            assert!(run.attempt >= 1 && run.attempt <= max_attempts, "{run:?}");
            let token = run.token.as_deref().expect("a running cycle has a token");
            assert!(run.step.is_some(), "{run:?}");
            assert!(
                run.resume_at.is_some(),
                "a running cycle is always due again"
            );
            assert!(run.window_end.is_some(), "{run:?}");
            assert_eq!(
                st.stages.get(labels::PENDING).map(String::as_str),
                Some(token)
            );
            assert!(st.version(token).is_some(), "the pending version exists");
        }
        RotationPhase::Succeeded => {
            assert_eq!(run.step, None);
            assert_eq!(run.resume_at, None);
            assert_eq!(run.window_end, None);
            assert_eq!(run.last_error, None);
            assert!(st.secret.rotation.last_rotated_at.is_some());
        }
        RotationPhase::Failed => {
            assert_eq!(run.resume_at, None);
            assert!(run.last_error.is_some(), "a failure says why");
        }
        RotationPhase::Idle => assert_eq!(run, &RotationRun::default()),
    }
    assert!(run.last_attempt_at.is_none_or(|t| t <= now));
    assert!(st.secret.rotation.last_rotated_at.is_none_or(|t| t <= now));
    let cfg = &st.secret.rotation;
    if !cfg.enabled {
        assert_eq!(cfg.next_rotation_at, None, "off means nothing scheduled");
    }
    if let Some(at) = cfg.next_rotation_at {
        assert!(cfg.next_rotation_end.is_some_and(|end| end > at));
    }
}

/// Applies `event` as the service would; asserts that events for a stale cycle change nothing.
fn step(st: &mut SecretState, event: &Event, now: &mut Timestamp, serial: &mut u32, max: i64) {
    let live = st.secret.run.token.clone().unwrap_or_default();
    let step = st.secret.run.step.unwrap_or(RotationStep::CreateSecret);
    let token = |stale: bool| {
        if stale {
            "stale".to_string()
        } else {
            live.clone()
        }
    };
    let before = st.clone();
    let mut fresh = || {
        *serial += 1;
        format!("t{serial}")
    };
    let outcome = match event {
        Event::Wait(ms) => {
            *now = now.plus_ms(*ms);
            return;
        }
        Event::Scheduled => {
            let Some(window) = on_scheduled_start(&st.secret.run, &st.secret.rotation, *now) else {
                return;
            };
            let mut trial = st.clone();
            match open_cycle(&mut trial, &fresh(), true, window.end, *now) {
                Ok(_) => *st = trial,
                Err(e) => {
                    let msg = clip_error(&e.message);
                    let t = on_start_failed(&st.secret.run, &st.secret.rotation, &msg, *now);
                    let _ = t.apply(&mut st.secret);
                }
            }
            return;
        }
        Event::RotateNow => {
            if st.secret.run.phase == RotationPhase::InProgress {
                return; // refused: a cycle is running
            }
            let mut trial = st.clone();
            let end = now.plus_ms(Timestamp::MS_PER_DAY);
            if open_cycle(&mut trial, &fresh(), false, end, *now).is_ok() {
                *st = trial;
            }
            return;
        }
        Event::StagePending => {
            if st.secret.run.phase == RotationPhase::InProgress {
                return; // would be the running cycle's own pending; not modelled
            }
            let id = fresh();
            st.versions.push(VersionMeta {
                version_id: id.clone(),
                created_at: *now,
                accessed_at: None,
                has_value: true,
            });
            st.stages.insert(labels::PENDING.into(), id);
            return;
        }
        Event::ManualMove(n) => {
            let valued: Vec<String> = st
                .versions
                .iter()
                .filter(|v| v.has_value)
                .map(|v| v.version_id.clone())
                .collect();
            let to = valued[n % valued.len()].clone();
            let old = st.stages.insert(labels::CURRENT.into(), to);
            if let Some(old) = &old {
                st.stages.insert(labels::PREVIOUS.into(), old.clone());
            }
            let planned = st.secret.rotation.next_rotation_at;
            let moved = after_manual_change(st, old.as_deref(), *now);
            if !moved || st.secret.run.phase == RotationPhase::InProgress {
                assert_eq!(st.secret.rotation.next_rotation_at, planned);
            }
            return;
        }
        Event::Enable => {
            let cfg = &mut st.secret.rotation;
            cfg.enabled = true;
            cfg.after_days = Some(1);
            if st.secret.run.phase != RotationPhase::InProgress {
                plan_next(cfg, cfg.last_rotated_at.unwrap_or(*now).max(*now));
            }
            return;
        }
        Event::Cancel => on_cancel(&st.secret.run, &st.secret.rotation, *now).apply(&mut st.secret),
        Event::Starting { stale, lease_ms } => on_step_starting(
            &st.secret.run,
            &st.secret.rotation,
            &token(*stale),
            *now,
            now.plus_ms(*lease_ms),
        )
        .apply(&mut st.secret),
        Event::Succeeded {
            stale,
            moves_current,
        } => {
            let token = token(*stale);
            let live_finish =
                same_cycle(&st.secret.run, &token) && step == RotationStep::FinishSecret;
            if live_finish && *moves_current {
                // What a finishSecret does: AWSCURRENT onto the pending version.
                let old = st.stages.insert(labels::CURRENT.into(), token.clone());
                if let Some(old) = old {
                    st.stages.insert(labels::PREVIOUS.into(), old);
                }
                st.stages.remove(labels::PENDING);
            }
            let t = on_step_succeeded(
                &st.secret.run,
                &st.secret.rotation,
                &st.stages,
                &token,
                step,
                *now,
            );
            match t.apply(&mut st.secret) {
                Outcome::CurrentNotMoved { message } => on_step_failed(
                    &st.secret.run,
                    &st.secret.rotation,
                    &token,
                    step,
                    &message,
                    max,
                    *now,
                )
                .apply(&mut st.secret),
                other => other,
            }
        }
        Event::Failed { stale } => on_step_failed(
            &st.secret.run,
            &st.secret.rotation,
            &token(*stale),
            step,
            "boom",
            max,
            *now,
        )
        .apply(&mut st.secret),
    };
    if let Outcome::Succeeded { version } = &outcome {
        assert_eq!(
            st.stages.get(labels::CURRENT),
            Some(version),
            "success means AWSCURRENT is on the cycle's version"
        );
    }
    if outcome == Outcome::Stale {
        assert_eq!(st.secret.run, before.secret.run);
        assert_eq!(st.secret.rotation, before.secret.rotation);
        assert_eq!(st.stages, before.stages);
    }
}

proptest! {
    #[test]
    fn any_sequence_of_events_keeps_the_run_consistent(
        events in proptest::collection::vec(event(), 1..60),
        max_attempts in 1i64..6,
        enabled in any::<bool>(),
    ) {
        let mut st = state();
        if enabled {
            st.secret.rotation = daily();
        }
        let mut now = T0;
        let mut serial = 0;
        check_invariants(&st, max_attempts, now);
        for e in &events {
            step(&mut st, e, &mut now, &mut serial, max_attempts);
            check_invariants(&st, max_attempts, now);
        }
    }
}
