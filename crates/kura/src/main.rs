//! The `kura` command.

// Requests allocate and free many small buffers across threads (rows, JSON, headers):
// glibc's allocator spent a fifth of ListSecrets' samples in malloc, free and consolidation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod api;
mod backup;
mod cli;
mod client;
mod config;
mod migrate;
mod operator;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kura",
    version,
    about = "A self-hosted secrets manager that speaks the AWS Secrets Manager API",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The client commands' exit codes (`kura secret`, `kura api`).
const EXIT_CODES: &str = "Exit codes of the client commands (secret, user, key, policy,
function, notify, ca, cert-template, audit lookup, agent, import, export, api):
  0  done
  1  a server error, or another failure
  2  bad usage or input (an argument, a file, or a request the server found invalid)
  3  not found (no such secret, version or label)
  4  denied (credentials refused, or not allowed)
  5  the server could not be reached
kura run exits with its command's code instead (128+N for a signal N, 126 cannot run,
127 not found) once the command started, and with the codes above when it did not.";

// Parsed once per process: the size of the server's variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server (on first start it initialises the data directory).
    #[command(
        after_help = "Examples:\n  kura server                                   # 127.0.0.1:8200, SQLite in ./kura-data\n  kura server --listen 0.0.0.0:8200 --tls-cert /etc/kura/tls/server.pem --tls-key /etc/kura/tls/server.key\n  kura server --database-url \"$KURA_DATABASE_URL\"   # a node of a cluster on PostgreSQL\n  kura server --config /etc/kura/kura.toml --print-config"
    )]
    Server {
        /// Address to listen on.
        #[arg(long, env = "KURA_LISTEN", default_value = "127.0.0.1:8200")]
        listen: SocketAddr,
        /// Where kura keeps its database, root key and root credentials.
        #[arg(long, env = "KURA_DATA_DIR", default_value = "./kura-data")]
        data_dir: PathBuf,
        /// A PostgreSQL database (postgres://user:password@host/db?sslmode=require) instead of
        /// the embedded SQLite one: several nodes on one database form a cluster. Every node
        /// needs the same root.key in its data directory.
        #[arg(long, env = "KURA_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// The region written into secret ARNs. Clients may sign for any region.
        #[arg(long, env = "KURA_REGION", default_value = "us-east-1")]
        region: String,
        /// Run on a manual clock moved by Kura.SetClock / Kura.AdvanceClock. For tests only.
        #[arg(long, hide = true)]
        test_clock: bool,
        /// Stop every rotation before this step, as if the server hung there (tests of crash
        /// recovery kill it then). Needs --test-clock.
        #[arg(long, hide = true, requires = "test_clock")]
        test_pause_before_step: Option<String>,
        /// Rotations running at once on this server. `kura-password` cycles all share this
        /// bound; every other function (command, webhook, managed database or SSH) also runs at
        /// most 4 secrets at once, so an emergency rotation does not flood what it talks to.
        #[arg(long, env = "KURA_ROTATION_CONCURRENCY", default_value_t = kura_server::DEFAULT_ROTATION_CONCURRENCY as u32, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
        rotation_concurrency: u32,
        /// Memory for the read cache, in MiB: secrets' sealed versions and metadata, access
        /// keys and settings that reads need, kept until a write changes them (values stay
        /// encrypted there). 0 turns it off: every read queries the database.
        #[arg(long, env = "KURA_CACHE_SIZE", default_value_t = 64, value_name = "MIB", value_parser = clap::value_parser!(u32).range(0..=65536))]
        cache_size: u32,
        /// Log as JSON lines instead of text.
        #[arg(long, env = "KURA_LOG_JSON")]
        log_json: bool,
        /// Seconds a connection has to send a complete request head, from connecting or from
        /// the first byte of a later request.
        #[arg(long, env = "KURA_HEADER_READ_TIMEOUT", default_value = "10", value_name = "SECONDS", value_parser = seconds)]
        header_read_timeout: Duration,
        /// Seconds a keep-alive connection may stay idle between requests.
        #[arg(long, env = "KURA_IDLE_TIMEOUT", default_value = "60", value_name = "SECONDS", value_parser = seconds)]
        idle_timeout: Duration,
        /// Seconds a request body has to arrive once its head has.
        #[arg(long, env = "KURA_BODY_READ_TIMEOUT", default_value = "20", value_name = "SECONDS", value_parser = seconds)]
        body_read_timeout: Duration,
        /// Connections open at once; further ones are closed at once. Keep it below the
        /// open-file limit (`ulimit -n`) with room for the database.
        #[arg(long, env = "KURA_MAX_CONNECTIONS", default_value = "512", value_parser = clap::value_parser!(u32).range(1..))]
        max_connections: u32,
        /// Serve HTTPS with this certificate (PEM: the server's certificate, then its
        /// intermediates). Reloaded on SIGHUP and when the file changes.
        // Which TLS options go together is checked after parsing (`tls_files`): clap's
        // `requires` would not see values that came from the configuration file.
        #[arg(long, env = "KURA_TLS_CERT", value_name = "FILE")]
        tls_cert: Option<PathBuf>,
        /// The private key of --tls-cert (PEM).
        #[arg(long, env = "KURA_TLS_KEY", value_name = "FILE")]
        tls_key: Option<PathBuf>,
        /// Require clients to present a certificate issued by a CA in this PEM file.
        #[arg(long, env = "KURA_TLS_CLIENT_CA", value_name = "FILE")]
        tls_client_ca: Option<PathBuf>,
        /// Serve plain HTTP on an address other than loopback, for TLS that ends in front of
        /// kura (a proxy or load balancer). Without it, such an address needs --tls-cert.
        #[arg(long, env = "KURA_INSECURE_HTTP")]
        insecure_http: bool,
        /// How the root key is kept, chosen when the installation is initialised: `file`
        /// (root.key in the data directory, the default), `shamir` (the server starts sealed;
        /// `kura operator init` and `kura operator unseal`), or `pkcs11` (wrapped by a key in an
        /// HSM; unseals itself). Later starts may leave it out.
        #[arg(long, env = "KURA_SEAL", value_parser = ["file", "shamir", "pkcs11"])]
        seal: Option<String>,
        #[command(flatten)]
        pkcs11: Pkcs11Args,
        /// Serve GET /metrics (Prometheus text format, no authentication: counts only, never
        /// secret names or values) on the API listener (`main`), or not at all (`off`).
        /// --metrics-listen serves it on an address of its own instead.
        #[arg(long, env = "KURA_METRICS", default_value = "main", value_parser = ["main", "off"])]
        metrics: String,
        /// Serve GET /metrics on this address only (plain HTTP, e.g. 127.0.0.1:9464), not on
        /// the API listener.
        #[arg(long, env = "KURA_METRICS_LISTEN", value_name = "ADDR")]
        metrics_listen: Option<SocketAddr>,
        /// Seconds a web console session may stay unused before it ends.
        #[arg(long, env = "KURA_CONSOLE_IDLE_TIMEOUT", default_value = "900", value_name = "SECONDS", value_parser = seconds)]
        console_idle_timeout: Duration,
        /// Seconds a web console session lasts after sign-in, however busy.
        #[arg(long, env = "KURA_CONSOLE_SESSION_LIFETIME", default_value = "28800", value_name = "SECONDS", value_parser = seconds)]
        console_session_lifetime: Duration,
        /// Read the options from this TOML file: each key is an option's name without `--`
        /// (`listen = "0.0.0.0:8200"`, `tls-cert = "/etc/kura/tls/server.pem"`). Options given
        /// as flags or KURA_* variables override the file's.
        #[arg(long, env = "KURA_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the configuration this start would use, as TOML with secrets masked, and exit.
        #[arg(long)]
        print_config: bool,
    },
    /// Operate an installation: initialise, unseal and seal a server (the `shamir` seal), move
    /// it to another seal, rotate its root key, back it up and restore it, issue new root
    /// credentials, disable root.
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
        #[arg(
            long,
            env = "KURA_ENDPOINT",
            default_value = "http://127.0.0.1:8200",
            global = true
        )]
        endpoint: String,
    },
    /// Copy a single server's installation (its SQLite database) into an empty PostgreSQL
    /// database, for nodes started with --database-url. Stop that server first.
    #[command(
        after_help = "Example:\n  kura migrate --from ./kura-data --to \"$KURA_DATABASE_URL\""
    )]
    Migrate {
        /// The data directory of the server to move.
        #[arg(long, value_name = "DATA_DIR")]
        from: PathBuf,
        /// The empty PostgreSQL database to copy into (postgres://…; `sslmode=require` or
        /// `verify-full` for TLS).
        #[arg(
            long,
            env = "KURA_DATABASE_URL",
            value_name = "URL",
            hide_env_values = true
        )]
        to: String,
    },
    /// Work with the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Work with secrets: create, get, put, list, rotate, delete, ...
    #[command(after_help = SECRET_HELP)]
    Secret {
        #[command(subcommand)]
        command: cli::secret::SecretCommand,
        #[command(flatten)]
        client: cli::ClientArgs,
    },
    /// Manage users and their access keys.
    #[command(
        after_help = "Examples:\n  kura user create billing\n  kura user create-key billing\n  kura user whoami"
    )]
    User {
        #[command(subcommand)]
        command: cli::admin::UserCommand,
        #[command(flatten)]
        client: cli::ClientArgs,
    },
    /// Manage the keys that protect secrets.
    #[command(
        after_help = "Examples:\n  kura key create --alias alias/billing\n  kura key rotate alias/billing"
    )]
    Key {
        #[command(subcommand)]
        command: cli::admin::KeyCommand,
        #[command(flatten)]
        client: cli::ClientArgs,
    },
    /// Manage users' policies and secrets' resource policies.
    #[command(
        after_help = "Examples:\n  kura policy validate @read-billing.json\n  kura policy put --user billing --name read-billing @read-billing.json"
    )]
    Policy {
        #[command(subcommand)]
        command: cli::admin::PolicyCommand,
        #[command(flatten)]
        client: cli::ClientArgs,
    },
    /// Manage rotation functions.
    #[command(
        after_help = "Examples:\n  kura function list\n  kura function create @rotate-app.json"
    )]
    Function {
        #[command(subcommand)]
        command: cli::admin::FunctionCommand,
        #[command(flatten)]
        client: cli::ClientArgs,
    },
    /// Manage private certificate authorities (certificates come from `kura-private-certificate`
    /// secrets issued under a `kura cert-template`).
    #[command(
        after_help = "Examples:\n  kura ca create root --type root\n  kura ca create issuing --type intermediate --parent root\n  kura ca certificate root > root.pem"
    )]
    Ca {
        #[command(subcommand)]
        command: cli::admin::CaCommand,
        #[command(flatten)]
        client: cli::ClientArgs,
    },
    /// Manage certificate templates: which CA issues, for how long, for which names.
    #[command(
        after_help = "Example:\n  kura cert-template create web --ca issuing --allowed-domain .example.com --ttl 30d"
    )]
    CertTemplate {
        #[command(subcommand)]
        command: cli::admin::CertTemplateCommand,
        #[command(flatten)]
        client: cli::ClientArgs,
    },
    /// Manage notification targets (webhooks told of rotations and deletions).
    #[command(
        after_help = "Example:\n  kura notify create https://hooks.example/kura --event RotationFailed"
    )]
    Notify {
        #[command(subcommand)]
        command: cli::admin::NotifyCommand,
        #[command(flatten)]
        client: cli::ClientArgs,
    },
    /// Run a command with secrets in its environment (the values never printed unless
    /// --print-env asks); signals pass to it, its exit code is kura run's.
    #[command(after_help = cli::run::RUN_HELP)]
    Run {
        #[command(flatten)]
        run: cli::run::RunArgs,
        #[command(flatten)]
        client: cli::ClientArgs,
    },
    /// Serve the AWS Secrets Manager Agent's HTTP interface on this machine: a cache that
    /// follows the server's changes, and secrets written to files.
    #[command(after_help = cli::agent::AGENT_HELP)]
    Agent {
        #[command(flatten)]
        agent: cli::agent::AgentArgs,
        #[command(flatten)]
        client: cli::ClientArgs,
    },
    /// Import secrets from a .env file, a JSON or YAML map, a Vault/OpenBao KV v2 export, or
    /// another AWS Secrets Manager endpoint (--from-endpoint).
    #[command(after_help = cli::transfer::IMPORT_HELP)]
    Import {
        #[command(flatten)]
        import: cli::transfer::ImportArgs,
        #[command(flatten)]
        client: cli::ClientArgs,
    },
    /// Write secrets' names and metadata (values with --with-values) as .env, JSON or YAML.
    #[command(after_help = cli::transfer::EXPORT_HELP)]
    Export {
        #[command(flatten)]
        export: cli::transfer::ExportArgs,
        #[command(flatten)]
        conn: cli::transfer::ConnArgs,
    },
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  kura completion bash > /etc/bash_completion.d/kura\n  kura completion zsh > \"${fpath[1]}/_kura\"\n  kura completion fish > ~/.config/fish/completions/kura.fish"
    )]
    Completion {
        /// bash, zsh, fish (also elvish, powershell).
        shell: clap_complete::Shell,
    },
    /// Call one operation on a kura server, signed: an AWS one (`CreateSecret`) or one of
    /// kura's extensions (`Kura.CreateRotationFunction`). Prints the JSON answer.
    #[command(
        after_help = "Examples:\n  kura api ListSecrets\n  kura api Kura.CreateUser '{\"UserName\": \"billing\"}'\n  kura api DescribeSecret - < request.json"
    )]
    Api {
        /// `Kura.<Op>` or an AWS Secrets Manager operation name.
        operation: String,
        /// The request as JSON (`-` reads it from stdin; default `{}`).
        body: Option<String>,
        /// The server's URL [default: AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL, the
        /// profile's endpoint_url, KURA_ENDPOINT, then http://127.0.0.1:8200].
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
        /// AWS shared-credentials file to sign with (its [default] profile, or --profile's)
        /// [default: as `kura secret`: AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
        /// AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, then ./kura-data/root-credentials].
        #[arg(long, value_name = "FILE")]
        credentials: Option<PathBuf>,
        /// A profile of ~/.aws/credentials and ~/.aws/config.
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
        /// The region to sign for [default: AWS_REGION, AWS_DEFAULT_REGION, the profile's, us-east-1].
        #[arg(long)]
        region: Option<String>,
    },
}

