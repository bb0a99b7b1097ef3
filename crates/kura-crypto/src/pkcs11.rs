//! The PKCS#11 seal: the root key is wrapped with AES-256-GCM by a key that lives in an HSM and
//! never leaves it (non-extractable, sensitive). kura asks the HSM to encrypt or decrypt 32
//! bytes at start-up; nothing else crosses.

use std::fmt;
use std::path::PathBuf;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use kura_core::{Error, Result};
use zeroize::Zeroizing;

use crate::envelope::{KEY_LEN, RootKey};
use crate::random;

const ROOT_AAD: &[u8] = b"kura/root-key/pkcs11";
const IV_LEN: usize = 12;
const TAG_BITS: u64 = 128;

/// Where the HSM key is and how to log in. The PIN is never printed.
#[derive(Clone)]
pub struct HsmConfig {
    /// The vendor's PKCS#11 library (SoftHSM2: `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// The slot by number, or else by its token's label.
    pub slot: Option<u64>,
    pub token_label: Option<String>,
    pub pin: Zeroizing<String>,
    /// The label of the AES key that wraps kura's root key.
    pub key_label: String,
}

impl fmt::Debug for HsmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HsmConfig")
            .field("module", &self.module)
            .field("slot", &self.slot)
            .field("token_label", &self.token_label)
            .field("pin", &"[redacted]")
            .field("key_label", &self.key_label)
            .finish()
    }
}

/// A logged-in session with the wrapping key found (or made).
pub struct HsmSeal {
    session: Session,
    key: ObjectHandle,
    // Dropped after the session: the library must outlive it.
    _library: Pkcs11,
}

fn hsm_err(what: impl fmt::Display, e: impl fmt::Display) -> Error {
    Error::internal(format!("{what}: {e}"))
}

impl HsmSeal {
    /// Loads the module, finds the token, logs in and finds the key labelled
    /// `cfg.key_label`; with `create_key`, makes that key in the HSM when there is none (at
    /// initialisation). Errors say which part failed and what to check.
    pub fn open(cfg: &HsmConfig, create_key: bool) -> Result<HsmSeal> {
        let library = Pkcs11::new(&cfg.module).map_err(|e| {
            hsm_err(
                format!(
                    "cannot load the PKCS#11 module {} (--pkcs11-module)",
                    cfg.module.display()
                ),
                e,
            )
        })?;
        library
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(|e| hsm_err("the PKCS#11 module does not initialise", e))?;
        let slot = find_slot(&library, cfg)?;
        let session = library
            .open_rw_session(slot)
            .map_err(|e| hsm_err(format!("cannot open a session on slot {}", slot.id()), e))?;
        let pin = AuthPin::new(cfg.pin.as_str().into());
        session.login(UserType::User, Some(&pin)).map_err(|e| {
            hsm_err(
                format!(
                    "the HSM refused to log in to slot {} with the PIN given (--pkcs11-pin or KURA_PKCS11_PIN)",
                    slot.id()
                ),
                e,
            )
        })?;
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Label(cfg.key_label.as_bytes().to_vec()),
        ];
        let found = session
            .find_objects(&template)
            .map_err(|e| hsm_err("cannot search the HSM for the key", e))?;
        let key = match found.as_slice() {
            [key] => *key,
            [] if create_key => generate_key(&session, &cfg.key_label)?,
            [] => {
                return Err(Error::internal(format!(
                    "the HSM has no AES key labelled {:?} on slot {} (--pkcs11-key-label): check the label and token, or restore the key into the HSM",
                    cfg.key_label,
                    slot.id()
                )));
            }
            _ => {
                return Err(Error::internal(format!(
                    "the HSM holds {} AES keys labelled {:?}: kura needs exactly one; give the one kura uses a label of its own",
                    found.len(),
                    cfg.key_label
                )));
            }
        };
        Ok(HsmSeal {
            session,
            key,
            _library: library,
        })
    }

    /// The root key, encrypted inside the HSM: IV ‖ ciphertext ‖ tag.
    pub fn wrap_root(&self, root: &RootKey) -> Result<Vec<u8>> {
        let mut iv = [0u8; IV_LEN];
        random::fill(&mut iv)?;
        let mut out = iv.to_vec();
        let params = GcmParams::new(&mut iv, ROOT_AAD, TAG_BITS.into())
            .map_err(|e| hsm_err("AES-GCM parameters", e))?;
        let sealed = self
            .session
            .encrypt(&Mechanism::AesGcm(params), self.key, root.expose_bytes())
            .map_err(|e| hsm_err("the HSM could not wrap the root key (AES-GCM)", e))?;
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// `None` when the HSM key is not the one `wrapped` was sealed under.
    pub fn unwrap_root(&self, wrapped: &[u8]) -> Result<Option<RootKey>> {
        if wrapped.len() < IV_LEN + KEY_LEN {
            return Ok(None);
        }
        let (iv, body) = wrapped.split_at(IV_LEN);
        let mut iv: [u8; IV_LEN] = iv.try_into().map_err(|_| Error::internal("IV length"))?;
        let params = GcmParams::new(&mut iv, ROOT_AAD, TAG_BITS.into())
            .map_err(|e| hsm_err("AES-GCM parameters", e))?;
        match self
            .session
            .decrypt(&Mechanism::AesGcm(params), self.key, body)
        {
            Ok(plain) => {
                let plain = Zeroizing::new(plain);
                RootKey::from_bytes(&plain).map(Some)
            }
            // The tag does not match: another key, or altered bytes. (SoftHSM2 answers a
            // failed GCM tag check with CKR_GENERAL_ERROR.)
            Err(cryptoki::error::Error::Pkcs11(
                RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::GeneralError,
                _,
            )) => Ok(None),
            Err(e) => Err(hsm_err("the HSM could not unwrap the root key", e)),
        }
    }
}

fn find_slot(library: &Pkcs11, cfg: &HsmConfig) -> Result<Slot> {
    let slots = library
        .get_slots_with_token()
        .map_err(|e| hsm_err("cannot list the HSM's slots", e))?;
    if let Some(id) = cfg.slot {
        return slots.into_iter().find(|s| s.id() == id).ok_or_else(|| {
            Error::internal(format!(
                "the HSM has no initialised token in slot {id} (--pkcs11-slot)"
            ))
        });
    }
    let Some(label) = &cfg.token_label else {
        return Err(Error::invalid_parameter(
            "say which HSM token holds the key: --pkcs11-slot NUMBER or --pkcs11-token-label LABEL",
        ));
    };
    let mut labels = Vec::new();
    for slot in slots {
        let info = library
            .get_token_info(slot)
            .map_err(|e| hsm_err(format!("cannot read the token in slot {}", slot.id()), e))?;
        if info.label().trim_end() == label {
            return Ok(slot);
        }
        labels.push(info.label().trim_end().to_string());
    }
    Err(Error::internal(format!(
        "the HSM has no token labelled {label:?} (--pkcs11-token-label); it has {labels:?}"
    )))
}

fn generate_key(session: &Session, label: &str) -> Result<ObjectHandle> {
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen((KEY_LEN as u64).into()),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
    ];
    session
        .generate_key(&Mechanism::AesKeyGen, &template)
        .map_err(|e| hsm_err(format!("the HSM could not create the AES key {label:?}"), e))
}
