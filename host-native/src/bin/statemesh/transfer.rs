//! `import` and `export`: JSON lines, one key per line:
//! `{"key": "ns:path", "value": <value>, "expires_at": <unix ms>?, "metadata": {...}?}`
//! (values as in the JSON-lines protocol: `statemesh::server::value_to_json`). A progress bar shows on a terminal, never in a pipe.

use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value as Json};
use statemesh::{PutOptions, Value};

use crate::backend::{Access, Backend, IMPORT_BATCH};
use crate::exit::Failure;
use crate::ops::{ExportArgs, ImportArgs};

/// Keys fetched per round when exporting.
const EXPORT_BATCH: usize = 1_000;

pub(crate) async fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let (reader, total): (Box<dyn BufRead>, Option<u64>) = if args.file.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let file = std::fs::File::open(&args.file)
            .map_err(|e| Failure::no_input(format!("cannot open {}: {e}", args.file.display())))?;
        let len = file.metadata().ok().map(|m| m.len());
        (Box::new(std::io::BufReader::new(file)), len)
    };
    let progress = progress_bar(total, "bytes");
    let backend = Backend::open(&args.target, Access::Write).await?;
    let result = import_lines(&backend, reader, &progress).await;
    progress.finish_and_clear();
    let closed = backend.close().await;
    let imported = result?;
    closed?;
    writeln!(std::io::stdout(), "imported {imported} keys")?;
    Ok(ExitCode::SUCCESS)
}

async fn import_lines(
    backend: &Backend,
    mut reader: Box<dyn BufRead>,
    progress: &ProgressBar,
) -> anyhow::Result<u64> {
    let now_ms = unix_ms();
    let mut plain: Vec<(String, Value)> = Vec::with_capacity(IMPORT_BATCH);
    let (mut imported, mut line_no) = (0u64, 0u64);
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .with_context(|| format!("reading line {}", line_no + 1))?;
        if read == 0 {
            break;
        }
        line_no += 1;
        progress.inc(read as u64);
        if line.trim().is_empty() {
            continue;
        }
        let item = match parse_line(&line, now_ms) {
            Ok(Some(item)) => item,
            Ok(None) => continue,
            Err(e) => {
                // Everything before the bad line goes in, so a rerun can start after it.
                if !plain.is_empty() {
                    imported += backend.import(std::mem::take(&mut plain)).await?;
                }
                return Err(Failure::data(format!(
                    "line {line_no}: {e} (keys imported before it: {imported})"
                )));
            }
        };
        match item.options {
            None => plain.push((item.key, item.value)),
            Some(options) => match backend.put_with(&item.key, item.value, options).await {
                Ok(_) => imported += 1,
                // Expired between reading the line and writing it: as if it had expired before.
                Err(e) if e.code() == "INVALID_TTL" => {}
                Err(e) => return Err(anyhow::Error::from(e).context(format!("line {line_no}"))),
            },
        }
        if plain.len() >= IMPORT_BATCH {
            imported += backend
                .import(std::mem::take(&mut plain))
                .await
                .with_context(|| format!("the batch ending at line {line_no}"))?;
        }
    }
    if !plain.is_empty() {
        imported += backend.import(plain).await.context("the last batch")?;
    }
    Ok(imported)
}

struct Item {
    key: String,
    value: Value,
    /// Set when the line carries a TTL or metadata (written alone rather than in a batch).
    options: Option<PutOptions>,
}

/// One line; `None` for a key whose `expires_at` has passed.
fn parse_line(line: &str, now_ms: u64) -> Result<Option<Item>, String> {
    let Json::Object(mut obj) =
        serde_json::from_str::<Json>(line).map_err(|e| format!("not JSON: {e}"))?
    else {
        return Err("expected an object {\"key\": ..., \"value\": ...}".into());
    };
    let key = match obj.remove("key") {
        Some(Json::String(k)) => k,
        _ => return Err("\"key\" must be a string".into()),
    };
    let value =
        statemesh::server::value_from_json(obj.remove("value").ok_or("\"value\" is missing")?)?;
    let mut options = PutOptions::default();
    let mut special = false;
    match obj.remove("expires_at") {
        None | Some(Json::Null) => {}
        Some(v) => {
            let at = v
                .as_u64()
                .ok_or("\"expires_at\" must be a Unix time in milliseconds")?;
            if at <= now_ms {
                return Ok(None);
            }
            // Absolute, so the expiry comes back exactly as exported.
            options.expires_at = Some(statemesh::Timestamp(at));
            special = true;
        }
    }
    match obj.remove("metadata") {
        None | Some(Json::Null) => {}
        Some(Json::Object(m)) => {
            if !m.is_empty() {
                options.metadata = Some(m);
                special = true;
            }
        }
        Some(_) => return Err("\"metadata\" must be an object".into()),
    }
    if let Some(extra) = obj.keys().next() {
        return Err(format!("unknown field {extra:?}"));
    }
    Ok(Some(Item {
        key,
        value,
        options: special.then_some(options),
    }))
}

pub(crate) async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let backend = Backend::open(&args.target, crate::backend::Access::Read).await?;
    let result = export_to(&backend, &args).await;
    let closed = backend.close().await;
    let exported = result?;
    closed?;
    eprintln!("exported {exported} keys");
    Ok(ExitCode::SUCCESS)
}

async fn export_to(backend: &Backend, args: &ExportArgs) -> anyhow::Result<u64> {
    let patterns = backend
        .patterns_or_every_key(args.pattern.as_deref())
        .await?;
    let mut out: BufWriter<Box<dyn Write>> = BufWriter::new(match &args.out {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    });
    let mut exported = 0u64;
    for pattern in patterns {
        let keys = backend.keys(&pattern).await?;
        let progress = progress_bar(Some(keys.len() as u64), "keys");
        for chunk in keys.chunks(EXPORT_BATCH) {
            for record in backend.records(chunk).await?.into_iter().flatten() {
                let mut line = Map::new();
                let value = statemesh::server::value_to_json(&record.value)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", record.key))?;
                line.insert("key".into(), Json::String(record.key));
                line.insert("value".into(), value);
                if let Some(at) = record.meta.expires_at {
                    line.insert("expires_at".into(), Json::from(at.0));
                }
                if !record.meta.user.is_empty() {
                    line.insert("metadata".into(), Json::Object(record.meta.user));
                }
                serde_json::to_writer(&mut out, &line)?;
                out.write_all(b"\n")?;
                exported += 1;
            }
            progress.inc(chunk.len() as u64);
        }
        progress.finish_and_clear();
    }
    out.flush()?;
    Ok(exported)
}

/// A progress bar on stderr when it is a terminal; hidden (and free) in a pipe or a test.
fn progress_bar(total: Option<u64>, unit: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let template = if unit == "bytes" {
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})"
    } else {
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} keys ({per_sec}, {eta})"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
