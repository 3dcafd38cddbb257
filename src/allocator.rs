//! The process's memory allocator.
//!
//! The tracker replaces tens of thousands of small reports on every relay
//! frame. glibc's malloc kept freed memory spread over per-thread arenas and
//! swept its free lists on each frame; mimalloc keeps both the resident
//! memory and the time per frame lower (README, Benchmarks).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
