//! The text PostgreSQL cannot hold.

/// `s` with each NUL replaced by U+FFFD. For text kura records rather than validates (an
/// audited request's raw fields, a rotation function's error output): PostgreSQL text cannot
/// hold NUL, and refusing to record would lose the record, not the NUL.
pub(super) fn without_nul(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}").into()
    } else {
        s.into()
    }
}

/// Whether a lookup key holds a NUL: nothing stored does (PostgreSQL text cannot), so the
/// lookup finds nothing, as on SQLite, without asking the database (which would refuse it).
pub(super) fn has_nul(keys: &[&str]) -> bool {
    keys.iter().any(|k| k.contains('\0'))
}