/// The HSM holding the key that wraps the root key (`--seal pkcs11`).
#[derive(clap::Args)]
struct Pkcs11Args {
    /// The HSM vendor's PKCS#11 library (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so).
    #[arg(long, env = "KURA_PKCS11_MODULE", value_name = "PATH")]
    pkcs11_module: Option<PathBuf>,
    /// The slot holding the token, by number ...
    #[arg(long, env = "KURA_PKCS11_SLOT", value_name = "NUMBER")]
    pkcs11_slot: Option<u64>,
    /// ... or by its token's label.
    #[arg(long, env = "KURA_PKCS11_TOKEN_LABEL", value_name = "LABEL")]
    pkcs11_token_label: Option<String>,
    /// The token's user PIN (better given as KURA_PKCS11_PIN than on the command line).
    #[arg(
        long,
        env = "KURA_PKCS11_PIN",
        value_name = "PIN",
        hide_env_values = true
    )]
    pkcs11_pin: Option<String>,
    /// The label of the AES key that wraps the root key; made in the HSM at initialisation
    /// if the token has none.
    #[arg(
        long,
        env = "KURA_PKCS11_KEY_LABEL",
        value_name = "LABEL",
        default_value = "kura-root-key"
    )]
    pkcs11_key_label: String,
}

impl Pkcs11Args {
    /// The HSM these settings name, if they name one (module and PIN given).
    fn hsm(self) -> Result<Option<kura_server::seal::HsmConfig>, String> {
        if self.pkcs11_module.is_none() && self.pkcs11_pin.is_none() {
            return Ok(None);
        }
        self.seal_choice(Some("pkcs11".into())).map(|c| match c {
            Some(kura_server::seal::SealChoice::Pkcs11(h)) => Some(h),
            _ => None,
        })
    }

