//! List, set and hash commands whose storage work the differential test cannot reach with its
//! small collections: LINSERT and LREM on lists long enough that elements move in several
//! batches (checked against a `Vec` model), LMOVE rotation and its type check, the STORE
//! forms' overwrite rules, and HRANDFIELD's RESP3 shape and uniformity.

mod common;

use common::{Conn, Frame, RivetServer, Rng};

fn int(n: i64) -> Frame {
    Frame::Integer(n)
}

fn bulks(v: &[String]) -> Frame {
    Frame::Array(Some(v.iter().map(Frame::bulk).collect()))
}

fn lrange(c: &mut Conn, key: &str) -> Frame {
    c.cmd(&["LRANGE", key, "0", "-1"])
}

/// Pushes `model` to `key` in chunks.
fn rpush_all(c: &mut Conn, key: &str, model: &[String]) {
    for chunk in model.chunks(500) {
        let mut args = vec!["RPUSH".to_string(), key.to_string()];
        args.extend(chunk.iter().cloned());
        assert!(matches!(c.cmd(&args), Frame::Integer(_)));
    }
}

/// What Redis's LREM does to `model`.
fn model_lrem(model: &mut Vec<String>, count: i64, e: &str) -> i64 {
    let hits: Vec<usize> = if count < 0 {
        let mut h: Vec<usize> = (0..model.len()).rev().filter(|&i| model[i] == e).collect();
        h.truncate(count.unsigned_abs() as usize);
        h
    } else {
        let mut h: Vec<usize> = (0..model.len()).filter(|&i| model[i] == e).collect();
        if count > 0 {
            h.truncate(count as usize);
        }
        h
    };
    let mut sorted = hits.clone();
    sorted.sort_unstable();
    for i in sorted.into_iter().rev() {
        model.remove(i);
    }
    hits.len() as i64
}

#[test]
fn linsert_and_lrem_on_long_lists_match_a_model() {
    let server = RivetServer::start(&["--no-sync"]);
    let mut c = server.conn();
    let mut rng = Rng(42);
    let word = |rng: &mut Rng| format!("e{}", rng.below(40));
    let mut model: Vec<String> = (0..3000).map(|_| word(&mut rng)).collect();
    rpush_all(&mut c, "l", &model);
    for round in 0..300 {
        if rng.below(2) == 0 {
            let pivot = word(&mut rng);
            let after = rng.below(2) == 0;
            let elem = format!("new{round}");
            let want = match model.iter().position(|x| *x == pivot) {
                Some(i) => {
                    model.insert(if after { i + 1 } else { i }, elem.clone());
                    model.len() as i64
                }
                None => -1,
            };
            let at = if after { "AFTER" } else { "BEFORE" };
            assert_eq!(c.cmd(&["LINSERT", "l", at, &pivot, &elem]), int(want));
        } else {
            let e = word(&mut rng);
            let count = rng.below(7) as i64 - 3;
            let want = model_lrem(&mut model, count, &e);
            assert_eq!(
                c.cmd(&["LREM", "l", &count.to_string(), &e]),
                int(want),
                "LREM l {count} {e}"
            );
        }
        if round % 25 == 0 {
            assert_eq!(lrange(&mut c, "l"), bulks(&model), "after round {round}");
        }
        let i = rng.below(model.len() as u64) as usize;
        assert_eq!(
            c.cmd(&["LINDEX", "l", &i.to_string()]),
            Frame::bulk(&model[i])
        );
    }
    assert_eq!(lrange(&mut c, "l"), bulks(&model));
    // Pushes and pops at both ends still line up with the positions.
    assert_eq!(c.cmd(&["LPUSH", "l", "head"]), int(model.len() as i64 + 1));
    assert_eq!(c.cmd(&["RPUSH", "l", "tail"]), int(model.len() as i64 + 2));
    model.insert(0, "head".into());
    model.push("tail".into());
    assert_eq!(lrange(&mut c, "l"), bulks(&model));
}

#[test]
fn lrem_of_every_element_deletes_the_key_and_lpos_scans_long_lists() {
    let server = RivetServer::start(&["--no-sync"]);
    let mut c = server.conn();
    let model: Vec<String> = (0..2500)
        .map(|i| if i % 2 == 0 { "x" } else { "y" }.to_string())
        .collect();
    rpush_all(&mut c, "l", &model);
    assert_eq!(c.cmd(&["LPOS", "l", "y", "RANK", "-1"]), int(2499));
    assert_eq!(c.cmd(&["LPOS", "l", "y", "RANK", "1000"]), int(1999));
    let last3 = c.cmd(&["LPOS", "l", "x", "RANK", "-2", "COUNT", "3"]);
    assert_eq!(
        last3,
        Frame::Array(Some(vec![int(2496), int(2494), int(2492)]))
    );
    assert_eq!(c.cmd(&["LREM", "l", "0", "x"]), int(1250));
    assert_eq!(c.cmd(&["LLEN", "l"]), int(1250));
    assert_eq!(c.cmd(&["LINDEX", "l", "0"]), Frame::bulk("y"));
    assert_eq!(c.cmd(&["LINDEX", "l", "-1"]), Frame::bulk("y"));
    assert_eq!(c.cmd(&["LREM", "l", "-2000", "y"]), int(1250));
    assert_eq!(c.cmd(&["EXISTS", "l"]), int(0));
}

