//! The connections of a TCP socket worker, by slot (the slot is the connection's mio
//! token). A slot's generation changes when it is reused, so that an answer for a
//! connection that has closed is not given to a newer one in the same slot: messages
//! name a connection by (slot, generation).

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

/// Connections by slot, with each slot's generation.
#[derive(Debug)]
pub struct Slots<C> {
    connections: Vec<Option<C>>,
    generations: Vec<u32>,
    free: Vec<usize>,
}

impl<C> Default for Slots<C> {
    fn default() -> Self {
        Self {
            connections: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<C> Slots<C> {
    /// Stores a connection in a free slot (a new one if none is free); returns the slot.
    pub fn insert(&mut self, connection: C) -> usize {
        match self.free.pop() {
            Some(slot) => {
                if let Some(place) = self.connections.get_mut(slot) {
                    *place = Some(connection);
                }
                slot
            }
            None => {
                self.connections.push(Some(connection));
                self.generations.push(0);
                self.connections.len() - 1
            }
        }
    }

    /// Takes the connection out of its slot, which gets a new generation and is free.
    pub fn remove(&mut self, slot: usize) -> Option<C> {
        let connection = self.connections.get_mut(slot)?.take()?;
        if let Some(generation) = self.generations.get_mut(slot) {
            *generation = generation.wrapping_add(1);
        }
        self.free.push(slot);
        Some(connection)
    }

    /// The slot's generation now.
    pub fn generation(&self, slot: usize) -> u32 {
        self.generations.get(slot).copied().unwrap_or(0)
    }

    /// The connection in the slot, to read.
    pub fn get(&self, slot: usize) -> Option<&C> {
        self.connections.get(slot)?.as_ref()
    }

    /// The connection in the slot.
    pub fn get_mut(&mut self, slot: usize) -> Option<&mut C> {
        self.connections.get_mut(slot)?.as_mut()
    }

    /// The connection in the slot, if the slot still has the given generation.
    pub fn get_current(&mut self, slot: usize, generation: u32) -> Option<&mut C> {
        if self.generation(slot) != generation {
            return None;
        }
        self.get_mut(slot)
    }

    /// Whether the slot holds a connection of the given generation.
    pub fn is_current(&self, slot: usize, generation: u32) -> bool {
        self.generation(slot) == generation
            && self.connections.get(slot).is_some_and(Option::is_some)
    }

    /// Every open connection with its slot.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut C)> {
        self.connections
            .iter_mut()
            .enumerate()
            .filter_map(|(slot, c)| Some((slot, c.as_mut()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_has_a_new_generation() {
        let mut slots = Slots::default();
        let a = slots.insert("a");
        let generation = slots.generation(a);
        assert!(slots.is_current(a, generation));
        assert_eq!(slots.remove(a), Some("a"));
        assert!(!slots.is_current(a, generation));
        let b = slots.insert("b");
        assert_eq!(b, a, "the free slot is reused");
        assert!(slots.get_current(b, generation).is_none());
        assert_eq!(slots.get_current(b, slots.generation(b)), Some(&mut "b"));
        assert_eq!(slots.remove(b), Some("b"));
        assert_eq!(slots.remove(b), None);
        let _ = slots.insert("c");
        let _ = slots.insert("d");
        let open: Vec<_> = slots.iter_mut().map(|(_, c)| *c).collect();
        assert_eq!(open, vec!["c", "d"]);
    }
}
