//! The Memcached text protocol: framing request lines and data blocks, tokenizing, and
//! parsing every command into a [`Request`], with memcached 1.6.18's exact error replies.
//!
//! Framing follows memcached: a request line ends at `\n` (a `\r` before it is dropped);
//! tokens are separated by spaces only; a line longer than 2048 bytes without a newline
//! closes the connection unless it is a `get`/`gets` (whose key lists are unbounded); a
//! storage command's data block is exactly `<bytes>` bytes followed by `\r\n`, and a block
//! that does not end so is refused with `CLIENT_ERROR bad data chunk`. Refused storage
//! commands whose length was understood (too large, bad meta flags) have their data block
//! read and dropped, so the connection stays in sync.

use bytes::{Buf, Bytes, BytesMut};

/// Longest key, in bytes (memcached's `KEY_MAX_LENGTH`).
pub const KEY_MAX: usize = 250;
/// Bytes without a newline after which a non-`get` line closes the connection.
const LINE_MAX: usize = 2048;
/// memcached's tokenizer stops after this many tokens (the rest stays one token).
const MAX_TOKENS: usize = 24;
/// Meta commands refuse more tokens than this (memcached's `MFLAG_MAX_OPT_LENGTH`).
const META_MAX_TOKENS: usize = 20;
/// Longest opaque (`O`) token, flag character included.
pub const OPAQUE_MAX: usize = 32;
/// The largest relative exptime; larger values are absolute Unix times (30 days).
pub const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;

/// A storage command of the classic protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// `set`
    Set,
    /// `add`
    Add,
    /// `replace`
    Replace,
    /// `append`
    Append,
    /// `prepend`
    Prepend,
    /// `cas`
    Cas,
}

/// The parsed option flags of a meta command (memcached's `_meta_flags`).
#[derive(Debug, Clone, Default)]
pub struct MetaFlags {
    /// `b`: the key was base64.
    pub key_binary: bool,
    /// `N<ttl>`: vivify on miss with this exptime.
    pub vivify: Option<i32>,
    /// `T<ttl>`: new exptime.
    pub ttl: Option<i32>,
    /// `R<ttl>`: recache when the remaining TTL is below this.
    pub recache: Option<i32>,
    /// `v`: return the value.
    pub value: bool,
    /// `u`: no LRU bump (no fetched mark, no access time update).
    pub no_update: bool,
    /// `q`: quiet mode.
    pub quiet: bool,
    /// `F<flags>`.
    pub client_flags: u32,
    /// `C<cas>`.
    pub cas: Option<u64>,
    /// `M<mode>`.
    pub mode: Option<u8>,
    /// `J<initial>` (ma).
    pub initial: u64,
    /// `D<delta>` (ma).
    pub delta: Option<u64>,
    /// `I`: invalidate / set stale.
    pub stale: bool,
}

/// A meta command (`mg`, `ms`, `md`, `ma`).
#[derive(Debug, Clone)]
pub struct Meta {
    /// The second letter: `g`, `s`, `d` or `a`.
    pub code: u8,
    /// The key (base64-decoded when `b` was given).
    pub key: Vec<u8>,
    /// The flag tokens in request order (each starts with its flag character).
    pub tokens: Vec<Vec<u8>>,
    /// What the tokens mean.
    pub flags: MetaFlags,
    /// `ms`'s data block.
    pub data: Bytes,
}

impl Meta {
    /// True when this `mg` may change the item (so it runs in the writer): vivify, TTL update
    /// or recache.
    pub fn mg_writes(&self) -> bool {
        self.flags.vivify.is_some() || self.flags.ttl.is_some() || self.flags.recache.is_some()
    }
}

