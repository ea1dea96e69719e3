//! The anytime driver behind `--scheduler auto` (to be written).
