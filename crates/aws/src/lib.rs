//! AWS plumbing.