/// One parsed request.
#[derive(Debug, Clone)]
pub enum Request {
    /// A reply decided by the parser (errors, `MN`, `VERSION`...); empty when suppressed by
    /// `noreply`.
    Reply(Vec<u8>),
    /// `get`, `gets`, `gat`, `gats`.
    Get {
        /// The keys.
        keys: Vec<Vec<u8>>,
        /// Return CAS values (`gets`, `gats`).
        cas: bool,
        /// New exptime (`gat`, `gats`).
        touch: Option<i32>,
        /// A later key was longer than 250 bytes: `keys` are the ones before it, looked up
        /// (and fetched, or touched) as memcached does before it fails, and the reply is
        /// `CLIENT_ERROR bad command line format` alone.
        then_fail: bool,
    },
    /// `set`, `add`, `replace`, `append`, `prepend`, `cas`.
    Store {
        /// Which one.
        mode: StoreMode,
        /// The key.
        key: Vec<u8>,
        /// Client flags.
        flags: u32,
        /// Raw exptime.
        exptime: i32,
        /// The CAS value to compare (`cas`).
        cas: u64,
        /// The value.
        data: Bytes,
        /// Suppress the reply.
        noreply: bool,
    },
    /// A storage command whose value exceeds the item size limit: the old item is unlinked
    /// when `unlink` (memcached does so for `set` and every `ms`), then `reply` is sent.
    TooLarge {
        /// The key.
        key: Vec<u8>,
        /// Drop the existing item.
        unlink: bool,
        /// The error line (empty when suppressed).
        reply: Vec<u8>,
    },
    /// `delete`.
    Delete {
        /// The key.
        key: Vec<u8>,
        /// Suppress the reply.
        noreply: bool,
    },
    /// `incr` / `decr`.
    Arith {
        /// The key.
        key: Vec<u8>,
        /// `incr` (else `decr`).
        incr: bool,
        /// The amount.
        delta: u64,
        /// Suppress the reply.
        noreply: bool,
    },
    /// `touch`.
    Touch {
        /// The key.
        key: Vec<u8>,
        /// Raw exptime.
        exptime: i32,
        /// Suppress the reply.
        noreply: bool,
    },
    /// `flush_all [delay]`.
    FlushAll {
        /// Raw delay (0 = now).
        delay: i32,
        /// Suppress the reply.
        noreply: bool,
    },
    /// `stats [group]`.
    Stats(Vec<Vec<u8>>),
    /// A meta command.
    Meta(Meta),
    /// `me <key> [b]`.
    MetaDebug {
        /// The key (decoded).
        key: Vec<u8>,
    },
    /// `quit`: close after the replies so far.
    Quit,
    /// `lru_crawler metadump <classes>`: one line per live item, then `END`.
    MetaDump,
    /// The authentication `set` of a connection that must log in (`user password`).
    Auth {
        /// The user name.
        user: Vec<u8>,
        /// The password.
        password: Vec<u8>,
    },
}

impl Request {
    /// True when the request changes stored data (it runs in the writer).
    pub fn writes(&self) -> bool {
        match self {
            Request::Get { touch, .. } => touch.is_some(),
            Request::Store { .. }
            | Request::TooLarge { .. }
            | Request::Delete { .. }
            | Request::Arith { .. }
            | Request::Touch { .. }
            | Request::FlushAll { .. } => true,
            Request::Meta(m) => m.code != b'g' || m.mg_writes(),
            Request::Reply(_)
            | Request::Stats(_)
            | Request::MetaDebug { .. }
            | Request::Quit
            | Request::MetaDump
            | Request::Auth { .. } => false,
        }
    }
}

/// What [`Parser::next`] found.
#[derive(Debug)]
pub enum Parsed {
    /// A complete request.
    Request(Request),
    /// More input is needed.
    More,
    /// Close the connection (after sending the optional line): a runaway line, an HTTP
    /// request, the binary protocol.
    Close(Option<&'static str>),
}

/// A storage command waiting for its data block.
#[derive(Debug)]
struct Pending {
    /// Data bytes expected, `\r\n` included.
    need: usize,
    /// What to build once they are here.
    kind: PendingKind,
    /// A bad data chunk is reported even under `noreply` (meta set).
    meta: bool,
    noreply: bool,
}

#[derive(Debug)]
enum PendingKind {
    Store {
        mode: StoreMode,
        key: Vec<u8>,
        flags: u32,
        exptime: i32,
        cas: u64,
    },
    Meta(Box<Meta>),
    Auth,
}

/// Incremental request parser of one connection.
#[derive(Debug, Default)]
pub struct Parser {
    pending: Option<Pending>,
    /// Data bytes still to drop after a refused storage command.
    swallow: usize,
    /// Largest accepted item (`-I`), for the size check.
    pub max_item_size: usize,
    /// Before authentication: every line must be the `set` that carries `user password`.
    pub auth_mode: bool,
}

impl Parser {
    /// A parser refusing items larger than `max_item_size` bytes (memcached's `-I`).
    pub fn new(max_item_size: usize) -> Parser {
        Parser {
            max_item_size,
            ..Parser::default()
        }
    }

