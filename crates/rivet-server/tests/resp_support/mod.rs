//! The checks behind the `resp_parse` fuzz target (fuzz/fuzz_targets/resp_parse.rs) and its
//! corpus replay test (tests/resp_corpus.rs): one place, so CI runs exactly what the fuzzer
//! runs.
//!
//! Input format: byte 0 bit 0 = the client is authenticated; byte 1 = where to split the
//! rest into two reads (scaled to its length); bytes 2.. = what the client sends.
//!
//! Checked: `RequestParser::next` never panics or loops without progress; the requests it
//! returns when the bytes arrive in two reads are the ones it returns when they arrive in one
//! piece (and so is the outcome: more bytes needed, or the same protocol error). The one
//! allowed difference is Redis's own: a header or inline line with no terminator yet that is
//! already longer than 64 KiB is an error as soon as it is seen, so a first read can fail
//! early with a "too big ..." error where the whole input would have parsed further; the
//! requests before it must still be the same.
//!
//! The module names neither `bytes` nor any crate but `rivet_server`, so the fuzz crate needs
//! no extra dependency: the buffer's type is inferred from `RequestParser::next`.

#![allow(dead_code)]

use rivet_server::resp::parse::{Limits, RequestParser};

/// A parsed request as plain bytes.
pub type Request = Vec<Vec<u8>>;

/// How a parse run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// `Ok(None)`: waiting for more bytes.
    NeedMore,
    /// `Err`: the protocol error text.
    Error(String),
}

/// The result of feeding some reads to one parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub requests: Vec<Request>,
    pub end: End,
    /// The error (if any) happened before the last read was added.
    pub early: bool,
}

/// Decodes an input: (limits, bytes to send, split point).
pub fn decode(data: &[u8]) -> (Limits, &[u8], usize) {
    let authenticated = data.first().is_some_and(|b| b & 1 == 1);
    let split_byte = data.get(1).copied().unwrap_or(0) as usize;
    let rest = data.get(2..).unwrap_or(&[]);
    let split = split_byte * (rest.len() + 1) / 256;
    let limits = Limits {
        max_bulk_len: 1 << 20,
        authenticated,
    };
    (limits, rest, split.min(rest.len()))
}

/// Feeds `reads` one after another to a fresh parser, calling `next` until it needs more
/// bytes or fails.
pub fn run(reads: &[&[u8]], limits: Limits) -> Result<Run, String> {
    let mut parser = RequestParser::new();
    let mut buf = Default::default();
    // Pins the buffer's type (the parser's BytesMut); an empty buffer needs more bytes.
    match parser.next(&mut buf, limits) {
        Ok(None) => {}
        other => return Err(format!("empty buffer: expected Ok(None), got {other:?}")),
    }
    let total: usize = reads.iter().map(|r| r.len()).sum();
    let mut requests = Vec::new();
    for (i, read) in reads.iter().enumerate() {
        buf.extend_from_slice(read);
        // Every Ok(Some) consumes at least one byte, so this bounds a correct parser.
        let mut budget = total + 2;
        loop {
            let before = buf.len();
            match parser.next(&mut buf, limits) {
                Ok(Some(args)) => {
                    if buf.len() >= before {
                        return Err(format!(
                            "request {args:?} returned without consuming input ({before} bytes \
                             buffered)"
                        ));
                    }
                    requests.push(args.iter().map(|a| a.to_vec()).collect());
                }
                Ok(None) => break,
                Err(e) => {
                    return Ok(Run {
                        requests,
                        end: End::Error(e.0),
                        early: i + 1 < reads.len(),
                    })
                }
            }
            budget -= 1;
            if budget == 0 {
                return Err("no progress: more requests than input bytes".into());
            }
        }
    }
    Ok(Run {
        requests,
        end: End::NeedMore,
        early: false,
    })
}

fn too_big(end: &End) -> bool {
    matches!(end, End::Error(e) if e.starts_with("Protocol error: too big "))
}

/// Compares a run over several reads with the run over the same bytes in one piece.
pub fn compare(one: &Run, split: &Run, what: &str) -> Result<(), String> {
    if split.early && too_big(&split.end) {
        if one.requests.len() < split.requests.len()
            || one.requests[..split.requests.len()] != split.requests[..]
        {
            return Err(format!(
                "{what}: requests before an early {:?} differ from the one-piece parse\n\
                 {what}: {:?}\none piece: {:?}",
                split.end, split.requests, one.requests
            ));
        }
        return Ok(());
    }
    if one.requests != split.requests || one.end != split.end {
        return Err(format!(
            "{what} differs from the one-piece parse\n{what}: {:?} then {:?}\none piece: {:?} \
             then {:?}",
            split.requests, split.end, one.requests, one.end
        ));
    }
    Ok(())
}

/// The fuzz check: no panic (the caller's harness catches those), no stall, and the
/// two-read parse agrees with the one-piece parse. With `bytewise`, also one byte per read
/// (quadratic: for the corpus replay, not the fuzzer).
pub fn check(data: &[u8], bytewise: bool) -> Result<(), String> {
    let (limits, bytes, split) = decode(data);
    let one = run(&[bytes], limits)?;
    let (a, b) = bytes.split_at(split);
    let two = run(&[a, b], limits)?;
    compare(&one, &two, &format!("split at {split}"))?;
    if bytewise {
        let reads: Vec<&[u8]> = bytes.chunks(1).collect();
        let each = run(&reads, limits)?;
        compare(&one, &each, "byte at a time")?;
    }
    Ok(())
}
