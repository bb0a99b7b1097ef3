//! HMAC-SHA256 for tokens the server hands out and must recognise later (pagination tokens).

use aws_lc_rs::hmac;

pub struct MacKey(hmac::Key);

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey([redacted])")
    }
}

impl MacKey {
    pub fn new(secret: &[u8]) -> Self {
        MacKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        hmac::sign(&self.0, data).as_ref().to_vec()
    }

    /// Constant-time check of a tag produced by [`sign`](Self::sign).
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&self.0, data, tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sign_verify() {
        let k = super::MacKey::new(b"k");
        let t = k.sign(b"page 2");
        assert!(k.verify(b"page 2", &t));
        assert!(!k.verify(b"page 3", &t));
        assert!(!super::MacKey::new(b"other").verify(b"page 2", &t));
    }
}
