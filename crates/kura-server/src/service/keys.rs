//! Named keys (`Kura.CreateKey`, `ListKeys`, `DescribeKey`, `RotateKey`, `PutKeyPolicy`), the
//! catalog that maps a `KmsKeyId` to a key of the keyring, the key-policy check on every use
//! of a key, and the background re-wrap of data keys after a rotation.
//!
//! Every key is a row of `kms_keys` (the default key's too, made at start-up) whose versions
//! are `keys` rows under its keyring name: `alias/kura/default` for the default key (the name
//! its data keys always carried), the key id for a created key (so an alias never has to be
//! followed to open a value).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use kura_core::{Error, ErrorCode, Result, Timestamp};
use kura_iam::eval::{self, ConditionKeys, Decision, RequestContext};
use kura_iam::policy::{self, PolicyDocument, PolicyKind};
use kura_store::{KeyPlace, KmsKeyRecord, WrappedDataKey};

use super::tags::validated_tags;
use super::tokens::page_size;
use super::types::*;
use super::{Caller, DEFAULT_KEY, Service, access_key_context, new_uuid, seal_context};

/// Data keys moved per transaction.
const REWRAP_BATCH: usize = 200;
/// How long a node holds a key's re-wrap before another may take it over.
const REWRAP_LEASE_MS: i64 = 60_000;
/// What `KmsKeyId` may call the default key.
const DEFAULT_KEY_NAMES: [&str; 3] = [DEFAULT_KEY, "alias/aws/secretsmanager", ""];

pub(crate) const ENCRYPT_ACTION: &str = "kms:GenerateDataKey";
pub(crate) const DECRYPT_ACTION: &str = "kms:Decrypt";

/// One key as the service uses it: its row, its ARN and its parsed policy.
pub(crate) struct KeyEntry {
    pub(crate) rec: KmsKeyRecord,
    pub(crate) arn: String,
    policy: Option<PolicyDocument>,
}

impl KeyEntry {
    pub(crate) fn is_default(&self) -> bool {
        self.rec.name == DEFAULT_KEY
    }
}

/// The keys this node knows, by id, alias and keyring name. Reloaded from the store when a
/// request names a key it does not know (another node made it) and when a shared database
/// announces a change.
#[derive(Default)]
pub(crate) struct KeyCatalog {
    map: RwLock<HashMap<String, Arc<KeyEntry>>>,
    /// One reload at a time for readers missing a key version; those who waited find what
    /// it loaded.
    reloading: tokio::sync::Mutex<()>,
    /// Versions a reload did not make usable, and when: reads of them do not reload again
    /// for [`MISSING_RETRY`], so one unopenable version cannot turn every read into a reload.
    missing: std::sync::Mutex<HashMap<(String, i64), std::time::Instant>>,
}

const MISSING_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

impl KeyCatalog {
    fn get(&self, k: &str) -> Option<Arc<KeyEntry>> {
        self.map.read().ok()?.get(k).cloned()
    }
}

/// The text a `KmsKeyId` is looked up by: a key id, an alias, or the keyring name.
fn lookup_form(reference: &str) -> &str {
    if let Some(rest) = reference.strip_prefix("arn:") {
        // arn:aws:kms:<region>:<account>:key/<id> or …:alias/<name>
        let resource = rest.splitn(5, ':').nth(4).unwrap_or("");
        if let Some(id) = resource.strip_prefix("key/") {
            return id;
        }
        if resource.starts_with("alias/") {
            return resource;
        }
    }
    reference
}

fn not_found(reference: &str) -> Error {
    Error::not_found(format!(
        "kura has no key {reference:?}: name a key by its id, ARN, alias or alias ARN (Kura.ListKeys lists them)."
    ))
}

fn validate_alias(alias: &str) -> Result<()> {
    let body = alias
        .strip_prefix("alias/")
        .ok_or_else(|| Error::validation(format!("Alias {alias:?} must begin with alias/.")))?;
    if body.is_empty()
        || alias.len() > 256
        || !body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_-".contains(c))
    {
        return Err(Error::validation(format!(
            "Alias {alias:?} must be alias/ followed by 1 to 250 letters, digits, /, _ or -."
        )));
    }
    if body.starts_with("aws/") || body.starts_with("kura/") {
        return Err(Error::validation(format!(
            "Alias {alias:?} is reserved: aliases beginning alias/aws/ and alias/kura/ name kura's own keys."
        )));
    }
    Ok(())
}