    /// Takes the next request from `buf`.
    pub fn next(&mut self, buf: &mut BytesMut) -> Parsed {
        loop {
            if self.swallow > 0 {
                let n = self.swallow.min(buf.len());
                buf.advance(n);
                self.swallow -= n;
                if self.swallow > 0 {
                    return Parsed::More;
                }
            }
            if let Some(p) = &self.pending {
                if buf.len() < p.need {
                    return Parsed::More;
                }
                let p = self.pending.take().expect("checked above");
                let mut block = buf.split_to(p.need).freeze();
                if !block.ends_with(b"\r\n") {
                    let quiet = p.noreply && !p.meta;
                    return Parsed::Request(Request::Reply(line(
                        "CLIENT_ERROR bad data chunk",
                        quiet,
                    )));
                }
                block.truncate(p.need - 2);
                return Parsed::Request(finish(p.kind, block, p.noreply));
            }
            if buf.first() == Some(&0x80) {
                return Parsed::Close(Some(
                    "SERVER_ERROR the binary protocol is not supported (deprecated since memcached 1.6); use the text or meta protocol",
                ));
            }
            let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
                if buf.len() > LINE_MAX {
                    let start = buf.iter().position(|&b| b != b' ').unwrap_or(buf.len());
                    let rest = &buf[start..];
                    if start > 100 || !(rest.starts_with(b"get ") || rest.starts_with(b"gets ")) {
                        return Parsed::Close(None);
                    }
                }
                return Parsed::More;
            };
            let raw = buf.split_to(nl + 1);
            let mut l = &raw[..nl];
            if l.len() > 1 && l.ends_with(b"\r") {
                l = &l[..l.len() - 1];
            }
            // memcached handles the line as a C string: it ends at a NUL byte.
            if let Some(nul) = l.iter().position(|&b| b == 0) {
                l = &l[..nul];
            }
            if self.auth_mode {
                match self.auth_line(l) {
                    Parsed::More => continue,
                    other => return other,
                }
            }
            match self.parse_line(l) {
                Some(r) => return r,
                None => continue,
            }
        }
    }

    /// In authentication mode: `set <key> <flags> <exptime> <bytes>` then `user password`.
    fn auth_line(&mut self, l: &[u8]) -> Parsed {
        let t = tokenize(l);
        let size = t.get(4).and_then(|s| strtoul(s));
        match size {
            Some(n) if t.len() >= 5 && t[0] == b"set" => {
                self.pending = Some(Pending {
                    need: n as usize + 2,
                    kind: PendingKind::Auth,
                    meta: true,
                    noreply: false,
                });
                Parsed::More
            }
            _ => Parsed::Request(Request::Reply(line("CLIENT_ERROR unauthenticated", false))),
        }
    }

