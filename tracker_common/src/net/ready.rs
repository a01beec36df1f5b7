//! The turn order of a TCP socket worker: the connections that have work left (input
//! read but not yet handled, a socket not yet drained, answers that made room), served
//! in turns so that no connection can hold the worker.
//!
//! The rules, shared by the HTTP and WebSocket socket workers:
//! - A connection is in the queue at most once, however often it asks.
//! - A turn serves the connections that were queued when it began, each once, in the
//!   order they asked; a connection that asks again while it is served waits for the
//!   next turn, behind the others.
//! - Between two turns the worker goes back to its poll (with a zero timeout while the
//!   queue is not empty), so accepts, the request workers' responses and housekeeping
//!   come between any two turns of the same connection.
//!
//! What one connection gets in its part of a turn is the caller's bound (one read of at
//! most [`crate::net::transport::READ_CHUNK`] bytes, say); this module bounds how often.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::VecDeque;

/// Slots with work left, each at most once, in the order they asked.
#[derive(Debug, Default)]
pub struct ReadyQueue {
    queue: VecDeque<usize>,
    /// By slot: whether it is in `queue`.
    queued: Vec<bool>,
}

impl ReadyQueue {
    /// Queues `slot` unless it is queued already.
    pub fn push(&mut self, slot: usize) {
        if self.queued.len() <= slot {
            self.queued.resize(slot + 1, false);
        }
        if let Some(queued) = self.queued.get_mut(slot)
            && !*queued
        {
            *queued = true;
            self.queue.push_back(slot);
        }
    }

    /// Whether no slot waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Slots waiting now.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Starts a turn: the slots queued now, to serve once each. Slots pushed while the
    /// turn is served wait for the next one.
    pub fn turn(&mut self) -> Turn {
        Turn {
            left: self.queue.len(),
        }
    }

    /// The next slot of `turn`, taken out of the queue (so that it may be queued again
    /// for the next turn), or `None` when the turn is over.
    pub fn next(&mut self, turn: &mut Turn) -> Option<usize> {
        if turn.left == 0 {
            return None;
        }
        turn.left -= 1;
        let slot = self.queue.pop_front()?;
        if let Some(queued) = self.queued.get_mut(slot) {
            *queued = false;
        }
        Some(slot)
    }
}

/// One turn of a [`ReadyQueue`]: how many of its slots are still to serve.
#[derive(Debug)]
pub struct Turn {
    left: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn serve_turn(queue: &mut ReadyQueue, mut again: impl FnMut(usize) -> bool) -> Vec<usize> {
        let mut turn = queue.turn();
        let mut served = Vec::new();
        while let Some(slot) = queue.next(&mut turn) {
            served.push(slot);
            if again(slot) {
                queue.push(slot);
            }
        }
        served
    }

    #[test]
    fn a_slot_is_queued_once() {
        let mut queue = ReadyQueue::default();
        for slot in [3, 1, 3, 3, 1, 7] {
            queue.push(slot);
        }
        assert_eq!(queue.len(), 3);
        assert_eq!(serve_turn(&mut queue, |_| false), vec![3, 1, 7]);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_slot_that_asks_again_waits_for_the_next_turn_behind_the_others() {
        let mut queue = ReadyQueue::default();
        queue.push(0);
        queue.push(1);
        // Slot 0 always has more work: it is served once per turn all the same.
        assert_eq!(serve_turn(&mut queue, |slot| slot == 0), vec![0, 1]);
        queue.push(2);
        assert_eq!(serve_turn(&mut queue, |slot| slot == 0), vec![0, 2]);
        assert_eq!(serve_turn(&mut queue, |slot| slot == 0), vec![0]);
    }

    proptest! {
        /// From the rules: in every turn each slot is served at most once, every slot
        /// queued before the turn began is served in it, and one queued during the turn
        /// is served in the next one, in the order of first asking.
        #[test]
        fn turns_serve_each_waiting_slot_once(
            pushes in proptest::collection::vec(
                (proptest::collection::vec(0usize..16, 0..8), proptest::collection::vec(any::<bool>(), 16)),
                1..20,
            ),
        ) {
            let mut queue = ReadyQueue::default();
            // The model: the waiting slots in order, without repeats.
            let mut waiting: Vec<usize> = Vec::new();
            for (before, again) in pushes {
                for slot in before {
                    queue.push(slot);
                    if !waiting.contains(&slot) {
                        waiting.push(slot);
                    }
                }
                let served = serve_turn(&mut queue, |slot| again[slot]);
                prop_assert_eq!(&served, &waiting);
                waiting = served.into_iter().filter(|slot| again[*slot]).collect();
                prop_assert_eq!(queue.len(), waiting.len());
            }
        }
    }
}
