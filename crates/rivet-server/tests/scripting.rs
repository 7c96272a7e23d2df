//! Lua scripting over a socket: Redis's error texts for scripts, SHUTDOWN stopping a busy
//! script, the bundled libraries (cjson, cmsgpack, bit, struct), RESP3 conversions, script
//! flags, and Redis 7 functions (FUNCTION LOAD/LIST/DELETE/DUMP/RESTORE, FCALL) including
//! their persistence across a restart.

mod common;

use std::time::{Duration, Instant};

use common::{stop_and_check, Frame, RivetServer};

fn err_text(f: Frame) -> String {
    match f {
        Frame::Error(e) => e,
        other => panic!("expected an error, got {other}"),
    }
}

#[test]
fn pcall_error_tables_carry_the_err_code() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    // The reply is the error table redis.pcall returned, passed through as an error reply.
    for (script, want) in [
        (
            "return redis.pcall('set')",
            "ERR Wrong number of args calling Redis command from script",
        ),
        (
            "return redis.pcall('nosuchcommand')",
            "ERR Unknown Redis command called from script",
        ),
        (
            "return redis.pcall('multi')",
            "ERR This Redis command is not allowed from script",
        ),
        (
            "return redis.pcall('config', 'get', 'port')",
            "ERR This Redis command is not allowed from script",
        ),
        // A script calling a script or function would re-enter the one Lua VM.
        (
            "return redis.pcall('fcall', 'f', '0')",
            "ERR This Redis command is not allowed from script",
        ),
        (
            "return redis.pcall('eval', 'return 1', '0')",
            "ERR This Redis command is not allowed from script",
        ),
        (
            "return redis.pcall('blpop', 'k', '0')",
            "ERR This Redis command is not allowed from script",
        ),
    ] {
        assert_eq!(err_text(c.cmd(&["EVAL", script, "0"])), want, "{script}");
    }
    assert_eq!(
        c.cmd(&["EVAL", "return redis.REDIS_VERSION", "0"]),
        Frame::bulk("7.0.15")
    );
    assert_eq!(
        c.cmd(&["EVAL", "return {double=1.5}", "0"]),
        Frame::bulk("1.5")
    );
}

