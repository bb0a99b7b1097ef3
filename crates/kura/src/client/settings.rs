//! Where a client call goes and whom it is signed as, resolved as the AWS CLI resolves its
//! configuration, with kura's own fallbacks (`KURA_ENDPOINT`, `./kura-data/root-credentials`)
//! last. Pure over an environment lookup and the files it reads, so it is tested without a
//! server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// The address of a server started with the defaults (the quick start).
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8200";
/// The region signed for when none is configured (kura accepts any).
pub const DEFAULT_REGION: &str = "us-east-1";
/// The root credentials a server writes into its data directory on first start.
pub const ROOT_CREDENTIALS: &str = "./kura-data/root-credentials";

/// What the command line said about the connection; `None` leaves it to the environment.
#[derive(Default, Clone)]
pub struct ConnectOptions {
    pub endpoint: Option<String>,
    pub profile: Option<String>,
    pub region: Option<String>,
    /// A shared-credentials file to read instead of the usual ones (`kura api --credentials`).
    pub credentials_file: Option<PathBuf>,
}

/// An access key. Never printed: `Debug` shows the key id only.
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
    pub session_token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// The resolved connection, with where each part came from (error messages name it).
#[derive(Debug)]
pub struct Settings {
    pub endpoint: String,
    pub endpoint_source: String,
    pub region: String,
    pub credentials: Credentials,
    pub credentials_source: String,
}

/// The sections of an INI file (AWS's shared-credentials and config format): section name →
/// key → value. A nested block (`secretsmanager =` then indented `key = value` lines, as in
/// `[services …]` sections) is stored as `secretsmanager.key`.
pub fn parse_ini(text: &str) -> BTreeMap<String, BTreeMap<String, Zeroizing<String>>> {
    let mut sections: BTreeMap<String, BTreeMap<String, Zeroizing<String>>> = BTreeMap::new();
    let mut current: Option<String> = None;
    // The key whose indented block this is, while in one.
    let mut parent: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_string();
            sections.entry(name.clone()).or_default();
            current = Some(name);
            parent = None;
            continue;
        }
        let (Some(section), Some((key, value))) = (&current, line.split_once('=')) else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let indented = raw.starts_with([' ', '\t']);
        let key = match &parent {
            Some(p) if indented => format!("{p}.{key}"),
            _ => {
                parent = value.is_empty().then(|| key.to_string());
                key.to_string()
            }
        };
        if let Some(keys) = sections.get_mut(section) {
            keys.insert(key, Zeroizing::new(value.to_string()));
        }
    }
    sections
}

/// A file that may be absent: `Ok(None)` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<Zeroizing<String>>, String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(Zeroizing::new(t))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

type Section = BTreeMap<String, Zeroizing<String>>;

/// The access key in a profile's section, if it has one.
fn key_in(section: &Section) -> Option<Credentials> {
    let id = section.get("aws_access_key_id")?;
    let secret = section.get("aws_secret_access_key")?;
    Some(Credentials {
        access_key_id: id.to_string(),
        secret_access_key: secret.clone(),
        session_token: section.get("aws_session_token").cloned(),
    })
}

