//! Which offset of each partition is safe to commit: the first record some
//! of whose series the endpoint has not yet answered for (2xx, or a 4xx that
//! dropped them), or past the last record read once all are answered.

use std::collections::{BTreeMap, HashMap};

/// Names one record's share of a shard's work. `generation` tells a record
/// read before its partition was taken away from one read after it came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket {
    pub partition: i32,
    pub offset: i64,
    pub generation: u64,
}

#[derive(Debug, Default)]
struct PartitionState {
    generation: u64,
    /// Shards still owing an answer, by record offset.
    open: BTreeMap<i64, usize>,
    /// One past the last record read.
    read_up_to: Option<i64>,
    /// The offset last stored for commit.
    stored: Option<i64>,
}

impl PartitionState {
    fn safe(&self) -> Option<i64> {
        match self.open.first_key_value() {
            Some((first_open, _)) => Some(*first_open),
            None => self.read_up_to,
        }
    }
}

#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<i32, PartitionState>,
}

impl OffsetTracker {
    pub fn new() -> OffsetTracker {
        OffsetTracker::default()
    }

    /// A record read, whose series went to `shards` shards (0: none, it is done).
    /// Returns its ticket and, when it is done at once, the offset now safe to store.
    pub fn read(&mut self, partition: i32, offset: i64, shards: usize) -> (Ticket, Option<i64>) {
        let state = self.partitions.entry(partition).or_default();
        // The group resumes from the first record read already: no need to store it.
        state.stored.get_or_insert(offset);
        state.read_up_to = Some(offset + 1);
        let ticket = Ticket {
            partition,
            offset,
            generation: state.generation,
        };
        if shards == 0 {
            return (ticket, self.advance(partition));
        }
        state.open.insert(offset, shards);
        (ticket, None)
    }

    /// One shard answered for `ticket`'s record. Returns (partition, offset)
    /// when the offset safe to store moved.
    pub fn answered(&mut self, ticket: Ticket) -> Option<(i32, i64)> {
        let state = self.partitions.get_mut(&ticket.partition)?;
        if state.generation != ticket.generation {
            return None;
        }
        let remaining = state.open.get_mut(&ticket.offset)?;
        *remaining -= 1;
        if *remaining == 0 {
            state.open.remove(&ticket.offset);
        }
        self.advance(ticket.partition)
            .map(|offset| (ticket.partition, offset))
    }

    fn advance(&mut self, partition: i32) -> Option<i64> {
        let state = self.partitions.get_mut(&partition)?;
        let safe = state.safe()?;
        if state.stored == Some(safe) {
            return None;
        }
        state.stored = Some(safe);
        Some(safe)
    }

    /// The partition moved to another member: what is still owed for it will
    /// not be stored here (its new owner reads those records again).
    pub fn revoke(&mut self, partition: i32) {
        let state = self.partitions.entry(partition).or_default();
        let generation = state.generation + 1;
        *state = PartitionState {
            generation,
            ..PartitionState::default()
        };
    }

    /// The offset a restart would read from, by partition, for the lag.
    pub fn resume_offsets(&self) -> impl Iterator<Item = (i32, i64)> + '_ {
        self.partitions
            .iter()
            .filter_map(|(partition, state)| Some((*partition, state.safe()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_is_stored_only_once_everything_before_it_is_answered() {
        let mut tracker = OffsetTracker::new();
        let (first, _) = tracker.read(0, 10, 2);
        let (second, _) = tracker.read(0, 11, 1);
        // The second record is answered first: nothing may be committed yet.
        assert_eq!(tracker.answered(second), None);
        assert_eq!(tracker.answered(first), None, "one shard still owes 10");
        assert_eq!(tracker.answered(first), Some((0, 12)));
        assert_eq!(tracker.resume_offsets().collect::<Vec<_>>(), vec![(0, 12)]);
    }

    #[test]
    fn a_record_without_series_moves_the_offset_when_nothing_is_owed_before_it() {
        let mut tracker = OffsetTracker::new();
        let (first, _) = tracker.read(3, 0, 1);
        assert_eq!(tracker.read(3, 1, 0).1, None, "record 0 is still owed");
        assert_eq!(tracker.answered(first), Some((3, 2)));
        assert_eq!(tracker.read(3, 2, 0).1, Some(3));
    }

    #[test]
    fn answers_from_before_a_revocation_are_ignored() {
        let mut tracker = OffsetTracker::new();
        let (old, _) = tracker.read(1, 5, 1);
        tracker.revoke(1);
        let (new, _) = tracker.read(1, 5, 1);
        assert_ne!(old, new);
        assert_eq!(tracker.answered(old), None);
        assert_eq!(tracker.answered(new), Some((1, 6)));
    }
}
