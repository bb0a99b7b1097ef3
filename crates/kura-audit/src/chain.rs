//! The HMAC chain: each record's MAC covers the MAC before it and the record itself, so a
//! record edited, removed, inserted or moved breaks the chain at that point for anyone who
//! holds the key, and nobody without the key can mend it.

use kura_crypto::mac::MacKey;

use crate::AuditRecord;

/// The chain starts from this "previous MAC".
pub(crate) const GENESIS: &str = "kura-audit-v1";

/// The MAC of `r` chained after `prev`: HMAC over the previous MAC, a newline, and the record
/// as a JSON line with an empty `Mac`. Databases and files hold MACs made this way, so these
/// bytes must never change (a test pins them).
pub(crate) fn mac_of(key: &MacKey, prev: &str, r: &AuditRecord) -> String {
    let mut unsigned = r.clone();
    unsigned.mac.clear();
    let mut data = prev.as_bytes().to_vec();
    data.push(b'\n');
    // Serialising a struct keeps field order, so this is a stable canonical form.
    data.extend(serde_json::to_vec(&unsigned).unwrap_or_default());
    hex::encode(key.sign(&data))
}

/// Walks records in the order the database holds them and notes every break of the chain.
pub(crate) struct ChainCheck {
    /// The MAC the next record must be chained after.
    prev: String,
    /// The sequence number the next record should have.
    expected: i64,
    pub(crate) records: u64,
    pub(crate) problems: Vec<String>,
}

impl ChainCheck {
    pub(crate) fn new() -> Self {
        ChainCheck {
            prev: GENESIS.to_string(),
            expected: 1,
            records: 0,
            problems: Vec::new(),
        }
    }

    /// The MAC the next record is chained after (the last record's, as stored).
    pub(crate) fn prev(&self) -> &str {
        &self.prev
    }

    /// The sequence number of the last record seen, 0 before the first.
    pub(crate) fn last_seq(&self) -> i64 {
        self.expected - 1
    }

    pub(crate) fn check(&mut self, key: &MacKey, r: &AuditRecord) {
        self.records += 1;
        if r.seq != self.expected {
            self.problems.push(if r.seq > self.expected {
                format!(
                    "records {} to {} are missing: deleted from the database",
                    self.expected,
                    r.seq - 1
                )
            } else {
                format!("record {} appears out of order", r.seq)
            });
        }
        if mac_of(key, &self.prev, r) != r.mac {
            self.problems.push(format!(
                "record {} does not match its MAC: it was edited, or records before it were removed or reordered",
                r.seq
            ));
        }
        self.prev = r.mac.clone();
        self.expected = r.seq + 1;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    pub(crate) fn key() -> MacKey {
        MacKey::new(b"the audit key of these tests")
    }

    pub(crate) fn record(seq: i64) -> AuditRecord {
        AuditRecord {
            seq,
            time: 1_700_000_000_000 + seq,
            request_id: format!("req-{seq}"),
            kind: "request".into(),
            principal: "arn:aws:iam::000000000000:user/alice".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            action: "secretsmanager:GetSecretValue".into(),
            resource: format!("arn:aws:secretsmanager:us-east-1:000000000000:secret:s{seq}"),
            decision: "Allow".into(),
            outcome: "Success".into(),
            duration_us: 120,
            node: "node-a".into(),
            ..Default::default()
        }
    }

    /// Numbers and chains `records` as a store does.
    pub(crate) fn chained(key: &MacKey, mut records: Vec<AuditRecord>) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_string();
        for (i, r) in records.iter_mut().enumerate() {
            r.seq = i as i64 + 1;
            r.mac = mac_of(key, &prev, r);
            prev = r.mac.clone();
        }
        records
    }

    fn problems(records: &[AuditRecord]) -> Vec<String> {
        let key = key();
        let mut check = ChainCheck::new();
        for r in records {
            check.check(&key, r);
        }
        assert_eq!(check.records, records.len() as u64);
        check.problems
    }