    /// Parses one request line. `None` when the line only started a data block (read on).
    fn parse_line(&mut self, l: &[u8]) -> Option<Parsed> {
        let all = tokenize(l);
        let t = &all[..all.len().min(MAX_TOKENS - 1)];
        // memcached's token count includes a terminal empty token.
        let n = t.len() + 1;
        if n < 2 || t[0].len() < 2 {
            return Some(reply("ERROR"));
        }
        let cmd = t[0];
        if cmd.len() == 2 && cmd[0] == b'm' {
            return match cmd[1] {
                b'g' | b's' | b'd' | b'a' => self.meta(cmd[1], t, n),
                b'n' => Some(reply("MN")),
                b'e' => Some(meta_debug(t, n)),
                _ => Some(reply("ERROR")),
            };
        }
        let r = match cmd {
            b"get" | b"gets" | b"gat" | b"gats" | b"bget" => {
                if n < 3 {
                    return Some(reply("ERROR"));
                }
                return Some(get(cmd, &all));
            }
            b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => {
                let mode = match cmd {
                    b"set" => StoreMode::Set,
                    b"add" => StoreMode::Add,
                    b"replace" => StoreMode::Replace,
                    b"append" => StoreMode::Append,
                    b"prepend" => StoreMode::Prepend,
                    _ => StoreMode::Cas,
                };
                let base = if mode == StoreMode::Cas { 7 } else { 6 };
                if n != base && n != base + 1 {
                    return Some(reply("ERROR"));
                }
                return self.storage(mode, t, n);
            }
            b"delete" => {
                if !(3..=5).contains(&n) {
                    return Some(reply("ERROR"));
                }
                delete(t, n)
            }
            b"incr" | b"decr" => {
                if n != 4 && n != 5 {
                    return Some(reply("ERROR"));
                }
                let noreply = noreply(t);
                if t[1].len() > KEY_MAX {
                    Request::Reply(line("CLIENT_ERROR bad command line format", noreply))
                } else {
                    match strtoull(t[2]) {
                        None => Request::Reply(line(
                            "CLIENT_ERROR invalid numeric delta argument",
                            noreply,
                        )),
                        Some(delta) => Request::Arith {
                            key: t[1].to_vec(),
                            incr: cmd == b"incr",
                            delta,
                            noreply,
                        },
                    }
                }
            }
            b"touch" => {
                if n != 4 && n != 5 {
                    return Some(reply("ERROR"));
                }
                let noreply = noreply(t);
                if t[1].len() > KEY_MAX {
                    Request::Reply(line("CLIENT_ERROR bad command line format", noreply))
                } else {
                    match strtol(t[2]) {
                        None => {
                            Request::Reply(line("CLIENT_ERROR invalid exptime argument", noreply))
                        }
                        Some(exptime) => Request::Touch {
                            key: t[1].to_vec(),
                            exptime,
                            noreply,
                        },
                    }
                }
            }
            b"flush_all" => {
                if !(2..=4).contains(&n) {
                    return Some(reply("ERROR"));
                }
                let noreply = noreply(t);
                let bare = if noreply { 3 } else { 2 };
                if n != bare {
                    match strtol(t[1]) {
                        None => {
                            Request::Reply(line("CLIENT_ERROR invalid exptime argument", noreply))
                        }
                        Some(delay) => Request::FlushAll { delay, noreply },
                    }
                } else {
                    Request::FlushAll { delay: 0, noreply }
                }
            }
            b"version" => Request::Reply(format!("VERSION {}\r\n", super::VERSION).into_bytes()),
            b"quit" => Request::Quit,
            b"verbosity" => {
                if n != 3 && n != 4 {
                    return Some(reply("ERROR"));
                }
                let noreply = noreply(t);
                match strtoul(t[1]) {
                    None => Request::Reply(line("CLIENT_ERROR bad command line format", noreply)),
                    Some(_) => Request::Reply(line("OK", noreply)),
                }
            }
            b"stats" => Request::Stats(t[1..].iter().map(|s| s.to_vec()).collect()),
            b"shutdown" => Request::Reply(line("ERROR: shutdown not enabled", false)),
            b"lru_crawler" if n == 4 && t[1] == b"metadump" => Request::MetaDump,
            b"cache_memlimit" => {
                if n != 3 && n != 4 {
                    return Some(reply("ERROR"));
                }
                // Accepted for clients that set it; the file has no memory limit to adjust.
                let noreply = noreply(t);
                match strtoul(t[1]) {
                    None => Request::Reply(line("ERROR", noreply)),
                    Some(m) if m < 8 => Request::Reply(line(
                        "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m",
                        noreply,
                    )),
                    Some(_) => Request::Reply(line("OK", noreply)),
                }
            }
            _ => {
                if t[t.len() - 1].starts_with(b"HTTP/") {
                    return Some(Parsed::Close(None));
                }
                Request::Reply(line("ERROR", false))
            }
        };
        Some(Parsed::Request(r))
    }

    /// `set`/`add`/`replace`/`append`/`prepend`/`cas`: checks the line, then waits for the
    /// data block (or drops it when the value is too large).
    fn storage(&mut self, mode: StoreMode, t: &[&[u8]], _n: usize) -> Option<Parsed> {
        let noreply = noreply(t);
        let bad = || {
            Some(Parsed::Request(Request::Reply(line(
                "CLIENT_ERROR bad command line format",
                noreply,
            ))))
        };
        if t[1].len() > KEY_MAX {
            return bad();
        }
        let (Some(flags), Some(exptime), Some(vlen)) = (strtoul(t[2]), strtol(t[3]), strtol(t[4]))
        else {
            return bad();
        };
        let mut cas = 0;
        if mode == StoreMode::Cas {
            match strtoull(t[5]) {
                Some(c) => cas = c,
                None => return bad(),
            }
        }
        if !(0..=i32::MAX - 2).contains(&vlen) {
            return bad();
        }
        let need = vlen as usize + 2;
        if !item_size_ok(t[1].len(), flags, need, self.max_item_size) {
            self.swallow = need;
            return Some(Parsed::Request(Request::TooLarge {
                key: t[1].to_vec(),
                unlink: mode == StoreMode::Set,
                reply: line("SERVER_ERROR object too large for cache", noreply),
            }));
        }
        self.pending = Some(Pending {
            need,
            kind: PendingKind::Store {
                mode,
                key: t[1].to_vec(),
                flags,
                exptime,
                cas,
            },
            meta: false,
            noreply,
        });
        None
    }

