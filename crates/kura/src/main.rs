//! The `kura` command.

mod api;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kura",
    version,
    about = "A self-hosted secrets manager that speaks the AWS Secrets Manager API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (on first start it initialises the data directory).
    Server {
        /// Address to listen on.
        #[arg(long, env = "KURA_LISTEN", default_value = "127.0.0.1:8200")]
        listen: SocketAddr,
        /// Where kura keeps its database, root key and root credentials.
        #[arg(long, env = "KURA_DATA_DIR", default_value = "./kura-data")]
        data_dir: PathBuf,
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
        /// Log as JSON lines instead of text.
        #[arg(long, env = "KURA_LOG_JSON")]
        log_json: bool,
    },
    /// Work with the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Call one operation on a kura server, signed: an AWS one (`CreateSecret`) or one of
    /// kura's extensions (`Kura.CreateRotationFunction`). Prints the JSON answer.
    Api {
        /// `Kura.<Op>` or an AWS Secrets Manager operation name.
        operation: String,
        /// The request as JSON (`-` reads it from stdin; default `{}`).
        body: Option<String>,
        #[arg(long, env = "KURA_ENDPOINT", default_value = "http://127.0.0.1:8200")]
        endpoint: String,
        /// AWS shared-credentials file (default: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, then
        /// AWS_SHARED_CREDENTIALS_FILE, then ./kura-data/root-credentials).
        #[arg(long)]
        credentials: Option<PathBuf>,
        #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
        region: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check that no audit record was edited, deleted or reordered; say where the chain breaks.
    /// Reads the data directory only, so it may run beside the server.
    Verify {
        #[arg(long, env = "KURA_DATA_DIR", default_value = "./kura-data")]
        data_dir: PathBuf,
    },
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KURA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Audit {
            command: AuditCommand::Verify { data_dir },
        } => {
            let Some(runtime) = runtime(false) else {
                return ExitCode::FAILURE;
            };
            match runtime.block_on(kura_server::init::verify_audit(&data_dir)) {
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
        Command::Api {
            operation,
            body,
            endpoint,
            credentials,
            region,
        } => {
            let Some(runtime) = runtime(false) else {
                return ExitCode::FAILURE;
            };
            let args = api::ApiArgs {
                endpoint,
                credentials,
                region,
                operation,
                body,
            };
            match runtime.block_on(api::run(args)) {
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
            region,
            test_clock,
            test_pause_before_step,
            log_json,
        } => {
            init_logging(log_json);
            let Some(runtime) = runtime(true) else {
                return ExitCode::FAILURE;
            };
            let config = kura_server::Config {
                listen,
                data_dir,
                region,
                test_clock,
                test_pause_before_step,
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
