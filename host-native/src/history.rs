//! The store's history API: patches, reads at earlier revisions, key histories, compaction and
//! resumable change streams.

use std::collections::VecDeque;

use statemesh_core::{
    ChangeEvent, EngineError, KeyPattern, KeyVersion, Patch, Timestamp, ValueAt, WriteResult,
};

use crate::error::{Result, SubscriptionError};
use crate::store::Store;
use crate::subscription::Subscription;

/// Where a change stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Since {
    /// After this revision: the first change delivered has the next revision. Pass the last
    /// revision a previous stream delivered to resume it without a gap or a duplicate.
    Revision(u64),
    /// From the first change committed at or after this time.
    Time(Timestamp),
    /// Only changes committed from now on.
    Now,
}

/// Changes per history page a stream copies out under the read lock.
const PAGE: usize = 512;

impl Store {
    /// Applies a JSON merge patch or JSON patch to the JSON value of `key`; see
    /// [`statemesh_core::Engine::patch`].
    pub async fn patch(&self, key: &str, patch: &Patch) -> Result<WriteResult> {
        self.timed_write(|e, now| e.patch(now, key, patch)).await
    }

    /// The value `key` held at `revision`, with its version; `None` when it did not exist.
    /// Fails with `EngineError::Compacted` below the history floor. In CP mode it waits until
    /// `revision` is durable.
    pub async fn get_at(&self, key: &str, revision: u64) -> Result<Option<ValueAt>> {
        self.wait_visible(revision.min(self.revision())).await?;
        let now = self.now();
        self.read_engine(|e| e.get_at(now, key, revision))?
            .map_err(Into::into)
    }

    /// The kept versions of `key`, oldest first (in CP mode, durable ones only).
    pub async fn key_history(&self, key: &str) -> Result<Vec<KeyVersion>> {
        self.read_engine(|e| {
            let visible = self.visible_revision(e);
            e.key_history(key).map(|versions| {
                versions
                    .into_iter()
                    .filter(|v| v.revision <= visible)
                    .collect()
            })
        })?
        .map_err(Into::into)
    }

    /// Up to `limit` kept changes after `revision` (a page ends on a revision boundary; in CP
    /// mode, durable changes only).
    pub async fn changes_since(&self, revision: u64, limit: usize) -> Result<Vec<ChangeEvent>> {
        self.read_engine(|e| {
            let visible = self.visible_revision(e);
            e.changes_since(revision.min(visible), limit)
                .map(|mut page| {
                    page.retain(|c| c.revision <= visible);
                    page
                })
        })?
        .map_err(Into::into)
    }

    /// The oldest revision reads and change streams can start from.
    pub fn history_floor(&self) -> u64 {
        self.read_engine(|e| e.history_floor()).unwrap_or_default()
    }

    /// Drops the history up to and including `revision`.
    pub async fn compact(&self, revision: u64) -> Result<()> {
        self.write(|e, _| e.compact(revision)).await
    }

    /// A stream of every change after `since` (optionally only to keys matching `pattern`):
    /// first the kept history, then live changes, with no gap and no duplicate between the two.
    /// Fails at once with `EngineError::Compacted` when the history no longer reaches back to
    /// `since`, and with `EngineError::FutureRevision` past the current revision.
    pub fn stream_changes(&self, since: Since, pattern: Option<&str>) -> Result<ChangeStream> {
        let pattern = match pattern {
            Some(p) => Some(self.read_engine(|e| e.key_pattern(p))??),
            None => None,
        };
        // The replay serves the history through the engine's revision at subscription, and the
        // live side everything after it. (Cutting at the durable revision instead lost the
        // events of writes not yet durable then: with no subscriber at write time they were
        // never captured for the live side. `next` waits for a replayed event to be durable.)
        let (mut live, _, cut) = self.live_feed(pattern.clone())?;
        live.raise_cut(cut);
        let start = match since {
            Since::Now => Start::Done,
            Since::Revision(revision) => {
                self.read_engine(|e| e.changes_since(revision, 0))??;
                live.raise_cut(revision);
                Start::Revision(revision)
            }
            Since::Time(at) => {
                self.read_engine(|e| e.changes_since_time(at, 0))??;
                Start::Time(at)
            }
        };
        Ok(ChangeStream {
            store: self.clone(),
            live,
            cut,
            start,
            pattern,
            buffer: VecDeque::new(),
        })
    }
}

/// Where the history replay of a [`ChangeStream`] stands.
#[derive(Debug, Clone, Copy)]
enum Start {
    Time(Timestamp),
    Revision(u64),
    /// Replay done: events come from the live subscription.
    Done,
}

/// Changes from the history, then live; see [`Store::stream_changes`]. Falling behind the live
/// buffer gives [`SubscriptionError::Lagged`] (resume with a new stream from the last revision
/// seen); history trimmed under a slow replay gives [`SubscriptionError::Compacted`].
#[derive(Debug)]
pub struct ChangeStream {
    store: Store,
    live: Subscription,
    /// The last revision the replay delivers; later ones come live.
    cut: u64,
    start: Start,
    pattern: Option<KeyPattern>,
    buffer: VecDeque<ChangeEvent>,
}

impl ChangeStream {
    /// The next change.
    pub async fn next(&mut self) -> Result<ChangeEvent, SubscriptionError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                // A CP store shows no change a crash could still take back.
                if self.store.cp().is_some() {
                    self.store
                        .wait_durable(event.revision)
                        .await
                        .map_err(|_| SubscriptionError::Closed)?;
                }
                return Ok(event);
            }
            if matches!(self.start, Start::Done) {
                return self.live.recv().await;
            }
            self.fill()?;
        }
    }

    /// Copies the next page of history into the buffer.
    fn fill(&mut self) -> Result<(), SubscriptionError> {
        let start = self.start;
        let page = self
            .store
            .read_engine(|e| match start {
                Start::Time(at) => e.changes_since_time(at, PAGE),
                Start::Revision(revision) => e.changes_since(revision, PAGE),
                Start::Done => Ok(Vec::new()),
            })
            .map_err(|_| SubscriptionError::Closed)?
            .map_err(|e| match e {
                EngineError::Compacted { requested, floor } => {
                    SubscriptionError::Compacted { requested, floor }
                }
                _ => SubscriptionError::Closed,
            })?;
        let cut = self.cut;
        let mut next = Start::Done;
        for event in page {
            if event.revision > cut {
                next = Start::Done;
                break;
            }
            next = Start::Revision(event.revision);
            if self.pattern.as_ref().is_none_or(|p| p.matches(&event.key)) {
                self.buffer.push_back(event);
            }
        }
        self.start = match next {
            Start::Revision(r) if r >= cut => Start::Done,
            other => other,
        };
        Ok(())
    }
}
