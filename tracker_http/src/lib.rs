//! shoal's HTTP tracker.
