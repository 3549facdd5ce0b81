//! A bounded ring buffer that numbers what it holds: once full, each new item pushes out the
//! oldest, and a reader that remembers the last number it saw can ask for what came after and
//! tell from the numbers whether it missed some.

use std::collections::VecDeque;

/// At most `capacity` items, each with its number (1, 2, 3, ... in the order pushed).
#[derive(Debug, Clone)]
pub struct Ring<T> {
    items: VecDeque<(u64, T)>,
    /// At least 1.
    capacity: usize,
    /// The number the next item gets.
    next_seq: u64,
    /// Items pushed out to make room.
    overwritten: u64,
}

impl<T> Ring<T> {
    /// An empty ring of `capacity` items (at least 1: a ring that keeps nothing would only
    /// count).
    pub fn new(capacity: usize) -> Ring<T> {
        let capacity = capacity.max(1);
        Ring {
            // Grown as items come: most traces see far fewer events than they may keep.
            items: VecDeque::new(),
            capacity,
            next_seq: 1,
            overwritten: 0,
        }
    }

    /// Appends `item`, pushing out the oldest when full; returns its number.
    pub fn push(&mut self, item: T) -> u64 {
        if self.items.len() == self.capacity {
            self.items.pop_front();
            self.overwritten += 1;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.items.push_back((seq, item));
        debug_assert!(self.items.len() <= self.capacity);
        seq
    }

    /// The items numbered after `seq`, oldest first (all of them for 0).
    pub fn since(&self, seq: u64) -> impl Iterator<Item = &(u64, T)> {
        // Numbers are consecutive, so the first one wanted is found by arithmetic.
        let first = self.items.front().map_or(0, |(s, _)| *s);
        let skip = seq.saturating_add(1).saturating_sub(first);
        self.items
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items pushed out to make room for newer ones.
    pub fn overwritten(&self) -> u64 {
        self.overwritten
    }

    /// The number of the newest item; 0 before the first.
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs<T>(ring: &Ring<T>, since: u64) -> Vec<u64> {
        ring.since(since).map(|(s, _)| *s).collect()
    }

    #[test]
    fn keeps_the_newest_capacity_items_and_counts_the_rest() {
        let mut ring = Ring::new(3);
        for n in 0..5 {
            ring.push(n * 10);
        }
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.overwritten(), 2);
        assert_eq!(ring.last_seq(), 5);
        let items: Vec<(u64, i32)> = ring.since(0).copied().collect();
        assert_eq!(items, [(3, 20), (4, 30), (5, 40)]);
    }

    #[test]
    fn since_returns_only_what_came_after_the_number_given() {
        let mut ring = Ring::new(4);
        for n in 0..6 {
            ring.push(n);
        }
        assert_eq!(seqs(&ring, 0), [3, 4, 5, 6], "older ones were pushed out");
        assert_eq!(seqs(&ring, 4), [5, 6]);
        assert_eq!(seqs(&ring, 6), Vec::<u64>::new());
        assert_eq!(seqs(&ring, u64::MAX), Vec::<u64>::new());
    }

    #[test]
    fn a_ring_keeps_at_least_one_item() {
        let mut ring = Ring::new(0);
        assert!(ring.is_empty());
        ring.push("a");
        ring.push("b");
        assert_eq!(ring.capacity(), 1);
        assert_eq!(ring.since(0).map(|(_, v)| *v).collect::<Vec<_>>(), ["b"]);
        assert_eq!(ring.overwritten(), 1);
    }
}