/// Resolves the connection. `env` looks up an environment variable (empty counts as unset);
/// `cwd_root` is the data directory's root-credentials file tried last.
pub fn resolve(
    opts: &ConnectOptions,
    env: &dyn Fn(&str) -> Option<String>,
    cwd_root: &Path,
) -> Result<Settings, String> {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    let home = env("HOME").map(PathBuf::from);
    let aws_file = |var: &str, name: &str| {
        env(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
    };
    let flag_profile = opts.profile.clone();
    let env_profile = env("AWS_PROFILE");
    let named = flag_profile.clone().or(env_profile.clone());
    let profile = named.clone().unwrap_or_else(|| "default".to_string());
    let named_by = if flag_profile.is_some() {
        "--profile"
    } else {
        "AWS_PROFILE"
    };

    let credentials_path = aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let config_path = aws_file("AWS_CONFIG_FILE", "config");
    let config = match &config_path {
        Some(p) => read_optional(p)?.map(|t| parse_ini(&t)).unwrap_or_default(),
        None => BTreeMap::new(),
    };
    let config_section = if profile == "default" {
        config
            .get("default")
            .or_else(|| config.get("profile default"))
    } else {
        config.get(&format!("profile {profile}"))
    };
    let shown = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(no HOME)".into())
    };

    // Credentials: an explicit file; a profile named on the command line; the environment's
    // key; the profile (AWS_PROFILE or default) in the credentials file, then the config
    // file; the root credentials of ./kura-data.
    let from_profile = || -> Result<Option<(Credentials, String)>, String> {
        if let Some(path) = &credentials_path
            && let Some(text) = read_optional(path)?
            && let Some(c) = parse_ini(&text).get(&profile).and_then(key_in)
        {
            return Ok(Some((
                c,
                format!("profile {profile} of {}", path.display()),
            )));
        }
        if let Some(c) = config_section.and_then(key_in) {
            return Ok(Some((
                c,
                format!("profile {profile} of {}", shown(&config_path)),
            )));
        }
        Ok(None)
    };
    // kura signs with static keys only (no SSO, credential_process or assumed roles).
    let no_profile = || {
        format!(
            "no profile {profile} (named by {named_by}) with aws_access_key_id and \
             aws_secret_access_key in {} or {}; add it there, or leave {named_by} out",
            shown(&credentials_path),
            shown(&config_path)
        )
    };
    let (credentials, credentials_source) = if let Some(path) = &opts.credentials_file {
        let text = std::fs::read_to_string(path)
            .map(Zeroizing::new)
            .map_err(|e| format!("cannot read credentials file {}: {e}", path.display()))?;
        let c = parse_ini(&text)
            .get(&profile)
            .and_then(key_in)
            .ok_or_else(|| {
                format!(
                    "{} has no [{profile}] profile with aws_access_key_id and aws_secret_access_key",
                    path.display()
                )
            })?;
        (c, format!("profile {profile} of {}", path.display()))
    } else if flag_profile.is_some() {
        from_profile()?.ok_or_else(no_profile)?
    } else if let (Some(id), Some(secret)) =
        (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
    {
        let c = Credentials {
            access_key_id: id,
            secret_access_key: Zeroizing::new(secret),
            session_token: env("AWS_SESSION_TOKEN").map(Zeroizing::new),
        };
        (c, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_string())
    } else if let Some(found) = from_profile()? {
        found
    } else if named.is_some() {
        return Err(no_profile());
    } else {
        match read_optional(cwd_root)? {
            Some(text) => {
                let c = parse_ini(&text)
                    .get("default")
                    .and_then(key_in)
                    .ok_or_else(|| format!("{} has no [default] access key", cwd_root.display()))?;
                (c, cwd_root.display().to_string())
            }
            None => {
                return Err(format!(
                    "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, add a \
                     [default] profile to {} (or name one with --profile), or run where \
                     {} is (the server's data directory)",
                    shown(&credentials_path),
                    cwd_root.display()
                ));
            }
        }
    };

    let from_config = |key: &str| {
        config_section
            .and_then(|s| s.get(key))
            .map(|v| v.to_string())
    };
    let (endpoint, endpoint_source) = if let Some(e) = &opts.endpoint {
        (e.clone(), "--endpoint".to_string())
    } else if let Some(e) = env("AWS_ENDPOINT_URL_SECRETS_MANAGER") {
        (e, "AWS_ENDPOINT_URL_SECRETS_MANAGER".to_string())
    } else if let Some(e) = env("AWS_ENDPOINT_URL") {
        (e, "AWS_ENDPOINT_URL".to_string())
    } else if let Some((e, services)) = from_config("services").and_then(|name| {
        let url = config
            .get(&format!("services {name}"))?
            .get("secretsmanager.endpoint_url")?;
        Some((url.to_string(), name))
    }) {
        (
            e,
            format!(
                "secretsmanager endpoint_url of [services {services}] in {}",
                shown(&config_path)
            ),
        )
    } else if let Some(e) = from_config("endpoint_url") {
        (
            e,
            format!(
                "endpoint_url of profile {profile} in {}",
                shown(&config_path)
            ),
        )
    } else if let Some(e) = env("KURA_ENDPOINT") {
        (e, "KURA_ENDPOINT".to_string())
    } else {
        (DEFAULT_ENDPOINT.to_string(), "the default".to_string())
    };

    let region = opts
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(|| from_config("region"))
        .unwrap_or_else(|| DEFAULT_REGION.to_string());

    Ok(Settings {
        endpoint,
        endpoint_source,
        region,
        credentials,
        credentials_source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
        env: BTreeMap<String, String>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("home/.aws")).unwrap();
            let mut env = BTreeMap::new();
            env.insert(
                "HOME".to_string(),
                dir.path().join("home").display().to_string(),
            );
            Fixture { dir, env }
        }
        fn write(&self, rel: &str, text: &str) -> PathBuf {
            let p = self.dir.path().join(rel);
            std::fs::write(&p, text).unwrap();
            p
        }
        fn set(&mut self, k: &str, v: &str) {
            self.env.insert(k.to_string(), v.to_string());
        }
        fn resolve(&self, opts: &ConnectOptions) -> Result<Settings, String> {
            let env = |k: &str| self.env.get(k).cloned();
            resolve(opts, &env, &self.dir.path().join("root-credentials"))
        }
    }

    const ROOT: &str =
        "[default]\naws_access_key_id = AKIAROOT\naws_secret_access_key = rootsecret\n";

    #[test]
    fn falls_back_to_the_data_directory_and_the_defaults() {
        let f = Fixture::new();
        f.write("root-credentials", ROOT);
        let s = f.resolve(&ConnectOptions::default()).unwrap();
        assert_eq!(s.credentials.access_key_id, "AKIAROOT");
        assert_eq!(s.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(s.region, DEFAULT_REGION);
    }

    #[test]
    fn no_credentials_anywhere_says_where_it_looked() {
        let f = Fixture::new();
        let e = f.resolve(&ConnectOptions::default()).unwrap_err();
        assert!(
            e.contains("AWS_ACCESS_KEY_ID") && e.contains("root-credentials"),
            "{e}"
        );
    }

    #[test]
    fn profiles_from_the_credentials_and_config_files() {
        let mut f = Fixture::new();
        f.write("root-credentials", ROOT);
        f.write(
            "home/.aws/credentials",
            "[default]\naws_access_key_id=AKIADEF\naws_secret_access_key=d\n\
             [prod]\naws_access_key_id = AKIAPROD\naws_secret_access_key = p\naws_session_token = tok\n",
        );
        f.write(
            "home/.aws/config",
            "[default]\nregion = eu-west-1\n[profile prod]\nregion = eu-north-1\n\
             endpoint_url = https://kura.prod:8200\ns3 =\n  endpoint_url = https://wrong\n\
             [profile svc]\naws_access_key_id = AKIASVC\naws_secret_access_key = v\n\
             endpoint_url = https://general:1\nservices = kura-svc\n\
             [services kura-svc]\ns3 =\n  endpoint_url = https://s3:2\n\
             secretsmanager =\n  endpoint_url = https://kura-svc:3\n\
             [profile cfgonly]\naws_access_key_id = AKIACFG\naws_secret_access_key = c\n",
        );
        let s = f.resolve(&ConnectOptions::default()).unwrap();
        assert_eq!(s.credentials.access_key_id, "AKIADEF");
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(s.endpoint, DEFAULT_ENDPOINT);

        let prod = ConnectOptions {
            profile: Some("prod".into()),
            ..Default::default()
        };
        let s = f.resolve(&prod).unwrap();
        assert_eq!(s.credentials.access_key_id, "AKIAPROD");
        assert_eq!(
            s.credentials.session_token.as_deref().map(String::as_str),
            Some("tok")
        );
        assert_eq!(s.region, "eu-north-1");
        assert_eq!(s.endpoint, "https://kura.prod:8200");

        // A [services] section's secretsmanager endpoint_url beats the profile's own.
        let svc = ConnectOptions {
            profile: Some("svc".into()),
            ..Default::default()
        };
        let s = f.resolve(&svc).unwrap();
        assert_eq!(s.endpoint, "https://kura-svc:3");
        assert!(
            s.endpoint_source.contains("[services kura-svc]"),
            "{}",
            s.endpoint_source
        );

        f.set("AWS_PROFILE", "cfgonly");
        let s = f.resolve(&ConnectOptions::default()).unwrap();
        assert_eq!(s.credentials.access_key_id, "AKIACFG");

        f.set("AWS_PROFILE", "nope");
        let e = f.resolve(&ConnectOptions::default()).unwrap_err();
        assert!(
            e.contains("no profile nope") && e.contains("AWS_PROFILE"),
            "{e}"
        );

        // A profile named on the command line is never silently replaced by the environment's key.
        f.set("AWS_ACCESS_KEY_ID", "AKIAENV");
        f.set("AWS_SECRET_ACCESS_KEY", "e");
        let missing = ConnectOptions {
            profile: Some("missing".into()),
            ..Default::default()
        };
        let e = f.resolve(&missing).unwrap_err();
        assert!(
            e.contains("no profile missing") && e.contains("--profile"),
            "{e}"
        );
        // AWS_PROFILE gives way to the environment's key, as in the AWS CLI.
        let s = f.resolve(&ConnectOptions::default()).unwrap();
        assert_eq!(s.credentials.access_key_id, "AKIAENV");
    }

    #[test]
    fn the_command_line_beats_the_environment_which_beats_the_files() {
        let mut f = Fixture::new();
        f.write(
            "home/.aws/credentials",
            "[default]\naws_access_key_id=AKIADEF\naws_secret_access_key=d\n\
             [prod]\naws_access_key_id=AKIAPROD\naws_secret_access_key=p\n",
        );
        f.write(
            "home/.aws/config",
            "[default]\nendpoint_url = http://config:1\n",
        );
        f.set("AWS_ACCESS_KEY_ID", "AKIAENV");
        f.set("AWS_SECRET_ACCESS_KEY", "e");
        f.set("KURA_ENDPOINT", "http://kura-endpoint:2");
        let s = f.resolve(&ConnectOptions::default()).unwrap();
        assert_eq!(s.credentials.access_key_id, "AKIAENV");
        // The profile's endpoint_url comes before KURA_ENDPOINT.
        assert_eq!(s.endpoint, "http://config:1");
        f.set("AWS_ENDPOINT_URL", "http://general:3");
        assert_eq!(
            f.resolve(&ConnectOptions::default()).unwrap().endpoint,
            "http://general:3"
        );
        f.set("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://sm:4");
        f.set("AWS_REGION", "ap-south-1");
        let s = f.resolve(&ConnectOptions::default()).unwrap();
        assert_eq!(s.endpoint, "http://sm:4");
        assert_eq!(s.endpoint_source, "AWS_ENDPOINT_URL_SECRETS_MANAGER");
        assert_eq!(s.region, "ap-south-1");
        let opts = ConnectOptions {
            endpoint: Some("http://flag:5".into()),
            profile: Some("prod".into()),
            region: Some("sa-east-1".into()),
            credentials_file: None,
        };
        let s = f.resolve(&opts).unwrap();
        assert_eq!(s.endpoint, "http://flag:5");
        assert_eq!(s.region, "sa-east-1");
        // --profile beats the environment's key, as in the AWS CLI.
        assert_eq!(s.credentials.access_key_id, "AKIAPROD");
    }

    #[test]
    fn an_explicit_credentials_file_and_shared_credentials_variable() {
        let mut f = Fixture::new();
        let other = f.write(
            "other",
            "[default]\naws_access_key_id=AKIAOTHER\naws_secret_access_key=o\n",
        );
        f.set("AWS_SHARED_CREDENTIALS_FILE", other.to_str().unwrap());
        let s = f.resolve(&ConnectOptions::default()).unwrap();
        assert_eq!(s.credentials.access_key_id, "AKIAOTHER");
        let opts = ConnectOptions {
            credentials_file: Some(f.dir.path().join("missing")),
            ..Default::default()
        };
        let e = f.resolve(&opts).unwrap_err();
        assert!(e.contains("missing"), "{e}");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = Credentials {
            access_key_id: "AKIAX".into(),
            secret_access_key: Zeroizing::new("very-secret".into()),
            session_token: None,
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("very-secret") && shown.contains("[redacted]"),
            "{shown}"
        );
    }
}