    /// `mg`, `ms`, `md`, `ma`.
    fn meta(&mut self, code: u8, t: &[&[u8]], n: usize) -> Option<Parsed> {
        if n < 3 {
            return Some(reply("ERROR"));
        }
        let fail = |msg: &'static str| Some(Parsed::Request(Request::Reply(line(msg, false))));
        if t[1].len() > KEY_MAX {
            return fail("CLIENT_ERROR bad command line format");
        }
        let mut vlen = 0usize;
        let first_flag = if code == b's' {
            if n == 3 {
                return fail("CLIENT_ERROR bad command line format");
            }
            if n > META_MAX_TOKENS {
                return fail("CLIENT_ERROR options flags too long");
            }
            match strtol(t[2]) {
                Some(v) if (0..=i32::MAX - 2).contains(&v) => vlen = v as usize + 2,
                _ => return fail("CLIENT_ERROR bad command line format"),
            }
            3
        } else {
            if n > META_MAX_TOKENS {
                return fail(if code == b'g' {
                    "CLIENT_ERROR options flags are too long"
                } else {
                    "CLIENT_ERROR options flags too long"
                });
            }
            2
        };
        let mut key = t[1].to_vec();
        let tokens: Vec<Vec<u8>> = t[first_flag..].iter().map(|s| s.to_vec()).collect();
        let parsed = preparse(&mut key, &tokens);
        // A refused ms still has its data block on the wire: drop it.
        let refuse = |me: &mut Parser, msg: &'static str| {
            if code == b's' {
                me.swallow = vlen;
            }
            fail(msg)
        };
        let flags = match parsed {
            Ok(f) => f,
            Err(msg) => {
                let msg = match code {
                    b'd' | b'a' => "CLIENT_ERROR invalid or duplicate flag",
                    _ => msg,
                };
                return refuse(self, msg);
            }
        };
        match (code, flags.mode) {
            (b's', Some(m)) if !b"EAPRS".contains(&m) => {
                return refuse(self, "CLIENT_ERROR invalid mode for ms M token");
            }
            (b'a', Some(m)) if !b"I+D-".contains(&m) => {
                return fail("CLIENT_ERROR invalid mode for ma M token");
            }
            _ => {}
        }
        // (After the mode: memcached reports a bad mode first. mg and ma check the opaque
        // only while replying, after their side effects: see exec.)
        if matches!(code, b's' | b'd')
            && tokens
                .iter()
                .any(|tok| tok[0] == b'O' && tok.len() > OPAQUE_MAX)
        {
            return refuse(self, "CLIENT_ERROR opaque token too long");
        }
        let meta = Meta {
            code,
            key,
            tokens,
            flags,
            data: Bytes::new(),
        };
        if code != b's' {
            return Some(Parsed::Request(Request::Meta(meta)));
        }
        if !item_size_ok(
            meta.key.len(),
            meta.flags.client_flags,
            vlen,
            self.max_item_size,
        ) {
            self.swallow = vlen;
            return Some(Parsed::Request(Request::TooLarge {
                key: meta.key,
                unlink: true,
                reply: line("SERVER_ERROR object too large for cache", false),
            }));
        }
        let noreply = meta.flags.quiet;
        self.pending = Some(Pending {
            need: vlen,
            kind: PendingKind::Meta(Box::new(meta)),
            meta: true,
            noreply,
        });
        None
    }
}

/// Builds the request once a data block arrived.
fn finish(kind: PendingKind, data: Bytes, noreply: bool) -> Request {
    match kind {
        PendingKind::Store {
            mode,
            key,
            flags,
            exptime,
            cas,
        } => Request::Store {
            mode,
            key,
            flags,
            exptime,
            cas,
            data,
            noreply,
        },
        PendingKind::Meta(mut m) => {
            m.data = data;
            Request::Meta(*m)
        }
        PendingKind::Auth => {
            let t = tokenize(&data);
            if t.len() < 2 {
                return Request::Reply(line("CLIENT_ERROR bad authentication token format", false));
            }
            Request::Auth {
                user: t[0].to_vec(),
                password: t[1].to_vec(),
            }
        }
    }
}

