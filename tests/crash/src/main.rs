//! The process the crash test kills. It opens a CP store in the given directory and runs
//! `writers` concurrent writers; writer `t` writes keys `w{t}:k{i:08}` with value `i` in order,
//! sometimes three at a time in one `multi_put`. After each acknowledged write it prints
//! `ack {t} {last i}` and flushes, so the parent knows exactly what was acknowledged.
//! It resumes each writer after the highest key already in the store. The store declares an
//! exact-value index over every written value, so checkpoints also store index images (and a
//! kill can land between or inside those writes).

use std::io::Write;

use anyhow::{Context, Result};
use statemesh::{Store, StoreBuilder, Value, ValueIndexDef};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .context("usage: crash-child DIR WRITERS CHECKPOINT_EVERY")?;
    let writers: u32 = args.next().context("writers")?.parse()?;
    let checkpoint_every: u64 = args.next().context("checkpoint_every")?.parse()?;
    let store = builder()
        .checkpoint_every(checkpoint_every)
        .segment_bytes(64 << 10)
        .open(&dir)
        .await?;
    let stdout = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let mut tasks = Vec::new();
    for t in 0..writers {
        let store = store.clone();
        let stdout = stdout.clone();
        tasks.push(tokio::spawn(async move {
            let mut next = store.keys(&format!("w{t}:*")).await?.len() as i64;
            loop {
                let last = if next % 5 == 4 {
                    let batch: Vec<(String, Value)> = (next..next + 3)
                        .map(|i| (format!("w{t}:k{i:08}"), Value::Integer(i)))
                        .collect();
                    store.multi_put(&batch).await?;
                    next + 2
                } else {
                    store.put(&format!("w{t}:k{next:08}"), next).await?;
                    next
                };
                let mut out = stdout.lock().map_err(|_| anyhow::anyhow!("stdout lock"))?;
                writeln!(out, "ack {t} {last}")?;
                out.flush()?;
                drop(out);
                next = last + 1;
            }
            #[allow(unreachable_code)]
            Ok::<(), anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// The index the store declares; the parent reopens with the same.
fn builder() -> StoreBuilder {
    Store::builder().value_index(ValueIndexDef::new("by_value", "w*:**"))
}
