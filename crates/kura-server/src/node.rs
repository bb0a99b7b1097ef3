//! A node's life between sealed and serving. A node whose root key comes from a file or an HSM
//! serves from the start; under the Shamir seal it starts uninitialised or sealed and serves
//! once `kura operator init` or enough `kura operator unseal` shares give it the root key.
//! Sealing drops the whole serving state — service, keyring, caches, derived signing keys —
//! so nothing decrypted is kept.

use std::sync::{Arc, RwLock, Weak};

use kura_core::model::RotationStep;
use kura_core::{Clock, Error, ManualClock, Result, SystemClock};
use kura_crypto::RootKey;
use kura_crypto::seal::shamir::Share;
use kura_iam::sigv4::SigningKeyCache;
use serde::Serialize;
use tokio::sync::Notify;
use zeroize::Zeroizing;

use crate::init::{self, Prepared, RootOrigin};
use crate::rootkey::{self, Custody, RootKeeper};
use crate::seal::{self, SealChoice, SealRecord};
use crate::service::Service;

/// What serves requests while the node is unsealed.
pub struct Live {
    pub service: Arc<Service>,
    /// SigV4 signing keys derived from access keys' secrets: forgotten with the rest.
    pub signing_keys: SigningKeyCache,
    jobs: tokio::task::JoinHandle<()>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.jobs.abort();
    }
}

/// How every service this node builds is set up.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    pub region: String,
    /// Run on a manual clock moved by `Kura.SetClock` (tests only).
    pub test_clock: bool,
    /// Tests only: rotations stop before this step.
    pub pause_before_step: Option<RotationStep>,
    /// Where rotation functions call kura back.
    pub endpoint: String,
    /// Rotations running at once on this node.
    pub rotation_concurrency: usize,
}

enum Phase {
    /// Shamir chosen, database new: waiting for `kura operator init`.
    Uninitialised,
    /// Waiting for shares; those given so far (each checked against the record's digests).
    Sealed {
        record: SealRecord,
        given: Vec<Share>,
    },
    Unsealed {
        record: Option<SealRecord>,
    },
}

/// `GET /operator/seal-status` (and `/health`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct SealStatus {
    #[serde(rename = "Type")]
    pub seal_type: &'static str,
    pub initialized: bool,
    pub sealed: bool,
    /// Shares needed and given so far (Shamir only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shares: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
    /// The root key generation an unsealed node holds (1 until the first rotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_key_generation: Option<i64>,
}

/// The answer to `kura operator init`: the shares, shown once.
pub struct Initialised {
    pub shares: Vec<Zeroizing<String>>,
    pub threshold: u8,
    pub credentials_file: std::path::PathBuf,
}

pub struct Node {
    prepared: Prepared,
    options: ServiceOptions,
    live: RwLock<Option<Arc<Live>>>,
    phase: tokio::sync::Mutex<Phase>,
    seal_requests: Arc<Notify>,
}

impl Node {
    /// Opens the node with the seal `choice` (`None`: whatever the installation has, the file
    /// seal for a new one). Serves at once unless the seal is Shamir's.
    pub async fn start(
        prepared: Prepared,
        options: ServiceOptions,
        choice: Option<SealChoice>,
    ) -> Result<Arc<Node>> {
        let store = prepared.store.clone();
        let recorded = seal::load(store.as_ref()).await?;
        let fresh = prepared.is_fresh().await?;
        let choice = match choice {
            Some(c) => {
                if !(fresh && recorded.is_none()) {
                    seal::check_choice(&c, recorded.as_ref())?;
                }
                c
            }
            None => match &recorded {
                None => SealChoice::File,
                Some(SealRecord::Shamir { .. }) => SealChoice::Shamir,
                Some(SealRecord::Pkcs11 { .. }) => {
                    return Err(Error::invalid_request(
                        "this installation is sealed with `pkcs11`: start with --seal pkcs11 and the HSM's --pkcs11-* settings",
                    ));
                }
            },
        };
        let node = Arc::new(Node {
            prepared,
            options,
            live: RwLock::new(None),
            phase: tokio::sync::Mutex::new(Phase::Uninitialised),
            seal_requests: Arc::new(Notify::new()),
        });
        node.watch_seal_requests();
        match choice {
            SealChoice::File => {
                let dir = &node.prepared.dir;
                let origin = if dir.join(crate::root_file::ROOT_KEY_FILE).exists() {
                    RootOrigin::KeptFile
                } else {
                    RootOrigin::NewFile
                };
                let root = crate::root_file::load_or_create_root_key(dir, fresh)?;
                let root = rootkey::file_root_at_start(store.as_ref(), dir, root).await?;
                let custody = Custody::File { dir: dir.clone() };
                node.bring_up(root, origin, None, custody).await?;
                *node.phase.lock().await = Phase::Unsealed { record: None };
            }
            SealChoice::Pkcs11(hsm) => {
                let root = seal::open_pkcs11(store.as_ref(), &hsm, recorded, fresh).await?;
                let record = seal::load(store.as_ref()).await?;
                node.bring_up(
                    root,
                    RootOrigin::Seal,
                    record.as_ref(),
                    Custody::Pkcs11 { hsm },
                )
                .await?;
                *node.phase.lock().await = Phase::Unsealed { record };
            }
            SealChoice::Shamir => {
                *node.phase.lock().await = match recorded {
                    Some(record) => {
                        tracing::info!(
                            "kura is sealed: give it shares with `kura operator unseal` to serve"
                        );
                        Phase::Sealed {
                            record,
                            given: Vec::new(),
                        }
                    }
                    None => {
                        tracing::info!(
                            "kura is not initialised: run `kura operator init --shares 5 --threshold 3` against it"
                        );
                        Phase::Uninitialised
                    }
                };
            }
        }
        Ok(node)
    }