    /// The seal asked for, with what it needs; the error says which setting is missing.
    fn seal_choice(
        self,
        seal: Option<String>,
    ) -> Result<Option<kura_server::seal::SealChoice>, String> {
        use kura_server::seal::SealChoice;
        let pkcs11_given = self.pkcs11_module.is_some() || self.pkcs11_pin.is_some();
        match seal.as_deref() {
            None if pkcs11_given => Err("--pkcs11-* settings are given but not --seal pkcs11: add --seal pkcs11 (KURA_SEAL=pkcs11)".into()),
            None => Ok(None),
            Some("file") => Ok(Some(SealChoice::File)),
            Some("shamir") => Ok(Some(SealChoice::Shamir)),
            Some("pkcs11") => {
                let module = self.pkcs11_module.ok_or("--seal pkcs11 needs --pkcs11-module (the HSM's PKCS#11 library)")?;
                let pin = self.pkcs11_pin.ok_or("--seal pkcs11 needs the token's PIN: set KURA_PKCS11_PIN (or --pkcs11-pin)")?;
                if self.pkcs11_slot.is_none() && self.pkcs11_token_label.is_none() {
                    return Err("--seal pkcs11 needs --pkcs11-slot or --pkcs11-token-label (which token holds the key)".into());
                }
                Ok(Some(SealChoice::Pkcs11(hsm_config(module, self.pkcs11_slot, self.pkcs11_token_label, pin, self.pkcs11_key_label))))
            }
            Some(other) => Err(format!("--seal {other} is not file, shamir or pkcs11")),
        }
    }
}

