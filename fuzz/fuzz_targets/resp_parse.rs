//! The RESP request parser (`rivet_server::resp::parse::RequestParser`) on arbitrary bytes
//! split into two reads at a fuzzer-chosen point: it must never panic or stall, and must
//! return the same requests (and the same protocol error) as when the bytes arrive in one
//! piece. See `crates/rivet-server/tests/resp_support/mod.rs` for the input format; the
//! corpus is replayed by `cargo test -p rivet-server --test resp_corpus`.
#![no_main]

#[path = "../../crates/rivet-server/tests/resp_support/mod.rs"]
mod resp_support;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(why) = resp_support::check(data, false) {
        panic!("{why}");
    }
});