/// memcached's `item_size_ok`: header (48) + key + NUL + flags (4 unless 0) + data with
/// `\r\n` + CAS (8) must fit the item size limit.
fn item_size_ok(nkey: usize, flags: u32, data_with_crlf: usize, max: usize) -> bool {
    let suffix = if flags == 0 { 0 } else { 4 };
    48 + nkey + 1 + suffix + data_with_crlf + 8 <= max
}

/// The item size check for a value of `len` bytes (append/prepend results).
pub fn fits(nkey: usize, flags: u32, len: usize, max: usize) -> bool {
    item_size_ok(nkey, flags, len + 2, max)
}

/// `get`/`gets`/`gat`/`gats` (every key, beyond memcached's 24-token window too).
fn get(cmd: &[u8], all: &[&[u8]]) -> Parsed {
    let (cas, touch) = match cmd {
        b"gets" => (true, false),
        b"gat" => (false, true),
        b"gats" => (true, true),
        _ => (false, false),
    };
    let mut keys = &all[1..];
    let mut exptime = None;
    if touch {
        match strtol(all[1]) {
            Some(e) => exptime = Some(e),
            None => return reply("CLIENT_ERROR invalid exptime argument"),
        }
        keys = &all[2..];
    }
    let good = keys.iter().take_while(|k| k.len() <= KEY_MAX).count();
    Parsed::Request(Request::Get {
        keys: keys[..good].iter().map(|k| k.to_vec()).collect(),
        cas,
        touch: exptime,
        then_fail: good < keys.len(),
    })
}

fn delete(t: &[&[u8]], n: usize) -> Request {
    let mut quiet = false;
    if n > 3 {
        let hold_is_zero = t[2] == b"0";
        let sets_noreply = noreply(t);
        quiet = sets_noreply;
        let valid =
            (n == 4 && (hold_is_zero || sets_noreply)) || (n == 5 && hold_is_zero && sets_noreply);
        if !valid {
            return Request::Reply(line(
                "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
                quiet,
            ));
        }
    }
    if t[1].len() > KEY_MAX {
        return Request::Reply(line("CLIENT_ERROR bad command line format", quiet));
    }
    Request::Delete {
        key: t[1].to_vec(),
        noreply: quiet,
    }
}

fn meta_debug(t: &[&[u8]], n: usize) -> Parsed {
    if n < 3 || t[1].len() > KEY_MAX {
        return reply("CLIENT_ERROR bad command line format");
    }
    let mut key = t[1].to_vec();
    if n >= 4 && t[2] == b"b" {
        match base64_decode(&key) {
            Some(k) => key = k,
            None => return reply("CLIENT_ERROR bad command line format"),
        }
    }
    Parsed::Request(Request::MetaDebug { key })
}

/// memcached's `_meta_flag_preparse`: duplicate and unknown flags, token values.
fn preparse(key: &mut Vec<u8>, tokens: &[Vec<u8>]) -> Result<MetaFlags, &'static str> {
    let mut f = MetaFlags::default();
    let mut seen = [false; 128];
    let mut error: Option<&'static str> = None;
    const BAD_TOKEN: &str = "CLIENT_ERROR bad token in command line format";
    for tok in tokens {
        let o = tok[0];
        if o >= 127 || seen[o as usize] {
            return Err("CLIENT_ERROR duplicate flag");
        }
        seen[o as usize] = true;
        let arg = &tok[1..];
        match o {
            b'b' => match base64_decode(key) {
                Some(k) => {
                    *key = k;
                    f.key_binary = true;
                }
                None => {
                    error = Some("CLIENT_ERROR error decoding key");
                    key.clear();
                    f.key_binary = true;
                }
            },
            b'N' => match strtol(arg) {
                Some(v) => f.vivify = Some(v),
                None => error = Some(BAD_TOKEN),
            },
            b'T' => match strtol(arg) {
                Some(v) => f.ttl = Some(v),
                None => error = Some(BAD_TOKEN),
            },
            b'R' => match strtol(arg) {
                Some(v) => f.recache = Some(v),
                None => error = Some(BAD_TOKEN),
            },
            b'l' | b'h' | b'O' | b'P' | b'L' | b'k' | b's' | b't' | b'c' | b'f' => {}
            b'v' => f.value = true,
            b'u' => f.no_update = true,
            b'q' => f.quiet = true,
            b'F' => match strtoul(arg) {
                Some(v) => f.client_flags = v,
                None => error = error.or(Some("CLIENT_ERROR bad command line format")),
            },
            b'C' => match strtoull(arg) {
                Some(v) => f.cas = Some(v),
                None => error = Some(BAD_TOKEN),
            },
            b'M' => {
                if tok.len() != 2 {
                    error = Some("CLIENT_ERROR incorrect length for M token");
                } else {
                    f.mode = Some(tok[1]);
                }
            }
            b'J' => match strtoull(arg) {
                Some(v) => f.initial = v,
                None => error = Some("CLIENT_ERROR invalid numeric initial value"),
            },
            b'D' => match strtoull(arg) {
                Some(v) => f.delta = Some(v),
                None => error = Some("CLIENT_ERROR invalid numeric delta value"),
            },
            b'I' => f.stale = true,
            _ => return Err("CLIENT_ERROR invalid flag"),
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(f),
    }
}

