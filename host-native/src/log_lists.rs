//! Lists of log records, handed from writers to the committer and back.
//!
//! A writer takes the engine's records under the store lock, so they reach the committer in
//! revision order, into a list from here. The committer encodes and appends them on its own
//! thread, then hands the list back, and the next writer drops the records: on its own thread,
//! where they were allocated.
//!
//! Why this split: on the Redis port's pipelined writes the writer (the connection thread) is
//! the bottleneck and the committer has CPU to spare, so encoding belongs on the committer. But
//! when the committer also dropped the records, every write's allocations were freed on a
//! thread other than the one that made them, and the allocator's cross-thread frees and fresh
//! pages cost the writer more than the encoding had (pipelined SET over RESP, server pinned to
//! one core: 28% more CPU on the writer's thread than without a log). Returning the records to
//! be dropped where they were made keeps the first without the second.

use parking_lot::Mutex;
use statemesh_core::{Engine, LogRecord};

/// Spare lists kept, at most, and the longest list kept.
const MAX_SPARE_LISTS: usize = 64;
const MAX_SPARE_LIST_LEN: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct RecordLists {
    lists: Mutex<Lists>,
}

#[derive(Debug, Default)]
struct Lists {
    /// Appended by the committer; their records wait to be dropped by a writer.
    spent: Vec<Vec<LogRecord>>,
    /// Empty lists for the next writes.
    spare: Vec<Vec<LogRecord>>,
}

impl RecordLists {
    /// Moves every record the engine has waiting, in order, into a list. Empty (and
    /// unallocated) when the engine logged nothing. First drops the records the committer is
    /// done with, on this thread, handing their op lists back to the engine for its next writes.
    pub(crate) fn take(&self, engine: &mut Engine) -> Vec<LogRecord> {
        self.drop_spent(engine);
        let Some(first) = engine.poll_log() else {
            return Vec::new();
        };
        let mut list = self.lists.lock().spare.pop().unwrap_or_default();
        list.push(first);
        while let Some(record) = engine.poll_log() {
            list.push(record);
        }
        list
    }

    /// Takes back a list whose records are appended (or given up), for a writer to drop.
    pub(crate) fn spent(&self, list: Vec<LogRecord>) {
        self.lists.lock().spent.push(list);
    }

    /// Drops the records of the spent lists (outside the lock) and keeps the lists.
    fn drop_spent(&self, engine: &mut Engine) {
        let mut spent = {
            let mut lists = self.lists.lock();
            if lists.spent.is_empty() {
                return;
            }
            std::mem::take(&mut lists.spent)
        };
        for list in &mut spent {
            for record in list.drain(..) {
                engine.recycle_log(record);
            }
        }
        let mut lists = self.lists.lock();
        for list in spent {
            keep(&mut lists.spare, list);
        }
    }
}

fn keep(spare: &mut Vec<Vec<LogRecord>>, list: Vec<LogRecord>) {
    if spare.len() < MAX_SPARE_LISTS && list.capacity() <= MAX_SPARE_LIST_LEN {
        debug_assert!(list.is_empty());
        spare.push(list);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use statemesh_core::{EngineConfig, Timestamp, Value};

    #[test]
    fn takes_every_record_in_order_and_drops_spent_ones_on_the_next_take() {
        let lists = RecordLists::default();
        let mut engine = Engine::new(EngineConfig::default()).expect("engine");
        let now = Timestamp(1);
        for i in 0..3 {
            engine
                .put(now, &format!("a:{i}"), &Value::Integer(i))
                .expect("put");
        }
        let list = lists.take(&mut engine);
        assert!(engine.poll_log().is_none(), "every record was taken");
        let revisions: Vec<u64> = list.iter().map(|r| r.revision).collect();
        assert_eq!(revisions, [1, 2, 3]);
        lists.spent(list);
        assert_eq!(lists.lists.lock().spent.len(), 1);

        engine.put(now, "a:9", &Value::Integer(9)).expect("put");
        let again = lists.take(&mut engine);
        // The spent records were dropped and their list, emptied, served this take.
        assert!(lists.lists.lock().spent.is_empty());
        assert!(lists.lists.lock().spare.is_empty());
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].revision, 4);
        assert!(again.capacity() >= 3, "the spent list was reused");

        // Nothing logged: no spare list is taken for it.
        lists.spent(again);
        let empty = lists.take(&mut engine);
        assert!(empty.is_empty());
        assert_eq!(empty.capacity(), 0);
        assert_eq!(lists.lists.lock().spare.len(), 1);
    }

    #[test]
    fn spare_lists_are_bounded() {
        let lists = RecordLists::default();
        let mut guard = lists.lists.lock();
        for _ in 0..2 * MAX_SPARE_LISTS {
            keep(&mut guard.spare, Vec::with_capacity(8));
        }
        keep(&mut guard.spare, Vec::with_capacity(MAX_SPARE_LIST_LEN + 1));
        drop(guard);
        assert_eq!(lists.lists.lock().spare.len(), MAX_SPARE_LISTS);
        assert!(
            lists
                .lists
                .lock()
                .spare
                .iter()
                .all(|l| l.capacity() <= MAX_SPARE_LIST_LEN)
        );
    }
}
