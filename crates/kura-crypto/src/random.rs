//! Uniform choices from the system CSPRNG.

use kura_core::{Error, Result};

pub fn fill(buf: &mut [u8]) -> Result<()> {
    aws_lc_rs::rand::fill(buf).map_err(|_| Error::internal("the system random generator failed"))
}

/// A uniform index in `0..n` (n > 0), by rejection sampling so no index is favoured.
pub fn index(n: usize) -> Result<usize> {
    debug_assert!(n > 0 && n <= u32::MAX as usize);
    let n = n as u64;
    let zone = (u64::from(u32::MAX) + 1) / n * n;
    loop {
        let mut b = [0u8; 4];
        fill(&mut b)?;
        let x = u64::from(u32::from_le_bytes(b));
        if x < zone {
            return Ok((x % n) as usize);
        }
    }
}

/// `len` characters drawn uniformly from `alphabet`.
pub fn string_from(alphabet: &[char], len: usize) -> Result<String> {
    (0..len)
        .map(|_| Ok(alphabet[index(alphabet.len())?]))
        .collect()
}

pub const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Mixed-case alphanumerics, as in ARN suffixes and access key secrets.
pub fn alnum(len: usize) -> Result<String> {
    let chars: Vec<char> = ALNUM.chars().collect();
    string_from(&chars, len)
}

#[cfg(test)]
mod tests {
    #[test]
    fn index_is_in_range_and_covers() {
        let mut seen = [false; 7];
        for _ in 0..500 {
            seen[super::index(7).unwrap()] = true;
        }
        assert!(seen.iter().all(|s| *s));
        let s = super::alnum(6).unwrap();
        assert_eq!(s.len(), 6);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