#[test]
fn shutdown_stops_a_busy_script() {
    let mut server = RivetServer::start(&[]);
    let mut c = server.conn();
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "lua-time-limit", "10"]),
        Frame::Simple("OK".into())
    );
    let mut busy = server.conn();
    busy.send(&["EVAL", "while true do end", "0"]);
    // Wait until the server reports BUSY, then ask it to shut down.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c.cmd(&["GET", "x"]) {
            Frame::Error(e) if e.starts_with("BUSY") => break,
            _ if Instant::now() > deadline => panic!("the script never became busy"),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    c.send(&["SHUTDOWN", "NOSAVE"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.is_running() {
        assert!(
            Instant::now() < deadline,
            "rivet-server is still running 10 s after SHUTDOWN NOSAVE during a busy script\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A script stopped by SIGTERM or SHUTDOWN NOSAVE after it wrote leaves none of its writes
/// (new-user trial: a transfer's debit survived without its credit): the batch holding it is
/// rolled back; the caller gets an error, and the file checks clean.
#[test]
fn shutdown_never_keeps_half_a_script() {
    for how in ["SIGTERM", "SHUTDOWN NOSAVE"] {
        let mut server = RivetServer::start(&[]);
        let mut c = server.conn();
        assert_eq!(c.cmd(&["MSET", "acct:a", "100", "acct:b", "0"]), ok());
        c.cmd(&["CONFIG", "SET", "busy-reply-threshold", "10"]);
        let mut busy = server.conn();
        busy.send(&[
            "EVAL",
            "redis.call('decrby', 'acct:a', 10) \
             local i = 0 while true do i = i + 1 end \
             redis.call('incrby', 'acct:b', 10) return 'done'",
            "0",
        ]);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match c.cmd(&["GET", "x"]) {
                Frame::Error(e) if e.starts_with("BUSY") => break,
                _ if Instant::now() > deadline => panic!("the script never became busy"),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        if how == "SIGTERM" {
            let status = server.stop();
            assert!(status.success(), "{how}: exit {status}\n{}", server.log());
        } else {
            c.send(&["SHUTDOWN", "NOSAVE"]);
            let deadline = Instant::now() + Duration::from_secs(10);
            while server.is_running() {
                assert!(Instant::now() < deadline, "{how}: still running");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        match busy.try_read() {
            Ok(Frame::Error(e)) => {
                assert!(e.contains("shutting down") || e.contains("script"), "{e}")
            }
            Ok(other) => panic!("{how}: the script's caller got {other}"),
            Err(_) => {} // the connection closed before the reply: nothing acknowledged
        }
        server.restart();
        let mut c = server.conn();
        assert_eq!(
            c.cmd(&["MGET", "acct:a", "acct:b"]),
            Frame::Array(Some(vec![
                Frame::Bulk(Some(b"100".to_vec())),
                Frame::Bulk(Some(b"0".to_vec()))
            ])),
            "{how}: half of the script survived"
        );
        common::stop_and_check(server);
    }
}

/// No script can reach what is behind the read-only globals (new-user trial: `getfenv`,
/// a proxy's metatable and the string metatable let one script change `redis.call`,
/// `cjson` or string methods for every later script). Each attempt fails as in Redis 7.0.15
/// and later scripts see the real libraries; read-only scripts may not PUBLISH.
#[test]
fn scripts_cannot_poison_the_shared_lua_state() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    for attack in [
        "local g = getfenv(0) g.redis = {call = function() return 'pwned' end} return 1",
        "setfenv(1, {}) return 1",
        "return newproxy",
        "getmetatable(redis).__index.call = function() return 'pwned' end return 1",
        "getmetatable(string).__index.upper = function() return 'pwned' end return 1",
        "getmetatable(math).__index.floor = function() return 'pwned' end return 1",
        "getmetatable('').__index.upper = function() return 'pwned' end return 1",
        "getmetatable('').__index = {upper = function() return 'pwned' end} return 1",
        "rawset(string, 'upper', function() return 'pwned' end) return 1",
        "string.upper = function() return 'pwned' end return 1",
        "cjson.encode = function() return 'pwned' end return 1",
    ] {
        match eval(&mut c, attack) {
            Frame::Error(_) => {}
            other => panic!("{attack}: answered {other}"),
        }
    }
    assert_eq!(
        eval(&mut c, "return redis.call('ping')"),
        Frame::Simple("PONG".into())
    );
    assert_eq!(
        eval(
            &mut c,
            "return ('a'):upper() .. string.upper('b') .. math.floor(1.5)"
        ),
        Frame::Bulk(Some(b"AB1".to_vec()))
    );
    assert_eq!(
        eval(&mut c, "return cjson.encode({1})"),
        Frame::Bulk(Some(b"[1]".to_vec()))
    );
    assert_eq!(
        eval(
            &mut c,
            "return tostring(getmetatable('').__index == string)"
        ),
        Frame::Bulk(Some(b"true".to_vec()))
    );
    // The rest of Redis's `redis` API (new-user trial), with Redis's answers.
    assert!(err_text(eval(&mut c, "return redis.setresp(4)"))
        .starts_with("ERR RESP version must be 2 or 3. script:"));
    assert_eq!(eval(&mut c, "return redis.breakpoint()"), Frame::Bulk(None));
    assert_eq!(eval(&mut c, "return redis.debug('x')"), Frame::Bulk(None));
    assert_eq!(
        eval(&mut c, "return redis.acl_check_cmd('set', 'a', 'b')"),
        Frame::Integer(1)
    );
    assert!(
        err_text(eval(&mut c, "return redis.acl_check_cmd('nosuch')"))
            .starts_with("ERR Invalid command passed to redis.acl_check_cmd()")
    );
    for ro in [
        vec![
            "EVAL",
            "#!lua flags=no-writes\nreturn redis.call('publish', 'c', 'm')",
            "0",
        ],
        vec!["EVAL_RO", "return redis.call('publish', 'c', 'm')", "0"],
    ] {
        let e = err_text(c.cmd(&ro));
        assert!(
            e.starts_with("ERR Write commands are not allowed from read-only scripts."),
            "{e}"
        );
    }
    common::stop_and_check(server);
}

fn eval(c: &mut common::Conn, script: &str) -> Frame {
    c.cmd(&["EVAL", script, "0"])
}

fn ok() -> Frame {
    Frame::Simple("OK".into())
}

#[test]
fn cjson_round_trips_and_follows_lua_cjson_rules() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    for (script, want) in [
        // %.14g numbers, `/` escaped, arrays from 1..n keys, objects otherwise.
        (
            "return cjson.encode({1, 2.5, 'a/b', {x=0.1}})",
            Frame::bulk(r#"[1,2.5,"a\/b",{"x":0.1}]"#),
        ),
        ("return cjson.encode({})", Frame::bulk("{}")),
        ("return cjson.encode(1/3)", Frame::bulk("0.33333333333333")),
        // Holes become null; a sparse array is an error.
        (
            "return cjson.encode({[1]=1, [3]=3})",
            Frame::bulk("[1,null,3]"),
        ),
        (
            "local ok, e = pcall(cjson.encode, {[1]=1, [100]=2}) return tostring(ok)",
            Frame::bulk("false"),
        ),
        // null decodes to cjson.null, which encodes back to null.
        (
            "local t = cjson.decode('{\"a\":null,\"b\":[true,false]}') return {tostring(t.a == cjson.null), cjson.encode(t.b)}",
            Frame::Array(Some(vec![Frame::bulk("true"), Frame::bulk("[true,false]")])),
        ),
        (
            "return table.concat(cjson.decode('[0.0, -5e3, -1, 0.3e-3, 1023.2, 0e10]'), ' ')",
            Frame::bulk("0 -5000 -1 0.0003 1023.2 0"),
        ),
        (
            "return cjson.decode('\"\\\\u00e9\"')",
            Frame::bulk("é"),
        ),
        // Depth limits and invalid numbers.
        (
            "cjson.decode_max_depth(1) local ok = pcall(cjson.decode, '[[1]]') cjson.decode_max_depth(1000) return tostring(ok)",
            Frame::bulk("false"),
        ),
        (
            "local ok = pcall(cjson.encode, {n=0/0}) return tostring(ok)",
            Frame::bulk("false"),
        ),
    ] {
        assert_eq!(eval(&mut c, script), want, "{script}");
    }
    match eval(&mut c, "return cjson.decode('[1,')") {
        Frame::Error(e) => assert!(e.contains("Expected value but found T_END"), "{e}"),
        other => panic!("expected an error, got {other}"),
    }
}

#[test]
fn cmsgpack_round_trips() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    let hex = "local h = '' for i = 1, #e do h = h .. string.format('%02x', string.byte(e, i)) end return h";
    for (script, want) in [
        ("local e = cmsgpack.pack(0.1) ", "cb3fb999999999999a"),
        (
            "local e = cmsgpack.pack(-1099511627776) ",
            "d3ffffff0000000000",
        ),
        ("local e = cmsgpack.pack({1, 2, 3}) ", "93010203"),
        ("local e = cmsgpack.pack(true, nil, 'ab') ", "c3c0a26162"),
        ("local e = cmsgpack.pack(300, -33) ", "cd012cd0df"),
    ] {
        let s = format!("{script}{hex}");
        assert_eq!(eval(&mut c, &s), Frame::bulk(want), "{script}");
    }
    let s = "local t = {a={1,2,{b='x'}}, n=1.5, s=string.rep('y', 300)}
             local u = cmsgpack.unpack(cmsgpack.pack(t))
             assert(u.a[3].b == 'x' and u.n == 1.5 and #u.s == 300)
             local e = cmsgpack.pack('one', 'two')
             local off, v = cmsgpack.unpack_one(e)
             local off2, w = cmsgpack.unpack_limit(e, 1, off)
             return {v, w, off2}";
    assert_eq!(
        eval(&mut c, s),
        Frame::Array(Some(vec![
            Frame::bulk("one"),
            Frame::bulk("two"),
            Frame::Integer(-1)
        ]))
    );
}

#[test]
fn bit_ops_wrap_to_32_bits() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    let s = "return {bit.tobit(0xffffffff), bit.tobit(2^32 + 5), bit.band(0xff, 0x0f), bit.bor(1, 2, 4),
             bit.bxor(5, 3), bit.bnot(0), bit.lshift(1, 31), bit.rshift(-1, 28), bit.arshift(-256, 4),
             bit.rol(0x80000001, 1), bit.ror(1, 1), bit.bswap(0x12345678), bit.tohex(255, 4), bit.tohex(-1, -2),
             bit.lshift(1, 33)}";
    let want: Vec<Frame> = vec![
        Frame::Integer(-1),
        Frame::Integer(5),
        Frame::Integer(15),
        Frame::Integer(7),
        Frame::Integer(6),
        Frame::Integer(-1),
        Frame::Integer(-2147483648),
        Frame::Integer(15),
        Frame::Integer(-16),
        Frame::Integer(3),
        Frame::Integer(-2147483648),
        Frame::Integer(0x78563412),
        Frame::bulk("00ff"),
        Frame::bulk("FF"),
        Frame::Integer(2),
    ];
    assert_eq!(eval(&mut c, s), Frame::Array(Some(want)));
}

#[test]
fn struct_packs_and_unpacks() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    let s = "local p = struct.pack('>hIc3sd', -2, 70000, 'abc', 'zt', 1.5)
             local a, b, s3, z, d, nxt = struct.unpack('>hIc3sd', p)
             return {#p, a, b, s3, z, tostring(d), nxt, struct.size('<i2i8'), struct.size('!4bi')}";
    assert_eq!(
        eval(&mut c, s),
        Frame::Array(Some(vec![
            Frame::Integer(2 + 4 + 3 + 3 + 8),
            Frame::Integer(-2),
            Frame::Integer(70000),
            Frame::bulk("abc"),
            Frame::bulk("zt"),
            Frame::bulk("1.5"),
            Frame::Integer(21),
            Frame::Integer(10),
            Frame::Integer(8),
        ]))
    );
    assert_eq!(
        eval(&mut c, "return struct.pack('<I2', 258)"),
        Frame::bulk([2u8, 1])
    );
}

#[test]
fn libraries_and_globals_are_read_only() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    for script in [
        "cjson.encode = 1",
        "cmsgpack.pack = 1",
        "bit.band = 1",
        "struct.pack = 1",
        "redis.call = 1",
        "_G = {}",
        "setmetatable(_G, {})",
        "local g = getmetatable(_G) g.__index = {}",
        "x = 1",
    ] {
        match eval(&mut c, script) {
            Frame::Error(e) => assert!(
                e.contains("Attempt to modify a readonly table"),
                "{script}: {e}"
            ),
            other => panic!("{script}: expected an error, got {other}"),
        }
    }
    match eval(&mut c, "return nosuch") {
        Frame::Error(e) => assert!(
            e.contains("Script attempted to access nonexistent global variable 'nosuch'"),
            "{e}"
        ),
        other => panic!("expected an error, got {other}"),
    }
}

#[test]
fn resp3_conversions_follow_setresp_and_the_client_protocol() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    assert_eq!(c.cmd(&["HSET", "h", "f", "v"]), Frame::Integer(1));
    // RESP2 client: RESP3 tables downgrade.
    assert_eq!(
        eval(
            &mut c,
            "redis.setresp(3) local r = redis.call('hgetall', 'h') return r.map.f"
        ),
        Frame::bulk("v")
    );
    assert_eq!(eval(&mut c, "return {double=3.5}"), Frame::bulk("3.5"));
    assert_eq!(
        eval(&mut c, "return {big_number='123'}"),
        Frame::bulk("123")
    );
    assert_eq!(eval(&mut c, "return false"), Frame::Bulk(None));
    assert_eq!(
        eval(&mut c, "return {map={a=1}}"),
        Frame::Array(Some(vec![Frame::bulk("a"), Frame::Integer(1)]))
    );
    // RESP3 client: native types.
    assert!(matches!(c.cmd(&["HELLO", "3"]), Frame::Map(_)));
    assert_eq!(
        eval(&mut c, "return {double=3.5}"),
        Frame::Double("3.5".into())
    );
    assert_eq!(
        eval(&mut c, "return {big_number='123'}"),
        Frame::BigNumber("123".into())
    );
    assert_eq!(eval(&mut c, "return false"), Frame::Boolean(false));
    assert_eq!(eval(&mut c, "return true"), Frame::Boolean(true));
    assert_eq!(
        eval(&mut c, "return {map={a=1}}"),
        Frame::Map(vec![(Frame::bulk("a"), Frame::Integer(1))])
    );
    assert_eq!(
        eval(&mut c, "return {set={a=true}}"),
        Frame::Set(vec![Frame::bulk("a")])
    );
    assert_eq!(
        eval(&mut c, "redis.setresp(3) return redis.call('hgetall', 'h')"),
        Frame::Map(vec![(Frame::bulk("f"), Frame::bulk("v"))])
    );
    // Without setresp(3) the script sees RESP2 (a flat array), whatever the client speaks.
    assert_eq!(
        eval(&mut c, "return redis.call('hgetall', 'h')"),
        Frame::Array(Some(vec![Frame::bulk("f"), Frame::bulk("v")]))
    );
    assert_eq!(
        eval(
            &mut c,
            "redis.setresp(3) return redis.call('get', 'nokey') == nil"
        ),
        Frame::Boolean(true)
    );
}

#[test]
fn no_writes_scripts_cannot_write() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    let e = err_text(eval(
        &mut c,
        "#!lua flags=no-writes\nreturn redis.call('set', 'x', 1)",
    ));
    assert!(
        e.starts_with("ERR Write commands are not allowed from read-only scripts."),
        "{e}"
    );
    assert_eq!(
        eval(
            &mut c,
            "#!lua flags=no-writes\nreturn redis.call('get', 'x')"
        ),
        Frame::Bulk(None)
    );
    assert_eq!(
        eval(&mut c, "#!lua\nreturn redis.call('set', 'x', 1)"),
        ok()
    );
    assert_eq!(
        c.cmd(&["EVAL_RO", "#!lua\nreturn 1", "0"]),
        Frame::Error("ERR Can not execute a script with write flag using *_ro command.".into())
    );
    assert_eq!(
        eval(&mut c, "#!lua flags=bogus\nreturn 1"),
        Frame::Error("ERR Unexpected flag in script shebang: bogus".into())
    );
}

const LIB: &str = "#!lua name=mylib
redis.register_function('incr2', function(keys, args) return redis.call('incrby', keys[1], 2) end)
redis.register_function{function_name='peek', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}, description='reads'}
redis.register_function('bad', function(keys) return redis.call('set', keys[1], 'x') end)";

