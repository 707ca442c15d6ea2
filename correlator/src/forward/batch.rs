//! What a shard sends: the series of consecutive records, gathered into
//! requests of at most [`BatchLimits`] points and bytes. A request carries
//! the tickets of the records whose last series it holds: the shard sends
//! its requests one after the other, so once a request is answered every
//! earlier part of those records is too.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::forward::config::BatchLimits;
use crate::forward::offsets::Ticket;
use crate::forward::record::{Record, Span};

/// The series of one record that belong to one shard.
#[derive(Debug, Clone)]
pub struct Piece {
    pub ticket: Ticket,
    pub record: Arc<Record>,
    pub series: Vec<Span>,
}

/// Samples, histograms and exemplars, counted apart as `/metrics` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PointCounts {
    pub samples: u64,
    pub histograms: u64,
    pub exemplars: u64,
}

impl PointCounts {
    pub fn total(&self) -> u64 {
        self.samples + self.histograms + self.exemplars
    }

    fn add(&mut self, other: PointCounts) {
        self.samples += other.samples;
        self.histograms += other.histograms;
        self.exemplars += other.exemplars;
    }
}

/// One request's worth of series, with the records it completes.
#[derive(Debug, Default)]
pub struct Batch {
    /// The records the series are of, each once.
    pub records: Vec<Arc<Record>>,
    /// Each series, with the index of its record in `records`.
    pub series: Vec<(u32, Span)>,
    pub tickets: Vec<Ticket>,
    pub points: PointCounts,
    pub bytes: usize,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.series.is_empty() && self.tickets.is_empty()
    }

    /// The index of `record` in `records`, added if it is not the last one there.
    fn record_index(&mut self, record: &Arc<Record>) -> u32 {
        match self.records.last() {
            Some(last) if Arc::ptr_eq(last, record) => {}
            _ => self.records.push(record.clone()),
        }
        (self.records.len() - 1) as u32
    }
}

/// Gathers pieces into batches; a full batch waits in `ready` for its turn.
pub struct Batcher {
    limits: BatchLimits,
    current: Batch,
    ready: VecDeque<Batch>,
}

impl Batcher {
    pub fn new(limits: BatchLimits) -> Batcher {
        Batcher {
            limits,
            current: Batch::default(),
            ready: VecDeque::new(),
        }
    }

    /// Adds a piece's series; a series that does not fit starts the next
    /// batch (one larger than the limits alone goes in a batch of its own).
    pub fn push(&mut self, piece: Piece) {
        for series in piece.series {
            let points = series.points();
            let bytes = series.estimated_bytes();
            let over = self.current.points.total() + points.total() > self.limits.max_points as u64
                || self.current.bytes + bytes > self.limits.max_bytes;
            if over && !self.current.series.is_empty() {
                self.seal();
            }
            self.current.points.add(points);
            self.current.bytes += bytes;
            let record = self.current.record_index(&piece.record);
            self.current.series.push((record, series));
        }
        self.current.tickets.push(piece.ticket);
        if self.current.points.total() >= self.limits.max_points as u64
            || self.current.bytes >= self.limits.max_bytes
        {
            self.seal();
        }
    }

    fn seal(&mut self) {
        self.ready.push_back(std::mem::take(&mut self.current));
    }

    /// The next full batch, if any.
    pub fn take_ready(&mut self) -> Option<Batch> {
        self.ready.pop_front()
    }