#[test]
fn lmove_rotates_in_place_and_checks_the_destination_first() {
    let server = RivetServer::start(&["--no-sync"]);
    let mut c = server.conn();
    assert_eq!(c.cmd(&["RPUSH", "l", "a", "b", "c"]), int(3));
    assert_eq!(
        c.cmd(&["LMOVE", "l", "l", "LEFT", "RIGHT"]),
        Frame::bulk("a")
    );
    assert_eq!(c.cmd(&["RPOPLPUSH", "l", "l"]), Frame::bulk("a"));
    assert_eq!(
        c.cmd(&["LMOVE", "l", "l", "RIGHT", "RIGHT"]),
        Frame::bulk("c")
    );
    assert_eq!(
        lrange(&mut c, "l"),
        bulks(&["a".into(), "b".into(), "c".into()])
    );
    assert_eq!(c.cmd(&["SET", "s", "v"]), Frame::Simple("OK".into()));
    let e = c.cmd(&["LMOVE", "l", "s", "LEFT", "LEFT"]);
    assert_eq!(e.error_kind(), Some("WRONGTYPE"));
    assert_eq!(c.cmd(&["LLEN", "l"]), int(3), "nothing was popped");
    // A one-element list rotated onto itself survives.
    assert_eq!(c.cmd(&["RPUSH", "one", "x"]), int(1));
    assert_eq!(
        c.cmd(&["LMOVE", "one", "one", "LEFT", "RIGHT"]),
        Frame::bulk("x")
    );
    assert_eq!(c.cmd(&["LLEN", "one"]), int(1));
    // Moving the last element deletes the source.
    assert_eq!(
        c.cmd(&["LMOVE", "one", "two", "LEFT", "RIGHT"]),
        Frame::bulk("x")
    );
    assert_eq!(c.cmd(&["EXISTS", "one"]), int(0));
    assert_eq!(lrange(&mut c, "two"), bulks(&["x".into()]));
}

#[test]
fn set_stores_replace_any_type_and_delete_on_empty() {
    let server = RivetServer::start(&["--no-sync"]);
    let mut c = server.conn();
    assert_eq!(c.cmd(&["SADD", "a", "1", "2", "3"]), int(3));
    assert_eq!(c.cmd(&["SADD", "b", "2", "3", "4"]), int(3));
    assert_eq!(
        c.cmd(&["SET", "d", "v", "EX", "100"]),
        Frame::Simple("OK".into())
    );
    assert_eq!(c.cmd(&["SINTERSTORE", "d", "a", "b"]), int(2));
    assert_eq!(c.cmd(&["TYPE", "d"]), Frame::Simple("set".into()));
    assert_eq!(
        c.cmd(&["TTL", "d"]),
        int(-1),
        "the old TTL went with the old value"
    );
    // The destination may be a source.
    assert_eq!(c.cmd(&["SUNIONSTORE", "a", "a", "b"]), int(4));
    assert_eq!(c.cmd(&["SDIFFSTORE", "a", "a", "d"]), int(2));
    let mut m = c.cmd(&["SMEMBERS", "a"]).items().unwrap_or(&[]).to_vec();
    m.sort_by_key(|f| format!("{f:?}"));
    assert_eq!(m, vec![Frame::bulk("1"), Frame::bulk("4")]);
    assert_eq!(c.cmd(&["SINTERSTORE", "d", "a", "missing"]), int(0));
    assert_eq!(c.cmd(&["EXISTS", "d"]), int(0));
    assert_eq!(c.cmd(&["SINTERCARD", "2", "a", "b", "LIMIT", "1"]), int(1));
    assert_eq!(c.cmd(&["SMOVE", "a", "b", "1"]), int(1));
    assert_eq!(c.cmd(&["SCARD", "b"]), int(4));
}

#[test]
fn hrandfield_replies_pairs_in_resp3_and_draws_uniformly() {
    let server = RivetServer::start(&["--no-sync"]);
    let mut c = server.conn();
    assert_eq!(c.cmd(&["HSET", "h", "a", "1", "b", "2", "c", "3"]), int(3));
    let flat = c.cmd(&["HRANDFIELD", "h", "2", "WITHVALUES"]);
    assert_eq!(flat.items().map(|v| v.len()), Some(4));
    assert!(matches!(c.cmd(&["HELLO", "3"]), Frame::Map(_)));
    let pairs = c.cmd(&["HRANDFIELD", "h", "-5", "WITHVALUES"]);
    let items = pairs.items().expect("an array").to_vec();
    assert_eq!(items.len(), 5);
    for p in &items {
        assert_eq!(p.items().map(|v| v.len()), Some(2), "{p:?}");
    }
    let draws = c.cmd(&["HRANDFIELD", "h", "-3000"]);
    let draws = draws.items().expect("an array");
    assert_eq!(draws.len(), 3000);
    for f in ["a", "b", "c"] {
        let n = draws.iter().filter(|d| **d == Frame::bulk(f)).count();
        assert!((800..1200).contains(&n), "{f} drawn {n} times of 3000");
    }
    let distinct = c.cmd(&["HRANDFIELD", "h", "2"]);
    let mut d = distinct.items().expect("an array").to_vec();
    d.dedup();
    assert_eq!(d.len(), 2);
}