    /// What serves requests now; `None` while sealed.
    pub fn live(&self) -> Option<Arc<Live>> {
        self.live.read().ok().and_then(|l| l.clone())
    }

    pub fn prepared(&self) -> &Prepared {
        &self.prepared
    }

    /// Builds the service from the root key and starts serving.
    async fn bring_up(
        self: &Arc<Self>,
        root: RootKey,
        origin: RootOrigin,
        record: Option<&SealRecord>,
        custody: Custody,
    ) -> Result<()> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let generation = rootkey::read_generation(self.prepared.store.as_ref()).await?;
        let opts = &self.options;
        let mut service = init::finish(&self.prepared, root, origin, &opts.region, clock).await?;
        service = service.with_rotation_concurrency(opts.rotation_concurrency);
        if opts.test_clock {
            tracing::warn!(
                "running on a test clock: Kura.SetClock and Kura.AdvanceClock are enabled"
            );
            service = service.with_test_clock(Arc::new(ManualClock::new(SystemClock.now())));
        }
        if let Some(step) = opts.pause_before_step {
            tracing::warn!(
                step = step.as_str(),
                "test mode: every rotation stops before this step"
            );
            service.test_pause_step = Some(step);
        }
        service.set_rotation_endpoint(opts.endpoint.clone());
        if matches!(record, Some(SealRecord::Shamir { .. })) {
            service.allow_sealing(self.seal_requests.clone());
        }
        let service = Arc::new(service);
        service.follow_identity_changes();
        service.keep_root(Arc::new(RootKeeper::new(custody, generation)));
        service.follow_key_changes();
        let jobs = tokio::spawn(service.clone().run_jobs());
        let live = Arc::new(Live {
            service,
            signing_keys: SigningKeyCache::default(),
            jobs,
        });
        if let Ok(mut slot) = self.live.write() {
            *slot = Some(live);
        }
        Ok(())
    }

    /// `Kura.Seal` wakes this; the request that asked is answered before the keys go.
    fn watch_seal_requests(self: &Arc<Self>) {
        let node: Weak<Node> = Arc::downgrade(self);
        let requests = self.seal_requests.clone();
        tokio::spawn(async move {
            loop {
                requests.notified().await;
                let Some(node) = node.upgrade() else { return };
                node.seal().await;
            }
        });
    }

    /// Forgets the keys and stops serving until unsealed (Shamir seal only).
    pub async fn seal(&self) {
        let mut phase = self.phase.lock().await;
        let Phase::Unsealed {
            record: Some(record @ SealRecord::Shamir { .. }),
        } = &*phase
        else {
            return;
        };
        // A root key rotation since the unseal changed the record: the next unseal opens the
        // current one.
        let record = match seal::load(self.prepared.store.as_ref()).await {
            Ok(Some(fresh @ SealRecord::Shamir { .. })) => fresh,
            _ => record.clone(),
        };
        let live = self.live.write().ok().and_then(|mut l| l.take());
        *phase = Phase::Sealed {
            record,
            given: Vec::new(),
        };
        drop(live);
        tracing::warn!("kura is sealed: it answers no request until `kura operator unseal`");
    }

    pub async fn status(&self) -> SealStatus {
        let mut phase = self.phase.lock().await;
        self.notice_initialisation(&mut phase).await;
        let mut status = status_of(&phase);
        status.root_key_generation = self.live().and_then(|l| l.service.root_key_generation());
        status
    }

    /// While uninitialised, another node of the cluster may have initialised the database.
    async fn notice_initialisation(&self, phase: &mut Phase) {
        if matches!(phase, Phase::Uninitialised)
            && let Ok(Some(record)) = seal::load(self.prepared.store.as_ref()).await
        {
            *phase = Phase::Sealed {
                record,
                given: Vec::new(),
            };
        }
    }

    /// `kura operator init`: makes the root key and its shares, and serves.
    pub async fn init(self: &Arc<Self>, shares: u8, threshold: u8) -> Result<Initialised> {
        let mut phase = self.phase.lock().await;
        self.notice_initialisation(&mut phase).await;
        match &*phase {
            Phase::Uninitialised => {}
            // File and HSM installations initialise themselves when they first start.
            Phase::Unsealed { record } if !matches!(record, Some(SealRecord::Shamir { .. })) => {
                let name = record.as_ref().map(SealRecord::name).unwrap_or("file");
                return Err(Error::invalid_request(format!(
                    "kura is sealed with `{name}` and initialised itself when it first started: `kura operator init` is only for a new installation started with --seal shamir (to move to Shamir shares, use `kura operator migrate-seal --to shamir`)."
                )));
            }
            _ => return Err(seal::already_initialised()),
        }
        let store = self.prepared.store.clone();
        let (root, key, parts) = match seal::init_shamir(store.as_ref(), shares, threshold).await {
            Ok(made) => made,
            Err(e) => {
                drop(phase);
                self.status().await;
                return Err(e);
            }
        };
        let record = seal::load(store.as_ref()).await?;
        self.bring_up(
            root,
            RootOrigin::Seal,
            record.as_ref(),
            Custody::Shamir { key },
        )
        .await?;
        *phase = Phase::Unsealed { record };
        drop(phase);
        tracing::info!(
            shares,
            threshold,
            "kura is initialised with the Shamir seal"
        );
        Ok(Initialised {
            shares: parts.iter().map(Share::to_text).collect(),
            threshold,
            credentials_file: self.prepared.dir.join(init::CREDENTIALS_FILE),
        })
    }

    /// `kura operator unseal`: takes one share (or `reset` forgets those given); with the
    /// threshold reached, opens the root key and serves.
    pub async fn unseal(self: &Arc<Self>, share: Option<&str>, reset: bool) -> Result<SealStatus> {
        let mut phase = self.phase.lock().await;
        self.notice_initialisation(&mut phase).await;
        let (record, given) = match &mut *phase {
            Phase::Sealed { record, given } => (record, given),
            Phase::Uninitialised => {
                return Err(Error::invalid_request(
                    "kura is not initialised yet: run `kura operator init` first.",
                ));
            }
            Phase::Unsealed { .. } if reset => return Ok(status_of(&phase)),
            Phase::Unsealed { .. } => {
                return Err(Error::invalid_request("kura is already unsealed."));
            }
        };
        if reset {
            given.clear();
            return Ok(status_of(&phase));
        }
        let Some(text) = share else {
            return Err(Error::invalid_parameter(
                "Give a share (Key), or Reset to start over.",
            ));
        };
        let share = Share::parse(text)?;
        if !seal::is_known_share(record, &share) {
            return Err(Error::invalid_parameter(
                "That share is not one of this installation's shares (or it was mistyped); it was not counted.",
            ));
        }
        if given.iter().any(|g| g.index() == share.index()) {
            return Err(Error::invalid_parameter(format!(
                "Share number {} was given already; give another operator's share.",
                share.index()
            )));
        }
        given.push(share);
        let SealRecord::Shamir { threshold, .. } = record else {
            return Err(Error::internal("a sealed node has a Shamir record"));
        };
        if given.len() < usize::from(*threshold) {
            return Ok(status_of(&phase));
        }
        // The record as stored now: another node may have rotated the root key since this
        // one sealed (the shares stay the same).
        let current = match seal::load(self.prepared.store.as_ref()).await {
            Ok(Some(fresh @ SealRecord::Shamir { .. })) => fresh,
            _ => record.clone(),
        };
        let opened = seal::open_shamir_key(&current, given);
        given.clear();
        let (root, key) = opened?;
        self.bring_up(
            root,
            RootOrigin::Seal,
            Some(&current),
            Custody::Shamir { key },
        )
        .await?;
        let record = current;
        *phase = Phase::Unsealed {
            record: Some(record),
        };
        tracing::info!("kura is unsealed");
        let mut status = status_of(&phase);
        status.root_key_generation = self.live().and_then(|l| l.service.root_key_generation());
        Ok(status)
    }

    /// Stops serving and closes the database (shutdown).
    pub async fn stop(&self) {
        let live = self.live.write().ok().and_then(|mut l| l.take());
        drop(live);
        self.prepared.store.close().await;
    }
}

fn status_of(phase: &Phase) -> SealStatus {
    match phase {
        Phase::Uninitialised => SealStatus {
            seal_type: "shamir",
            initialized: false,
            sealed: true,
            threshold: None,
            shares: None,
            progress: None,
            root_key_generation: None,
        },
        Phase::Sealed { record, given } => {
            let (threshold, shares) = match record {
                SealRecord::Shamir {
                    threshold, shares, ..
                } => (Some(*threshold), Some(*shares)),
                SealRecord::Pkcs11 { .. } => (None, None),
            };
            SealStatus {
                seal_type: record.name(),
                initialized: true,
                sealed: true,
                threshold,
                shares,
                progress: Some(given.len() as u8),
                root_key_generation: None,
            }
        }
        Phase::Unsealed { record } => SealStatus {
            seal_type: record.as_ref().map(SealRecord::name).unwrap_or("file"),
            initialized: true,
            sealed: false,
            threshold: match record {
                Some(SealRecord::Shamir { threshold, .. }) => Some(*threshold),
                _ => None,
            },
            shares: match record {
                Some(SealRecord::Shamir { shares, .. }) => Some(*shares),
                _ => None,
            },
            progress: None,
            root_key_generation: None,
        },
    }
}
