//! `rivet-bench`: the side-by-side benchmark suite for Rivet (issue #4).
//!
//! Engines: Rivet, LMDB (heed), redb, fjall — behind the small [`engine::Engine`] trait — and
//! Go bbolt 1.3.6 through the Go peer's `bench` subcommand (`tests/interop/peer/bench.go`),
//! which implements the same workloads and speaks the same JSON protocol ([`events`]).
//!
//! Workloads ([`workload`]): redb's `lmdb_benchmark` definition with `N` as a flag; the BoltDB
//! record-layout study; a sorted bulk load; bulk load at scale.
//!
//! The [`driver`] runs every engine × workload × run in its own child process (fair memory
//! figures via `wait4`'s `ru_maxrss`), enforces a per-phase time limit, and the [`report`]
//! renders medians, ratios to LMDB, the targets table and SVG charts ([`svg`]).
//!
//! Run everything: `cargo run --release -p rivet-bench -- all` (see `BENCHMARKS.md`).

pub mod driver;
pub mod engine;
pub mod engines;
pub mod events;
pub mod gen;
pub mod peer;
pub mod record;
pub mod report;
pub mod svg;
pub mod sysinfo;
pub mod workload;
