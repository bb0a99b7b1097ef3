//! The client commands (`kura secret …`, `user`, `key`, `policy`, `function`, `notify`,
//! `audit lookup`): their shared options, output formats, and how a value is read from the user.

pub mod admin;
pub mod agent;
pub mod audit;
pub mod run;
pub mod secret;
pub mod transfer;

use std::io::{IsTerminal, Read, Write};

use zeroize::Zeroizing;

use crate::client::{ClientError, ConnectOptions};

/// What every client command takes: where the server is, whom to sign as, how to print.
#[derive(clap::Args, Clone)]
pub struct ClientArgs {
    /// The server's URL [default: AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL, the
    /// profile's endpoint_url, KURA_ENDPOINT, then http://127.0.0.1:8200].
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint: Option<String>,
    /// A profile of ~/.aws/credentials and ~/.aws/config (AWS_SHARED_CREDENTIALS_FILE,
    /// AWS_CONFIG_FILE) [default: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else the
    /// AWS_PROFILE or default profile, else ./kura-data/root-credentials].
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// The region to sign for [default: AWS_REGION, AWS_DEFAULT_REGION, the profile's, us-east-1].
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// How to print answers [default: table on a terminal, json otherwise].
    #[arg(long, short = 'o', global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
}

impl ClientArgs {
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            endpoint: self.endpoint.clone(),
            profile: self.profile.clone(),
            region: self.region.clone(),
            credentials_file: None,
        }
    }

    pub fn out(&self) -> Out {
        let tty = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let format = self
            .output
            .unwrap_or(if tty { Format::Table } else { Format::Json });
        Out {
            format,
            explicit: self.output.is_some(),
            color: tty && !no_color && format == Format::Table,
            tty,
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// The server's JSON answer (list and versions: every page in one answer).
    Json,
    /// Tab-separated values without headers, for `cut` and `while read`.
    Text,
}

/// How this run prints.
pub struct Out {
    pub format: Format,
    /// `--output` was given (`get` prints the bare value unless JSON or a table is asked for).
    pub explicit: bool,
    pub color: bool,
    /// Standard output is a terminal.
    pub tty: bool,
}

impl Out {
    pub fn json(&self, value: &serde_json::Value) -> Result<(), ClientError> {
        let mut text = Zeroizing::new(serde_json::to_string_pretty(value).unwrap_or_default());
        text.push('\n');
        emit(text.as_bytes())
    }

    /// A line of text.
    pub fn line(&self, text: &str) -> Result<(), ClientError> {
        emit(format!("{text}\n").as_bytes())
    }

    /// Rows under a header (table), or tab-separated without it (text).
    pub fn rows(&self, header: &[&str], rows: &[Vec<String>]) -> Result<(), ClientError> {
        let text = match self.format {
            // One record a line, one field a column: tabs and newlines inside become spaces.
            Format::Text => rows
                .iter()
                .map(|r| {
                    let cells: Vec<String> =
                        r.iter().map(|c| c.replace(['\t', '\n'], " ")).collect();
                    format!("{}\n", cells.join("\t"))
                })
                .collect(),
            _ => table(header, rows, self.color),
        };
        emit(text.as_bytes())
    }

    /// `key: value` lines (table), or `key<TAB>value` (text).
    pub fn pairs(&self, pairs: &[(&str, String)]) -> Result<(), ClientError> {
        // `get --output table` shows a value here: the text is wiped after.
        let text: Zeroizing<String> = Zeroizing::new(match self.format {
            // A multi-line value (describe's versions): one `key<TAB>line` per line.
            Format::Text => pairs
                .iter()
                .flat_map(|(k, v)| v.split('\n').map(move |line| format!("{k}\t{line}\n")))
                .collect(),
            _ => {
                let width = pairs
                    .iter()
                    .map(|(k, _)| k.chars().count())
                    .max()
                    .unwrap_or(0);
                pairs
                    .iter()
                    .map(|(k, v)| {
                        let pad = " ".repeat(width - k.chars().count());
                        let key = self.bold(&format!("{k}:"));
                        // A multi-line value continues under its first line.
                        let indent = " ".repeat(width + 2);
                        let v = v.replace('\n', &format!("\n{indent}"));
                        format!("{key}{pad} {v}\n")
                    })
                    .collect()
            }
        });
        emit(text.as_bytes())
    }

    fn bold(&self, s: &str) -> String {
        if self.color {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// Columns padded to their widest cell; the header bold when `color`.
pub fn table(header: &[&str], rows: &[Vec<String>], color: bool) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            // The last column is not padded (no trailing blanks).
            if i + 1 < widths.len() {
                let w = widths.get(i).copied().unwrap_or(0);
                out.push_str(&" ".repeat(w.saturating_sub(cell.chars().count())));
            }
        }
        out.trim_end().to_string()
    };
    let mut text = line(&mut header.iter().copied());
    if color {
        text = format!("\x1b[1m{text}\x1b[0m");
    }
    text.push('\n');
    for row in rows {
        text.push_str(&line(&mut row.iter().map(String::as_str)));
        text.push('\n');
    }
    text
}

/// An error as `kura secret` prints it: the server's code in brackets after its message.
/// Every page of a listing: `call` is given `body`, then `body` with each answer's
/// NextToken, until an answer has none; the items under `key` of every answer.
pub async fn pages(
    mut body: serde_json::Value,
    key: &str,
    mut call: impl AsyncFnMut(&serde_json::Value) -> Result<serde_json::Value, ClientError>,
) -> Result<Vec<serde_json::Value>, ClientError> {
    let mut all = Vec::new();
    loop {
        let mut page = call(&body).await?;
        if let Some(items) = page[key].as_array_mut() {
            all.append(items);
        }
        match page["NextToken"].as_str() {
            Some(t) if !t.is_empty() => body["NextToken"] = serde_json::json!(t),
            _ => return Ok(all),
        }
    }
}

pub fn message(e: &ClientError) -> String {
    match e {
        ClientError::Api { code, message, .. } => format!("{message} ({code})"),
        ClientError::Usage(m)
        | ClientError::Unreachable(m)
        | ClientError::Other(m)
        | ClientError::Child(_, m) => m.clone(),
    }
}

/// A value given by the user: text, or bytes with `--binary`.
pub enum Value {
    Text(Zeroizing<String>),
    Binary(Zeroizing<Vec<u8>>),
}

/// Reads a value: `VALUE` itself, `@FILE`, or `-` (stdin); with no `VALUE`, a prompt without
/// echo on a terminal, else stdin. `what` names it in the prompt and in errors.
pub fn read_value(arg: Option<&str>, binary: bool, what: &str) -> Result<Value, ClientError> {
    let usage = |m: String| ClientError::Usage(m);
    let bytes: Zeroizing<Vec<u8>> = match arg {
        Some("-") => read_stdin()?,
        Some(a) if a.starts_with('@') => {
            let path = &a[1..];
            Zeroizing::new(
                std::fs::read(path).map_err(|e| usage(format!("cannot read {path}: {e}")))?,
            )
        }
        Some(a) => Zeroizing::new(a.as_bytes().to_vec()),
        None if std::io::stdin().is_terminal() => {
            if binary {
                return Err(usage(
                    "a binary value cannot be typed: give it as @FILE or on stdin (-)".into(),
                ));
            }
            let first = Zeroizing::new(
                rpassword::prompt_password(format!("Value of {what} (not shown): "))
                    .map_err(|e| usage(format!("cannot read the value: {e}")))?,
            );
            let again = Zeroizing::new(
                rpassword::prompt_password("The same again: ")
                    .map_err(|e| usage(format!("cannot read the value: {e}")))?,
            );
            if *first != *again {
                return Err(usage("the two values differ; nothing was stored".into()));
            }
            Zeroizing::new(first.as_bytes().to_vec())
        }
        None => read_stdin()?,
    };
    if bytes.is_empty() {
        return Err(usage(format!(
            "the value of {what} is empty: give it as an argument, @FILE, or on stdin"
        )));
    }
    if binary {
        return Ok(Value::Binary(bytes));
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Value::Text(Zeroizing::new(text.to_string()))),
        Err(_) => Err(usage(format!(
            "the value of {what} is not UTF-8 text: add --binary to store it as bytes"
        ))),
    }
}

