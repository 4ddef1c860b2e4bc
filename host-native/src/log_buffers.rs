//! Buffers for encoded log records, handed from writers to the committer and back.
//!
//! Writers encode the engine's log records under the store lock into buffers taken from here,
//! and drop the records on their own thread; the committer appends the bytes and gives the
//! buffers back for the next writes. When the committer received the records themselves, every
//! record's allocations were freed on a thread other than the one that made them: the
//! allocator's cross-thread frees and the fresh pages the writers then needed cost them about
//! as much as the committer's whole work (pipelined SET over RESP, server pinned to one core:
//! 28% more CPU on the writer's thread than without a log).
//!
//! Encoding under the lock is short (the write path's encoder takes about 60 ns for a small
//! record), and it keeps records reaching storage in revision order.

use parking_lot::Mutex;
use statemesh_core::{Engine, FormatError, LogBytes};

/// Spare buffers kept, at most; a burst beyond it is freed after its append. An AP committer's
/// 1 ms round holds about a thousand records at a million writes a second.
const MAX_SPARE_BUFFERS: usize = 1024;
/// A buffer larger than this (a large value's record, a bulk write's) is freed after its
/// append, not kept: with the count above, an idle store holds at most 1 MiB of spare buffers.
const MAX_SPARE_BYTES: usize = 1024;
/// Spare record lists kept, at most, and the longest kept.
const MAX_SPARE_LISTS: usize = 64;
const MAX_SPARE_LIST_LEN: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct LogBuffers {
    spare: Mutex<Spare>,
}

#[derive(Debug, Default)]
struct Spare {
    bytes: Vec<Vec<u8>>,
    lists: Vec<Vec<LogBytes>>,
}

impl LogBuffers {
    /// Encodes every record the engine has waiting, in order, into spare buffers. Empty when
    /// the engine logged nothing.
    pub(crate) fn encode(&self, engine: &mut Engine) -> Result<Vec<LogBytes>, FormatError> {
        let Some(first) = engine.poll_log() else {
            return Ok(Vec::new());
        };
        let mut spare = self.spare.lock();
        let mut list = spare.lists.pop().unwrap_or_default();
        let mut next = Some(first);
        while let Some(record) = next {
            let mut bytes = spare.bytes.pop().unwrap_or_default();
            bytes.clear();
            record.encode_into(&mut bytes)?;
            list.push(LogBytes {
                revision: record.revision,
                bytes,
            });
            next = engine.poll_log();
        }
        Ok(list)
    }

    /// Takes back a list once its records are appended (or given up): its buffers and the
    /// list itself serve later writes.
    pub(crate) fn give_back(&self, mut list: Vec<LogBytes>) {
        let mut spare = self.spare.lock();
        for record in list.drain(..) {
            if spare.bytes.len() < MAX_SPARE_BUFFERS && record.bytes.capacity() <= MAX_SPARE_BYTES {
                spare.bytes.push(record.bytes);
            }
        }
        if spare.lists.len() < MAX_SPARE_LISTS && list.capacity() <= MAX_SPARE_LIST_LEN {
            spare.lists.push(list);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use statemesh_core::{EngineConfig, LogRecord, Timestamp, Value};

    #[test]
    fn encodes_every_waiting_record_in_order_and_reuses_buffers() {
        let buffers = LogBuffers::default();
        let mut engine = Engine::new(EngineConfig::default()).expect("engine");
        let now = Timestamp(1);
        for i in 0..3 {
            engine
                .put(now, &format!("a:{i}"), &Value::Integer(i))
                .expect("put");
        }
        let list = buffers.encode(&mut engine).expect("encode");
        assert!(engine.poll_log().is_none(), "every record was taken");
        let revisions: Vec<u64> = list.iter().map(|r| r.revision).collect();
        assert_eq!(revisions, [1, 2, 3]);
        for r in &list {
            assert_eq!(
                LogRecord::decode(&r.bytes).expect("decode").revision,
                r.revision
            );
        }
        buffers.give_back(list);
        engine.put(now, "a:9", &Value::Integer(9)).expect("put");
        let again = buffers.encode(&mut engine).expect("encode");
        assert_eq!(again.len(), 1);
        // A spare buffer was used, not a fresh allocation, and it holds only the new record.
        assert_eq!(buffers.spare.lock().bytes.len(), 2);
        let decoded = LogRecord::decode(&again[0].bytes).expect("decode");
        assert_eq!(decoded.revision, 4);
        assert!(buffers.encode(&mut engine).expect("encode").is_empty());
    }

    #[test]
    fn spare_buffers_are_bounded() {
        let buffers = LogBuffers::default();
        let burst = (0..2 * MAX_SPARE_BUFFERS as u64)
            .map(|revision| LogBytes {
                revision,
                bytes: Vec::with_capacity(64),
            })
            .collect();
        buffers.give_back(burst);
        assert_eq!(buffers.spare.lock().bytes.len(), MAX_SPARE_BUFFERS);
    }

    #[test]
    fn large_buffers_are_not_kept() {
        let buffers = LogBuffers::default();
        buffers.give_back(vec![LogBytes {
            revision: 1,
            bytes: Vec::with_capacity(MAX_SPARE_BYTES + 1),
        }]);
        assert!(buffers.spare.lock().bytes.is_empty());
        assert_eq!(buffers.spare.lock().lists.len(), 1);
    }
}
