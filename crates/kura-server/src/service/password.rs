//! GetRandomPassword, and the rules shared with the `kura-password` rotation function.

use kura_core::{Error, Result};
use kura_crypto::{PasswordSpec, generate_password};

use super::{Caller, Service};
use crate::service::types::*;

/// GetRandomPassword's parameters as a generator spec; unset fields take AWS's defaults.
pub(crate) fn password_spec(req: &GetRandomPasswordRequest) -> Result<PasswordSpec> {
    let d = PasswordSpec::default();
    let length = match req.password_length {
        None => d.length,
        Some(n @ 1..=4096) => n as usize,
        Some(n) => {
            // Outside the model's range: ValidationException, as AWS answers.
            return Err(Error::validation(format!(
                "PasswordLength must be between 1 and 4096; got {n}."
            )));
        }
    };
    let spec = PasswordSpec {
        length,
        exclude_characters: req.exclude_characters.clone().unwrap_or_default(),
        exclude_numbers: req.exclude_numbers.unwrap_or(false),
        exclude_punctuation: req.exclude_punctuation.unwrap_or(false),
        exclude_uppercase: req.exclude_uppercase.unwrap_or(false),
        exclude_lowercase: req.exclude_lowercase.unwrap_or(false),
        include_space: req.include_space.unwrap_or(false),
        require_each_included_type: req.require_each_included_type.unwrap_or(true),
    };
    Ok(spec)
}

impl Service {
    pub async fn get_random_password(
        &self,
        _p: &Caller,
        req: GetRandomPasswordRequest,
    ) -> Result<GetRandomPasswordResponse> {
        Ok(GetRandomPasswordResponse {
            random_password: SecretText(generate_password(&password_spec(&req)?)?),
        })
    }
}
