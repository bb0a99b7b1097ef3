//! `kura operator backup` and `kura operator restore`: what they did, in the terms an operator
//! acts on (rows per table, where the root key is and where it must not be).

use std::path::Path;

use kura_server::backup::{Progress, Restored};
use kura_server::init::shown_url;

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Rows per table, in copy order.
fn rows(manifest: &kura_server::backup::Manifest) -> String {
    kura_server::backup::tables()
        .map(|t| format!("{t} {}", manifest.rows(t)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn summary(manifest: &kura_server::backup::Manifest) -> String {
    [
        plural(manifest.rows("secrets"), "secret", "secrets"),
        plural(manifest.rows("secret_versions"), "version", "versions"),
        plural(manifest.rows("users"), "user", "users"),
        plural(manifest.rows("audit_log"), "audit record", "audit records"),
    ]
    .join(", ")
}

fn taken_at(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "(unknown time)".into())
}

/// One line per finished table (a PostgreSQL copy reports batches; those are not shown).
fn progress(what: &'static str) -> impl FnMut(Progress) + Send {
    move |p: Progress| {
        if p.done == p.total {
            eprintln!(
                "kura {what}: copied {} ({}/{}): {}",
                p.table,
                p.table_number,
                p.tables,
                plural(p.done, "row", "rows")
            );
        }
    }
}

pub async fn backup(
    data_dir: &Path,
    database_url: Option<&str>,
    output: &Path,
    force: bool,
) -> Result<(), String> {
    let source = match database_url {
        Some(url) => shown_url(url),
        None => data_dir.display().to_string(),
    };
    let mut report = progress("backup");
    let manifest = kura_server::backup::backup(data_dir, database_url, output, force, &mut report)
        .await
        .map_err(|e| {
            format!(
                "{}. No backup was written.",
                crate::cli_message(&e).trim_end_matches('.')
            )
        })?;
    let size = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
    println!(
        "Backed up {} from {source} into {} ({} bytes), a consistent snapshot taken {}.",
        summary(&manifest),
        output.display(),
        size,
        taken_at(manifest.created_at)
    );
    println!("Rows per table: {}.", rows(&manifest));
    println!("Every value is still encrypted under the installation's keyring.");
    if manifest.seal == "file" {
        let key = data_dir.join(kura_server::root_file::ROOT_KEY_FILE);
        let at = if key.exists() {
            key.display().to_string()
        } else {
            "root.key in the data directory of each node".to_string()
        };
        println!(
            "The root key is NOT in the backup: it is {at}. Keep a copy of it apart from the backups (anyone holding both can read every secret); restoring needs it: kura operator restore --input {} --data-dir NEW_DIR --root-key ROOT_KEY_FILE",
            output.display()
        );
    } else {
        println!(
            "The installation is sealed with {}: the seal record is in the backup, so a restored server unseals as this one does (same shares or HSM key); no root key file is needed.",
            manifest.seal
        );
    }
    Ok(())
}

pub async fn restore(
    input: &Path,
    data_dir: &Path,
    database_url: Option<&str>,
    root_key: Option<&Path>,
) -> Result<(), String> {
    let mut report = progress("restore");
    let restored =
        kura_server::backup::restore(input, data_dir, database_url, root_key, &mut report)
            .await
            .map_err(|e| {
                format!(
                    "{}. Nothing was restored.",
                    crate::cli_message(&e).trim_end_matches('.')
                )
            })?;
    let Restored {
        manifest,
        copied,
        audit,
    } = restored;
    if let Some(copied) = copied.filter(|c| !c.nul_replaced.is_empty()) {
        let tables: Vec<String> = copied
            .nul_replaced
            .iter()
            .map(|(t, n)| format!("{t}: {}", plural(*n, "row", "rows")))
            .collect();
        eprintln!(
            "kura restore: warning: text with NUL characters, which PostgreSQL cannot store, was copied with U+FFFD in their place ({}); the backup file keeps the originals.",
            tables.join(", ")
        );
    }
    let target = match database_url {
        Some(url) => format!(
            "{} (the data directory {} holds the node's files)",
            shown_url(url),
            data_dir.display()
        ),
        None => data_dir.display().to_string(),
    };
    println!(
        "Restored {} into {target}, from the backup of {} taken {} by kura {}.",
        summary(&manifest),
        manifest.source,
        taken_at(manifest.created_at),
        manifest.kura_version
    );
    println!("Rows per table: {}.", rows(&manifest));
    let start = match database_url {
        Some(url) => format!(
            "kura server --data-dir {} --database-url {}",
            data_dir.display(),
            shown_url(url)
        ),
        None => format!("kura server --data-dir {}", data_dir.display()),
    };
    println!(
        "Next: {start}. The root user's access key is the backed-up installation's (its root-credentials file is not part of a backup)."
    );
    match audit {
        Some(report) if report.problems.is_empty() => {
            println!(
                "audit trail intact: {} records, every MAC and link checked",
                report.records
            );
            Ok(())
        }
        Some(report) => {
            for p in &report.problems {
                println!("BROKEN: {p}");
            }
            Err(format!(
                "the installation was restored into {target}, but its audit trail does NOT verify ({} problem(s) in {} records): the backup was altered, or the installation's trail was broken before it was taken",
                report.problems.len(),
                report.records
            ))
        }
        None => {
            println!(
                "The installation is sealed with {}: unseal the server, then check its audit trail with `kura audit verify`.",
                manifest.seal
            );
            Ok(())
        }
    }
}
