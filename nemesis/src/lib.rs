//! Fault primitives.
