//! MULTI / EXEC / DISCARD and WATCH.
//!
//! Queued commands are copied out of the read buffer (the buffer moves on). EXEC runs the whole
//! queue inside one exclusive hold of the store's lock, so no other client's command lands in
//! between, as in Redis. WATCH is optimistic: it records each key's last-modified revision, and
//! EXEC (under that same lock) answers a null array without running anything when one changed.

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
        if matches!(cmd.kind(), Kind::Connection) {
            multi.dirty = true;
            return reply::error(out, "ERR Command not allowed inside a transaction");
        }
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
        let revisions = self
            .session
            .store
            .read_all(|e, now| {
                Ok(keys
                    .iter()
                    .map(|k| revision_of(e, now, k))
                    .collect::<Vec<_>>())
            })
            .await;
        match revisions {
            Ok(revisions) => {
                self.watched.extend(keys.into_iter().zip(revisions));
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
            let changed = watched
                .iter()
                .any(|(k, rev)| revision_of(e, now, k) != *rev);
            if changed {
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
            // Refused when queued.
            Kind::Connection => reply::error(out, "ERR Command not allowed inside a transaction"),
        }
    }
}

/// The revision that last changed `key`, 0 when it does not exist (or cannot: a key the store
/// refuses).
fn revision_of(e: &Engine, now: Timestamp, key: &str) -> u64 {
    e.entry(now, key)
        .ok()
        .flatten()
        .map_or(0, |entry| entry.mod_revision)
}