fn hsm_config(
    module: PathBuf,
    slot: Option<u64>,
    token_label: Option<String>,
    pin: String,
    key_label: String,
) -> kura_server::seal::HsmConfig {
    kura_server::seal::HsmConfig {
        module,
        slot,
        token_label,
        pin: zeroize::Zeroizing::new(pin),
        key_label,
    }
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Show whether the server is initialised and sealed, and how many shares it has.
    #[command(
        after_help = "Examples:\n  kura operator status\n  kura operator status --endpoint https://kura.internal:8200"
    )]
    Status,
    /// Initialise a server started with --seal shamir: prints the unseal shares (once).
    #[command(after_help = "Examples:\n  kura operator init --shares 5 --threshold 3")]
    Init {
        /// How many shares to make.
        #[arg(long, default_value = "5")]
        shares: u8,
        /// How many of them unseal the server.
        #[arg(long, default_value = "3")]
        threshold: u8,
    },
    /// Give the server one unseal share (read from the terminal, not echoed, when not given).
    #[command(
        after_help = "Examples:\n  kura operator unseal                # asks for a share, not echoed\n  kura operator unseal --reset        # forget the shares given so far"
    )]
    Unseal {
        /// The share; leave it out to be asked for it (keeps it out of the shell history).
        share: Option<String>,
        /// Forget the shares given so far and start over.
        #[arg(long, conflicts_with = "share")]
        reset: bool,
    },
    /// Move an installation to another seal (file, shamir or pkcs11), its servers stopped.
    /// Only the root key is re-wrapped; no secret is re-encrypted. From shamir it asks for
    /// the shares (one per line on stdin); to shamir it prints the new shares.
    #[command(
        after_help = "Examples:\n  kura operator migrate-seal --data-dir ./kura-data --to shamir --shares 5 --threshold 3\n  kura operator migrate-seal --data-dir ./kura-data --to file"
    )]
    MigrateSeal {
        #[arg(long, env = "KURA_DATA_DIR", default_value = "./kura-data")]
        data_dir: PathBuf,
        #[arg(long, env = "KURA_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// The seal to move to.
        #[arg(long, value_parser = ["file", "shamir", "pkcs11"])]
        to: String,
        /// To shamir: how many shares, and how many unseal.
        #[arg(long, default_value = "5")]
        shares: u8,
        #[arg(long, default_value = "3")]
        threshold: u8,
        /// The HSM, when moving from or to pkcs11.
        #[command(flatten)]
        pkcs11: Pkcs11Args,
    },
    /// Issue new root credentials (when the old ones are lost), proving to the running server
    /// that you hold the root key: root.key in --data-dir (file seal), `threshold` unseal
    /// shares (shamir: --share, or one per line on stdin), or the HSM (--pkcs11-*). Root's
    /// earlier access keys are deleted (a lost key may be a stolen one) unless
    /// --keep-old-keys; a disabled root is enabled again. Writes DATA_DIR/root-credentials,
    /// replacing the earlier file, or prints them with --print.
    #[command(
        after_help = "Examples:\n  kura operator generate-root --data-dir ./kura-data             # file seal: reads root.key\n  kura operator generate-root --data-dir ./kura-data --share S1 --share S2 --share S3"
    )]
    GenerateRoot {
        #[arg(long, env = "KURA_DATA_DIR", default_value = "./kura-data")]
        data_dir: PathBuf,
        #[arg(long, env = "KURA_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// An unseal share (shamir seal); repeat it, or give the shares on stdin.
        #[arg(long = "share", value_name = "SHARE")]
        shares: Vec<String>,
        /// Print the new credentials instead of writing them to DATA_DIR/root-credentials.
        #[arg(long)]
        print: bool,
        /// Leave root's earlier access keys working (root has at most two).
        #[arg(long)]
        keep_old_keys: bool,
        #[command(flatten)]
        pkcs11: Pkcs11Args,
    },
    /// Disable the root user: its access keys are refused. Refused unless an administrator
    /// exists (a user with an active access key whose policies allow every kura:* and
    /// secretsmanager:* action on "*"). Needs kura:DisableRoot (root or an administrator).
    #[command(
        after_help = "Examples:\n  kura operator disable-root --credentials ./admin-credentials"
    )]
    DisableRoot {
        /// AWS shared-credentials file (default: as `kura api`).
        #[arg(long)]
        credentials: Option<PathBuf>,
        #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
        region: String,
    },
    /// Enable the root user again (needs kura:EnableRoot: an administrator).
    #[command(
        after_help = "Examples:\n  kura operator enable-root --credentials ./admin-credentials"
    )]
    EnableRoot {
        /// AWS shared-credentials file of an administrator (default: as `kura api`).
        #[arg(long)]
        credentials: Option<PathBuf>,
        #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
        region: String,
    },
    /// Rotate the root key on the running server: a new root key wraps every key-encryption
    /// key, kept by the server's seal (same shares, same HSM key; the file seal rewrites
    /// root.key). Reads and writes go on; other nodes of a cluster follow. Root only.
    #[command(after_help = "Examples:\n  kura operator rotate-root-key")]
    RotateRootKey {
        /// AWS shared-credentials file of the root user (default: as `kura api`).
        #[arg(long)]
        credentials: Option<PathBuf>,
        #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
        region: String,
    },
    /// Take a consistent backup of the installation while its servers run: every table,
    /// still encrypted, with the audit chain, into one file (a SQLite database with a
    /// manifest). The root key is not in it: with the file seal, keep root.key apart.
    #[command(
        after_help = "Examples:\n  kura operator backup --data-dir ./kura-data --output /backups/kura-$(date +%F).db\n  kura operator backup --database-url \"$KURA_DATABASE_URL\" --output /backups/kura.db"
    )]
    Backup {
        /// The backup file to write (written beside it, then renamed: never half-written).
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
        /// The data directory of the server to back up (its kura.db).
        #[arg(long, env = "KURA_DATA_DIR", default_value = "./kura-data")]
        data_dir: PathBuf,
        /// Back up this PostgreSQL database instead (a cluster's), from one snapshot.
        #[arg(long, env = "KURA_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Replace --output if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Build a new installation from a backup: into a new or empty data directory, and into
    /// an empty PostgreSQL database when --database-url is given.
    #[command(
        after_help = "Examples:\n  kura operator restore --input backups/kura.db --data-dir ./restored --root-key ./kura-data/root.key"
    )]
    Restore {
        /// The backup file (from `kura operator backup`).
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// The new installation's data directory; must be new or empty.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Restore into this empty PostgreSQL database instead of a SQLite one.
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
        /// The root.key of the backed-up installation (file seal only); copied into the data
        /// directory once it is checked to open the backup's keyring.
        #[arg(long, value_name = "FILE")]
        root_key: Option<PathBuf>,
    },
    /// Seal the server: it forgets its keys and answers nothing until unsealed. Root only.
    #[command(after_help = "Examples:\n  kura operator seal")]
    Seal {
        /// AWS shared-credentials file of the root user (default: as `kura api`).
        #[arg(long)]
        credentials: Option<PathBuf>,
        #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
        region: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Show audit records from a running server, filtered (who did what, when, and how it went).
    #[command(
        after_help = "Examples:\n  kura audit lookup --since 1h --outcome Error\n  kura audit lookup --action secretsmanager:GetSecretValue --resource arn:aws:secretsmanager:...\n  kura audit lookup --since 2026-12-01T00:00:00Z --output json"
    )]
    Lookup {
        #[command(flatten)]
        lookup: cli::audit::LookupArgs,
        #[command(flatten)]
        client: cli::ClientArgs,
    },
    /// Check that no audit record was edited, deleted or reordered; say where the chain breaks.
    /// Reads the data directory only, so it may run beside the server.
    #[command(
        after_help = "Examples:\n  kura audit verify\n  kura audit verify --data-dir ./node2 --database-url \"$KURA_DATABASE_URL\""
    )]
    Verify {
        #[arg(long, env = "KURA_DATA_DIR", default_value = "./kura-data")]
        data_dir: PathBuf,
        /// The cluster's PostgreSQL database: its chain is checked, and the data directory's
        /// audit file holds this node's records among them.
        #[arg(long, env = "KURA_DATABASE_URL")]
        database_url: Option<String>,
        /// An unseal share, when the installation is sealed with shamir; repeat it, or give
        /// the shares on stdin.
        #[arg(long = "share", value_name = "SHARE")]
        shares: Vec<String>,
        /// The HSM, when the installation is sealed with pkcs11.
        #[command(flatten)]
        pkcs11: Pkcs11Args,
    },
}