/// A key policy sent as a JSON object or as that object in a string, checked by the parser.
fn key_policy_text(v: serde_json::Value) -> Result<String> {
    let text = match v {
        serde_json::Value::String(text) => text,
        v @ serde_json::Value::Object(_) => v.to_string(),
        _ => {
            return Err(Error::new(
                ErrorCode::MalformedPolicyDocument,
                "Policy must be a key policy: a JSON object, or that object as a string.",
            ));
        }
    };
    policy::parse(&text, PolicyKind::Resource)
        .map_err(|e| Error::new(ErrorCode::MalformedPolicyDocument, format!("Policy: {e}")))?;
    Ok(text)
}

impl Service {
    pub(crate) fn key_arn(&self, id: &str) -> String {
        format!("arn:aws:kms:{}:{}:key/{id}", self.region, self.account)
    }

    /// The ARN policies name a key by, for a reference that may name no key.
    pub(crate) fn key_resource(&self, reference: &str) -> String {
        match self.known_key(Some(reference)) {
            Some(k) => k.arn.clone(),
            None if reference.starts_with("arn:") => reference.to_string(),
            None if reference.starts_with("alias/") => {
                format!("arn:aws:kms:{}:{}:{reference}", self.region, self.account)
            }
            None => self.key_arn(reference),
        }
    }

