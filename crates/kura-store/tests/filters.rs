//! ListSecrets' SQL agrees with the pure matcher (kura_core::filter) on random secrets and
//! random filters, on SQLite and PostgreSQL, also for secrets changed after creation and (on
//! SQLite) for words filled in by the migration that introduced them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kura_core::Timestamp;
use kura_core::filter::{self, FilterKey, ListFilter};
use kura_core::labels::Stages;
use kura_core::model::{SecretRecord, Tag};
use kura_store::prelude::*;
use kura_store::{Cursor, ListPage, ListQuery, NO_AUDIT, PgStore, SortKey, SqliteStore};
use proptest::prelude::*;

fn record(name: &str, description: Option<String>, tags: Vec<Tag>) -> SecretRecord {
    let arn = format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf");
    SecretRecord::new(name.to_string(), arn, description, tags, Timestamp(1))
}

/// One page of what the store lists for `filters`, deleted secrets included, by name.
async fn page(
    store: &dyn Store,
    filters: &[ListFilter],
    limit: usize,
    after: Option<Cursor>,
) -> ListPage {
    store
        .list_secrets(&ListQuery {
            include_deleted: true,
            filters: filters.to_vec(),
            sort: SortKey::Name,
            descending: false,
            limit,
            after,
        })
        .await
        .unwrap()
}

/// Names the store lists for `filters` (every secret fits on one page).
async fn listed(store: &dyn Store, filters: &[ListFilter]) -> BTreeSet<String> {
    let page = page(store, filters, 1000, None).await;
    assert!(page.next.is_none());
    page.secrets.into_iter().map(|(s, _)| s.name).collect()
}

/// Names the pure matcher lets through.
fn expected(secrets: &BTreeMap<String, SecretRecord>, filters: &[ListFilter]) -> BTreeSet<String> {
    secrets
        .values()
        .filter(|s| {
            filter::matches(
                filters,
                &filter::SecretText {
                    name: &s.name,
                    description: s.description.as_deref(),
                    tags: &s.tags,
                    expires_at: s.expires_at,
                },
            )
        })
        .map(|s| s.name.clone())
        .collect()
}

fn key() -> impl Strategy<Value = FilterKey> {
    proptest::sample::select(&FilterKey::ALL[..])
}

/// Small alphabets, so that random filters often hit.
fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-cA-C0-9 #/_.éÉ]{{0,{max}}}")).unwrap()
}

fn tags() -> impl Strategy<Value = Vec<Tag>> {
    proptest::collection::btree_map("[a-bA-B][a-bA-B0-9:]{0,3}", "[a-bA-B0-9 é]{0,4}", 0..3)
        .prop_map(|m| {
            m.into_iter()
                .map(|(key, value)| Tag { key, value })
                .collect()
        })
}

fn secret() -> impl Strategy<Value = (String, Option<String>, Vec<Tag>)> {
    (
        "[a-cA-C][a-cA-C0-9/_]{0,6}",
        proptest::option::of(text(16)),
        tags(),
    )
}