#[test]
fn functions_load_call_list_delete_dump_restore() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    assert_eq!(c.cmd(&["FUNCTION", "LOAD", LIB]), Frame::bulk("mylib"));
    assert_eq!(
        c.cmd(&["FUNCTION", "LOAD", LIB]),
        Frame::Error("ERR Library 'mylib' already exists".into())
    );
    assert_eq!(
        c.cmd(&["FUNCTION", "LOAD", "REPLACE", LIB]),
        Frame::bulk("mylib")
    );
    assert_eq!(c.cmd(&["FCALL", "incr2", "1", "k"]), Frame::Integer(2));
    assert_eq!(c.cmd(&["FCALL_RO", "peek", "1", "k"]), Frame::bulk("2"));
    assert_eq!(
        c.cmd(&["FCALL_RO", "incr2", "1", "k"]),
        Frame::Error("ERR Can not execute a script with write flag using *_ro command.".into())
    );
    assert_eq!(
        c.cmd(&["FCALL", "nosuch", "0"]),
        Frame::Error("ERR Function not found".into())
    );
    for (code, want) in [
        ("return 1", "ERR Missing library metadata"),
        ("#!lua\nreturn 1", "ERR Library name was not given"),
        ("#!js name=x\nreturn 1", "ERR Engine 'js' not found"),
        ("#!lua name=x\nreturn 1", "ERR No functions registered"),
        (
            "#!lua name=x\nredis.call('ping')",
            "ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'call'",
        ),
        (
            "#!lua name=x\nredis.register_function('incr2', function() end)",
            "ERR Function incr2 already exists",
        ),
        (
            "#!lua name=x\nredis.register_function('a-b', function() end)",
            "ERR Error registering functions: ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long",
        ),
    ] {
        assert_eq!(c.cmd(&["FUNCTION", "LOAD", code]), Frame::Error(want.into()), "{code}");
    }
    let list = c.cmd(&["FUNCTION", "LIST", "WITHCODE"]);
    let text = format!("{list}");
    for needle in [
        "mylib",
        "incr2",
        "peek",
        "reads",
        "no-writes",
        "LUA",
        "library_code",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    let dump = match c.cmd(&["FUNCTION", "DUMP"]) {
        Frame::Bulk(Some(b)) => b,
        other => panic!("FUNCTION DUMP: {other}"),
    };
    assert_eq!(c.cmd(&["FUNCTION", "DELETE", "mylib"]), ok());
    assert_eq!(
        c.cmd(&["FUNCTION", "DELETE", "mylib"]),
        Frame::Error("ERR Library not found".into())
    );
    assert_eq!(
        c.cmd(&["FCALL", "incr2", "1", "k"]),
        Frame::Error("ERR Function not found".into())
    );
    assert_eq!(c.cmd(&[b"FUNCTION".as_slice(), b"RESTORE", &dump]), ok());
    assert_eq!(
        c.cmd(&[b"FUNCTION".as_slice(), b"RESTORE", &dump]),
        Frame::Error("ERR Library mylib already exists".into())
    );
    assert_eq!(
        c.cmd(&[b"FUNCTION".as_slice(), b"RESTORE", &dump, b"REPLACE"]),
        ok()
    );
    assert_eq!(
        c.cmd(&["FUNCTION", "RESTORE", "garbage"]),
        Frame::Error("ERR DUMP payload version or checksum are wrong".into())
    );
    assert_eq!(c.cmd(&["FCALL", "incr2", "1", "k"]), Frame::Integer(4));
    assert_eq!(c.cmd(&["FUNCTION", "FLUSH"]), ok());
    assert_eq!(c.cmd(&["FUNCTION", "LIST"]), Frame::Array(Some(vec![])));
}

#[test]
fn functions_survive_a_restart() {
    let mut server = RivetServer::start(&[]);
    let mut c = server.conn();
    assert_eq!(c.cmd(&["FUNCTION", "LOAD", LIB]), Frame::bulk("mylib"));
    assert_eq!(
        c.cmd(&[
            "FUNCTION",
            "LOAD",
            "#!lua name=other\nredis.register_function('o', function() return 'o' end)"
        ]),
        Frame::bulk("other")
    );
    assert_eq!(c.cmd(&["FUNCTION", "DELETE", "other"]), ok());
    drop(c);
    let status = server.stop();
    assert!(status.success(), "exit {status}\n{}", server.log());
    server.restart();
    let mut c = server.conn();
    let text = format!("{}", c.cmd(&["FUNCTION", "LIST"]));
    assert!(text.contains("mylib") && !text.contains("other"), "{text}");
    assert_eq!(c.cmd(&["FCALL", "incr2", "1", "k"]), Frame::Integer(2));
    assert_eq!(c.cmd(&["FCALL_RO", "peek", "1", "k"]), Frame::bulk("2"));
    stop_and_check(server);
}
