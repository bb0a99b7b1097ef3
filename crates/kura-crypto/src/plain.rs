//! A secret value in the clear, as it travels between the service and the code that uses it
//! (the rotation functions among them): zeroized when dropped, never shown by `Debug`.

use kura_core::model::ValueKind;
use kura_core::{Error, Result};
use zeroize::Zeroizing;

/// A secret value: text (`SecretString`) or bytes (`SecretBinary`). `Debug` never shows it.
pub struct Plain {
    kind: ValueKind,
    bytes: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plain({:?}, [redacted])", self.kind)
    }
}

impl Plain {
    pub fn new(kind: ValueKind, bytes: Zeroizing<Vec<u8>>) -> Self {
        Plain { kind, bytes }
    }

    pub fn text(s: &str) -> Self {
        Plain {
            kind: ValueKind::String,
            bytes: Zeroizing::new(s.as_bytes().to_vec()),
        }
    }

    pub fn binary(bytes: Zeroizing<Vec<u8>>) -> Self {
        Plain {
            kind: ValueKind::Binary,
            bytes,
        }
    }

    pub fn kind(&self) -> ValueKind {
        self.kind
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Zeroizing<Vec<u8>> {
        self.bytes
    }

    /// The value as text, if it is a text value.
    pub fn as_text(&self) -> Result<Option<&str>> {
        match self.kind {
            ValueKind::String => std::str::from_utf8(&self.bytes)
                .map(Some)
                .map_err(|_| Error::internal("stored SecretString is not UTF-8")),
            ValueKind::Binary => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let p = Plain::text("hunter2-hunter2");
        let shown = format!("{p:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }
}
