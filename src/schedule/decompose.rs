//! Splitting a graph into parts every order passes through at once (to be written).
