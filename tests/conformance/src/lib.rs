//! The storage-adapter conformance suite: every case checks one clause of the `Storage`
//! contract (statemesh-core's `storage` module). Adapters run the whole suite with
//! [`run_all`], giving a function that opens the adapter's storage again on the same data; the
//! previous handle is dropped first, as a process that exits would.
//!
//! The cases are async and runtime-free, so the same suite runs natively and, for browser
//! adapters, under wasm-bindgen-test.

use statemesh_core::{
    EncodedLog, Engine, EngineConfig, IndexImage, LogBytes, Storage, StorageError, Timestamp, Value,
};

/// A failed clause: which case, and what went wrong.
#[derive(Debug)]
pub struct Failure {
    pub case: &'static str,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.case, self.message)
    }
}

type Outcome = Result<(), Failure>;

fn fail(case: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        case,
        message: message.into(),
    }
}

fn io(case: &'static str) -> impl Fn(StorageError) -> Failure {
    move |e| fail(case, e.to_string())
}

/// Opens the adapter's storage on fresh, empty data (`fresh = true`) or again on the data the
/// last handle wrote (`fresh = false`).
///
/// Async because some adapters open asynchronously (IndexedDB); native ones just return.
pub trait Reopen {
    type S: Storage;
    fn open(
        &mut self,
        fresh: bool,
    ) -> impl std::future::Future<Output = Result<Self::S, StorageError>>;
}

/// Runs every case; returns the failures (empty when the adapter conforms).
pub async fn run_all<R: Reopen>(adapter: &mut R) -> Vec<Failure> {
    let mut failures = Vec::new();
    for outcome in [
        empty_storage_loads_nothing(adapter).await,
        appended_records_come_back_in_order_exactly(adapter).await,
        snapshot_keeps_later_records(adapter).await,
        newer_snapshot_replaces_older(adapter).await,
        large_and_many_records(adapter).await,
        engine_state_survives_reopen(adapter).await,
        index_images_come_back_for_their_snapshot(adapter).await,
        index_images_are_refused_for_another_revision(adapter).await,
        index_images_of_an_older_snapshot_are_not_returned(adapter).await,
    ] {
        if let Err(f) = outcome {
            failures.push(f);
        }
    }
    failures
}

fn records(range: std::ops::Range<u64>) -> Vec<LogBytes> {
    range
        .map(|r| LogBytes {
            revision: r,
            bytes: format!("record {r}").into_bytes(),
        })
        .collect()
}

async fn empty_storage_loads_nothing<R: Reopen>(a: &mut R) -> Outcome {
    const C: &str = "empty storage loads nothing";
    let mut s = a.open(true).await.map_err(io(C))?;
    let got = s.load().await.map_err(io(C))?;
    if got.snapshot.is_some() || !got.records.is_empty() {
        return Err(fail(C, format!("{got:?}")));
    }
    Ok(())
}

async fn appended_records_come_back_in_order_exactly<R: Reopen>(a: &mut R) -> Outcome {
    const C: &str = "appended records come back in order, exactly";
    let mut s = a.open(true).await.map_err(io(C))?;
    s.load().await.map_err(io(C))?;
    let all = records(1..41);
    for chunk in all.chunks(7) {
        s.append(chunk).await.map_err(io(C))?;
    }
    s.sync().await.map_err(io(C))?;
    drop(s);
    let mut s = a.open(false).await.map_err(io(C))?;
    let got = s.load().await.map_err(io(C))?;
    if got.records != all {
        return Err(fail(
            C,
            format!(
                "got {} records, first {:?}",
                got.records.len(),
                got.records.first()
            ),
        ));
    }
    // Appending after a reopen continues the same log.
    s.append(&records(41..43)).await.map_err(io(C))?;
    drop(s);
    let mut s = a.open(false).await.map_err(io(C))?;
    let got = s.load().await.map_err(io(C))?;
    if got.records != records(1..43) {
        return Err(fail(
            C,
            "records appended after a reopen are missing or out of order",
        ));
    }
    Ok(())
}

async fn snapshot_keeps_later_records<R: Reopen>(a: &mut R) -> Outcome {
    const C: &str = "a snapshot keeps every later record";
    let mut s = a.open(true).await.map_err(io(C))?;
    s.load().await.map_err(io(C))?;
    s.append(&records(1..21)).await.map_err(io(C))?;
    s.write_snapshot(15, b"state at 15").await.map_err(io(C))?;
    s.append(&records(21..26)).await.map_err(io(C))?;
    drop(s);
    let mut s = a.open(false).await.map_err(io(C))?;
    let got = s.load().await.map_err(io(C))?;
    if got.snapshot.as_deref() != Some(&b"state at 15"[..]) {
        return Err(fail(C, format!("snapshot {:?}", got.snapshot)));
    }
    // Records the snapshot covers may remain; every later one must, in order.
    let later: Vec<_> = got
        .records
        .iter()
        .filter(|r| r.revision > 15)
        .cloned()
        .collect();
    if later != records(16..26) {
        return Err(fail(C, format!("records after the snapshot: {later:?}")));
    }
    let covered = got.records.iter().take_while(|r| r.revision <= 15).count();
    if got.records[covered..].iter().any(|r| r.revision <= 15) {
        return Err(fail(C, "covered records interleaved with later ones"));
    }
    Ok(())
}

