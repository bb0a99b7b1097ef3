//! `kura migrate --from DATA_DIR --to URL`: a single node's SQLite installation copied into
//! an empty PostgreSQL database, with a progress bar on a terminal and one line per table
//! elsewhere (logs, CI).

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use kura_server::init::{Copied, Progress, shown_url};

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn summary(copied: &Copied) -> String {
    [
        plural(copied.rows("secrets"), "secret", "secrets"),
        plural(copied.rows("secret_versions"), "version", "versions"),
        plural(copied.rows("users"), "user", "users"),
        plural(copied.rows("access_keys"), "access key", "access keys"),
        plural(copied.rows("user_policies"), "policy", "policies"),
        plural(
            copied.rows("rotation_functions"),
            "rotation function",
            "rotation functions",
        ),
        plural(
            copied.rows("notification_targets"),
            "notification target",
            "notification targets",
        ),
        plural(copied.rows("audit_log"), "audit record", "audit records"),
    ]
    .join(", ")
}

pub fn run(runtime: &tokio::runtime::Runtime, from: &Path, to: &str) -> ExitCode {
    let terminal = std::io::stderr().is_terminal();
    let style =
        ProgressStyle::with_template("{prefix:>28} [{bar:30}] {pos}/{len} rows ({elapsed})")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    // One bar per table, built whole before it first draws.
    let mut bar: Option<(&'static str, ProgressBar)> = None;
    let mut progress = |p: Progress| {
        let label = format!("{} ({}/{})", p.table, p.table_number, p.tables);
        if !terminal {
            // A line per finished table, nothing per batch.
            if p.done == p.total {
                eprintln!(
                    "kura migrate: copied {label}: {}",
                    plural(p.done, "row", "rows")
                );
            }
            return;
        }
        if bar.as_ref().is_none_or(|(t, _)| *t != p.table) {
            if let Some((_, old)) = bar.take() {
                old.finish_and_clear();
            }
            let new = ProgressBar::new(p.total)
                .with_style(style.clone())
                .with_prefix(label.clone());
            bar = Some((p.table, new));
        }
        if let Some((_, b)) = &bar {
            b.set_position(p.done);
            if p.done == p.total {
                b.println(format!("copied {label}: {}", plural(p.done, "row", "rows")));
            }
        }
    };
    let result = runtime.block_on(kura_server::init::migrate_data_dir(from, to, &mut progress));
    if let Some((_, b)) = &bar {
        b.finish_and_clear();
    }
    match result {
        Ok(copied) => {
            println!(
                "Copied {} from {} into {}.",
                summary(&copied),
                from.display(),
                shown_url(to)
            );
            println!(
                "Next: start nodes with `kura server --data-dir DIR --database-url {}`, with {} copied to every node's data directory DIR (mode 600). Do not start a server on {} without --database-url again: its SQLite database is no longer the installation's.",
                shown_url(to),
                from.join("root.key").display(),
                from.display()
            );
            warn_about_nul(&copied, from);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kura migrate: {}", crate::cli_message(&e));
            eprintln!("Nothing was copied (the copy is one transaction).");
            ExitCode::FAILURE
        }
    }
}

/// Text PostgreSQL could not hold as it was: said on stderr, with what it means for the
/// audit trail.
fn warn_about_nul(copied: &Copied, from: &Path) {
    if copied.nul_replaced.is_empty() {
        return;
    }
    let tables: Vec<String> = copied
        .nul_replaced
        .iter()
        .map(|(t, n)| format!("{t}: {}", plural(*n, "row", "rows")))
        .collect();
    eprintln!(
        "kura migrate: warning: text with NUL characters, which PostgreSQL cannot store, was copied with U+FFFD in their place ({}).",
        tables.join(", ")
    );
    if !copied.altered_audit_records.is_empty() {
        let seqs: Vec<String> = copied
            .altered_audit_records
            .iter()
            .map(i64::to_string)
            .collect();
        eprintln!(
            "kura migrate: warning: so `kura audit verify` will report audit record(s) {} as altered (the chain's links after them hold). The originals stay in {} and {}: keep them.",
            seqs.join(", "),
            from.join("kura.db").display(),
            from.join("audit.jsonl").display()
        );
    }
}
