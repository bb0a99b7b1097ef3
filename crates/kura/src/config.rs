//! `kura server --config FILE`: the server's options from a TOML file, and `--print-config`.
//!
//! The clap definition of `kura server` is the one list of options: a key of the file is a
//! flag's long name without `--` (`listen`, `tls-cert`, `pkcs11-pin`, ...), its value is
//! checked by that flag's own parser, and becomes the flag's default for this run. So a flag on
//! the command line beats its `KURA_*` variable, which beats the file, which beats the built-in
//! default, as clap already orders those. Options that are secret say so with
//! `hide_env_values`; `--print-config` masks them.

use std::any::TypeId;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};

/// What `--print-config` shows instead of a secret (a whole PIN, a URL's password).
pub const MASK: &str = "<masked>";

/// The arguments of `kura server` that say where the configuration is and what to do with
/// it, rather than being part of it.
const NOT_SETTINGS: &[&str] = &["config", "print_config"];

/// How an option's value is written in TOML.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A switch: `true` or `false`.
    Flag,
    /// A count or a number of seconds.
    Number,
    /// Anything else (addresses, paths, names, URLs, PINs): a string.
    Text,
}

fn kind(arg: &Arg) -> Kind {
    if matches!(arg.get_action(), ArgAction::SetTrue) {
        return Kind::Flag;
    }
    let t = arg.get_value_parser().type_id();
    let numbers = [
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
        TypeId::of::<i64>(),
        TypeId::of::<f64>(),
        TypeId::of::<Duration>(),
    ];
    if numbers.iter().any(|n| t == *n) {
        Kind::Number
    } else {
        Kind::Text
    }
}

/// The options a file may set: the server's arguments that have a long name, are not hidden
/// (the test switches) and are not about the file itself.
fn settings(server: &Command) -> impl Iterator<Item = (&str, &Arg)> {
    server.get_arguments().filter_map(|a| {
        let long = a.get_long()?;
        let id = a.get_id().as_str();
        (!a.is_hide_set() && !NOT_SETTINGS.contains(&id) && id != "help").then_some((long, a))
    })
}

/// An option whose value is secret, or may hold one (a database URL's password).
fn is_secret(arg: &Arg) -> bool {
    arg.is_hide_env_values_set()
}

/// The command line, with `kura server`'s options completed from its configuration file.
pub struct Parsed<C> {
    pub cli: C,
    /// For `kura server`: where each option's value came from.
    pub server: Option<Effective>,
}

/// `kura server`'s options as this run will use them, and where each came from.
pub struct Effective {
    /// `kura server` as declared (its arguments' names, kinds and order).
    command: Command,
    matches: ArgMatches,
    /// The configuration file and the argument ids it set.
    file: Option<(PathBuf, BTreeSet<String>)>,
}