    fn trail(n: i64) -> Vec<AuditRecord> {
        chained(&key(), (1..=n).map(record).collect())
    }

    #[test]
    fn the_mac_covers_the_previous_mac_and_the_json_line_without_its_mac() {
        // Stored chains were signed this way: a change of field names, order or encoding
        // would make every existing trail fail verification.
        let mut r = record(1);
        r.version_id = Some("v1".into());
        r.mac = "ignored".into();
        let mut unsigned = r.clone();
        unsigned.mac.clear();
        let line = serde_json::to_string(&unsigned).unwrap();
        assert_eq!(
            line,
            r#"{"Seq":1,"Time":1700000000001,"RequestId":"req-1","Kind":"request","Principal":"arn:aws:iam::000000000000:user/alice","AccessKeyId":"AKIAEXAMPLE","Action":"secretsmanager:GetSecretValue","Resource":"arn:aws:secretsmanager:us-east-1:000000000000:secret:s1","VersionId":"v1","VersionStage":null,"SourceIp":null,"UserAgent":null,"Decision":"Allow","Outcome":"Success","ErrorCode":null,"DurationUs":120,"Mac":"","Node":"node-a"}"#
        );
        // HMAC-SHA256 of "kura-audit-v1\n" + that line, computed apart (Python's hmac).
        assert_eq!(
            mac_of(&key(), GENESIS, &r),
            "cda45c2aeddd9091e299c3cc06659e06b89b6a71017e72063568b976125e4000"
        );
    }

    #[test]
    fn a_record_without_a_node_signs_as_records_did_before_nodes_were_named() {
        let mut r = record(1);
        r.node.clear();
        let line = serde_json::to_string(&r).unwrap();
        assert!(!line.contains("Node"), "{line}");
    }

    #[test]
    fn an_intact_chain_has_no_problems() {
        assert!(problems(&trail(5)).is_empty());
        assert!(problems(&[]).is_empty());
    }

    #[test]
    fn an_edited_record_is_found() {
        let mut t = trail(5);
        t[2].principal = "arn:aws:iam::000000000000:user/mallory".into();
        assert_eq!(
            problems(&t),
            [
                "record 3 does not match its MAC: it was edited, or records before it were removed or reordered"
            ]
        );
    }

    #[test]
    fn a_removed_record_is_found_where_the_chain_resumes() {
        let mut t = trail(5);
        t.remove(1);
        let p = problems(&t);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(
            p[0],
            "records 2 to 2 are missing: deleted from the database"
        );
        assert!(p[1].starts_with("record 3 does not match its MAC"), "{p:?}");
    }

    #[test]
    fn removed_and_renumbered_records_are_found() {
        // Renumbering hides the gap in the sequence, not in the chain.
        let mut t = trail(5);
        t.remove(1);
        for (i, r) in t.iter_mut().enumerate() {
            r.seq = i as i64 + 1;
        }
        let p = problems(&t);
        assert!(!p.is_empty());
        assert!(
            p.iter().all(|p| p.contains("does not match its MAC")),
            "{p:?}"
        );
    }

    #[test]
    fn reordered_records_are_found() {
        let mut t = trail(5);
        t.swap(1, 3);
        let p = problems(&t);
        assert!(
            p.contains(&"record 2 appears out of order".to_string()),
            "{p:?}"
        );
        assert!(
            p.iter().any(|p| p.starts_with("record 4 does not match")),
            "{p:?}"
        );
    }

    #[test]
    fn a_replaced_mac_is_found() {
        // Another record's MAC, and a MAC made with another key over the right bytes.
        let mut t = trail(5);
        t[2].mac = t[3].mac.clone();
        assert!(problems(&t).iter().any(|p| p.starts_with("record 3 ")));
        let mut t = trail(5);
        t[2].mac = mac_of(&MacKey::new(b"a guessed key"), &t[1].mac, &t[2]);
        let p = problems(&t);
        assert!(p[0].starts_with("record 3 does not match its MAC"), "{p:?}");
        // The next record chains after the stored MAC, so it fails too.
        assert!(p[1].starts_with("record 4 does not match its MAC"), "{p:?}");
    }

