//! Seals: what protects the root key at rest when it is not a plain key file.
//!
//! The root key never changes when the seal does: a seal only wraps it (AES-256-GCM under a
//! seal key), so moving from one seal to another re-wraps 32 bytes and re-encrypts no secret.
//! - Shamir: a random seal key is split into shares (any `threshold` of them rebuild it); the
//!   wrapped root key is kept in the database, the shares by the operators.
//! - PKCS#11: the seal key lives inside an HSM and never leaves it ([`crate::pkcs11`]).

use std::fmt;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kura_core::{Error, Result};
use zeroize::Zeroizing;

use crate::envelope::{self, KEY_LEN, RootKey};
use crate::random;

const ROOT_AAD: &[u8] = b"kura/root-key";

/// A 256-bit key that wraps the root key. Never printed, zeroed on drop.
pub struct SealKey(Zeroizing<[u8; KEY_LEN]>);

impl SealKey {
    pub fn generate() -> Result<Self> {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        random::fill(k.as_mut_slice())?;
        Ok(SealKey(k))
    }

    fn from_bytes(b: &[u8]) -> Option<Self> {
        let k: [u8; KEY_LEN] = b.try_into().ok()?;
        Some(SealKey(Zeroizing::new(k)))
    }

    /// The root key, sealed under this key (nonce ‖ ciphertext ‖ tag).
    pub fn wrap_root(&self, root: &RootKey) -> Result<Vec<u8>> {
        envelope::seal_with(self.0.as_slice(), ROOT_AAD, root.expose_bytes())
    }

    /// `None` when this is not the key `wrapped` was sealed under (or `wrapped` was altered).
    pub fn unwrap_root(&self, wrapped: &[u8]) -> Result<Option<RootKey>> {
        match envelope::open_with(self.0.as_slice(), ROOT_AAD, wrapped) {
            Ok(bytes) => RootKey::from_bytes(&bytes).map(Some),
            Err(_) => Ok(None),
        }
    }
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey([redacted])")
    }
}

/// Shamir's secret sharing of a [`SealKey`] over GF(256) (vsss-rs: constant time).
pub mod shamir {
    use super::*;

    /// Shares given out at most, and threshold bounds; one share alone must not suffice.
    pub const MAX_SHARES: u8 = 16;

    /// One operator's share as they keep it: base64 of the share's index byte and its 32 bytes.
    /// Never printed.
    pub struct Share(Zeroizing<Vec<u8>>);

    impl fmt::Debug for Share {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "Share(#{}, [redacted])", self.index())
        }
    }

    impl Share {
        /// The share's number, 1 to [`MAX_SHARES`].
        pub fn index(&self) -> u8 {
            self.0[0]
        }

        /// The text an operator keeps and types back.
        pub fn to_text(&self) -> Zeroizing<String> {
            Zeroizing::new(B64.encode(self.0.as_slice()))
        }

        /// Parses a share as printed by [`Share::to_text`]; the error says what is wrong with
        /// it without repeating it.
        pub fn parse(text: &str) -> Result<Share> {
            let bytes = Zeroizing::new(B64.decode(text.trim()).map_err(|_| {
                Error::invalid_parameter(
                    "That is not a kura unseal share: a share is the base64 text `kura operator init` printed (44 characters).",
                )
            })?);
            if bytes.len() != 1 + KEY_LEN || bytes[0] == 0 || bytes[0] > MAX_SHARES {
                return Err(Error::invalid_parameter(
                    "That is not a kura unseal share: it decodes, but not to a share of a 256-bit key. Check that it was copied whole.",
                ));
            }
            Ok(Share(bytes))
        }

        /// A digest the installation keeps of each share, so a wrong or mistyped share is
        /// refused when it is given, not only once enough shares are in. Shares are 256 random
        /// bits, so the digest tells nothing about them.
        pub fn digest(&self) -> String {
            let d = digest::digest(&digest::SHA256, self.0.as_slice());
            d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
        }
    }

    /// Checks a `shares`/`threshold` choice; the message says what is allowed.
    pub fn check_counts(shares: u8, threshold: u8) -> Result<()> {
        if !(2..=MAX_SHARES).contains(&shares) || !(2..=shares).contains(&threshold) {
            return Err(Error::invalid_parameter(format!(
                "Give 2 to {MAX_SHARES} shares and a threshold from 2 to the number of shares (got {shares} shares, threshold {threshold}); 5 shares with a threshold of 3 is usual."
            )));
        }
        Ok(())
    }

    /// Splits `key` into `shares` shares, any `threshold` of which rebuild it.
    pub fn split(key: &SealKey, shares: u8, threshold: u8) -> Result<Vec<Share>> {
        check_counts(shares, threshold)?;
        let parts = vsss_rs::Gf256::split_bytes(
            usize::from(threshold),
            usize::from(shares),
            key.0.as_slice(),
            rand::rng(),
        )
        .map_err(|e| Error::internal(format!("splitting the seal key: {e:?}")))?;
        parts
            .into_iter()
            .map(|p| {
                let share = Share(Zeroizing::new(p.to_vec()));
                // Indices are 1..=shares, so a share's index byte tells its number.
                if share.0.len() != 1 + KEY_LEN || share.index() == 0 {
                    return Err(Error::internal("the share split returned an odd share"));
                }
                Ok(share)
            })
            .collect()
    }

    /// Rebuilds the key from at least `threshold` distinct shares. With the wrong shares the
    /// result is some other key: [`SealKey::unwrap_root`] is what tells.
    pub fn combine(shares: &[Share], threshold: u8) -> Result<SealKey> {
        let mut seen = [false; MAX_SHARES as usize + 1];
        for s in shares {
            let i = usize::from(s.index());
            if seen[i] {
                return Err(Error::invalid_parameter(format!(
                    "Share number {i} was given twice; give {threshold} different shares."
                )));
            }
            seen[i] = true;
        }
        if shares.len() < usize::from(threshold) {
            return Err(Error::invalid_parameter(format!(
                "{} of {threshold} shares given; give {} more.",
                shares.len(),
                usize::from(threshold) - shares.len()
            )));
        }
        let parts: Vec<Vec<u8>> = shares.iter().map(|s| s.0.to_vec()).collect();
        let key = vsss_rs::Gf256::combine_bytes(&parts)
            .map_err(|e| Error::internal(format!("combining shares: {e:?}")));
        for mut p in parts {
            zeroize::Zeroize::zeroize(&mut p);
        }
        let mut key = key?;
        let out = SealKey::from_bytes(&key);
        zeroize::Zeroize::zeroize(&mut key);
        out.ok_or_else(|| Error::internal("the shares rebuild a key of the wrong length"))
    }
}