/// Parses the command line (clap prints usage errors and exits, as always); for `kura server`
/// with `--config` (or `KURA_CONFIG`), reads the file first. The error is a message for the
/// operator, naming the file, the line and the key.
pub fn parse<C: CommandFactory + FromArgMatches>() -> Result<Parsed<C>, String> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let command = C::command();
    let first = command.clone().get_matches_from(&args);
    let path = match first.subcommand() {
        Some(("server", m)) => m.get_one::<PathBuf>("config").cloned(),
        _ => {
            let cli = C::from_arg_matches(&first).map_err(|e| e.to_string())?;
            return Ok(Parsed { cli, server: None });
        }
    };
    // The options as declared: `mut_arg` below moves the ones it changes to the end.
    let declared = command
        .find_subcommand("server")
        .ok_or("kura has no server command")?
        .clone();
    let (command, file) = match path {
        None => (command, None),
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!("cannot read the configuration file {}: {e}", path.display())
            })?;
            let server = command
                .find_subcommand("server")
                .ok_or("kura has no server command")?;
            let values = file_values(server, &path, &text)?;
            let ids = values.keys().cloned().collect();
            let command = command.mut_subcommand("server", |mut s| {
                for (id, value) in values {
                    s = s.mut_arg(id, |a| a.default_value(value));
                }
                s
            });
            (command, Some((path, ids)))
        }
    };
    let matches = command.clone().get_matches_from(&args);
    let cli = C::from_arg_matches(&matches).map_err(|e| e.to_string())?;
    let server_matches = matches
        .subcommand_matches("server")
        .ok_or("kura server's options were not parsed")?;
    let effective = Effective {
        command: declared,
        matches: server_matches.clone(),
        file,
    };
    effective.refuse_masked()?;
    Ok(Parsed {
        cli,
        server: Some(effective),
    })
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// The file's settings, each checked by its flag's parser: argument id → value as the command
/// line would give it.
fn file_values(
    server: &Command,
    path: &Path,
    text: &str,
) -> Result<BTreeMap<String, String>, String> {
    let shown = path.display();
    let table: BTreeMap<toml::Spanned<String>, toml::Spanned<toml::Value>> = toml::from_str(text)
        .map_err(|e| {
        format!(
            "{shown} is not valid TOML: {}",
            e.to_string().trim_end().replace('\n', "\n  ")
        )
    })?;
    let known: BTreeMap<&str, &Arg> = settings(server).collect();
    // In the file's order, so the first mistake reported is the first in the file.
    let mut entries: Vec<_> = table.into_iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    let mut values = BTreeMap::new();
    for (key, value) in entries {
        let at = format!("{shown} line {}", line_of(text, key.span().start));
        let key = key.into_inner();
        let Some(arg) = known.get(key.as_str()) else {
            let keys: Vec<&str> = known.keys().copied().collect();
            return Err(format!(
                "{at}: unknown key `{key}`; the keys are `kura server`'s options without \
                 the leading --: {}",
                keys.join(", ")
            ));
        };
        let value = value.into_inner();
        let text = match (kind(arg), &value) {
            (Kind::Flag, toml::Value::Boolean(b)) => b.to_string(),
            (Kind::Flag, _) => {
                return Err(format!(
                    "{at}: `{key}` is a switch: write `{key} = true` or `{key} = false`"
                ));
            }
            (Kind::Number, toml::Value::Integer(n)) => n.to_string(),
            (Kind::Number, toml::Value::Float(f)) => f.to_string(),
            (Kind::Number, _) => {
                return Err(format!(
                    "{at}: `{key}` takes a number, without quotes (e.g. `{key} = {}`)",
                    arg.get_default_values()
                        .first()
                        .and_then(|d| d.to_str())
                        .unwrap_or("10")
                ));
            }
            (Kind::Text, toml::Value::String(s)) => s.clone(),
            (Kind::Text, _) => {
                return Err(format!(
                    "{at}: `{key}` takes a string: put the value in quotes (`{key} = \"...\"`)"
                ));
            }
        };
        if let Kind::Text | Kind::Number = kind(arg) {
            check_value(arg, &key, &text, is_secret(arg)).map_err(|e| format!("{at}: {e}"))?;
        }
        values.insert(arg.get_id().as_str().to_string(), text);
    }
    Ok(values)
}

/// Runs `value` through the option's own parser, alone, so the file's values are refused with
/// the same reasons as the flag's.
fn check_value(arg: &Arg, key: &str, value: &str, secret: bool) -> Result<(), String> {
    // Relations to other options are checked on the whole command line, not here.
    let alone = arg
        .clone()
        .requires(clap::builder::Resettable::<clap::Id>::Reset)
        .conflicts_with(clap::builder::Resettable::<clap::Id>::Reset)
        .required(false)
        .env(None::<&str>)
        .default_value(None::<&str>);
    let probe = Command::new("kura")
        .no_binary_name(true)
        .disable_help_flag(true)
        .arg(alone);
    // `--key=value`, so a value starting with `-` is not taken for a flag.
    match probe.try_get_matches_from([format!("--{key}={value}")]) {
        Ok(_) => Ok(()),
        // A secret's text is not repeated; what is wrong with it is said by the key.
        Err(_) if secret => Err(format!("`{key}` is not a valid value for --{key}")),
        Err(e) => {
            let rendered = e.render().to_string();
            let reason: Vec<&str> = rendered
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
                .collect();
            let reason = reason.join(" ");
            Err(format!(
                "`{key}`: {}",
                reason.strip_prefix("error: ").unwrap_or(&reason)
            ))
        }
    }
}

/// `postgres://user:password@host/db?password=x` with the passwords replaced by `MASK`; a value
/// that is not a URL is masked whole, as it may be a password.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return MASK.to_string();
    };
    let (before_query, query) = match rest.find(['?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    // The last `@` before the query ends the user part: a password may hold `/` or `@`.
    let authority = match before_query.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{user}:{MASK}@{host}"),
            None => before_query.to_string(),
        },
        None => before_query.to_string(),
    };
    let query = match query.strip_prefix('?') {
        None => query.to_string(),
        Some(q) => {
            let (params, fragment) = match q.split_once('#') {
                Some((p, f)) => (p, format!("#{f}")),
                None => (q, String::new()),
            };
            let params: Vec<String> = params
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.to_ascii_lowercase().contains("password") => {
                        format!("{k}={MASK}")
                    }
                    _ => p.to_string(),
                })
                .collect();
            format!("?{}{fragment}", params.join("&"))
        }
    };
    format!("{scheme}://{authority}{query}")
}

/// A secret option's value as printed.
fn masked(value: &str) -> String {
    if value.contains("://") {
        mask_url(value)
    } else {
        MASK.to_string()
    }
}

