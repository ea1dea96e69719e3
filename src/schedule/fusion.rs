//! Iterative graph fusion that keeps the optimal peak (to be written).
