//! Invariance measures.
