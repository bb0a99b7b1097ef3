//! `kura audit verify`: the database's chain, and the file beside it, line by line.

use std::path::Path;

use kura_core::{Error, Result};
use kura_crypto::mac::MacKey;

use crate::chain::{ChainCheck, GENESIS, mac_of};
use crate::{AuditQuery, AuditRecord, AuditStore};

/// What `kura audit verify` found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub records: u64,
    pub problems: Vec<String>,
}

/// How often a file found behind the database is read again: a running server commits a
/// record to the database first and appends it to the file right after.
const FILE_CATCH_UP_TRIES: u32 = 5;
const FILE_CATCH_UP_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Which records a node's audit file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileHolds {
    /// Every record (one server on its own database): line N is the database's record N.
    All,
    /// This node's records only (a cluster on one database): in the database's order, each
    /// equal to the database's record of the same number.
    OwnRecords,
}

/// Walks the whole chain in the database and, line by line beside it, the JSON-lines file:
/// line N must be the database's record N, and the file's MACs must chain on their own too.
/// Every break of the database chain is reported; of the file, the first difference.
pub async fn verify(
    store: &dyn AuditStore,
    key: &MacKey,
    file: Option<(&Path, FileHolds)>,
) -> Result<VerifyReport> {
    let mut tries = 0;
    loop {
        let (report, file_behind) = verify_once(store, key, file).await?;
        tries += 1;
        if !file_behind || tries >= FILE_CATCH_UP_TRIES {
            return Ok(report);
        }
        tokio::time::sleep(FILE_CATCH_UP_WAIT).await;
    }
}

/// One pass of [`verify`]; also says whether the file's only fault is ending early.
async fn verify_once(
    store: &dyn AuditStore,
    key: &MacKey,
    file: Option<(&Path, FileHolds)>,
) -> Result<(VerifyReport, bool)> {
    let mut check = Verifier::new(key, file)?;
    let mut after = None;
    loop {
        let page = store
            .query_audit(&AuditQuery {
                after_seq: after,
                limit: 1000,
                ..Default::default()
            })
            .await?;
        if page.is_empty() {
            break;
        }
        for r in &page {
            check.record(r)?;
        }
        after = page.last().map(|r| r.seq);
    }
    check.finish()
}

/// One pass's checks, fed the database's records in order: the chain, and the file beside it.
struct Verifier<'a> {
    key: &'a MacKey,
    chain: ChainCheck,
    file: Option<FileCheck<'a>>,
}

impl<'a> Verifier<'a> {
    fn new(key: &'a MacKey, file: Option<(&'a Path, FileHolds)>) -> Result<Self> {
        Ok(Verifier {
            key,
            chain: ChainCheck::new(),
            file: match file {
                Some((path, holds)) => Some(FileCheck::open(path, holds)?),
                None => None,
            },
        })
    }

    fn record(&mut self, r: &AuditRecord) -> Result<()> {
        if let Some(f) = &mut self.file {
            f.check(self.key, r, self.chain.prev(), self.chain.records + 1)?;
        }
        self.chain.check(self.key, r);
        Ok(())
    }

    /// The report, and whether the file's only fault is ending early.
    fn finish(self) -> Result<(VerifyReport, bool)> {
        let last_seq = self.chain.last_seq();
        let mut report = VerifyReport {
            records: self.chain.records,
            problems: self.chain.problems,
        };
        let mut behind = false;
        if let Some(mut f) = self.file {
            f.finish(last_seq)?;
            behind = f.behind;
            report.problems.extend(f.problem);
        }
        Ok((report, behind))
    }
}

/// The JSON-lines file, read line by line beside the database's records.
struct FileCheck<'a> {
    path: &'a Path,
    holds: FileHolds,
    /// A line read ahead (only this node's records are in the file): it belongs to a later
    /// database record.
    ahead: Option<AuditRecord>,
    /// `None`: there is no file.
    lines: Option<std::io::Lines<std::io::BufReader<std::fs::File>>>,
    line_no: u64,
    prev_mac: String,
    prev_seq: i64,
    /// The first difference found; the file is not read further.
    problem: Option<String>,
    /// The file ended while the database went on (maybe only not yet appended).
    behind: bool,
}