    /// AWS KMS's default key policy: the account's root principal may do everything, which
    /// delegates the key's use to IAM (identity policies decide).
    fn default_key_policy(&self) -> String {
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{}:root", self.account)},
                "Action": "kms:*",
                "Resource": "*"
            }]
        })
        .to_string()
    }

    /// Makes the default key's row if no node has yet, and loads the catalog.
    pub async fn load_keys(&self) -> Result<()> {
        self.store
            .ensure_kms_key(&KmsKeyRecord {
                id: new_uuid(),
                name: DEFAULT_KEY.into(),
                alias: Some(DEFAULT_KEY.into()),
                description: Some("kura's default key".into()),
                policy: None,
                tags: Vec::new(),
                created_at: self.clock.now(),
                rewrap_target: None,
                rewrap_done: 0,
                rewrap_running: false,
                deletion_date: None,
            })
            .await?;
        self.reload_keys().await
    }

    /// Loads key versions this node has not seen into the keyring and rebuilds the catalog.
    pub(crate) async fn reload_keys(&self) -> Result<()> {
        // The catalog first, then the key versions: a key and its first version commit
        // together, so every key the catalog read names has its versions in the later read. The
        // other order let a reload that began before a CreateKey publish the key without its
        // key material (a cluster test caught it once in CI).
        let records = self.store.kms_keys().await?;
        let mut closed = Vec::new();
        for (name, version, wrapped) in self.store.load_keys().await? {
            if !self.keyring.has_version(&name, version)
                && self.keyring.load_kek(&name, version, &wrapped).is_err()
            {
                closed.push((name, version, wrapped));
            }
        }
        if !closed.is_empty() {
            // Written under a root key another node rotated to: catch up now, then try again.
            if let Err(e) = self.follow_root().await {
                tracing::warn!(detail = %e.message, "cannot follow the installation's root key");
            }
            for (name, version, wrapped) in closed {
                // One version that still does not open must not keep the others out: it is
                // logged, and a use of it fails on its own.
                if let Err(e) = self.keyring.load_kek(&name, version, &wrapped) {
                    tracing::error!(key = %name, version, detail = ?e, "a stored key version does not open with this node's root key");
                }
            }
        }
        let mut map = HashMap::new();
        for rec in records {
            let policy = rec.policy.as_deref().and_then(|text| {
                policy::parse(text, PolicyKind::Resource)
                    .map_err(|e| {
                        tracing::error!(key = %rec.id, error = %e, "a stored key policy no longer parses; the key can be used by no one but root until PutKeyPolicy replaces it");
                    })
                    .ok()
                    .or_else(|| {
                        Some(PolicyDocument {
                            version: None,
                            id: None,
                            statements: Vec::new(),
                        })
                    })
            });
            let entry = Arc::new(KeyEntry {
                arn: self.key_arn(&rec.id),
                policy,
                rec,
            });
            map.insert(entry.rec.id.clone(), entry.clone());
            map.insert(entry.rec.name.clone(), entry.clone());
            if let Some(a) = &entry.rec.alias {
                map.insert(a.clone(), entry.clone());
            }
            if entry.is_default() {
                for n in DEFAULT_KEY_NAMES {
                    map.insert(n.to_string(), entry.clone());
                }
            }
        }
        if let Ok(mut m) = self.keys.map.write() {
            *m = map;
        }
        Ok(())
    }

    /// The key a reference names, as this node knows it now (no reload).
    pub(crate) fn known_key(&self, reference: Option<&str>) -> Option<Arc<KeyEntry>> {
        self.keys.get(lookup_form(reference.unwrap_or("")))
    }

    /// The key a reference names, reloading once from the store on a miss (a key another
    /// node created). Not found → ResourceNotFound.
    pub(crate) async fn find_key(&self, reference: Option<&str>) -> Result<Arc<KeyEntry>> {
        if let Some(k) = self.known_key(reference) {
            return Ok(k);
        }
        self.reload_keys().await?;
        self.known_key(reference)
            .ok_or_else(|| not_found(reference.unwrap_or("")))
    }

    /// The key a secret's `KmsKeyId` names, to seal a value under; an unknown key is a
    /// parameter to fix, a key pending deletion is refused.
    pub(crate) async fn key_for(&self, kms_key_id: Option<&str>) -> Result<Arc<KeyEntry>> {
        let key = self.find_key(kms_key_id).await.map_err(|_| {
            Error::invalid_parameter(format!(
                "The encryption key {:?} does not exist in kura: KmsKeyId takes a key's id, ARN, alias or alias ARN (Kura.ListKeys lists them), or omit it to use the default key {DEFAULT_KEY}.",
                kms_key_id.unwrap_or("")
            ))
        })?;
        if key.rec.deletion_date.is_some() {
            return Err(Error::invalid_request(format!(
                "The key {} is pending deletion, so nothing new is encrypted under it: call Kura.CancelKeyDeletion to use it again, or choose another key.",
                key.arn
            )));
        }
        Ok(key)
    }

    /// Every way a secret's `KmsKeyId` can name `key`.
    fn references(&self, key: &KeyEntry) -> Vec<String> {
        let mut refs = vec![key.rec.id.clone(), key.arn.clone()];
        if let Some(a) = &key.rec.alias {
            refs.push(a.clone());
            refs.push(format!("arn:aws:kms:{}:{}:{a}", self.region, self.account));
        }
        refs
    }

    pub async fn schedule_key_deletion(
        &self,
        c: &Caller,
        req: ScheduleKeyDeletionRequest,
    ) -> Result<KeyResponse> {
        let days = req.pending_window_in_days.unwrap_or(30);
        if !(7..=30).contains(&days) {
            return Err(Error::validation(format!(
                "PendingWindowInDays must be between 7 and 30; got {days}."
            )));
        }
        let key = self.find_key(Some(&req.key_id)).await?;
        if key.is_default() {
            return Err(Error::invalid_request(format!(
                "The default key {DEFAULT_KEY} cannot be deleted: kura's own secrets are sealed under it."
            )));
        }
        let uses = self
            .store
            .key_uses(&key.rec.name, &self.references(&key))
            .await?;
        if uses > 0 {
            return Err(Error::invalid_request(format!(
                "The key {} is in use ({uses} secret value(s) or secret(s) name it): move those secrets to another key (UpdateSecret with KmsKeyId and a new value) and delete their old versions first.",
                key.arn
            )));
        }
        let at = Timestamp(self.clock.now().0 + days * 86_400_000);
        self.store
            .set_key_deletion(&key.rec.name, Some(at), &key.arn, &c.audit)
            .await?;
        self.reload_keys().await?;
        let key = self.find_key(Some(&key.rec.id)).await?;
        Ok(KeyResponse {
            key_metadata: self.metadata(&key).await?,
        })
    }

    pub async fn cancel_key_deletion(&self, c: &Caller, req: KeyIdRequest) -> Result<KeyResponse> {
        let reference = req.key_id.ok_or_else(|| {
            Error::invalid_parameter("KeyId is required: a key's id, ARN, alias or alias ARN.")
        })?;
        let key = self.find_key(Some(&reference)).await?;
        self.store
            .set_key_deletion(&key.rec.name, None, &key.arn, &c.audit)
            .await?;
        self.reload_keys().await?;
        let key = self.find_key(Some(&key.rec.id)).await?;
        Ok(KeyResponse {
            key_metadata: self.metadata(&key).await?,
        })
    }

    /// Destroys keys whose deletion date has passed; one still in use stays (and says so).
    async fn delete_due_keys(&self) -> Result<()> {
        let now = self.clock.now();
        let due: Vec<Arc<KeyEntry>> = self
            .store
            .kms_keys()
            .await?
            .into_iter()
            .filter(|k| k.deletion_date.is_some_and(|d| d <= now))
            .filter_map(|k| self.known_key(Some(&k.id)))
            .collect();
        for key in due {
            if self
                .store
                .delete_kms_key(&key.rec.name, &self.references(&key), now)
                .await?
            {
                self.audit_background(kura_store::AuditRecord {
                    kind: "job".into(),
                    principal: "kura".into(),
                    action: "job:DeleteKey".into(),
                    resource: key.arn.clone(),
                    outcome: "Success".into(),
                    ..Default::default()
                })
                .await;
                self.reload_keys().await?;
            } else {
                tracing::warn!(key = %key.arn, "a key due for deletion is still in use (a secret was sealed under it while the deletion was being scheduled); it stays until Kura.CancelKeyDeletion or until nothing uses it");
            }
        }
        Ok(())
    }

    /// The data key's version is loaded here, reloading from the store if another node
    /// rotated the key.
    pub(crate) async fn ready_version(&self, name: &str, version: i64) -> Result<()> {
        if self.keyring.has_version(name, version) {
            return Ok(());
        }
        let _one = self.keys.reloading.lock().await;
        if self.keyring.has_version(name, version) {
            return Ok(());
        }
        let key = (name.to_string(), version);
        let recently = |m: &HashMap<(String, i64), std::time::Instant>| {
            m.get(&key).is_some_and(|at| at.elapsed() < MISSING_RETRY)
        };
        if self.keys.missing.lock().is_ok_and(|m| recently(&m)) {
            // The open that follows fails on its own, as right after the last reload.
            return Ok(());
        }
        self.reload_keys().await?;
        if !self.keyring.has_version(name, version)
            && let Ok(mut m) = self.keys.missing.lock()
        {
            if m.len() >= 1024 {
                m.clear();
            }
            m.insert(key, std::time::Instant::now());
        }
        Ok(())
    }

    /// On a shared database, reloads the keys when any node changes them.
    pub fn follow_key_changes(self: &Arc<Self>) {
        let Some(mut rx) = self.store.changes() else {
            return;
        };
        let svc = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let change = rx.recv().await;
                let Some(svc) = svc.upgrade() else { return };
                match change {
                    Ok(kura_store::Change::User(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    _ => {
                        if let Err(e) = svc.reload_keys().await {
                            tracing::warn!(detail = ?e, "could not reload keys after a change");
                        }
                    }
                }
            }
        });
    }

    /// Whether the caller may use `key` for `action` (`kms:GenerateDataKey` to seal,
    /// `kms:Decrypt` to open), as AWS KMS decides: see `kura_iam::eval::evaluate_key_policy`.
    /// The default key has no policy (like aws/secretsmanager, whoever may use the secret may
    /// use it); root and kura itself always may.
    pub(crate) async fn authorize_key_use(
        &self,
        c: &Caller,
        key: &KeyEntry,
        action: &str,
    ) -> Result<()> {
        let is_kura = c.user_name == "kura" && c.access_key_id.is_empty();
        let Some(key_policy) = &key.policy else {
            return Ok(());
        };
        if c.is_administrator() || is_kura {
            return Ok(());
        }
        let identity = self.identity_policies(c).await?;
        let mut keys = ConditionKeys::new();
        keys.set("aws:username", [c.user_name.as_str()]);
        keys.set("aws:PrincipalArn", [c.arn.as_str()]);
        keys.set("aws:PrincipalAccount", [self.account.as_str()]);
        keys.set("kms:CallerAccount", [self.account.as_str()]);
        keys.set(
            "kms:ViaService",
            [format!("secretsmanager.{}.amazonaws.com", self.region)],
        );
        let ctx = RequestContext {
            principal_arn: &c.arn,
            account: &self.account,
            action,
            resource: &key.arn,
            keys: &keys,
        };
        let refs: Vec<&PolicyDocument> = identity.policies.iter().map(|d| d.as_ref()).collect();
        match eval::evaluate_key_policy(&ctx, &refs, key_policy) {
            Decision::Allow => Ok(()),
            Decision::ImplicitDeny => Err(Error::new(
                ErrorCode::AccessDenied,
                format!(
                    "User: {} is not authorized to perform: {action} on resource: {} because the key policy does not allow it (it must name the user, or name the account's root principal and leave the decision to an identity policy that allows {action}).",
                    c.arn, key.arn
                ),
            )),
            d => Err(Error::new(
                ErrorCode::AccessDenied,
                d.denial_message(&ctx)
                    .unwrap_or_else(|| format!("{action} on {} is denied.", key.arn)),
            )),
        }
    }

    async fn metadata(&self, key: &KeyEntry) -> Result<KeyMetadata> {
        let rec = &key.rec;
        let rewrap_status = match rec.rewrap_target {
            Some(target) => Some(RewrapStatus {
                state: if rec.rewrap_running {
                    "InProgress"
                } else {
                    "Complete"
                }
                .into(),
                target_version: target,
                done: rec.rewrap_done,
                remaining: self.store.rewrap_remaining(&rec.name, target).await?,
            }),
            None => None,
        };
        Ok(KeyMetadata {
            key_id: rec.id.clone(),
            arn: key.arn.clone(),
            alias: rec.alias.clone(),
            description: rec.description.clone(),
            creation_date: rec.created_at,
            current_version: self.keyring.current_version(&rec.name).unwrap_or(1),
            key_state: if rec.deletion_date.is_some() {
                "PendingDeletion"
            } else {
                "Enabled"
            }
            .into(),
            deletion_date: rec.deletion_date,
            policy: rec.policy.clone(),
            tags: (!rec.tags.is_empty()).then(|| rec.tags.clone()),
            rewrap_status,
        })
    }

    pub async fn create_key(&self, c: &Caller, req: CreateKeyRequest) -> Result<KeyResponse> {
        if let Some(a) = &req.alias {
            validate_alias(a)?;
        }
        if let Some(d) = &req.description
            && d.chars().count() > 8192
        {
            return Err(Error::validation(
                "Description must be at most 8192 characters.",
            ));
        }
        let policy = match req.policy {
            Some(p) => key_policy_text(p)?,
            None => self.default_key_policy(),
        };
        let tags = validated_tags(req.tags.unwrap_or_default())?;
        let id = new_uuid();
        let rec = KmsKeyRecord {
            id: id.clone(),
            // The keyring name of a created key is its id: fixed for the key's life.
            name: id.clone(),
            alias: req.alias,
            description: req.description,
            policy: Some(policy),
            tags,
            created_at: self.clock.now(),
            rewrap_target: None,
            rewrap_done: 0,
            rewrap_running: false,
            deletion_date: None,
        };
        let wrapped = self.keyring.new_kek(&rec.name, 1)?;
        self.store
            .create_kms_key(&rec, &wrapped, &self.key_arn(&id), &c.audit)
            .await?;
        self.keyring.load_kek(&rec.name, 1, &wrapped)?;
        self.reload_keys().await?;
        let key = self.find_key(Some(&id)).await?;
        Ok(KeyResponse {
            key_metadata: self.metadata(&key).await?,
        })
    }

    pub async fn describe_key(&self, _c: &Caller, req: KeyIdRequest) -> Result<KeyResponse> {
        let reference = req.key_id.ok_or_else(|| {
            Error::invalid_parameter("KeyId is required: a key's id, ARN, alias or alias ARN.")
        })?;
        // Fresh progress and versions, whichever node moved them.
        self.reload_keys().await?;
        let key = self.find_key(Some(&reference)).await?;
        Ok(KeyResponse {
            key_metadata: self.metadata(&key).await?,
        })
    }

    pub async fn list_keys(&self, _c: &Caller, req: ListKeysRequest) -> Result<ListKeysResponse> {
        let limit = page_size(req.max_results)?;
        let after = match &req.next_token {
            Some(t) => Some(
                self.redeem_token("ListKeys", t)?
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(super::tokens::invalid)?,
            ),
            None => None,
        };
        self.reload_keys().await?;
        let mut recs = self.store.kms_keys().await?;
        recs.retain(|r| after.as_deref().is_none_or(|a| r.id.as_str() > a));
        let more = recs.len() > limit;
        recs.truncate(limit);
        let mut keys = Vec::with_capacity(recs.len());
        for r in &recs {
            if let Some(k) = self.known_key(Some(&r.id)) {
                keys.push(self.metadata(&k).await?);
            }
        }
        let next_token = match (more, recs.last()) {
            (true, Some(last)) => Some(self.issue_token("ListKeys", last.id.clone().into())),
            _ => None,
        };
        Ok(ListKeysResponse { keys, next_token })
    }

    pub async fn rotate_key(&self, c: &Caller, req: KeyIdRequest) -> Result<KeyResponse> {
        let reference = req.key_id.unwrap_or_else(|| DEFAULT_KEY.to_string());
        self.reload_keys().await?;
        let key = self.find_key(Some(&reference)).await?;
        let name = key.rec.name.clone();
        let mut tries = 0;
        let (version, wrapped) = loop {
            let version = self.keyring.current_version(&name).unwrap_or(0) + 1;
            let wrapped = self.keyring.new_kek(&name, version)?;
            match self
                .store
                .add_key_version(
                    &name,
                    version,
                    &wrapped,
                    self.clock.now(),
                    &key.arn,
                    &c.audit,
                )
                .await
            {
                Ok(()) => break (version, wrapped),
                // Another rotation of the same key took this version number: load it, go on.
                Err(e) if e.code == ErrorCode::ResourceExists && tries < 5 => {
                    tries += 1;
                    self.reload_keys().await?;
                }
                Err(e) => return Err(e),
            }
        };
        // From here new data keys of this key are wrapped by the new version.
        self.keyring.load_kek(&name, version, &wrapped)?;
        self.reload_keys().await?;
        self.rotation.kick();
        let key = self.find_key(Some(&name)).await?;
        Ok(KeyResponse {
            key_metadata: self.metadata(&key).await?,
        })
    }

    pub async fn put_key_policy(&self, c: &Caller, req: PutKeyPolicyRequest) -> Result<Empty> {
        let key = self.find_key(Some(&req.key_id)).await?;
        if key.is_default() {
            return Err(Error::invalid_request(format!(
                "The default key {DEFAULT_KEY} has no key policy: whoever may use a secret may use it. Create a key (Kura.CreateKey) to control who may encrypt and decrypt under it."
            )));
        }
        let text = key_policy_text(req.policy)?;
        self.store
            .put_key_policy(&key.rec.name, &text, &key.arn, &c.audit)
            .await?;
        self.reload_keys().await?;
        Ok(Empty {})
    }

    /// The background re-wrap: every key whose rotation left data keys under older versions
    /// gets them moved, batch by batch, by whichever node holds its lease.
    pub(crate) async fn rewrap_tick(&self) -> Result<()> {
        self.delete_due_keys().await?;
        // A finished re-wrap with data keys below its target again (sealed by a node that
        // had not heard of the rotation yet) runs again.
        for k in self.store.kms_keys().await? {
            if let (false, Some(target)) = (k.rewrap_running, k.rewrap_target)
                && self.store.rewrap_remaining(&k.name, target).await? > 0
            {
                self.store.restart_rewrap(&k.name, target).await?;
            }
        }
        let now = self.clock.now();
        for name in self.store.rewrap_due(now).await? {
            let owner = &self.rotation.owner;
            if !self.claim_rewrap(&name, owner).await? {
                continue;
            }
            self.rewrap_key(&name, owner).await?;
        }
        Ok(())
    }

    async fn claim_rewrap(&self, name: &str, owner: &str) -> Result<bool> {
        let now = self.clock.now();
        self.store
            .claim_rewrap(name, owner, now, Timestamp(now.0 + REWRAP_LEASE_MS))
            .await
    }

    async fn rewrap_key(&self, name: &str, owner: &str) -> Result<()> {
        self.reload_keys().await?;
        let Some(target) = self.known_key(Some(name)).and_then(|k| k.rec.rewrap_target) else {
            return Ok(());
        };
        let (batch, pause) = rewrap_pace();
        let mut moved = 0u64;
        loop {
            let found = self.store.rewrap_candidates(name, target, batch).await?;
            if found.is_empty() {
                self.store.finish_rewrap(name, target).await?;
                self.audit_background(kura_store::AuditRecord {
                    kind: "job".into(),
                    principal: "kura".into(),
                    action: "job:RewrapKey".into(),
                    resource: self
                        .known_key(Some(name))
                        .map(|k| k.arn.clone())
                        .unwrap_or_else(|| name.to_string()),
                    outcome: "Success".into(),
                    ..Default::default()
                })
                .await;
                tracing::info!(key = name, version = target, moved, "key re-wrap complete");
                return Ok(());
            }
            let updates = found
                .into_iter()
                .map(|w| {
                    let (wrapped, version) = self.keyring.rewrap_data_key(
                        name,
                        w.key_version,
                        &place_context(&w),
                        &w.wrapped_key,
                    )?;
                    Ok((w, wrapped, version))
                })
                .collect::<Result<Vec<_>>>()?;
            moved += self.store.apply_rewrap(name, &updates).await?;
            if let Some(p) = pause {
                tokio::time::sleep(p).await;
            }
            // Renew the lease for the next batch; lost (expired and taken) → the other node
            // carries on.
            if !self.claim_rewrap(name, owner).await? {
                return Ok(());
            }
        }
    }
}

