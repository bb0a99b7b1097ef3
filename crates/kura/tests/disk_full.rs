//! A full disk: requests fail with a clear reason while it lasts, and every request succeeds
//! again once space is freed, without a restart.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use common::*;

/// A small tmpfs mounted on a directory for the test's lifetime.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts one, or says why it cannot (not root, no mount permission in a container).
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A tmpfs for the test, or a recorded skip where none can be mounted (CI runs as root: there
/// `skip` fails the test).
fn tmpfs_or_skip(dir: &Path, size: &str) -> Option<Tmpfs> {
    match Tmpfs::mount(dir, size) {
        Ok(m) => Some(m),
        Err(why) => {
            skip(&format!(
                "cannot mount a tmpfs ({why}); run as root to test a full disk"
            ));
            None
        }
    }
}

/// `kura audit verify` passes on `data_dir`: the file caught up with the database.
fn assert_audit_verifies(data_dir: &Path, when: &str) {
    let verify = Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(["audit", "verify", "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "kura audit verify {when}:\n{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// Writes zeros into `path` until the file system refuses more.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("create the filler file");
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    // Whatever small blocks remain.
    while f.write_all(&block[..512]).is_ok() {}
    let _ = f.sync_all();
}

#[tokio::test]
async fn after_a_full_disk_every_request_succeeds_again_without_a_restart() {
    let tmp = tempfile::Builder::new()
        .prefix("kura-test-")
        .tempdir()
        .unwrap();
    let data = tmp.path().join("data");
    let Some(mount) = tmpfs_or_skip(&data, "24m") else {
        return;
    };
    let server = Server::start_in(tmp).await;
    let client = server.client().await;
    let name = format!("disk-full/{}", unique_suffix());
    create_plain(
        &client,
        &name,
        "a value that is stored before the disk fills",
    )
    .await;

    let filler = data.join("filler");
    fill(&filler);
    // SQLite reuses its write-ahead log's space after a checkpoint, so writes go on for a
    // while; large values use up that space quickly.
    let big = "x".repeat(60_000);
    let mut refused = None;
    for n in 0..400 {
        let put = client
            .put_secret_value()
            .secret_id(&name)
            .secret_string(format!("{n}{big}"))
            .send()
            .await;
        if let Err(e) = put {
            refused = Some((
                e.code().unwrap_or("").to_string(),
                e.message().unwrap_or("").to_string(),
            ));
            break;
        }
    }
    let (code, message) = refused.expect("writes kept succeeding on a full disk");
    assert_eq!(code, "InternalServiceError", "{message}");
    assert!(
        message.contains("disk is full"),
        "the error should say the server cannot write: {message}"
    );
    // A read needs its audit record written, so it fails the same way, and says so.
    let read = client.get_secret_value().secret_id(&name).send().await;
    if let Err(e) = read {
        assert!(
            e.message().unwrap_or("").contains("disk is full"),
            "{:?}",
            e.message()
        );
    }

    std::fs::remove_file(&filler).unwrap();
    // Every request succeeds again: more than the pool has connections, writes and reads.
    for n in 0..40 {
        let value = format!("value {n} after space was freed");
        ok(client
            .put_secret_value()
            .secret_id(&name)
            .secret_string(&value)
            .send()
            .await);
        assert_eq!(get_string(&client, &name).await, value);
        ok(client
            .create_secret()
            .name(format!("{name}-{n}"))
            .secret_string("another value after space was freed")
            .send()
            .await);
    }
    drop(client);
    let data_dir = server.data_dir.clone();
    let tmp = server.stop().await;
    // The audit file caught up with the database: the chain verifies, file included.
    assert_audit_verifies(&data_dir, "after the disk was freed");
    drop(mount);
    drop(tmp);
}

/// Mounts `what` onto `at` with `mount --bind`; unmounted on drop.
struct Bind(PathBuf);

impl Bind {
    fn mount(what: &Path, at: &Path) -> Bind {
        let status = Command::new("mount")
            .arg("--bind")
            .arg(what)
            .arg(at)
            .status()
            .expect("run mount --bind");
        assert!(
            status.success(),
            "mount --bind {} {}",
            what.display(),
            at.display()
        );
        Bind(at.to_path_buf())
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The audit file alone runs out of room (it sits on a full file system of its own) while
/// the database does not: requests are still served, since their records are durable in the
/// database, and the file catches up, in order, once it has room again.
#[tokio::test]
async fn an_audit_file_that_cannot_grow_catches_up_when_it_can() {
    let tmp = tempfile::Builder::new()
        .prefix("kura-test-")
        .tempdir()
        .unwrap();
    let small = tmp.path().join("auditfs");
    let Some(fs) = tmpfs_or_skip(&small, "1m") else {
        return;
    };
    // A first start creates the data directory and its audit file.
    let server = Server::start_in(tmp).await;
    let data_dir = server.data_dir.clone();
    let tmp = server.stop().await;
    let audit = data_dir.join("audit.jsonl");
    std::fs::copy(&audit, small.join("audit.jsonl")).unwrap();
    let bind = Bind::mount(&small.join("audit.jsonl"), &audit);

    let server = Server::start_in(tmp).await;
    let client = server.client().await;
    let name = format!("audit-full/{}", unique_suffix());
    create_plain(&client, &name, "stored while the audit file still has room").await;
    let filler = small.join("filler");
    fill(&filler);
    for n in 0..20 {
        let value = format!("value {n} written while the audit file is full");
        put_string(&client, &name, &value, &token(1000 + n)).await;
        assert_eq!(get_string(&client, &name).await, value);
    }
    assert!(
        server
            .log()
            .contains("cannot append audit records to the audit file"),
        "the audit file never ran out of room, so this test tested nothing"
    );
    std::fs::remove_file(&filler).unwrap();
    for n in 0..5 {
        let value = format!("value {n} written once the audit file has room again");
        put_string(&client, &name, &value, &token(2000 + n)).await;
        assert_eq!(get_string(&client, &name).await, value);
    }
    drop(client);
    let tmp = server.stop().await;
    assert_audit_verifies(&data_dir, "after the audit file had room again");
    drop(bind);
    drop(fs);
    drop(tmp);
}
