//! Simulated peers speaking the real protocols on loopback, for `status demo` and the tests.

pub mod book;
pub mod fleet;
pub mod smtp;
pub mod stats;