impl Effective {
    /// Where an option's value came from, as the printed configuration says it.
    fn source(&self, arg: &Arg) -> String {
        let id = arg.get_id().as_str();
        match self.matches.value_source(id) {
            Some(ValueSource::CommandLine) => format!("--{}", arg.get_long().unwrap_or(id)),
            Some(ValueSource::EnvVariable) => arg
                .get_env()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_else(|| "environment".into()),
            _ => match &self.file {
                Some((path, ids)) if ids.contains(id) => path.display().to_string(),
                _ => "default".into(),
            },
        }
    }

    /// A value that came from the file holding `MASK`: the file was made by `--print-config`
    /// and the secret was not put back.
    fn refuse_masked(&self) -> Result<(), String> {
        let Some((path, ids)) = &self.file else {
            return Ok(());
        };
        for (key, arg) in settings(&self.command) {
            let id = arg.get_id().as_str();
            let from_file = ids.contains(id)
                && self.matches.value_source(id) == Some(ValueSource::DefaultValue);
            let value = self.raw(id);
            if from_file && is_secret(arg) && value.is_some_and(|v| v.contains(MASK)) {
                let env = arg
                    .get_env()
                    .map(|e| format!(" or in {}", e.to_string_lossy()))
                    .unwrap_or_default();
                return Err(format!(
                    "{}: `{key}` holds {MASK}, which --print-config shows in place of a secret: \
                     write the real value there{env}",
                    path.display()
                ));
            }
        }
        Ok(())
    }

    fn raw(&self, id: &str) -> Option<String> {
        let mut values = self.matches.get_raw(id)?;
        values.next().map(|v| v.to_string_lossy().into_owned())
    }

    /// The configuration as TOML that `--config` reads back (once masked secrets are given
    /// again), each value with where it came from.
    pub fn to_toml(&self) -> String {
        let mut out = String::from(
            "# kura server: the effective configuration. Precedence: flag > KURA_* environment \
             > configuration file > default.\n",
        );
        out.push_str(&format!(
            "# Secrets show as \"{MASK}\": give them again (here or in their KURA_* variable) \
             before using this as --config.\n"
        ));
        for (key, arg) in settings(&self.command) {
            let id = arg.get_id().as_str();
            let Some(value) = self.raw(id) else {
                out.push_str(&format!("# {key}: not set\n"));
                continue;
            };
            let shown = match kind(arg) {
                Kind::Flag => toml::Value::Boolean(value == "true"),
                Kind::Number => match (value.parse::<i64>(), value.parse::<f64>()) {
                    (Ok(n), _) => toml::Value::Integer(n),
                    (_, Ok(f)) => toml::Value::Float(f),
                    _ => toml::Value::String(value),
                },
                Kind::Text if is_secret(arg) => toml::Value::String(masked(&value)),
                Kind::Text => toml::Value::String(value),
            };
            out.push_str(&format!("{key} = {shown}  # {}\n", self.source(arg)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_masked_and_the_rest_kept() {
        let cases = [
            (
                "postgres://kura:s3cret@db.example/kura?sslmode=require",
                "postgres://kura:<masked>@db.example/kura?sslmode=require",
            ),
            ("postgres://kura@db/kura", "postgres://kura@db/kura"),
            ("postgres://db/kura", "postgres://db/kura"),
            (
                "postgres://kura:pa/ss@w@db:5432/kura",
                "postgres://kura:<masked>@db:5432/kura",
            ),
            (
                "postgres://db/kura?user=kura&password=s3cret&sslmode=verify-full",
                "postgres://db/kura?user=kura&password=<masked>&sslmode=verify-full",
            ),
            ("not a url, maybe a password", "<masked>"),
        ];
        for (given, expected) in cases {
            assert_eq!(mask_url(given), expected, "{given}");
        }
    }

    #[test]
    fn every_option_can_be_checked_alone() {
        let command = crate::Cli::command();
        command.clone().debug_assert();
        let server = command.find_subcommand("server").expect("a server command");
        let keys: Vec<&str> = settings(server).map(|(k, _)| k).collect();
        assert!(
            keys.contains(&"listen") && keys.contains(&"pkcs11-pin"),
            "{keys:?}"
        );
        assert!(
            !keys.contains(&"config") && !keys.contains(&"test-clock"),
            "{keys:?}"
        );
        for (key, arg) in settings(server) {
            // Panics (clap's debug checks) if the option cannot be parsed on its own.
            let _ = check_value(arg, key, "1", false);
        }
    }

    #[test]
    fn line_numbers_count_from_one() {
        assert_eq!(line_of("a = 1\nb = 2\n", 0), 1);
        assert_eq!(line_of("a = 1\nb = 2\n", 6), 2);
    }
}