fn reply(s: &str) -> Parsed {
    Parsed::Request(Request::Reply(line(s, false)))
}

/// `s` + CRLF, or nothing when `quiet`.
pub fn line(s: &str, quiet: bool) -> Vec<u8> {
    if quiet {
        return Vec::new();
    }
    let mut v = Vec::with_capacity(s.len() + 2);
    v.extend_from_slice(s.as_bytes());
    v.extend_from_slice(b"\r\n");
    v
}

/// memcached's `set_noreply_maybe`: the last token is `noreply`.
fn noreply(t: &[&[u8]]) -> bool {
    t.last().is_some_and(|l| *l == b"noreply")
}

/// Splits a line at spaces (only spaces, like memcached), dropping empty tokens.
pub fn tokenize(l: &[u8]) -> Vec<&[u8]> {
    l.split(|&b| b == b' ').filter(|t| !t.is_empty()).collect()
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// C's `strtoull`/`strtoll` in base 10 on `s`, then memcached's `safe_*` rule: digits must
/// be followed by the end or whitespace. Returns the value as a wrapping u64 (a leading `-`
/// negates, as C does), whether a `-` appears, and `None` on no digits or overflow.
fn c_parse(s: &[u8], signed: bool) -> Option<(u64, bool)> {
    let mut i = 0;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut v: u64 = 0;
    let mut overflow = false;
    while i < s.len() && s[i].is_ascii_digit() {
        match v
            .checked_mul(10)
            .and_then(|x| x.checked_add(u64::from(s[i] - b'0')))
        {
            Some(x) => v = x,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start {
        return None;
    }
    if i < s.len() && !is_space(s[i]) {
        return None;
    }
    if signed {
        let limit = if neg { 1u64 << 63 } else { (1u64 << 63) - 1 };
        if overflow || v > limit {
            return None;
        }
    } else if overflow {
        return None;
    }
    let has_minus = s.contains(&b'-');
    Some((if neg { v.wrapping_neg() } else { v }, has_minus))
}

/// memcached's `safe_strtol` into an `int32_t`: parsed as a C `long`, then truncated.
pub fn strtol(s: &[u8]) -> Option<i32> {
    c_parse(s, true).map(|(v, _)| v as i64 as i32)
}

/// memcached's `safe_strtoul` into a `uint32_t`: parsed as a C `unsigned long` (a `-`
/// with a huge result is refused), then truncated.
pub fn strtoul(s: &[u8]) -> Option<u32> {
    strtoull(s).map(|v| v as u32)
}

/// memcached's `safe_strtoull`.
pub fn strtoull(s: &[u8]) -> Option<u64> {
    let (v, minus) = c_parse(s, false)?;
    if (v as i64) < 0 && minus {
        return None;
    }
    Some(v)
}

/// memcached's lenient base64 decoder: characters outside the alphabet are skipped, the
/// rest must be a whole number of 4-character groups; `None` when nothing decodes. (Hand
/// written because the `base64` crate refuses the stray characters memcached skips, and a
/// key must mean the same thing on both servers.)
pub fn base64_decode(src: &[u8]) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u8> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => 0,
            _ => return None,
        })
    }
    let count = src.iter().filter(|&&c| val(c).is_some()).count();
    if count == 0 || count % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(count / 4 * 3);
    let mut block = [0u8; 4];
    let mut n = 0;
    let mut pad = 0;
    for &c in src {
        let Some(v) = val(c) else { continue };
        if c == b'=' {
            pad += 1;
        }
        block[n] = v;
        n += 1;
        if n == 4 {
            out.push((block[0] << 2) | (block[1] >> 4));
            out.push((block[1] << 4) | (block[2] >> 2));
            out.push((block[2] << 6) | block[3]);
            n = 0;
            if pad > 0 {
                match pad {
                    1 => {
                        out.pop();
                    }
                    2 => {
                        out.truncate(out.len() - 2);
                    }
                    _ => return None,
                }
                break;
            }
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(out)
    }
}

