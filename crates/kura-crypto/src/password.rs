//! GetRandomPassword's generator.

use kura_core::{Error, Result};
use zeroize::Zeroizing;

use crate::random;

pub const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const DIGITS: &str = "0123456789";

#[derive(Debug, Clone)]
pub struct PasswordSpec {
    pub length: usize,
    pub exclude_characters: String,
    pub exclude_numbers: bool,
    pub exclude_punctuation: bool,
    pub exclude_uppercase: bool,
    pub exclude_lowercase: bool,
    pub include_space: bool,
    pub require_each_included_type: bool,
}

impl Default for PasswordSpec {
    fn default() -> Self {
        PasswordSpec {
            length: 32,
            exclude_characters: String::new(),
            exclude_numbers: false,
            exclude_punctuation: false,
            exclude_uppercase: false,
            exclude_lowercase: false,
            include_space: false,
            require_each_included_type: true,
        }
    }
}

pub const MAX_LENGTH: usize = 4096;

pub fn generate_password(spec: &PasswordSpec) -> Result<Zeroizing<String>> {
    if !(1..=MAX_LENGTH).contains(&spec.length) {
        return Err(Error::invalid_parameter(format!(
            "PasswordLength must be between 1 and {MAX_LENGTH}."
        )));
    }
    let keep = |set: &str, excluded: bool| -> Vec<char> {
        if excluded {
            return Vec::new();
        }
        set.chars()
            .filter(|c| !spec.exclude_characters.contains(*c))
            .collect()
    };
    let classes: Vec<Vec<char>> = [
        keep(UPPER, spec.exclude_uppercase),
        keep(LOWER, spec.exclude_lowercase),
        keep(DIGITS, spec.exclude_numbers),
        keep(PUNCTUATION, spec.exclude_punctuation),
    ]
    .into_iter()
    .filter(|c| !c.is_empty())
    .collect();
    let mut alphabet: Vec<char> = classes.iter().flatten().copied().collect();
    if spec.include_space && !spec.exclude_characters.contains(' ') {
        alphabet.push(' ');
    }
    if alphabet.is_empty() {
        return Err(Error::invalid_parameter(
            "The exclusions leave no characters to build a password from; exclude fewer character types or characters.",
        ));
    }
    let required: &[Vec<char>] = if spec.require_each_included_type {
        &classes
    } else {
        &[]
    };
    if required.len() > spec.length {
        return Err(Error::invalid_parameter(format!(
            "PasswordLength {} is too short to include one character of each of the {} required types.",
            spec.length,
            required.len()
        )));
    }
    let mut chars = Zeroizing::new(Vec::with_capacity(spec.length));
    for class in required {
        chars.push(class[random::index(class.len())?]);
    }
    while chars.len() < spec.length {
        chars.push(alphabet[random::index(alphabet.len())?]);
    }
    // Fisher–Yates, so the required characters are not always in front.
    for i in (1..chars.len()).rev() {
        let j = random::index(i + 1)?;
        chars.swap(i, j);
    }
    Ok(Zeroizing::new(chars.iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_has_every_type() {
        for _ in 0..50 {
            let p = generate_password(&PasswordSpec::default()).unwrap();
            assert_eq!(p.chars().count(), 32);
            assert!(p.chars().any(|c| c.is_ascii_uppercase()));
            assert!(p.chars().any(|c| c.is_ascii_lowercase()));
            assert!(p.chars().any(|c| c.is_ascii_digit()));
            assert!(p.chars().any(|c| PUNCTUATION.contains(c)));
            assert!(!p.contains(' '));
        }
    }

    #[test]
    fn exclusions() {
        let spec = PasswordSpec {
            length: 200,
            exclude_characters: "abc".into(),
            exclude_punctuation: true,
            exclude_numbers: true,
            ..Default::default()
        };
        let p = generate_password(&spec).unwrap();
        assert!(
            p.chars()
                .all(|c| c.is_ascii_alphabetic() && !"abc".contains(c))
        );
        let none = PasswordSpec {
            exclude_lowercase: true,
            exclude_uppercase: true,
            exclude_numbers: true,
            exclude_punctuation: true,
            ..Default::default()
        };
        assert!(generate_password(&none).is_err());
        let short = PasswordSpec {
            length: 3,
            ..Default::default()
        };
        assert!(generate_password(&short).is_err());
        assert!(
            generate_password(&PasswordSpec {
                length: 0,
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            generate_password(&PasswordSpec {
                length: 4097,
                ..Default::default()
            })
            .is_err()
        );
    }
}