/// A JSON document (a policy): the JSON itself, `@FILE`, or `-` (stdin).
pub fn read_document(arg: &str) -> Result<serde_json::Value, ClientError> {
    let text = read_text(arg)?;
    serde_json::from_str(&text)
        .map_err(|e| ClientError::Usage(format!("the document is not JSON: {e}")))
}

/// An argument's text: as given, `@FILE`, or `-` for stdin.
pub fn read_text(arg: &str) -> Result<String, ClientError> {
    Ok(match arg {
        "-" => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map_err(|e| {
                ClientError::Usage(format!("cannot read the document from stdin: {e}"))
            })?;
            s
        }
        a if a.starts_with('@') => std::fs::read_to_string(&a[1..])
            .map_err(|e| ClientError::Usage(format!("cannot read {}: {e}", &a[1..])))?,
        a => a.to_string(),
    })
}

fn read_stdin() -> Result<Zeroizing<Vec<u8>>, ClientError> {
    let mut buf = Zeroizing::new(Vec::new());
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| ClientError::Usage(format!("cannot read the value from stdin: {e}")))?;
    Ok(buf)
}

/// Writes bytes to stdout as they are (a value), with a newline after on a terminal only.
pub fn print_raw(bytes: &[u8], tty: bool) -> Result<(), ClientError> {
    emit(bytes)?;
    if tty { emit(b"\n") } else { Ok(()) }
}

/// Writes to stdout. A reader that went away (`| head`) is no error; a full disk is.
pub fn emit(bytes: &[u8]) -> Result<(), ClientError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(ClientError::Other(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// Takes the secret fields out of an answer so they are wiped when dropped.
pub fn wipe(value: &mut serde_json::Value) {
    if let Some(map) = value.as_object_mut() {
        for key in ["SecretString", "SecretBinary"] {
            if let Some(serde_json::Value::String(s)) = map.remove(key) {
                drop(Zeroizing::new(s));
            }
        }
    }
}

/// A date of an answer (seconds since the epoch) as people read it, in UTC.
pub fn date(value: &serde_json::Value) -> String {
    value
        .as_f64()
        .and_then(|s| chrono::DateTime::from_timestamp(s.floor() as i64, 0))
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// Writes `content` to a new file beside `path` (mode 0600), then renames it over `path`, so
/// a reader sees the old file or the new one, never half of one.
pub(crate) fn write_private(path: &std::path::Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{base}.kura-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns_but_not_the_last() {
        let t = table(
            &["NAME", "ROTATION", "DESCRIPTION"],
            &[
                vec!["prod/db".into(), "every 30 days".into(), "".into()],
                vec!["a".into(), "off".into(), "x".into()],
            ],
            false,
        );
        assert_eq!(
            t,
            "NAME     ROTATION       DESCRIPTION\nprod/db  every 30 days\na        off            x\n"
        );
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(
            date(&serde_json::json!(1_700_000_000.5)),
            "2023-11-14 22:13:20 UTC"
        );
        assert_eq!(date(&serde_json::Value::Null), "");
    }
}