const SECRET_HELP: &str = "Examples:
  kura secret create prod/db '{\"username\": \"app\", \"password\": \"s3cret\"}'
  kura secret get prod/db --field password
  kura secret list --filter name=prod/
  kura --help shows the exit codes.

The server and credentials are found as the AWS CLI finds them (--profile, AWS_PROFILE,
AWS_ACCESS_KEY_ID, ~/.aws/credentials, ~/.aws/config, AWS_ENDPOINT_URL_SECRETS_MANAGER,
AWS_CA_BUNDLE), then KURA_ENDPOINT and ./kura-data/root-credentials.";

/// A number of seconds (fractions allowed), more than 0 and at most a day.
fn seconds(text: &str) -> Result<Duration, String> {
    let n: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(n > 0.0 && n <= 86_400.0) {
        return Err(format!(
            "{text} is out of range: give more than 0 and at most 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(n))
}

/// Info, without PostgreSQL's notices ("relation … already exists, skipping" at every start).
const DEFAULT_LOG_FILTER: &str = "info,sqlx::postgres::notice=warn";

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KURA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The async runtime: all cores for the server, one thread for a single client call.
fn runtime(multi_thread: bool) -> Option<tokio::runtime::Runtime> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    match builder.enable_all().build() {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("kura: cannot start the async runtime: {e}");
            None
        }
    }
}

/// An error as the command line shows it. Internal errors carry the useful part in their
/// detail (the message is the generic one API clients get), so that is what is shown.
fn cli_message(e: &kura_server::Error) -> String {
    match &e.detail {
        Some(d) => d.clone(),
        None => e.message.clone(),
    }
}

/// The TLS files, if TLS is asked for; the error says which option is missing.
fn tls_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
) -> Result<Option<kura_server::http::TlsFiles>, String> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(kura_server::http::TlsFiles {
            cert,
            key,
            client_ca,
        })),
        (Some(_), None) => Err("--tls-cert needs --tls-key (KURA_TLS_KEY, tls-key), its private key".into()),
        (None, Some(_)) => Err("--tls-key needs --tls-cert (KURA_TLS_CERT, tls-cert), the certificate it belongs to".into()),
        (None, None) if client_ca.is_some() => Err("--tls-client-ca needs --tls-cert and --tls-key: client certificates are asked for over TLS only".into()),
        (None, None) => Ok(None),
    }
}

