//! BGREWRITEAOF compacts the data file online (`rivet::Db::compact_in_place`): after most
//! keys are deleted the file shrinks while clients keep reading and writing, nothing is lost,
//! INFO reports it, and the file checks clean.

mod common;

use std::time::{Duration, Instant};

use common::{Frame, RivetServer};

fn info_field(c: &mut common::Conn, field: &str) -> String {
    let Frame::Bulk(Some(text)) = c.cmd(&["INFO", "persistence"]) else {
        panic!("INFO persistence is not a bulk string");
    };
    let text = String::from_utf8(text).expect("INFO is text");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("INFO has no {field}:\n{text}"))
        .trim()
        .to_string()
}

#[test]
fn bgrewriteaof_compacts_the_file_online() {
    // The deleted keys are spread over the whole file (the keyspace is ordered by hash), so
    // cutting free pages off its end alone gives little back: the compaction must.
    let s = RivetServer::start(&[]);
    let mut c = s.conn();
    let value = vec![b'v'; 900];
    for batch in 0..20 {
        let mut args: Vec<Vec<u8>> = vec![b"MSET".to_vec()];
        for i in 0..1000 {
            args.push(format!("key:{:05}", batch * 1000 + i).into_bytes());
            args.push(value.clone());
        }
        assert_eq!(c.cmd(&args), Frame::Simple("OK".into()));
    }
    // Delete four keys in five, spread over the whole keyspace.
    for batch in 0..20 {
        let mut args: Vec<Vec<u8>> = vec![b"DEL".to_vec()];
        for i in 0..1000 {
            let n = batch * 1000 + i;
            if n % 5 != 0 {
                args.push(format!("key:{n:05}").into_bytes());
            }
        }
        assert_eq!(c.cmd(&args), Frame::Integer(800));
    }
    let before: u64 = info_field(&mut c, "data_file_size").parse().unwrap();
    assert_eq!(
        c.cmd(&["BGREWRITEAOF"]),
        Frame::Simple("Background append only file rewriting started".into())
    );
    // Clients go on meanwhile.
    let mut w = s.conn();
    let t0 = Instant::now();
    let mut i = 0;
    loop {
        assert_eq!(
            w.cmd(&["SET", &format!("during:{i}"), "x"]),
            Frame::Simple("OK".into())
        );
        i += 1;
        if info_field(&mut c, "aof_rewrite_in_progress") == "0" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "compaction never ended"
        );
    }
    assert_eq!(info_field(&mut c, "aof_last_bgrewrite_status"), "ok");
    assert_eq!(info_field(&mut c, "compactions"), "1");
    let after: u64 = info_field(&mut c, "data_file_size").parse().unwrap();
    let returned: u64 = info_field(&mut c, "compaction_bytes_returned")
        .parse()
        .unwrap();
    assert!(after * 3 < before, "file {before} -> {after} bytes");
    assert!(returned > 0);
    assert_eq!(c.cmd(&["DBSIZE"]), Frame::Integer(4000 + i));
    for n in (0..20_000).step_by(5) {
        assert_eq!(
            c.cmd(&["STRLEN", &format!("key:{n:05}")]),
            Frame::Integer(900),
            "key:{n:05}"
        );
    }
    common::stop_and_check(s);
}
