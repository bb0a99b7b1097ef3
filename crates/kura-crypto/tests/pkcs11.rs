//! The PKCS#11 seal against a real SoftHSM2 token (Debian's `softhsm2`, installed by
//! `scripts/test`): a key made in the HSM wraps and unwraps the root key, a second start finds
//! the same key, and each misconfiguration is refused saying what to fix.

use std::path::{Path, PathBuf};
use std::process::Command;

use kura_crypto::RootKey;
use kura_crypto::pkcs11::{HsmConfig, HsmSeal};
use zeroize::Zeroizing;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Skips (saying why) where SoftHSM2 is absent; in CI (`CI=true`) that is a failure.
fn softhsm_or_skip() -> Option<PathBuf> {
    if Path::new(MODULE).exists() {
        return Some(PathBuf::from(MODULE));
    }
    let reason =
        format!("SoftHSM2 is not installed ({MODULE} is missing; scripts/test installs it)");
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(!ci, "would skip in CI: {reason}");
    eprintln!("SKIPPED: pkcs11: {reason}");
    if let Some(path) = std::env::var_os("KURA_TEST_SKIPS").filter(|p| !p.is_empty()) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(f, "pkcs11::softhsm: {reason}").unwrap();
    }
    None
}

/// What the operator reads: internal errors carry it in their detail.
fn said(e: &kura_core::Error) -> String {
    e.detail.clone().unwrap_or_else(|| e.message.clone())
}

fn config(slot_label: &str, pin: &str, key: &str) -> HsmConfig {
    HsmConfig {
        module: PathBuf::from(MODULE),
        slot: None,
        token_label: Some(slot_label.into()),
        pin: Zeroizing::new(pin.into()),
        key_label: key.into(),
    }
}

#[test]
fn softhsm_wraps_the_root_key_with_a_key_that_stays_inside() {
    let Some(_) = softhsm_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    // SoftHSM reads its configuration when the library initialises; this test binary holds
    // only this one test, so setting it for the process is safe.
    unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
    let init = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "kura-test",
            "--pin",
            "1234",
            "--so-pin",
            "5678",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .expect("softhsm2-util runs");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );

    // No key yet: refused unless kura may create it (initialisation).
    let cfg = config("kura-test", "1234", "kura-root");
    let e = HsmSeal::open(&cfg, false).err().expect("no key yet");
    assert!(
        said(&e).contains("no AES key labelled \"kura-root\""),
        "{e:?}"
    );

    let root = RootKey::generate().unwrap();
    let wrapped = {
        let hsm = HsmSeal::open(&cfg, true).expect("creates the key and opens");
        let wrapped = hsm.wrap_root(&root).unwrap();
        assert!(
            !wrapped.windows(32).any(|w| w == root.expose_bytes()),
            "wrapped, not copied"
        );
        let opened = hsm.unwrap_root(&wrapped).unwrap().expect("opens");
        assert_eq!(opened.expose_bytes(), root.expose_bytes());
        wrapped
    };

    // A later start finds the same key (no new one is made) and opens what it wrapped.
    let hsm = HsmSeal::open(&cfg, true).expect("opens again");
    let opened = hsm.unwrap_root(&wrapped).unwrap().expect("same key");
    assert_eq!(opened.expose_bytes(), root.expose_bytes());
    let mut altered = wrapped.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    assert!(
        hsm.unwrap_root(&altered).unwrap().is_none(),
        "altered bytes do not open"
    );
    drop(hsm);

    // Another key of the same token does not open it.
    let other = HsmSeal::open(&config("kura-test", "1234", "another"), true).unwrap();
    assert!(other.unwrap_root(&wrapped).unwrap().is_none());
    drop(other);

    // Misconfigurations name the part to fix.
    let e = HsmSeal::open(&config("kura-test", "0000", "kura-root"), false)
        .err()
        .unwrap();
    assert!(said(&e).contains("PIN"), "{e:?}");
    let e = HsmSeal::open(&config("nope", "1234", "kura-root"), false)
        .err()
        .unwrap();
    assert!(said(&e).contains("no token labelled \"nope\""), "{e:?}");
    let mut bad = cfg.clone();
    bad.module = PathBuf::from("/nonexistent/libpkcs11.so");
    let e = HsmSeal::open(&bad, false).err().unwrap();
    assert!(said(&e).contains("--pkcs11-module"), "{e:?}");
    assert!(
        !format!("{cfg:?}").contains("1234"),
        "the PIN is not printed"
    );
}