    #[test]
    fn a_chain_signed_with_another_key_fails_everywhere() {
        let t = chained(
            &MacKey::new(b"another server"),
            (1..=3).map(record).collect(),
        );
        assert_eq!(problems(&t).len(), 3);
    }

    #[test]
    fn records_cut_off_the_end_leave_the_chain_intact() {
        // The limit of a chain on its own: only the file (or a copy elsewhere) sees this.
        let mut t = trail(5);
        t.truncate(3);
        assert!(problems(&t).is_empty());
    }

    #[derive(Debug, Clone)]
    enum Tamper {
        Edit(usize, String),
        Remove(usize),
        Swap(usize, usize),
        ReplaceMac(usize, Vec<u8>),
        Insert(usize),
    }

    fn tamper(n: usize) -> impl Strategy<Value = Tamper> {
        prop_oneof![
            (0..n, "[a-z]{1,12}").prop_map(|(i, s)| Tamper::Edit(i, s)),
            // Removing the last record is the one change the chain cannot see.
            (0..n - 1).prop_map(Tamper::Remove),
            (0..n, 0..n)
                .prop_filter("two places", |(a, b)| a != b)
                .prop_map(|(a, b)| Tamper::Swap(a, b)),
            (0..n, proptest::collection::vec(any::<u8>(), 1..32))
                .prop_map(|(i, k)| Tamper::ReplaceMac(i, k)),
            (0..=n).prop_map(Tamper::Insert),
        ]
    }

    fn records(n: usize) -> impl Strategy<Value = Vec<AuditRecord>> {
        proptest::collection::vec(
            (
                "[a-zA-Z0-9:/_-]{0,20}",
                "[A-Za-z]{1,16}",
                any::<bool>(),
                any::<i64>(),
            ),
            n,
        )
        .prop_map(|fields| {
            fields
                .into_iter()
                .enumerate()
                .map(|(i, (principal, action, ok, time))| AuditRecord {
                    principal,
                    action,
                    outcome: if ok { "Success" } else { "Error" }.into(),
                    time,
                    ..record(i as i64 + 1)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn any_change_but_a_cut_at_the_end_is_found(
            (t, change) in (2usize..24).prop_flat_map(|n| (records(n), tamper(n)))
        ) {
            let key = key();
            let mut t = chained(&key, t);
            prop_assert!(problems(&t).is_empty());
            match change {
                Tamper::Edit(i, s) => {
                    let before = t[i].clone();
                    t[i].principal.push_str(&s);
                    prop_assert_ne!(&before, &t[i]);
                }
                Tamper::Remove(i) => {
                    t.remove(i);
                }
                Tamper::Swap(a, b) => t.swap(a, b),
                Tamper::ReplaceMac(i, other) => {
                    let prev = if i == 0 { GENESIS.to_string() } else { t[i - 1].mac.clone() };
                    let forged = mac_of(&MacKey::new(&other), &prev, &t[i]);
                    prop_assume!(forged != t[i].mac);
                    t[i].mac = forged;
                }
                Tamper::Insert(i) => {
                    // A record forged with a guessed key, numbered to fit in.
                    let prev = if i == 0 { GENESIS.to_string() } else { t[i - 1].mac.clone() };
                    let mut r = record(i as i64 + 1);
                    r.mac = mac_of(&MacKey::new(b"guessed"), &prev, &r);
                    t.insert(i, r);
                    for (j, r) in t.iter_mut().enumerate().skip(i + 1) {
                        r.seq = j as i64 + 1;
                    }
                }
            }
            prop_assert!(!problems(&t).is_empty());
        }
    }
}
