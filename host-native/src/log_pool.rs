//! Encoded logs, handed from writers to the committer and back.
//!
//! A writer moves the engine's encoded records into a log from here under the store lock, so
//! logs reach the committer in revision order. The committer appends them and gives the log
//! back, emptied, and a later writer hands it to the engine for its next records. The buffers
//! go round between the threads instead of being freed on one and allocated on the other: on
//! the Redis port's pipelined writes, freeing a writer's allocations on the committer's thread
//! cost the writer more in the allocator than the work it moved (docs/resp.md).

use parking_lot::Mutex;
use statemesh_core::{EncodedLog, Engine};

/// Spare logs kept, at most, and the most buffer room one may keep.
const MAX_SPARE: usize = 64;
const MAX_SPARE_BYTES: usize = 1 << 20;

#[derive(Debug, Default)]
pub(crate) struct LogPool {
    spare: Mutex<Vec<EncodedLog>>,
}

impl LogPool {
    /// Moves every record the engine has waiting into a log from the pool; `None` (and no log
    /// taken) when the engine logged nothing.
    pub(crate) fn take(&self, engine: &mut Engine) -> Option<EncodedLog> {
        if !engine.has_log() {
            return None;
        }
        let mut log = self.spare.lock().pop().unwrap_or_default();
        engine.take_log(&mut log);
        Some(log)
    }

    /// Takes back a log whose records are appended (or given up), for later writes.
    pub(crate) fn give_back(&self, mut log: EncodedLog) {
        if log.capacity_bytes() > MAX_SPARE_BYTES {
            return;
        }
        log.clear();
        let mut spare = self.spare.lock();
        if spare.len() < MAX_SPARE {
            spare.push(log);
        }
    }

    #[cfg(test)]
    fn spare_count(&self) -> usize {
        self.spare.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use statemesh_core::{EngineConfig, Timestamp, Value};

    #[test]
    fn takes_every_record_in_order_and_reuses_given_back_logs() {
        let pool = LogPool::default();
        let mut engine = Engine::new(EngineConfig::default()).expect("engine");
        let now = Timestamp(1);
        assert!(pool.take(&mut engine).is_none(), "nothing logged, no log");
        for i in 0..3 {
            engine
                .put(now, &format!("a:{i}"), &Value::Integer(i))
                .expect("put");
        }
        let log = pool.take(&mut engine).expect("records");
        assert!(!engine.has_log(), "every record was taken");
        let revisions: Vec<u64> = log.records().map(|(r, _)| r).collect();
        assert_eq!(revisions, [1, 2, 3]);
        let room = log.capacity_bytes();
        pool.give_back(log);
        assert_eq!(pool.spare_count(), 1);

        engine.put(now, "a:9", &Value::Integer(9)).expect("put");
        let again = pool.take(&mut engine).expect("a record");
        assert_eq!(pool.spare_count(), 0, "the given-back log served this take");
        assert_eq!(again.len(), 1);
        assert_eq!(again.last_revision(), Some(4));
        // The engine wrote into the given-back buffers; the next take hands them out.
        pool.give_back(again);
        engine.put(now, "a:10", &Value::Integer(10)).expect("put");
        let third = pool.take(&mut engine).expect("a record");
        assert!(
            third.capacity_bytes() >= room,
            "buffers go round, not re-grown"
        );
    }

    #[test]
    fn spare_logs_are_bounded() {
        let pool = LogPool::default();
        let mut engine = Engine::new(EngineConfig::default()).expect("engine");
        let now = Timestamp(1);
        for i in 0..2 * MAX_SPARE {
            engine
                .put(now, &format!("a:{i}"), &Value::Integer(1))
                .expect("put");
            let mut log = EncodedLog::new();
            engine.take_log(&mut log);
            pool.give_back(log);
        }
        assert_eq!(pool.spare_count(), MAX_SPARE);
        // A log grown past the bound by a huge write is freed, not kept.
        let pool = LogPool::default();
        let big = Value::Bytes(vec![7; 2 * MAX_SPARE_BYTES]);
        engine.put(now, "a:big", &big).expect("put");
        let log = pool.take(&mut engine).expect("record");
        pool.give_back(log);
        assert_eq!(pool.spare_count(), 0);
    }
}