async fn newer_snapshot_replaces_older<R: Reopen>(a: &mut R) -> Outcome {
    const C: &str = "a newer snapshot replaces the older";
    let mut s = a.open(true).await.map_err(io(C))?;
    s.load().await.map_err(io(C))?;
    s.append(&records(1..6)).await.map_err(io(C))?;
    s.write_snapshot(5, b"five").await.map_err(io(C))?;
    s.append(&records(6..11)).await.map_err(io(C))?;
    s.write_snapshot(10, b"ten").await.map_err(io(C))?;
    drop(s);
    let mut s = a.open(false).await.map_err(io(C))?;
    let got = s.load().await.map_err(io(C))?;
    if got.snapshot.as_deref() != Some(&b"ten"[..]) || got.records.iter().any(|r| r.revision > 10) {
        return Err(fail(
            C,
            format!("{:?}, {} records", got.snapshot, got.records.len()),
        ));
    }
    Ok(())
}

async fn large_and_many_records<R: Reopen>(a: &mut R) -> Outcome {
    const C: &str = "large and many records";
    let mut s = a.open(true).await.map_err(io(C))?;
    s.load().await.map_err(io(C))?;
    let big = LogBytes {
        revision: 1,
        bytes: (0..(2 << 20)).map(|i| (i % 251) as u8).collect(),
    };
    s.append(std::slice::from_ref(&big)).await.map_err(io(C))?;
    let small = records(2..2002);
    for r in &small {
        s.append(std::slice::from_ref(r)).await.map_err(io(C))?;
    }
    drop(s);
    let mut s = a.open(false).await.map_err(io(C))?;
    let got = s.load().await.map_err(io(C))?;
    if got.records.len() != 2001 || got.records[0] != big || got.records[1..] != small[..] {
        return Err(fail(C, format!("{} records back", got.records.len())));
    }
    Ok(())
}

async fn engine_state_survives_reopen<R: Reopen>(a: &mut R) -> Outcome {
    const C: &str =
        "engine state survives a reopen (snapshot + log replay; records by append and append_logs)";
    let mut s = a.open(true).await.map_err(io(C))?;
    s.load().await.map_err(io(C))?;
    let mut engine = Engine::new(EngineConfig::default()).map_err(|e| fail(C, e.to_string()))?;
    // Records go to storage both ways a host hands them over: copied out as `LogBytes` through
    // `append`, and as the engine's encoded logs, several per call, through `append_logs`.
    let mut pending: Vec<EncodedLog> = Vec::new();
    let mut sent: Vec<LogBytes> = Vec::new();
    let mut snapshot_revision = 0;
    for i in 0..300i64 {
        let now = Timestamp(1_000 + i as u64);
        let key = format!("c:user.{}.item{}", i % 17, i % 5);
        let r = match i % 4 {
            0 => engine.delete(now, &key).map(drop),
            1 => engine
                .put_with_ttl(now, &key, &Value::Integer(i), 50)
                .map(drop),
            _ => engine
                .put(now, &key, &Value::from(format!("v{i}")))
                .map(drop),
        };
        r.map_err(|e| fail(C, e.to_string()))?;
        let mut log = EncodedLog::new();
        engine.take_log(&mut log);
        sent.extend(log.to_log_bytes());
        pending.push(log);
        if i % 3 == 2 || i == 150 || i == 299 {
            if i % 2 == 0 {
                s.append_logs(&pending).await.map_err(io(C))?;
            } else {
                let copied: Vec<LogBytes> =
                    pending.iter().flat_map(EncodedLog::to_log_bytes).collect();
                s.append(&copied).await.map_err(io(C))?;
            }
            pending.clear();
        }
        if i == 150 {
            snapshot_revision = engine.revision();
            let snap = engine.snapshot().map_err(|e| fail(C, e.to_string()))?;
            s.write_snapshot(engine.revision(), &snap)
                .await
                .map_err(io(C))?;
        }
    }
    drop(s);
    let mut s = a.open(false).await.map_err(io(C))?;
    let got = s.load().await.map_err(io(C))?;
    // The log after the snapshot is the records sent after it, byte for byte.
    let after: Vec<&LogBytes> = sent
        .iter()
        .filter(|r| r.revision > snapshot_revision)
        .collect();
    if got.records.iter().collect::<Vec<_>>() != after {
        return Err(fail(
            C,
            format!(
                "{} records after the snapshot came back, {} were sent",
                got.records.len(),
                after.len()
            ),
        ));
    }
    let mut restored = match &got.snapshot {
        Some(b) => {
            Engine::restore(EngineConfig::default(), b).map_err(|e| fail(C, e.to_string()))?
        }
        None => return Err(fail(C, "snapshot missing")),
    };
    for r in &got.records {
        restored
            .replay_bytes(&r.bytes)
            .map_err(|e| fail(C, e.to_string()))?;
    }
    // The keyspace must match exactly; compare through key listings and values, since the
    // snapshot header's clock may differ (reads are not logged).
    let all = |e: &Engine| {
        e.get_pattern(Timestamp(0), "c:**")
            .map_err(|err| fail(C, err.to_string()))
    };
    if restored.revision() != engine.revision() || all(&restored)? != all(&engine)? {
        return Err(fail(
            C,
            format!("revision {} vs {}", restored.revision(), engine.revision()),
        ));
    }
    Ok(())
}