/// The associated data a data key was wrapped with, from where it is stored.
fn place_context(w: &WrappedDataKey) -> Vec<u8> {
    match &w.place {
        KeyPlace::SecretVersion {
            arn, version_id, ..
        } => seal_context(arn, version_id),
        KeyPlace::AccessKey(id) => access_key_context(id),
        KeyPlace::RotationFunction(n) => super::rotation::functions::function_context(n),
        KeyPlace::NotificationTarget(id) => super::rotation::notify::target_context(id),
        KeyPlace::CertificateAuthority(n) => super::pki::ca_context(n),
        KeyPlace::AcmeAccount {
            directory_url,
            email,
        } => super::acme::account_context(directory_url, email),
    }
}

/// Batch size and pause between batches. Tests slow the re-wrap down
/// (`KURA_TEST_REWRAP_PACE=<batch>,<ms>`) to stop a server in the middle of one.
fn rewrap_pace() -> (usize, Option<std::time::Duration>) {
    let Ok(v) = std::env::var("KURA_TEST_REWRAP_PACE") else {
        return (REWRAP_BATCH, None);
    };
    let mut parts = v.split(',').map(|p| p.trim().parse::<u64>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(b), Some(ms)) if b > 0 => (b as usize, Some(std::time::Duration::from_millis(ms))),
        _ => (REWRAP_BATCH, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_references() {
        assert_eq!(
            lookup_form("arn:aws:kms:us-east-1:123456789012:key/1234-abcd"),
            "1234-abcd"
        );
        assert_eq!(
            lookup_form("arn:aws:kms:us-east-1:123456789012:alias/team-a"),
            "alias/team-a"
        );
        assert_eq!(lookup_form("alias/team-a"), "alias/team-a");
        assert_eq!(lookup_form("1234-abcd"), "1234-abcd");
        assert!(validate_alias("alias/team-a/prod_1").is_ok());
        for bad in [
            "team-a",
            "alias/",
            "alias/aws/x",
            "alias/kura/x",
            "alias/a b",
        ] {
            assert!(validate_alias(bad).is_err(), "{bad}");
        }
    }
}