/// Runs a client command; its error on stderr and its exit code.
fn client_command(
    command: impl std::future::Future<Output = Result<(), client::ClientError>>,
) -> ExitCode {
    let Some(runtime) = runtime(false) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kura: {}", cli::message(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

fn main() -> ExitCode {
    let parsed = match config::parse::<Cli>() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kura: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = parsed.cli;
    match cli.command {
        Command::Audit {
            command: AuditCommand::Lookup { lookup, client },
        } => client_command(cli::audit::lookup(lookup, &client)),
        Command::Audit {
            command:
                AuditCommand::Verify {
                    data_dir,
                    database_url,
                    shares,
                    pkcs11,
                },
        } => {
            let Some(runtime) = runtime(false) else {
                return ExitCode::FAILURE;
            };
            let hsm = match pkcs11.hsm() {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("kura: {e}");
                    return ExitCode::from(2);
                }
            };
            let mut ask = operator::share_asker(shares);
            match runtime.block_on(kura_server::init::verify_audit(
                &data_dir,
                database_url.as_deref(),
                hsm.as_ref(),
                &mut ask,
            )) {
                Ok(report) if report.problems.is_empty() => {
                    println!(
                        "audit trail intact: {} records, every MAC and link checked",
                        report.records
                    );
                    ExitCode::SUCCESS
                }
                Ok(report) => {
                    for p in &report.problems {
                        println!("BROKEN: {p}");
                    }
                    println!(
                        "audit trail NOT intact: {} problem(s) in {} records",
                        report.problems.len(),
                        report.records
                    );
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("kura: {}", cli_message(&e));
                    ExitCode::from(2)
                }
            }
        }
        Command::Migrate { from, to } => {
            let Some(runtime) = runtime(false) else {
                return ExitCode::FAILURE;
            };
            migrate::run(&runtime, &from, &to)
        }
        Command::Api {
            operation,
            body,
            endpoint,
            credentials,
            profile,
            region,
        } => {
            let Some(runtime) = runtime(false) else {
                return ExitCode::FAILURE;
            };
            let connect = client::ConnectOptions {
                endpoint,
                profile,
                region,
                credentials_file: credentials,
            };
            match runtime.block_on(api::run(&connect, &operation, body)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("kura: {}", api::error_text(&e));
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::Completion { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "kura", &mut script);
            match cli::emit(&script) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("kura: {}", cli::message(&e));
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run { mut run, client } => {
            // Which --secret an --as belongs to is in the command line's order, which the
            // derived struct does not keep.
            use clap::CommandFactory;
            let matches = Cli::command().get_matches();
            if let Some(m) = matches.subcommand_matches("run") {
                let at = |id: &str| -> Vec<usize> {
                    m.indices_of(id).map(|i| i.collect()).unwrap_or_default()
                };
                if let Err(e) = run.pair_as(&at("secrets"), &at("as_vars")) {
                    eprintln!("kura: {}", cli::message(&e));
                    return ExitCode::from(e.exit_code());
                }
            }
            let Some(runtime) = runtime(false) else {
                return ExitCode::FAILURE;
            };
            match runtime.block_on(cli::run::run(run, &client)) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("kura: {}", cli::message(&e));
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::Agent { agent, client } => client_command(cli::agent::run(agent, &client)),
        Command::Import { import, client } => {
            client_command(cli::transfer::import(import, &client))
        }
        Command::Export { export, conn } => client_command(cli::transfer::export(export, &conn)),
        Command::Secret { command, client } => client_command(cli::secret::run(command, &client)),
        Command::User { command, client } => client_command(cli::admin::user(command, &client)),
        Command::Key { command, client } => client_command(cli::admin::key(command, &client)),
        Command::Policy { command, client } => client_command(cli::admin::policy(command, &client)),
        Command::Function { command, client } => {
            client_command(cli::admin::function(command, &client))
        }
        Command::Notify { command, client } => client_command(cli::admin::notify(command, &client)),
        Command::Ca { command, client } => client_command(cli::admin::ca(command, &client)),
        Command::CertTemplate { command, client } => {
            client_command(cli::admin::cert_template(command, &client))
        }
        Command::Operator { command, endpoint } => {
            let Some(runtime) = runtime(false) else {
                return ExitCode::FAILURE;
            };
            let done = runtime.block_on(async {
                match command {
                    OperatorCommand::Status => operator::status(&endpoint).await,
                    OperatorCommand::Init { shares, threshold } => {
                        operator::init(&endpoint, shares, threshold).await
                    }
                    OperatorCommand::Unseal { share, reset } => {
                        operator::unseal(&endpoint, share, reset).await
                    }
                    OperatorCommand::Seal {
                        credentials,
                        region,
                    } => operator::seal(&endpoint, credentials.as_deref(), &region).await,
                    OperatorCommand::GenerateRoot {
                        data_dir,
                        database_url,
                        shares,
                        print,
                        keep_old_keys,
                        pkcs11,
                    } => {
                        operator::generate_root(operator::GenerateRoot {
                            endpoint: &endpoint,
                            data_dir: &data_dir,
                            database_url: database_url.as_deref(),
                            shares,
                            hsm: pkcs11.hsm(),
                            print,
                            keep_old_keys,
                        })
                        .await
                    }
                    OperatorCommand::DisableRoot {
                        credentials,
                        region,
                    } => {
                        operator::set_root_enabled(
                            &endpoint,
                            credentials.as_deref(),
                            &region,
                            false,
                        )
                        .await
                    }
                    OperatorCommand::EnableRoot {
                        credentials,
                        region,
                    } => {
                        operator::set_root_enabled(&endpoint, credentials.as_deref(), &region, true)
                            .await
                    }
                    OperatorCommand::RotateRootKey {
                        credentials,
                        region,
                    } => {
                        operator::rotate_root_key(&endpoint, credentials.as_deref(), &region).await
                    }
                    OperatorCommand::Backup {
                        output,
                        data_dir,
                        database_url,
                        force,
                    } => backup::backup(&data_dir, database_url.as_deref(), &output, force).await,
                    OperatorCommand::Restore {
                        input,
                        data_dir,
                        database_url,
                        root_key,
                    } => {
                        backup::restore(
                            &input,
                            &data_dir,
                            database_url.as_deref(),
                            root_key.as_deref(),
                        )
                        .await
                    }
                    OperatorCommand::MigrateSeal {
                        data_dir,
                        database_url,
                        to,
                        shares,
                        threshold,
                        pkcs11,
                    } => {
                        let hsm = pkcs11.hsm();
                        operator::migrate_seal(
                            &data_dir,
                            database_url.as_deref(),
                            &to,
                            shares,
                            threshold,
                            hsm,
                        )
                        .await
                    }
                }
            });
            match done {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("kura: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Server {
            listen,
            data_dir,
            database_url,
            region,
            test_clock,
            test_pause_before_step,
            rotation_concurrency,
            cache_size,
            log_json,
            header_read_timeout,
            idle_timeout,
            body_read_timeout,
            max_connections,
            tls_cert,
            tls_key,
            tls_client_ca,
            insecure_http,
            seal,
            pkcs11,
            metrics,
            metrics_listen,
            console_idle_timeout,
            console_session_lifetime,
            config: _,
            print_config,
        } => {
            let metrics = match (metrics.as_str(), metrics_listen) {
                ("off", Some(_)) => {
                    eprintln!(
                        "kura: --metrics off and --metrics-listen contradict each other: give one"
                    );
                    return ExitCode::from(2);
                }
                ("off", None) => kura_server::http::MetricsExposure::Off,
                (_, Some(at)) => kura_server::http::MetricsExposure::Listen(at),
                _ => kura_server::http::MetricsExposure::Main,
            };
            let checked = pkcs11
                .seal_choice(seal)
                .and_then(|seal| Ok((seal, tls_files(tls_cert, tls_key, tls_client_ca)?)));
            let (seal, tls) = match checked {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("kura: {e}");
                    return ExitCode::from(2);
                }
            };
            if print_config {
                if let Some(effective) = &parsed.server {
                    print!("{}", effective.to_toml());
                }
                return ExitCode::SUCCESS;
            }
            init_logging(log_json);
            let Some(runtime) = runtime(true) else {
                return ExitCode::FAILURE;
            };
            let config = kura_server::Config {
                listen,
                data_dir,
                database_url,
                region,
                test_clock,
                test_pause_before_step,
                rotation_concurrency: rotation_concurrency as usize,
                cache_bytes: (cache_size as usize) << 20,
                limits: kura_server::http::Limits {
                    header_read_timeout,
                    idle_timeout,
                    body_read_timeout,
                    max_connections: max_connections as usize,
                },
                tls,
                insecure_http,
                seal,
                metrics,
                console: kura_server::console::Settings {
                    idle_timeout: console_idle_timeout,
                    lifetime: console_session_lifetime,
                },
            };
            match runtime.block_on(kura_server::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{}", cli_message(&e));
                    eprintln!("kura: {}", cli_message(&e));
                    ExitCode::FAILURE
                }
            }
        }
    }
}
