//! Secrets, their versions, labels, tags and words; ListSecrets' SQL.

use super::*;

pub(super) async fn load_tags(conn: &mut PgConnection, secret_id: i64) -> Result<Vec<Tag>> {
    let rows = sqlx::query("SELECT key, value FROM tags WHERE secret_id = $1 ORDER BY key")
        .bind(secret_id)
        .fetch_all(conn)
        .await
        .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            Ok(Tag {
                key: r.try_get("key").map_err(db_err)?,
                value: r.try_get("value").map_err(db_err)?,
            })
        })
        .collect()
}

pub(super) async fn load_stages(conn: &mut PgConnection, secret_id: i64) -> Result<Stages> {
    let rows = sqlx::query("SELECT stage, version_id FROM version_stages WHERE secret_id = $1")
        .bind(secret_id)
        .fetch_all(conn)
        .await
        .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("stage").map_err(db_err)?,
                r.try_get("version_id").map_err(db_err)?,
            ))
        })
        .collect()
}

pub(super) async fn load_versions(
    conn: &mut PgConnection,
    secret_id: i64,
) -> Result<Vec<VersionMeta>> {
    let rows = sqlx::query(
        "SELECT version_id, created_at, accessed_at, value_kind FROM secret_versions \
         WHERE secret_id = $1 ORDER BY created_at, seq",
    )
    .bind(secret_id)
    .fetch_all(conn)
    .await
    .map_err(db_err)?;
    rows.iter().map(version_from_row).collect()
}