impl<'a> FileCheck<'a> {
    fn open(path: &'a Path, holds: FileHolds) -> Result<Self> {
        let lines = match std::fs::File::open(path) {
            Ok(f) => Some(std::io::BufRead::lines(std::io::BufReader::new(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(Error::internal(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        Ok(FileCheck {
            path,
            holds,
            ahead: None,
            lines,
            line_no: 0,
            prev_mac: GENESIS.to_string(),
            prev_seq: 0,
            problem: None,
            behind: false,
        })
    }

    /// The next line, or `None` at the end of the file (or when there is no file).
    fn next_line(&mut self) -> Result<Option<std::result::Result<String, String>>> {
        let Some(lines) = &mut self.lines else {
            return Ok(None);
        };
        match lines.next() {
            None => Ok(None),
            Some(Ok(text)) => {
                self.line_no += 1;
                Ok(Some(Ok(text)))
            }
            Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                self.line_no += 1;
                Ok(Some(Err("is not UTF-8 text".into())))
            }
            Some(Err(e)) => Err(Error::internal(format!(
                "cannot read {}: {e}",
                self.path.display()
            ))),
        }
    }

    /// Compares the next line with `db`, the database's `nth` record, which the database
    /// chains after `db_prev`.
    fn check(&mut self, key: &MacKey, db: &AuditRecord, db_prev: &str, nth: u64) -> Result<()> {
        if self.problem.is_some() {
            return Ok(());
        }
        if self.holds == FileHolds::OwnRecords {
            return self.check_own(key, db, db_prev);
        }
        let file = self.path.display();
        let line = match self.next_line()? {
            Some(line) => line,
            None => {
                // A missing file is never a file still catching up: the server creates it
                // before it writes its first record.
                self.behind = self.lines.is_some();
                self.problem = Some(if self.lines.is_none() {
                    format!(
                        "the audit file {file} is missing, but the database holds records: it was deleted or moved"
                    )
                } else if self.line_no == 0 {
                    format!(
                        "the audit file {file} is empty, but the database holds records from record {}: it was emptied",
                        db.seq
                    )
                } else {
                    format!(
                        "the audit file {file} ends after line {} (record {}), but the database goes on to record {}: the file was truncated",
                        self.line_no, self.prev_seq, db.seq
                    )
                });
                return Ok(());
            }
        };
        let n = self.line_no;
        let r = match line.and_then(|text| {
            serde_json::from_str::<AuditRecord>(&text).map_err(|_| "is not an audit record".into())
        }) {
            Ok(r) => r,
            Err(what) => {
                self.problem = Some(format!(
                    "line {n} of {file} {what} (the database's record {} belongs there): it was edited or cut short",
                    db.seq
                ));
                return Ok(());
            }
        };
        let differs = fields_differing(&r, db);
        self.problem = if r.seq != db.seq {
            Some(format!(
                "line {n} of {file} is record {}, but the database's record number {nth} is record {}: lines were deleted, inserted or reordered",
                r.seq, db.seq
            ))
        } else if mac_of(key, &self.prev_mac, &r) != r.mac {
            Some(format!(
                "line {n} of {file} (record {}) does not verify under this server's audit key{}: it was edited, lines before it were removed or reordered, or the file is another server's",
                r.seq,
                if differs.is_empty() {
                    String::new()
                } else {
                    format!(" and differs from the database in {}", differs.join(", "))
                }
            ))
        } else if !differs.is_empty() {
            Some(format!(
                "line {n} of {file} (record {}) differs from the database's record {} in {}: one of them was edited",
                r.seq,
                db.seq,
                differs.join(", ")
            ))
        } else {
            None
        };
        self.prev_mac = r.mac;
        self.prev_seq = r.seq;
        Ok(())
    }

    /// The next line as a record: read ahead, or from the file.
    fn next_record(&mut self) -> Result<Option<std::result::Result<AuditRecord, String>>> {
        if let Some(r) = self.ahead.take() {
            return Ok(Some(Ok(r)));
        }
        Ok(self.next_line()?.map(|line| {
            line.and_then(|text| {
                serde_json::from_str::<AuditRecord>(&text)
                    .map_err(|_| "is not an audit record".into())
            })
        }))
    }

    /// A node of a cluster keeps its own records: a line for `db` if this node wrote it,
    /// none if another node did.
    fn check_own(&mut self, key: &MacKey, db: &AuditRecord, db_prev: &str) -> Result<()> {
        let file = self.path.display();
        let n = self.line_no;
        let r = match self.next_record()? {
            None => return Ok(()),
            Some(Err(what)) => {
                self.problem = Some(format!(
                    "line {} of {file} {what}: it was edited or cut short",
                    n + 1
                ));
                return Ok(());
            }
            Some(Ok(r)) => r,
        };
        if r.seq > db.seq {
            self.ahead = Some(r); // db is another node's record
            return Ok(());
        }
        let differs = fields_differing(&r, db);
        self.problem = if r.seq < db.seq || r.seq <= self.prev_seq {
            Some(format!(
                "line {} of {file} is record {}, which is not where the database has it: lines were inserted or reordered, or the database lost records",
                self.line_no, r.seq
            ))
        } else if mac_of(key, db_prev, &r) != r.mac {
            Some(format!(
                "line {} of {file} (record {}) does not verify under this installation's audit key{}: one of them was edited",
                self.line_no,
                r.seq,
                if differs.is_empty() {
                    String::new()
                } else {
                    format!(" and differs from the database in {}", differs.join(", "))
                }
            ))
        } else if !differs.is_empty() {
            Some(format!(
                "line {} of {file} (record {}) differs from the database's record in {}: one of them was edited",
                self.line_no,
                r.seq,
                differs.join(", ")
            ))
        } else {
            None
        };
        self.prev_seq = r.seq;
        Ok(())
    }

    /// After the database's last record (`last_seq`): the file must end too.
    fn finish(&mut self, last_seq: i64) -> Result<()> {
        if self.problem.is_some() {
            return Ok(());
        }
        if let Some(r) = self.ahead.take() {
            self.problem = Some(format!(
                "the audit file {} holds record {} but the database ends at record {last_seq}: records were deleted from the database",
                self.path.display(),
                r.seq
            ));
            return Ok(());
        }
        let file = self.path.display();
        let n = self.line_no + 1;
        self.problem = match self.next_line()? {
            None => None,
            Some(Ok(text)) => match serde_json::from_str::<AuditRecord>(&text) {
                Ok(f) => Some(format!(
                    "the audit file goes on to record {} (line {n} of {file}) but the database ends at record {last_seq}: records after {last_seq} were deleted from the database",
                    f.seq
                )),
                Err(_) => Some(format!(
                    "line {n} of {file} is not an audit record, and the database ends at record {last_seq}: the file was edited"
                )),
            },
            Some(Err(what)) => Some(format!("line {n} of {file} {what}: the file was edited")),
        };
        Ok(())
    }
}

/// The fields (by their JSON names) in which two records differ.
fn fields_differing(a: &AuditRecord, b: &AuditRecord) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return vec!["their contents".into()];
    };
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AUDIT_FILE;
    use crate::chain::tests::{chained, key, record};

    fn trail(n: i64) -> Vec<AuditRecord> {
        chained(&key(), (1..=n).map(record).collect())
    }

    fn lines(records: &[AuditRecord]) -> String {
        records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect()
    }

    /// Verifies `db` (the database's records, in order) and, with `file`, the audit file
    /// holding that text. Returns the problems and whether the file only ends early.
    fn verify(db: &[AuditRecord], file: Option<&str>, holds: FileHolds) -> (Vec<String>, bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AUDIT_FILE);
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        let key = key();
        let mut v = Verifier::new(&key, Some((&path, holds))).unwrap();
        for r in db {
            v.record(r).unwrap();
        }
        let (report, behind) = v.finish().unwrap();
        assert_eq!(report.records, db.len() as u64);
        (report.problems, behind)
    }

    fn one(problems: &[String], starts: &str) {
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(starts) || problems[0].contains(starts),
            "{problems:?}"
        );
    }

    #[test]
    fn a_file_equal_to_the_database_passes() {
        let t = trail(4);
        assert_eq!(
            verify(&t, Some(&lines(&t)), FileHolds::All),
            (vec![], false)
        );
        assert_eq!(verify(&[], None, FileHolds::All), (vec![], false));
        assert_eq!(verify(&[], Some(""), FileHolds::All), (vec![], false));
    }

    #[test]
    fn a_missing_or_emptied_file_is_reported() {
        let t = trail(3);
        let (p, behind) = verify(&t, None, FileHolds::All);
        one(&p, "is missing, but the database holds records");
        assert!(!behind, "a missing file is not catching up");
        let (p, behind) = verify(&t, Some(""), FileHolds::All);
        one(&p, "is empty, but the database holds records from record 1");
        assert!(behind);
    }

    #[test]
    fn a_truncated_file_is_reported_as_behind() {
        let t = trail(5);
        let (p, behind) = verify(&t, Some(&lines(&t[..3])), FileHolds::All);
        one(
            &p,
            "ends after line 3 (record 3), but the database goes on to record 4",
        );
        assert!(behind, "read again: a running server may append it yet");
    }

    #[test]
    fn records_cut_off_the_databases_end_are_seen_in_the_file() {
        let t = trail(5);
        let (p, behind) = verify(&t[..3], Some(&lines(&t)), FileHolds::All);
        one(&p, "the audit file goes on to record 4 (line 4 of");
        assert!(!behind);
    }

    #[test]
    fn an_edited_line_is_reported_with_the_fields_it_changed() {
        let t = trail(4);
        let mut file = t.clone();
        file[2].principal = "arn:aws:iam::000000000000:user/mallory".into();
        let (p, _) = verify(&t, Some(&lines(&file)), FileHolds::All);
        one(
            &p,
            "(record 3) does not verify under this server's audit key and differs from the database in Principal",
        );
    }

    #[test]
    fn an_edited_database_record_is_reported_twice() {
        // The chain breaks, and the file, still intact, disagrees with the database.
        let t = trail(4);
        let mut db = t.clone();
        db[1].action = "secretsmanager:ListSecrets".into();
        let (p, _) = verify(&db, Some(&lines(&t)), FileHolds::All);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("record 2 does not match its MAC"), "{p:?}");
        assert!(
            p[1].contains("(record 2) differs from the database's record 2 in Action"),
            "{p:?}"
        );
    }

