//! Charts (placeholder until written).