/// The secret's row (and tags); `lock`: FOR UPDATE, so the caller's transaction is the only
/// writer of the secret, its versions, labels and tags until it ends (every writer of those
/// locks the secret row first).
pub(super) async fn load_secret(
    conn: &mut PgConnection,
    secret_id: i64,
    lock: bool,
) -> Result<Option<SecretRecord>> {
    let sql = format!(
        "SELECT {SECRET_COLUMNS} FROM secrets WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(secret_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    let Some(row) = row else { return Ok(None) };
    let mut s = secret_from_row(&row)?;
    s.tags = load_tags(conn, secret_id).await?;
    Ok(Some(s))
}

pub(super) async fn write_version(
    conn: &mut PgConnection,
    secret_id: i64,
    v: &NewVersion,
) -> Result<()> {
    let value = v.value.as_ref();
    // A placeholder row keeps its id and creation date when its value arrives.
    sqlx::query(
        "INSERT INTO secret_versions \
         (secret_id, version_id, created_at, value_kind, ciphertext, wrapped_key, key_name, key_version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (secret_id, version_id) DO UPDATE SET value_kind = excluded.value_kind, \
         ciphertext = excluded.ciphertext, wrapped_key = excluded.wrapped_key, \
         key_name = excluded.key_name, key_version = excluded.key_version \
         WHERE secret_versions.ciphertext IS NULL",
    )
    .bind(secret_id)
    .bind(&v.version_id)
    .bind(v.created_at.0)
    .bind(value.map(|s| kind_str(s.kind)))
    .bind(value.map(|s| s.ciphertext.as_slice()))
    .bind(value.map(|s| s.wrapped_key.as_slice()))
    .bind(value.map(|s| s.key_name.as_str()))
    .bind(value.map(|s| s.key_version))
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

pub(super) async fn write_stages(
    conn: &mut PgConnection,
    secret_id: i64,
    stages: &Stages,
) -> Result<()> {
    for (stage, version) in stages {
        sqlx::query(
            "INSERT INTO version_stages (secret_id, stage, version_id) VALUES ($1, $2, $3)",
        )
        .bind(secret_id)
        .bind(stage)
        .bind(version)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

pub(super) async fn write_tags(
    conn: &mut PgConnection,
    secret_id: i64,
    tags: &[Tag],
) -> Result<()> {
    for t in tags {
        sqlx::query("INSERT INTO tags (secret_id, key, value) VALUES ($1, $2, $3)")
            .bind(secret_id)
            .bind(&t.key)
            .bind(&t.value)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// Rewrites the words a secret is found by (after its description or tags changed).
pub(super) async fn write_words(
    conn: &mut PgConnection,
    secret_id: i64,
    text: &filter::SecretText<'_>,
) -> Result<()> {
    sqlx::query("DELETE FROM secret_words WHERE secret_id = $1")
        .bind(secret_id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let (fields, words): (Vec<i64>, Vec<String>) = filter::indexed_words(text).into_iter().unzip();
    if fields.is_empty() {
        return Ok(());
    }
    // One statement for all of them: a round trip per word adds up over the network.
    sqlx::query(
        "INSERT INTO secret_words (secret_id, field, word) \
         SELECT $1, f, w FROM UNNEST($2::bigint[], $3::text[]) AS t(f, w)",
    )
    .bind(secret_id)
    .bind(fields)
    .bind(words)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// `col` starts with `prefix`, as an index range (the columns compare in code point order).
pub(super) fn prefix_sql(col: &str, prefix: &str, binds: &mut Vec<Bind>) -> String {
    // PostgreSQL text holds no NUL, so a prefix with one starts nothing stored (and could
    // not be sent as a parameter).
    if prefix.contains('\0') {
        return "FALSE".into();
    }
    binds.push(Bind::Text(prefix.to_string()));
    match prefix_upper_bound(prefix) {
        Some(upper) => {
            binds.push(Bind::Text(upper));
            format!("({col} >= ? AND {col} < ?)")
        }
        None => format!("{col} >= ?"),
    }
}

/// Every word of `term` begins a stored word of the secret (in the description only, when
/// `field` is given); nothing when `term` has no words. Mirrors kura_core::filter.
pub(super) fn words_sql(term: &str, field: Option<i64>, binds: &mut Vec<Bind>) -> String {
    let query = filter::words(term);
    if query.is_empty() {
        return "FALSE".into();
    }
    let per_word: Vec<String> = query
        .iter()
        .map(|w| {
            let field_sql = match field {
                Some(f) => {
                    binds.push(Bind::Int(f));
                    "w.field = ? AND "
                }
                None => "",
            };
            let range = prefix_sql("w.word", w, binds);
            format!(
                "EXISTS (SELECT 1 FROM secret_words w WHERE w.secret_id = s.id AND {field_sql}{range})"
            )
        })
        .collect();
    format!("({})", per_word.join(" AND "))
}

/// SQL for one filter value without its `!`, binds pushed in the order of the text.
pub(super) fn term_sql(key: FilterKey, term: &str, binds: &mut Vec<Bind>) -> String {
    match key {
        FilterKey::Name => prefix_sql("s.name", term, binds),
        FilterKey::TagKey => format!(
            "EXISTS (SELECT 1 FROM tags t WHERE t.secret_id = s.id AND {})",
            prefix_sql("t.key", term, binds)
        ),
        FilterKey::TagValue => format!(
            "EXISTS (SELECT 1 FROM tags t WHERE t.secret_id = s.id AND {})",
            prefix_sql("t.value", term, binds)
        ),
        FilterKey::Description => words_sql(term, Some(filter::IN_DESCRIPTION), binds),
        FilterKey::All => words_sql(term, None, binds),
        // kura neither replicates nor hosts service-owned secrets: these attributes are unset.
        FilterKey::PrimaryRegion | FilterKey::OwningService => "FALSE".into(),
    }
}

/// One filter: any of its values (each negated by a leading `!`).
pub(super) fn filter_clause(f: &ListFilter, binds: &mut Vec<Bind>) -> String {
    if f.values.is_empty() {
        return "FALSE".into();
    }
    let any: Vec<String> = f
        .values
        .iter()
        .map(|v| match v.strip_prefix('!') {
            Some(term) => format!("NOT {}", term_sql(f.key, term, binds)),
            None => term_sql(f.key, v, binds),
        })
        .collect();
    format!("({})", any.join(" OR "))
}

/// Tags and labels of a page of secrets in two statements, not two per secret.
pub(super) async fn load_page_children(
    pool: &PgPool,
    page: &[PgRow],
) -> Result<(HashMap<i64, Vec<Tag>>, HashMap<i64, Stages>)> {
    let mut tags: HashMap<i64, Vec<Tag>> = HashMap::new();
    let mut stages: HashMap<i64, Stages> = HashMap::new();
    if page.is_empty() {
        return Ok((tags, stages));
    }
    let ids = page
        .iter()
        .map(|r| r.try_get::<i64, _>("id").map_err(db_err))
        .collect::<Result<Vec<_>>>()?;
    for r in
        sqlx::query("SELECT secret_id, key, value FROM tags WHERE secret_id = ANY($1) ORDER BY key")
            .bind(&ids)
            .fetch_all(pool)
            .await
            .map_err(db_err)?
    {
        tags.entry(r.try_get("secret_id").map_err(db_err)?)
            .or_default()
            .push(Tag {
                key: r.try_get("key").map_err(db_err)?,
                value: r.try_get("value").map_err(db_err)?,
            });
    }
    for r in sqlx::query(
        "SELECT secret_id, stage, version_id FROM version_stages WHERE secret_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await
    .map_err(db_err)?
    {
        stages
            .entry(r.try_get("secret_id").map_err(db_err)?)
            .or_default()
            .insert(
                r.try_get("stage").map_err(db_err)?,
                r.try_get("version_id").map_err(db_err)?,
            );
    }
    Ok((tags, stages))
}

impl PgStore {
    async fn create_secret_once(
        &self,
        s: &SecretRecord,
        first: Option<&NewVersion>,
        stages: &Stages,
        audit: &AuditSlot,
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO secrets (name, arn, description, kms_key_id, created_at, changed_at, tagged) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(&s.name)
        .bind(&s.arn)
        .bind(&s.description)
        .bind(&s.kms_key_id)
        .bind(s.created_at.0)
        .bind(s.changed_at.0)
        .bind((s.tagged || !s.tags.is_empty()) as i64)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::exists(format!(
                    "The operation failed because the secret {} already exists.",
                    s.name
                ))
            } else {
                db_err(e)
            }
        })?;
        if let Some(v) = first {
            write_version(&mut tx, id, v).await?;
        }
        write_stages(&mut tx, id, stages).await?;
        write_tags(&mut tx, id, &s.tags).await?;
        write_words(&mut tx, id, &text_of(s)).await?;
        let changed = Changed {
            arn: Some(s.arn.clone()),
            version_id: first.map(|v| v.version_id.clone()),
        };
        self.commit_change(tx, changed, audit).await?;
        Ok(id)
    }

    async fn modify_once(
        &self,
        secret_id: i64,
        f: &mut Mutation<'_>,
        audit: &AuditSlot,
    ) -> Result<SecretState> {
        let mut tx = self.begin().await?;
        let secret = load_secret(&mut tx, secret_id, true)
            .await?
            .ok_or_else(Error::secret_not_found)?;
        let versions = load_versions(&mut tx, secret_id).await?;
        let stages = load_stages(&mut tx, secret_id).await?;
        let before_ids: HashSet<String> = versions.iter().map(|v| v.version_id.clone()).collect();
        let before_tags = secret.tags.clone();
        let before_description = secret.description.clone();
        let before_run_token = secret.run.token.clone();
        let before_stages = stages.clone();
        let mut state = SecretState {
            secret,
            versions,
            stages,
            new_versions: Vec::new(),
            events: Vec::new(),
        };
        f(&mut state)?;

        let s = &state.secret;
        sqlx::query(pg(
            "UPDATE secrets SET description = ?, kms_key_id = ?, changed_at = ?, accessed_at = ?, \
             deleted_at = ?, purge_at = ?, resource_policy = ?, rotation_enabled = ?, \
             rotation_function = ?, rotation_after_days = ?, rotation_schedule = ?, rotation_duration = ?, \
             last_rotated_at = ?, next_rotation_at = ?, next_rotation_end = ?, rotation_state = ?, rotation_token = ?, \
             rotation_step = ?, rotation_attempt = ?, rotation_error = ?, rotation_attempted_at = ?, \
             rotation_resume_at = ?, rotation_window_end = ?, tagged = ? WHERE id = ?",
        ))
        .bind(&s.description)
        .bind(&s.kms_key_id)
        .bind(s.changed_at.0)
        .bind(s.accessed_at.map(|t| t.0))
        .bind(s.deleted_at.map(|t| t.0))
        .bind(s.purge_at.map(|t| t.0))
        .bind(&s.resource_policy)
        .bind(s.rotation.enabled as i64)
        .bind(&s.rotation.function_arn)
        .bind(s.rotation.after_days)
        .bind(&s.rotation.schedule_expression)
        .bind(&s.rotation.duration)
        .bind(s.rotation.last_rotated_at.map(|t| t.0))
        .bind(s.rotation.next_rotation_at.map(|t| t.0))
        .bind(s.rotation.next_rotation_end.map(|t| t.0))
        .bind(s.run.phase.as_str())
        .bind(&s.run.token)
        .bind(s.run.step.map(|x| x.as_str()))
        .bind(s.run.attempt)
        .bind(s.run.last_error.as_deref().map(without_nul))
        .bind(s.run.last_attempt_at.map(|t| t.0))
        .bind(s.run.resume_at.map(|t| t.0))
        .bind(s.run.window_end.map(|t| t.0))
        .bind((s.tagged || !s.tags.is_empty()) as i64)
        .bind(secret_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if s.tags != before_tags {
            sqlx::query("DELETE FROM tags WHERE secret_id = $1")
                .bind(secret_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            write_tags(&mut tx, secret_id, &s.tags).await?;
        }
        if s.tags != before_tags || s.description != before_description {
            write_words(&mut tx, secret_id, &text_of(s)).await?;
        }
        let stages_changed = state.stages != before_stages || !state.new_versions.is_empty();
        if stages_changed {
            sqlx::query("DELETE FROM version_stages WHERE secret_id = $1")
                .bind(secret_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        for v in &state.new_versions {
            write_version(&mut tx, secret_id, v).await?;
        }
        // Versions the mutation dropped from the list are pruned.
        let kept: HashSet<&str> = state
            .versions
            .iter()
            .map(|v| v.version_id.as_str())
            .chain(state.new_versions.iter().map(|v| v.version_id.as_str()))
            .collect();
        let gone: Vec<&str> = before_ids
            .iter()
            .map(String::as_str)
            .filter(|id| !kept.contains(id))
            .collect();
        if !gone.is_empty() {
            sqlx::query(
                "DELETE FROM secret_versions WHERE secret_id = $1 AND version_id = ANY($2)",
            )
            .bind(secret_id)
            .bind(&gone)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        if stages_changed {
            write_stages(&mut tx, secret_id, &state.stages).await?;
        }
        for e in &state.events {
            tx.queue_event(e.event, &e.body, e.at).await?;
        }
        let changed = Changed {
            arn: Some(state.secret.arn.clone()),
            version_id: changed_version(&before_run_token, &state),
        };
        self.commit_change(tx, changed, audit).await?;
        Ok(state)
    }

    async fn delete_secret_once(&self, secret_id: i64, audit: &AuditSlot) -> Result<()> {
        let mut tx = self.begin().await?;
        let arn: Option<String> =
            sqlx::query_scalar("SELECT arn FROM secrets WHERE id = $1 FOR UPDATE")
                .bind(secret_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        // Children first: labels reference versions, versions and tags reference the secret.
        for sql in [
            "DELETE FROM version_stages WHERE secret_id = $1",
            "DELETE FROM secret_versions WHERE secret_id = $1",
            "DELETE FROM tags WHERE secret_id = $1",
            "DELETE FROM secret_words WHERE secret_id = $1",
            "DELETE FROM secrets WHERE id = $1",
        ] {
            sqlx::query(sql)
                .bind(secret_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        self.commit_change(
            tx,
            Changed {
                arn,
                version_id: None,
            },
            audit,
        )
        .await
    }
}

#[async_trait]
impl SecretStore for PgStore {
    async fn create_secret(
        &self,
        s: &SecretRecord,
        first: Option<&NewVersion>,
        stages: &Stages,
        audit: &AuditSlot,
    ) -> Result<i64> {
        retry!(self.create_secret_once(s, first, stages, audit))
    }

    async fn find_secret(&self, secret: &SecretRef) -> Result<Option<SecretRecord>> {
        let keys = match secret {
            SecretRef::Name(name) => [name.as_str(), ""],
            SecretRef::Arn { arn, name_part } => [arn.as_str(), name_part.as_str()],
        };
        if has_nul(&keys) {
            return Ok(None);
        }
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        let by = |cond: &str| format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE {cond}");
        let row = match secret {
            SecretRef::Name(name) => sqlx::query(AssertSqlSafe(by("name = $1")))
                .bind(name)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_err)?,
            SecretRef::Arn { arn, name_part } => {
                let full = sqlx::query(AssertSqlSafe(by("arn = $1")))
                    .bind(arn)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db_err)?;
                match full {
                    Some(row) => Some(row),
                    // An ARN without its suffix: the name, if its secret's ARN has the same prefix.
                    None => {
                        let prefix = format!("{arn}-");
                        sqlx::query(AssertSqlSafe(by("name = $1 AND starts_with(arn, $2)")))
                            .bind(name_part)
                            .bind(&prefix)
                            .fetch_optional(&mut *conn)
                            .await
                            .map_err(db_err)?
                    }
                }
            }
        };
        let Some(row) = row else { return Ok(None) };
        let mut s = secret_from_row(&row)?;
        s.tags = load_tags(&mut conn, s.id).await?;
        Ok(Some(s))
    }

    async fn versions(&self, secret_id: i64) -> Result<(Vec<VersionMeta>, Stages)> {
        // One snapshot for both reads, so they agree with each other.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(db_err)?;
        let versions = load_versions(&mut tx, secret_id).await?;
        let stages = load_stages(&mut tx, secret_id).await?;
        tx.commit().await.map_err(db_err)?;
        Ok((versions, stages))
    }

    async fn read_version(
        &self,
        secret_id: i64,
        which: VersionSelector<'_>,
    ) -> Result<Option<StoredVersion>> {
        let (VersionSelector::Id(key) | VersionSelector::Stage(key)) = which;
        if has_nul(&[key]) {
            return Ok(None);
        }
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(db_err)?;
        const COLS: &str = "v.version_id, v.created_at, v.accessed_at, v.value_kind, v.ciphertext, \
                            v.wrapped_key, v.key_name, v.key_version";
        let row = match which {
            VersionSelector::Id(id) => {
                let sql = format!(
                    "SELECT {COLS} FROM secret_versions v WHERE v.secret_id = $1 AND v.version_id = $2"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(secret_id)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
            }
            VersionSelector::Stage(stage) => {
                let sql = format!(
                    "SELECT {COLS} FROM version_stages s JOIN secret_versions v \
                     ON v.secret_id = s.secret_id AND v.version_id = s.version_id \
                     WHERE s.secret_id = $1 AND s.stage = $2"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(secret_id)
                    .bind(stage)
                    .fetch_optional(&mut *tx)
                    .await
            }
        }
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let meta = version_from_row(&row)?;
        let value = sealed_from_row(&row)?;
        let stages = sqlx::query_scalar(
            "SELECT stage FROM version_stages WHERE secret_id = $1 AND version_id = $2 \
             ORDER BY stage COLLATE \"C\"",
        )
        .bind(secret_id)
        .bind(&meta.version_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(StoredVersion {
            meta,
            value,
            stages,
        }))
    }

    async fn modify(
        &self,
        secret_id: i64,
        f: &mut Mutation<'_>,
        audit: &AuditSlot,
    ) -> Result<SecretState> {
        retry!(self.modify_once(secret_id, f, audit))
    }

    async fn list_secrets(&self, q: &ListQuery) -> Result<ListPage> {
        // The service binds each cursor to the query that issued it, so its type fits the
        // sort; were it not so, PostgreSQL would refuse the comparison: an empty page instead.
        if let Some(c) = &q.after
            && matches!(c.value, CursorValue::Text(_)) != (q.sort == SortKey::Name)
        {
            return Ok(ListPage {
                secrets: Vec::new(),
                next: None,
            });
        }
        let col = sort_column(q.sort);
        let mut binds: Vec<Bind> = Vec::new();
        let mut conds: Vec<String> = Vec::new();
        if !q.include_deleted {
            conds.push("s.deleted_at IS NULL".into());
        }
        for f in &q.filters {
            conds.push(filter_clause(f, &mut binds));
        }
        let (cmp, dir) = if q.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        if let Some(c) = &q.after {
            conds.push(format!("({col} {cmp} ? OR ({col} = ? AND s.id {cmp} ?))"));
            for _ in 0..2 {
                binds.push(match &c.value {
                    CursorValue::Int(i) => Bind::Int(*i),
                    CursorValue::Text(t) => Bind::Text(t.clone()),
                });
            }
            binds.push(Bind::Int(c.id));
        }
        let where_sql = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        let cols: String = SECRET_COLUMNS
            .split(", ")
            .map(|c| format!("s.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {cols}, {col} AS sort_value FROM secrets s {where_sql} \
             ORDER BY {col} {dir}, s.id {dir} LIMIT ?"
        );
        let rows = bind_all(sqlx::query(pg(&sql)), binds)
            .bind(q.limit as i64 + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let more = rows.len() > q.limit;
        let page = &rows[..rows.len().min(q.limit)];
        let (mut tags, mut stages) = load_page_children(&self.pool, page).await?;
        let mut secrets = Vec::with_capacity(page.len());
        let mut next = None;
        for r in page {
            let mut s = secret_from_row(r)?;
            s.tags = tags.remove(&s.id).unwrap_or_default();
            let stages = stages.remove(&s.id).unwrap_or_default();
            if more {
                next = Some(Cursor {
                    value: if q.sort == SortKey::Name {
                        CursorValue::Text(s.name.clone())
                    } else {
                        CursorValue::Int(r.try_get("sort_value").map_err(db_err)?)
                    },
                    id: s.id,
                });
            }
            secrets.push((s, stages));
        }
        Ok(ListPage { secrets, next })
    }

    async fn due_for_purge(&self, now: Timestamp, limit: usize) -> Result<Vec<i64>> {
        sqlx::query_scalar(
            "SELECT id FROM secrets WHERE purge_at IS NOT NULL AND purge_at <= $1 \
             ORDER BY purge_at LIMIT $2",
        )
        .bind(now.0)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn touch_accessed(&self, secret_id: i64, version_id: &str, day: Timestamp) -> Result<()> {
        // Conditional updates without an explicit lock: concurrent readers on the same day
        // write at most once each, and a `modify` holding the row is waited for.
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE secrets SET accessed_at = $1 WHERE id = $2 \
             AND (accessed_at IS NULL OR accessed_at < $1)",
        )
        .bind(day.0)
        .bind(secret_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "UPDATE secret_versions SET accessed_at = $1 WHERE secret_id = $2 AND version_id = $3 \
             AND (accessed_at IS NULL OR accessed_at < $1)",
        )
        .bind(day.0)
        .bind(secret_id)
        .bind(version_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn delete_secret(&self, secret_id: i64, audit: &AuditSlot) -> Result<()> {
        retry!(self.delete_secret_once(secret_id, audit))
    }

    async fn secret_by_id(&self, secret_id: i64) -> Result<Option<SecretRecord>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        load_secret(&mut conn, secret_id, false).await
    }
}