    #[test]
    fn another_servers_file_is_reported() {
        let t = trail(3);
        let other = chained(
            &kura_crypto::mac::MacKey::new(b"another server"),
            (1..=3).map(record).collect(),
        );
        let (p, _) = verify(&t, Some(&lines(&other)), FileHolds::All);
        one(&p, "line 1 of");
        assert!(
            p[0].contains("does not verify under this server's audit key"),
            "{p:?}"
        );
    }

    #[test]
    fn removed_reordered_or_garbled_lines_are_reported() {
        let t = trail(4);
        let mut file = t.clone();
        file.remove(1);
        let (p, _) = verify(&t, Some(&lines(&file)), FileHolds::All);
        one(&p, "line 2 of");
        assert!(p[0].contains("is record 3, but the database's record number 2 is record 2"));

        let mut file = t.clone();
        file.swap(0, 1);
        let (p, _) = verify(&t, Some(&lines(&file)), FileHolds::All);
        one(&p, "line 1 of");

        let text = lines(&t).replacen("{\"Seq\":2", "{\"Seq\":", 1);
        let (p, _) = verify(&t, Some(&text), FileHolds::All);
        one(
            &p,
            "is not an audit record (the database's record 2 belongs there)",
        );
    }

    /// Six records on one chain, written by two nodes in turn: a's are 1, 3 and 4.
    fn cluster_trail() -> (Vec<AuditRecord>, Vec<AuditRecord>) {
        let db = chained(
            &key(),
            (1..=6)
                .map(|i| AuditRecord {
                    node: if [1, 3, 4].contains(&i) {
                        "node-a"
                    } else {
                        "node-b"
                    }
                    .into(),
                    ..record(i)
                })
                .collect(),
        );
        let own = db.iter().filter(|r| r.node == "node-a").cloned().collect();
        (db, own)
    }