// ---- index images (contract point 5), for adapters that store them ----

fn images(tag: u8) -> Vec<IndexImage> {
    vec![
        IndexImage {
            name: "msgs".into(),
            // Large enough to cross any page or chunk size an adapter may use.
            bytes: (0..300_000u32).map(|i| (i % 251) as u8 ^ tag).collect(),
        },
        IndexImage {
            name: "by_user".into(),
            bytes: vec![tag; 3],
        },
        IndexImage {
            name: "empty".into(),
            bytes: Vec::new(),
        },
    ]
}

/// A fresh storage holding records 1..=10 and a snapshot at 5.
async fn with_snapshot<R: Reopen>(a: &mut R, c: &'static str) -> Result<Option<R::S>, Failure> {
    let mut s = a.open(true).await.map_err(io(c))?;
    if !s.supports_index_images() {
        return Ok(None);
    }
    s.load().await.map_err(io(c))?;
    s.append(&records(1..11)).await.map_err(io(c))?;
    s.write_snapshot(5, b"snapshot at 5").await.map_err(io(c))?;
    Ok(Some(s))
}

async fn index_images_come_back_for_their_snapshot<R: Reopen>(a: &mut R) -> Outcome {
    const C: &str = "index images come back for their snapshot, exactly";
    let Some(mut s) = with_snapshot(a, C).await? else {
        return Ok(());
    };
    s.write_index_images(5, &images(1)).await.map_err(io(C))?;
    // A second set for the same snapshot replaces the first.
    s.write_index_images(5, &images(2)).await.map_err(io(C))?;
    drop(s);
    let mut s = a.open(false).await.map_err(io(C))?;
    s.load().await.map_err(io(C))?;
    let got = s.load_index_images().await.map_err(io(C))?;
    if got != images(2) {
        return Err(fail(
            C,
            format!(
                "got {:?}",
                got.iter()
                    .map(|i| (&i.name, i.bytes.len()))
                    .collect::<Vec<_>>()
            ),
        ));
    }
    // Images leave the log alone.
    let recovered = s.load().await.map_err(io(C))?;
    if recovered.records.iter().any(|r| r.revision <= 5)
        || recovered.records.last().map(|r| r.revision) != Some(10)
    {
        return Err(fail(C, "the log after the snapshot changed"));
    }
    Ok(())
}

async fn index_images_are_refused_for_another_revision<R: Reopen>(a: &mut R) -> Outcome {
    const C: &str = "index images for a revision other than the snapshot's are refused";
    let Some(mut s) = with_snapshot(a, C).await? else {
        return Ok(());
    };
    if s.write_index_images(7, &images(1)).await.is_ok() {
        return Err(fail(
            C,
            "images at revision 7 accepted with the snapshot at 5",
        ));
    }
    // Refusing them is not a failure of the storage: writing goes on.
    s.append(&records(11..12)).await.map_err(io(C))?;
    s.write_index_images(5, &images(1)).await.map_err(io(C))?;
    Ok(())
}

async fn index_images_of_an_older_snapshot_are_not_returned<R: Reopen>(a: &mut R) -> Outcome {
    const C: &str = "index images of an older snapshot are not returned";
    let Some(mut s) = with_snapshot(a, C).await? else {
        return Ok(());
    };
    s.write_index_images(5, &images(1)).await.map_err(io(C))?;
    // A newer snapshot whose images were never written (a crash in between).
    s.write_snapshot(9, b"snapshot at 9").await.map_err(io(C))?;
    drop(s);
    let mut s = a.open(false).await.map_err(io(C))?;
    s.load().await.map_err(io(C))?;
    let got = s.load_index_images().await.map_err(io(C))?;
    if !got.is_empty() {
        return Err(fail(C, format!("{} stale images returned", got.len())));
    }
    Ok(())
}
