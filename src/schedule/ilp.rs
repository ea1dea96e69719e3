//! The integer linear program of the seed method (to be written).
