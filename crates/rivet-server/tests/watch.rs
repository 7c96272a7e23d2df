//! WATCH and expiry, as Redis 7.0 treats them: a key that expires (and is swept) after WATCH
//! saw it live breaks the transaction; a key that had already expired when WATCH ran is
//! logically absent all along, so its deletion by the sweeper does not.

mod common;

use std::time::Duration;

use common::{Frame, RivetServer};

fn ok() -> Frame {
    Frame::Simple("OK".into())
}

fn exec_after_watch(c: &mut common::Conn) -> Frame {
    assert_eq!(c.cmd(&["MULTI"]), ok());
    assert_eq!(c.cmd(&["PING"]), Frame::Simple("QUEUED".into()));
    c.cmd(&["EXEC"])
}

#[test]
fn sweeping_a_key_expired_before_watch_does_not_abort_exec() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    assert_eq!(c.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]), ok());
    assert_eq!(c.cmd(&["SET", "stale", "v", "PX", "1"]), ok());
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(c.cmd(&["WATCH", "stale"]), ok());
    assert_eq!(c.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"]), ok());
    std::thread::sleep(Duration::from_millis(400)); // the sweeper runs ten times a second
    assert_eq!(
        c.cmd(&["DBSIZE"]),
        Frame::Integer(0),
        "the sweeper deleted it"
    );
    let r = exec_after_watch(&mut c);
    assert!(r.to_string().contains("PONG"), "EXEC must run: {r}");
}

#[test]
fn a_watched_key_that_expires_aborts_exec() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    assert_eq!(c.cmd(&["SET", "live", "v", "PX", "150"]), ok());
    assert_eq!(c.cmd(&["WATCH", "live"]), ok());
    std::thread::sleep(Duration::from_millis(500));
    let r = exec_after_watch(&mut c);
    assert!(
        matches!(r, Frame::Array(None) | Frame::Null),
        "EXEC must abort: {r}"
    );
}