/// Standard base64 with padding (how `k` returns a binary key).
pub fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Vec<Parsed> {
        let mut p = Parser::new(1024 * 1024);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match p.next(&mut buf) {
                Parsed::More => break,
                Parsed::Close(m) => {
                    out.push(Parsed::Close(m));
                    break;
                }
                other => out.push(other),
            }
        }
        out
    }

    #[test]
    fn numbers_follow_c_rules() {
        assert_eq!(strtol(b"10"), Some(10));
        assert_eq!(strtol(b"-1"), Some(-1));
        assert_eq!(strtol(b"+7"), Some(7));
        assert_eq!(
            strtol(b"4294967297"),
            Some(1),
            "a C long truncated to int32"
        );
        assert_eq!(strtol(b"1x"), None);
        assert_eq!(strtol(b""), None);
        assert_eq!(strtol(b"99999999999999999999"), None, "ERANGE");
        assert_eq!(strtoul(b"4294967296"), Some(0), "truncated to uint32");
        assert_eq!(strtoul(b"-1"), None);
        assert_eq!(strtoull(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(strtoull(b"18446744073709551616"), None);
        assert_eq!(strtoull(b"12\t"), Some(12));
    }

    #[test]
    fn base64_matches_memcached() {
        assert_eq!(base64_decode(b"Zm9v"), Some(b"foo".to_vec()));
        assert_eq!(base64_decode(b"Zm8="), Some(b"fo".to_vec()));
        assert_eq!(base64_decode(b"Zg=="), Some(b"f".to_vec()));
        assert_eq!(base64_decode(b"Zm9"), None);
        assert_eq!(
            base64_decode(b"Z!m9v"),
            Some(b"foo".to_vec()),
            "stray bytes skipped"
        );
        assert_eq!(base64_encode(b"\x00\xff"), "AP8=");
    }

    #[test]
    fn storage_waits_for_its_block_and_checks_the_terminator() {
        let got = parse_all(b"set k 5 0 3\r\nabc\r\nset k 0 0 3\r\nabcd\r\n");
        assert!(
            matches!(&got[0], Parsed::Request(Request::Store { data, flags: 5, .. }) if &data[..] == b"abc")
        );
        assert!(
            matches!(&got[1], Parsed::Request(Request::Reply(r)) if r == b"CLIENT_ERROR bad data chunk\r\n")
        );
        // The stray "\n" left over is an empty line: ERROR.
        assert!(matches!(&got[2], Parsed::Request(Request::Reply(r)) if r == b"ERROR\r\n"));
    }

    #[test]
    fn too_large_values_are_swallowed() {
        let mut p = Parser::new(1024);
        let mut buf = BytesMut::from(&b"set k 0 0 2000\r\n"[..]);
        buf.extend_from_slice(&[b'x'; 2000]);
        buf.extend_from_slice(b"\r\nget k\r\n");
        assert!(matches!(
            p.next(&mut buf),
            Parsed::Request(Request::TooLarge { unlink: true, .. })
        ));
        assert!(matches!(
            p.next(&mut buf),
            Parsed::Request(Request::Get { .. })
        ));
    }

    #[test]
    fn meta_errors() {
        let got = parse_all(b"mg k v v\r\nmg k X\r\nms k 2 T1 T2\r\nxx\r\nmn\r\n");
        let lines: Vec<Vec<u8>> = got
            .into_iter()
            .map(|p| match p {
                Parsed::Request(Request::Reply(r)) => r,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(lines[0], b"CLIENT_ERROR duplicate flag\r\n");
        assert_eq!(lines[1], b"CLIENT_ERROR invalid flag\r\n");
        assert_eq!(lines[2], b"CLIENT_ERROR duplicate flag\r\n");
        assert_eq!(lines[3], b"MN\r\n", "the refused ms block was swallowed");
    }

    #[test]
    fn runaway_lines_close() {
        let got = parse_all(&[b'x'; 3000]);
        assert!(matches!(got[0], Parsed::Close(None)));
    }
}
