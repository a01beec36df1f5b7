//! shoal's UDP tracker (placeholder while being written).