    /// The next batch, full or not (the deadline passed, or the input ended).
    pub fn take_any(&mut self) -> Option<Batch> {
        if let Some(batch) = self.ready.pop_front() {
            return Some(batch);
        }
        if self.current.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut self.current))
    }

    /// A batch waits to be sent, full or not.
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.current.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A series of `samples` samples, its size as [`Record::parse`] estimates a
    /// series of one label `__name__` named `name`.
    fn series(name: &str, samples: usize) -> Span {
        Span {
            start: 0,
            end: 0,
            hash: 0,
            points: PointCounts {
                samples: samples as u64,
                ..PointCounts::default()
            },
            bytes: "__name__".len() + name.len() + 4 + 20 * samples + 8,
        }
    }

    fn piece(offset: i64, series: Vec<Span>) -> Piece {
        Piece {
            ticket: Ticket {
                partition: 0,
                offset,
                generation: 0,
            },
            record: Arc::new(Record::default()),
            series,
        }
    }

    fn limits(max_points: usize) -> BatchLimits {
        BatchLimits {
            max_points,
            max_bytes: 1 << 20,
        }
    }

    fn offsets(batch: &Batch) -> Vec<i64> {
        batch.tickets.iter().map(|t| t.offset).collect()
    }

    #[test]
    fn records_share_a_request_until_it_is_full() {
        let mut batcher = Batcher::new(limits(10));
        batcher.push(piece(1, vec![series("a", 4)]));
        batcher.push(piece(2, vec![series("b", 4)]));
        assert!(batcher.take_ready().is_none(), "8 of 10 points");
        batcher.push(piece(3, vec![series("c", 4)]));
        let first = batcher.take_ready().unwrap();
        assert_eq!(first.points.samples, 8);
        // Record 3's series went to the next batch: its ticket goes with it.
        assert_eq!(offsets(&first), vec![1, 2]);
        let rest = batcher.take_any().unwrap();
        assert_eq!(offsets(&rest), vec![3]);
        assert_eq!(rest.points.samples, 4);
        assert!(batcher.is_empty());
    }

    #[test]
    fn a_record_split_over_requests_completes_with_its_last_part() {
        let mut batcher = Batcher::new(limits(5));
        batcher.push(piece(
            7,
            vec![series("a", 3), series("b", 3), series("c", 3)],
        ));
        let batches: Vec<Batch> = std::iter::from_fn(|| batcher.take_any()).collect();
        let shape: Vec<(u64, Vec<i64>)> = batches
            .iter()
            .map(|b| (b.points.samples, offsets(b)))
            .collect();
        assert_eq!(shape, vec![(3, vec![]), (3, vec![]), (3, vec![7])]);
    }

    #[test]
    fn a_batch_holds_each_record_of_its_series_once() {
        let mut batcher = Batcher::new(limits(10));
        let first = piece(1, vec![series("a", 3), series("b", 3)]);
        let second = piece(2, vec![series("c", 3), series("d", 3)]);
        let (first_record, second_record) = (first.record.clone(), second.record.clone());
        batcher.push(first);
        batcher.push(second);
        let full = batcher.take_ready().unwrap();
        assert_eq!(full.records.len(), 2);
        assert!(Arc::ptr_eq(&full.records[0], &first_record));
        assert!(Arc::ptr_eq(&full.records[1], &second_record));
        let indices: Vec<u32> = full.series.iter().map(|(record, _)| *record).collect();
        assert_eq!(indices, vec![0, 0, 1]);
        // The rest of the second record starts the next batch, which holds it too.
        let rest = batcher.take_any().unwrap();
        assert_eq!(rest.records.len(), 1);
        assert!(Arc::ptr_eq(&rest.records[0], &second_record));
        assert_eq!(rest.series[0].0, 0);
    }

    #[test]
    fn a_series_over_the_limit_goes_alone_and_bytes_bound_too() {
        let mut batcher = Batcher::new(limits(5));
        batcher.push(piece(1, vec![series("a", 12)]));
        assert_eq!(batcher.take_ready().unwrap().points.samples, 12);
        let one = series("long", 1).estimated_bytes();
        let mut by_bytes = Batcher::new(BatchLimits {
            max_points: 1000,
            max_bytes: one * 2,
        });
        for offset in 0..3 {
            by_bytes.push(piece(offset, vec![series("long", 1)]));
        }
        assert_eq!(offsets(&by_bytes.take_ready().unwrap()), vec![0, 1]);
        assert_eq!(offsets(&by_bytes.take_any().unwrap()), vec![2]);
    }

    #[test]
    fn a_record_without_series_still_completes() {
        let mut batcher = Batcher::new(limits(5));
        batcher.push(piece(4, vec![]));
        let batch = batcher.take_any().unwrap();
        assert!(batch.series.is_empty());
        assert_eq!(offsets(&batch), vec![4]);
    }
}