fn filters() -> impl Strategy<Value = Vec<ListFilter>> {
    proptest::collection::vec(
        (
            key(),
            proptest::collection::vec(
                proptest::string::string_regex("!?[a-cA-C0-9 /_é]{0,5}").unwrap(),
                1..3,
            ),
        )
            .prop_map(|(key, values)| ListFilter { key, values }),
        0..3,
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Creates the secrets (first of each name wins), then gives some new descriptions and tags.
async fn fill(
    store: &dyn Store,
    created: Vec<(String, Option<String>, Vec<Tag>)>,
    changes: Vec<(usize, Option<String>, Vec<Tag>)>,
) -> BTreeMap<String, SecretRecord> {
    let mut secrets = BTreeMap::new();
    for (name, description, tags) in created {
        if secrets.contains_key(&name) {
            continue;
        }
        let mut r = record(&name, description, tags);
        r.id = store
            .create_secret(&r, None, &Stages::new(), &NO_AUDIT)
            .await
            .unwrap();
        secrets.insert(name, r);
    }
    let names: Vec<String> = secrets.keys().cloned().collect();
    for (which, description, tags) in changes {
        let Some(name) = names.get(which % names.len().max(1)) else {
            continue;
        };
        let r = secrets.get_mut(name).unwrap();
        store
            .modify(
                r.id,
                &mut |st| {
                    st.secret.description = description.clone();
                    st.secret.tags = tags.clone();
                    Ok(())
                },
                &NO_AUDIT,
            )
            .await
            .unwrap();
        r.description = description;
        r.tags = tags;
    }
    secrets
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn sql_agrees_with_the_pure_matcher(
        created in proptest::collection::vec(secret(), 1..16),
        changes in proptest::collection::vec((any::<usize>(), proptest::option::of(text(16)), tags()), 0..4),
        queries in proptest::collection::vec(filters(), 1..12),
    ) {
        let dir = tempfile::tempdir().unwrap();
        runtime().block_on(async {
            let store = SqliteStore::open(&dir.path().join("kura.db")).await.unwrap();
            let secrets = fill(&store, created, changes).await;
            for q in &queries {
                assert_eq!(listed(&store, q).await, expected(&secrets, q), "filters {q:?}");
            }
            store.close().await;
        });
    }
}

/// The same property on PostgreSQL (whose text comparisons must match SQLite's code point
/// order for the prefix ranges to be right): one database for the run, emptied per case.
#[test]
fn postgres_sql_agrees_with_the_pure_matcher() {
    use proptest::test_runner::{Config, TestRunner};
    use sqlx::Executor;
    let rt = runtime();
    let db = rt.block_on(common::PgDatabase::create());
    let store = rt
        .block_on(PgStore::connect(&db.url()))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let admin = rt.block_on(sqlx::PgPool::connect(&db.url())).unwrap();
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(secret(), 1..16),
        proptest::collection::vec(
            (any::<usize>(), proptest::option::of(text(16)), tags()),
            0..4,
        ),
        proptest::collection::vec(filters(), 1..12),
    );
    let result = runner.run(&strategy, |(created, changes, queries)| {
        rt.block_on(async {
            admin
                .execute("TRUNCATE secrets, secret_versions, version_stages, tags, secret_words")
                .await
                .unwrap();
            let secrets = fill(&store, created, changes).await;
            for q in &queries {
                prop_assert_eq!(
                    listed(&store, q).await,
                    expected(&secrets, q),
                    "filters {:?}",
                    q
                );
            }
            Ok(())
        })
    });
    rt.block_on(async {
        admin.close().await;
        store.close().await;
    });
    drop(db);
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Drops the word table and its migration record (8), as in a database from before it
/// existed.
async fn forget_words(db: &Path) {
    use sqlx::Connection;
    let url = format!("sqlite://{}", db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    for sql in [
        "DROP TABLE secret_words",
        "DELETE FROM schema_migrations WHERE version = 8",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
}

#[test]
fn the_migration_fills_words_for_existing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kura.db");
    runtime().block_on(async {
        let store = SqliteStore::open(&db).await.unwrap();
        let created = (0..1200)
            .map(|i| {
                (
                    format!("app{i}/credsDatabase"),
                    Some(format!("Service number {i}")),
                    vec![Tag {
                        key: "CostCenter".into(),
                        value: format!("team{}", i % 7),
                    }],
                )
            })
            .collect();
        let secrets = fill(&store, created, Vec::new()).await;
        store.close().await;
        forget_words(&db).await;

        let store = SqliteStore::open(&db).await.unwrap();
        for values in [
            &["database"][..],
            &["NUMBER 11"],
            &["center"],
            &["team 3", "!app1"],
        ] {
            let q = [ListFilter {
                key: FilterKey::All,
                values: values.iter().map(|v| v.to_string()).collect(),
            }];
            let want = expected(&secrets, &q);
            assert!(!want.is_empty(), "{values:?}");
            assert_eq!(listed_all(&store, &q).await, want, "{values:?}");
        }
        store.close().await;
    });
}

/// Like [`listed`], over as many pages as it takes.
async fn listed_all(store: &dyn Store, filters: &[ListFilter]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut after = None;
    loop {
        let page = page(store, filters, 500, after).await;
        out.extend(page.secrets.into_iter().map(|(s, _)| s.name));
        match page.next {
            Some(c) => after = Some(c),
            None => return out,
        }
    }
}