#[cfg(test)]
mod tests {
    use super::shamir::{self, Share};
    use super::*;

    fn reparse(s: &Share) -> Share {
        Share::parse(&s.to_text()).expect("a printed share parses")
    }

    #[test]
    fn any_threshold_of_the_shares_opens_the_root_key_and_fewer_do_not() {
        let root = RootKey::generate().unwrap();
        let key = SealKey::generate().unwrap();
        let wrapped = key.wrap_root(&root).unwrap();
        let shares = shamir::split(&key, 5, 3).unwrap();
        assert_eq!(shares.len(), 5);
        let indices: Vec<u8> = shares.iter().map(Share::index).collect();
        assert_eq!(indices, [1, 2, 3, 4, 5]);
        // Every 3-subset rebuilds the key.
        for a in 0..5 {
            for b in a + 1..5 {
                for c in b + 1..5 {
                    let subset = [
                        reparse(&shares[a]),
                        reparse(&shares[b]),
                        reparse(&shares[c]),
                    ];
                    let rebuilt = shamir::combine(&subset, 3).unwrap();
                    let opened = rebuilt.unwrap_root(&wrapped).unwrap().expect("opens");
                    assert_eq!(opened.expose_bytes(), root.expose_bytes());
                }
            }
        }
        // Two shares are refused; two shares and a share of another key rebuild a key that
        // does not open the root key.
        let two = [reparse(&shares[0]), reparse(&shares[1])];
        let e = shamir::combine(&two, 3).unwrap_err();
        assert!(
            e.message.contains("2 of 3 shares given; give 1 more"),
            "{e}"
        );
        let other = shamir::split(&SealKey::generate().unwrap(), 5, 3).unwrap();
        let mixed = [reparse(&shares[0]), reparse(&shares[1]), reparse(&other[2])];
        let wrong = shamir::combine(&mixed, 3).unwrap();
        assert!(wrong.unwrap_root(&wrapped).unwrap().is_none());
    }

    #[test]
    fn bad_share_text_and_counts_are_refused_with_what_to_do() {
        assert!(Share::parse("not base64!").is_err());
        assert!(Share::parse(&B64.encode([1u8; 10])).is_err());
        assert!(Share::parse(&B64.encode([0u8; 33])).is_err(), "index 0");
        let key = SealKey::generate().unwrap();
        let shares = shamir::split(&key, 3, 2).unwrap();
        let twice = [reparse(&shares[0]), reparse(&shares[0])];
        let e = shamir::combine(&twice, 2).unwrap_err();
        assert!(e.message.contains("given twice"), "{e}");
        for (n, t) in [(1, 1), (5, 1), (5, 6), (17, 3)] {
            assert!(
                shamir::split(&key, n, t).is_err(),
                "{n} shares, threshold {t}"
            );
        }
    }

    #[test]
    fn a_share_digest_names_that_share_only_and_nothing_prints_a_secret() {
        let key = SealKey::generate().unwrap();
        let shares = shamir::split(&key, 3, 2).unwrap();
        assert_eq!(shares[0].digest(), reparse(&shares[0]).digest());
        assert_ne!(shares[0].digest(), shares[1].digest());
        let text = shares[0].to_text();
        assert!(!format!("{:?}", shares[0]).contains(text.as_str()));
        assert_eq!(format!("{key:?}"), "SealKey([redacted])");
    }

    #[test]
    fn a_wrapped_root_key_opens_only_under_its_seal_key_and_unaltered() {
        let root = RootKey::generate().unwrap();
        let key = SealKey::generate().unwrap();
        let mut wrapped = key.wrap_root(&root).unwrap();
        assert!(
            SealKey::generate()
                .unwrap()
                .unwrap_root(&wrapped)
                .unwrap()
                .is_none()
        );
        let last = wrapped.len() - 1;
        wrapped[last] ^= 1;
        assert!(key.unwrap_root(&wrapped).unwrap().is_none());
    }
}
