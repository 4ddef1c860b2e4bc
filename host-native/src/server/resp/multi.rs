//! MULTI / EXEC / DISCARD and WATCH.
//!
//! Queued commands are copied out of the read buffer (the buffer moves on). EXEC runs the whole
//! queue inside one exclusive hold of the store's lock, so no other client's command lands in
//! between, as in Redis. WATCH is optimistic: it records each key's last-modified revision and
//! the store's revision, and EXEC (under that same lock) answers a null array without running
//! anything when a key changed since, including one created and deleted again.

use std::collections::HashMap;
use std::ops::Range;

use statemesh_core::{Engine, Timestamp};

use super::exec::{Conn, write_durably};
use super::table::{Args, Cmd, Kind};
use super::{data, reply};

/// Most keys one connection may WATCH at once.
const MAX_WATCHED: usize = 65_536;

/// A transaction being queued.
#[derive(Debug, Default)]
pub(super) struct Multi {
    /// Every queued command's arguments, back to back; `commands` indexes into `ranges`.
    data: Vec<u8>,
    ranges: Vec<Range<usize>>,
    commands: Vec<(Cmd, Range<usize>)>,
    /// A command was refused while queueing: EXEC will abort.
    dirty: bool,
}

impl Multi {
    fn args(&self, at: &Range<usize>) -> Args<'_> {
        Args::new(&self.data, self.ranges.get(at.clone()).unwrap_or_default())
    }
}

impl Conn {
    /// A command refused while a transaction is open makes EXEC abort, as in Redis.
    pub(super) fn fail_multi(&mut self) {
        if let Some(multi) = &mut self.multi {
            multi.dirty = true;
        }
    }

    pub(super) fn multi(&mut self, out: &mut Vec<u8>) {
        if self.multi.is_some() {
            return reply::error(out, "ERR MULTI calls can not be nested");
        }
        self.multi = Some(Multi::default());
        reply::ok(out);
    }

    pub(super) fn queue(&mut self, cmd: Cmd, args: Args<'_>, out: &mut Vec<u8>) {
        let limit = self.session.config.max_request_bytes;
        let Some(multi) = &mut self.multi else {
            return;
        };
        let size: usize = args.from(0).map(<[u8]>::len).sum();
        if multi.data.len() + size > limit {
            // Bounded memory: the queue is dropped now, EXEC will abort.
            multi.dirty = true;
            multi.data = Vec::new();
            multi.ranges = Vec::new();
            multi.commands = Vec::new();
            return reply::error(
                out,
                &format!("ERR transaction too large: queued commands exceed {limit} bytes"),
            );
        }
        let first = multi.ranges.len();
        for arg in args.from(0) {
            let start = multi.data.len();
            multi.data.extend_from_slice(arg);
            multi.ranges.push(start..multi.data.len());
        }
        multi.commands.push((cmd, first..multi.ranges.len()));
        reply::simple(out, b"QUEUED");
    }

    pub(super) fn discard(&mut self, out: &mut Vec<u8>) {
        if self.multi.take().is_none() {
            return reply::error(out, "ERR DISCARD without MULTI");
        }
        self.watched.clear();
        reply::ok(out);
    }

    pub(super) async fn watch(&mut self, args: Args<'_>, out: &mut Vec<u8>) {
        if self.multi.is_some() {
            return reply::error(out, "ERR WATCH inside MULTI is not allowed");
        }
        if self.watched.len() + args.len() - 1 > MAX_WATCHED {
            return reply::error(
                out,
                &format!("ERR too many watched keys (the limit is {MAX_WATCHED})"),
            );
        }
        let keys: Vec<String> = args
            .from(1)
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        let watches = self
            .session
            .store
            .read_all(|e, now| {
                let at = e.revision();
                Ok(keys
                    .iter()
                    .map(|key| Watched {
                        written: e.config().keys.parse(key).ok().map(|k| k.to_key_string()),
                        mod_revision: revision_of(e, now, key),
                        key: key.clone(),
                        at,
                    })
                    .collect::<Vec<_>>())
            })
            .await;
        match watches {
            Ok(watches) => {
                self.watched.extend(watches);
                reply::ok(out);
            }
            Err(e) => data::store_error(out, &e),
        }
    }

    pub(super) async fn exec(&mut self, out: &mut Vec<u8>) {
        let Some(multi) = self.multi.take() else {
            return reply::error(out, "ERR EXEC without MULTI");
        };
        let watched = std::mem::take(&mut self.watched);
        if multi.dirty {
            return reply::error(
                out,
                "EXECABORT Transaction discarded because of previous errors.",
            );
        }
        let store = self.session.store.clone();
        write_durably(&store, out, 1, |e, now, out| {
            if any_changed(e, now, &watched) {
                reply::nil_array(out);
            } else {
                reply::array(out, multi.commands.len());
                for (cmd, at) in &multi.commands {
                    self.run_queued(e, now, *cmd, multi.args(at), out);
                }
            }
        })
        .await;
    }

    /// One queued command, with the engine already locked.
    fn run_queued(
        &mut self,
        e: &mut Engine,
        now: Timestamp,
        cmd: Cmd,
        args: Args<'_>,
        out: &mut Vec<u8>,
    ) {
        match cmd.kind() {
            Kind::Read => data::read(e, now, cmd, args, out, &self.shared),
            Kind::Write => data::write(e, now, cmd, args, out),
            Kind::Server => {
                let keys = e.len();
                self.server(cmd, args, out, || keys);
            }
            // MULTI, EXEC, DISCARD, WATCH, QUIT and RESET run at once, never queued.
            Kind::Connection => self.connection_state(cmd, args, out),
        }
    }
}

/// A WATCHed key.
#[derive(Debug)]
pub(super) struct Watched {
    /// As the client sent it.
    key: String,
    /// As the store writes it (in its change events); `None` for a key the store refuses.
    written: Option<String>,
    /// The revision that last modified it when it was watched; 0: absent.
    mod_revision: u64,
    /// The store's revision when it was watched.
    at: u64,
}

/// Whether any watched key was written, deleted or expired since it was watched. A key absent
/// then and absent now may have been created and deleted in between: the kept history tells,
/// and when it no longer reaches back that far the answer is "changed", since a client can
/// always retry an aborted transaction but never undo a wrong one.
fn any_changed(e: &Engine, now: Timestamp, watched: &[Watched]) -> bool {
    if watched
        .iter()
        .any(|w| revision_of(e, now, &w.key) != w.mod_revision)
    {
        return true;
    }
    let absent = || {
        watched
            .iter()
            .filter(|w| w.mod_revision == 0)
            .filter_map(|w| Some((w.written.as_deref()?, w.at)))
    };
    let Some(oldest) = absent().map(|(_, at)| at).min() else {
        return false;
    };
    let Some(changes) = e.keys_changed_after(oldest) else {
        return true;
    };
    // Newest first, so the first change seen of a key is its last.
    let mut last_change: HashMap<&str, u64> = HashMap::new();
    for (key, revision) in changes {
        last_change.entry(key).or_insert(revision);
    }
    absent().any(|(key, at)| last_change.get(key).is_some_and(|&rev| rev > at))
}

/// The revision that last changed `key`, 0 when it does not exist (or cannot: a key the store
/// refuses).
fn revision_of(e: &Engine, now: Timestamp, key: &str) -> u64 {
    e.entry(now, key)
        .ok()
        .flatten()
        .map_or(0, |entry| entry.mod_revision)
}
