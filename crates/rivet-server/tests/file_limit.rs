//! `--max-file-size`: a commit that would grow the data file past the limit fails with an
//! OOM error, cleanly (nothing of it is applied), and the server goes on serving reads and
//! writes that fit, unlike a failed fsync, which refuses all writes until restart.

mod common;

use common::{Frame, RivetServer};

#[test]
fn a_full_file_fails_the_commit_and_later_writes_that_fit_succeed() {
    let server = RivetServer::start(&["--max-file-size", "4mb"]);
    let mut c = server.conn();
    assert_eq!(c.cmd(&["SET", "first", "kept"]), Frame::Simple("OK".into()));
    let value = vec![b'v'; 200 * 1024];
    let mut stored = 0;
    let mut refused = None;
    for i in 0..200 {
        let key = format!("big:{i}");
        match c.cmd(&[b"SET".as_slice(), key.as_bytes(), &value]) {
            Frame::Simple(s) if s == "OK" => stored += 1,
            Frame::Error(e) => {
                refused = Some(e);
                break;
            }
            other => panic!("unexpected reply {other}"),
        }
    }
    let e = refused.expect("a 4 MB file cannot take 40 MB of values");
    assert!(e.starts_with("OOM"), "{e}");
    assert!(e.contains("--max-file-size"), "{e}");
    assert!(stored > 0, "some values fit before the limit");
    // The refused SET left nothing behind, reads go on, and the server still accepts writes.
    assert_eq!(
        c.cmd(&["EXISTS", &format!("big:{stored}")]),
        Frame::Integer(0)
    );
    assert_eq!(c.cmd(&["GET", "first"]), Frame::bulk("kept"));
    let keys: Vec<String> = (0..stored).map(|i| format!("big:{i}")).collect();
    let mut del = vec!["DEL".to_string()];
    del.extend(keys);
    assert_eq!(c.cmd(&del), Frame::Integer(stored as i64));
    assert_eq!(c.cmd(&["SET", "after", "fits"]), Frame::Simple("OK".into()));
    assert_eq!(c.cmd(&["GET", "after"]), Frame::bulk("fits"));
    let info = match c.cmd(&["INFO", "persistence"]) {
        Frame::Bulk(Some(b)) | Frame::Verbatim(_, b) => String::from_utf8_lossy(&b).to_string(),
        other => panic!("INFO answered {other}"),
    };
    assert!(info.contains("writes_refused:0"), "{info}");
}