    #[test]
    fn a_nodes_file_holds_its_own_records_in_the_chains_order() {
        let (db, own) = cluster_trail();
        assert_eq!(
            verify(&db, Some(&lines(&own)), FileHolds::OwnRecords),
            (vec![], false)
        );
        // A node's file that ends early is not reported (its missing lines cannot be told
        // from other nodes' records: verify does not know which node it is).
        assert_eq!(
            verify(&db, Some(&lines(&own[..1])), FileHolds::OwnRecords),
            (vec![], false)
        );
    }

    #[test]
    fn a_nodes_file_finds_records_cut_from_the_shared_database() {
        let (db, own) = cluster_trail();
        let (p, _) = verify(&db[..2], Some(&lines(&own)), FileHolds::OwnRecords);
        one(&p, "holds record 3 but the database ends at record 2");
    }

    #[test]
    fn a_nodes_file_with_an_edited_or_moved_line_is_reported() {
        let (db, own) = cluster_trail();
        let mut file = own.clone();
        file[1].outcome = "Error".into();
        let (p, _) = verify(&db, Some(&lines(&file)), FileHolds::OwnRecords);
        one(
            &p,
            "(record 3) does not verify under this installation's audit key and differs from the database in Outcome",
        );

        let mut file = own.clone();
        file.swap(1, 2);
        let (p, _) = verify(&db, Some(&lines(&file)), FileHolds::OwnRecords);
        one(&p, "is record 3, which is not where the database has it");
    }
}
