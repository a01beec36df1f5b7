//! BEP 15 wire format (placeholder while being written).
