//! Swarm state (placeholder while being written).
