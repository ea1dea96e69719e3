//! Exact search: dynamic programming over executed sets (to be written).
