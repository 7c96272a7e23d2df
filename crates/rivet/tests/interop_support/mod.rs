//! Helpers for the Go interop tests: building and driving the `bboltpeer` binary, comparing
//! dumps, and an in-memory model of a database's logical content.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rivet::{export, Bucket, Db, Options, Tx};

// ------------------------------------------------------------------------------------------
// The Go peer

/// The Go peer, built once per test process (see [`rivet_testkit::go_peer`]): `None` after
/// a loud message when Go is missing and `CI` is unset.
pub fn peer() -> Option<Peer> {
    rivet_testkit::go_peer("rivet").map(|bin| Peer { bin })
}

/// Gets the peer or returns from the test (see [`peer`]).
#[macro_export]
macro_rules! require_peer {
    () => {
        match $crate::interop_support::peer() {
            Some(p) => p,
            None => return,
        }
    };
}

/// How the peer's `gen` treats the freelist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreelistMode {
    Array,
    Hashmap,
    NoSync,
}

impl FreelistMode {
    pub const ALL: [FreelistMode; 3] = [
        FreelistMode::Array,
        FreelistMode::Hashmap,
        FreelistMode::NoSync,
    ];

    pub fn flags(self) -> &'static [&'static str] {
        match self {
            FreelistMode::Array => &["-freelist", "array"],
            FreelistMode::Hashmap => &["-freelist", "hashmap"],
            FreelistMode::NoSync => &["-no-freelist-sync"],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FreelistMode::Array => "array",
            FreelistMode::Hashmap => "hashmap",
            FreelistMode::NoSync => "no-freelist-sync",
        }
    }
}

/// A handle on the built peer binary.
pub struct Peer {
    bin: PathBuf,
}

fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "bboltpeer {}: {}\n--- stdout:\n{}\n--- stderr:\n{}",
        args.join(" "),
        out.status,
        truncate(&String::from_utf8_lossy(&out.stdout), 4000),
        truncate(&String::from_utf8_lossy(&out.stderr), 4000)
    )
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &s[..end], s.len())
}

impl Peer {
    /// Runs the peer and returns its output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.bin.display()))
    }

    /// Runs the peer with `stdin` as its standard input; returns its output, whatever the
    /// exit status.
    pub fn run_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        use std::io::Write as _;
        use std::process::Stdio;
        let mut child = Command::new(&self.bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.bin.display()));
        let mut pipe = child.stdin.take().expect("stdin");
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
        let out = child.wait_with_output().expect("wait for bboltpeer");
        let _ = writer.join();
        out
    }

    /// [`Peer::run_stdin`], panicking unless the peer exits 0; returns stdout.
    pub fn run_stdin_ok(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let out = self.run_stdin(args, stdin);
        assert!(out.status.success(), "{}", describe(args, &out));
        out.stdout
    }

    /// Runs the peer and panics unless it exits 0; returns stdout.
    pub fn run_ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert!(out.status.success(), "{}", describe(args, &out));
        out.stdout
    }

    /// `gen SCENARIO DB -page-size N` plus the freelist flags; returns the summary line.
    pub fn gen(&self, scenario: &str, db: &Path, page_size: usize, mode: FreelistMode) -> String {
        let ps = page_size.to_string();
        let mut args = vec!["gen", scenario, path_str(db), "-page-size", &ps];
        args.extend_from_slice(mode.flags());
        String::from_utf8(self.run_ok(&args)).unwrap()
    }

    /// `check DB`; panics with the problems unless it prints `OK`.
    pub fn check(&self, db: &Path, context: &str) {
        let args = ["check", path_str(db)];
        let out = self.run(&args);
        assert!(
            out.status.success() && out.stdout == b"OK\n",
            "{context}: Go bbolt check failed\n{}",
            describe(&args, &out)
        );
    }

    /// `dump DB`.
    pub fn dump(&self, db: &Path) -> Vec<u8> {
        self.run_ok(&["dump", path_str(db)])
    }

    /// `modify DB FLAGS...`.
    pub fn modify(&self, db: &Path, flags: &[&str]) {
        let mut args = vec!["modify", path_str(db)];
        args.extend_from_slice(flags);
        let out = self.run_ok(&args);
        assert_eq!(
            out, b"ok\n",
            "bboltpeer modify printed something unexpected"
        );
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

// ------------------------------------------------------------------------------------------
// The Rivet side

/// Opens `path` with the given page size and freelist option.
pub fn open(path: &Path, read_only: bool, no_freelist_sync: bool) -> Db {
    Db::open(
        path,
        Options {
            read_only,
            no_freelist_sync,
            ..Options::default()
        },
    )
    .unwrap_or_else(|e| panic!("Rivet could not open {}: {e}", path.display()))
}

/// Creates a new file with the given page size.
pub fn create(path: &Path, page_size: usize, no_freelist_sync: bool) -> Db {
    Db::open(
        path,
        Options {
            page_size: Some(page_size),
            no_freelist_sync,
            ..Options::default()
        },
    )
    .unwrap_or_else(|e| panic!("Rivet could not create {}: {e}", path.display()))
}

/// Rivet's export of `tx`.
pub fn export_tx(tx: &Tx) -> Vec<u8> {
    let mut out = Vec::new();
    let n = export::write_jsonl(tx, &mut out).expect("Rivet export failed");
    assert_eq!(n as usize, out.iter().filter(|&&b| b == b'\n').count());
    out
}

/// Rivet's export of the latest committed state.
pub fn export_db(db: &Db) -> Vec<u8> {
    let tx = db.begin_read().expect("begin_read");
    export_tx(&tx)
}

/// Panics with every problem unless Rivet's `check` of the committed state is clean.
pub fn assert_rivet_clean(db: &Db, context: &str) {
    let tx = db.begin_read().expect("begin_read");
    let problems = tx.check();
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().take(50).map(|p| format!("  {p}")).collect();
        panic!(
            "{context}: Rivet check reported {} problem(s) (txid {}):\n{}",
            problems.len(),
            tx.id(),
            list.join("\n")
        );
    }
}

/// Panics with the first differing line unless two dumps are identical.
pub fn assert_same_dump(context: &str, what_a: &str, a: &[u8], what_b: &str, b: &[u8]) {
    if a == b {
        return;
    }
    let la: Vec<&[u8]> = a.split(|&c| c == b'\n').collect();
    let lb: Vec<&[u8]> = b.split(|&c| c == b'\n').collect();
    let i = la
        .iter()
        .zip(&lb)
        .position(|(x, y)| x != y)
        .unwrap_or(la.len().min(lb.len()));
    let show = |lines: &[&[u8]], i: usize| -> String {
        let lo = i.saturating_sub(2);
        let hi = (i + 3).min(lines.len());
        (lo..hi)
            .map(|j| {
                format!(
                    "  {}{:>7}: {}",
                    if j == i { '>' } else { ' ' },
                    j + 1,
                    truncate(&String::from_utf8_lossy(lines[j]), 300)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    panic!(
        "{context}: dumps differ ({what_a}: {} lines, {} bytes; {what_b}: {} lines, {} bytes); \
         first difference at line {}:\n{what_a}:\n{}\n{what_b}:\n{}",
        la.len() - 1,
        a.len(),
        lb.len() - 1,
        b.len(),
        i + 1,
        show(&la, i),
        show(&lb, i)
    );
}

// ------------------------------------------------------------------------------------------
// Deterministic data

/// splitmix64: a tiny deterministic generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// The peer's `patternBytes`: `n` printable bytes derived from `seed` (FNV-1a, xorshift).
pub fn pattern_bytes(seed: &str, n: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in seed.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut x = h | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % ALPHABET.len() as u64) as usize]
        })
        .collect()
}

// ------------------------------------------------------------------------------------------
// The model

/// One bucket of the model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MBucket {
    pub sequence: u64,
    pub entries: BTreeMap<Vec<u8>, MEntry>,
}

/// An entry of a model bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MEntry {
    Value(Vec<u8>),
    Bucket(MBucket),
}

/// The logical content of a database: the root's entries are the top-level buckets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub root: MBucket,
}

fn encode_path(path: &[Vec<u8>], out: &mut String) {
    out.push_str("{\"bucket\":[");
    for (i, p) in path.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        export::encode_bytes(p, out);
    }
    out.push(']');
}

impl MBucket {
    fn dump_into(&self, path: &mut Vec<Vec<u8>>, out: &mut String) {
        encode_path(path, out);
        if self.sequence != 0 {
            out.push_str(&format!(",\"sequence\":{}", self.sequence));
        }
        out.push_str("}\n");
        for (k, e) in &self.entries {
            match e {
                MEntry::Bucket(b) => {
                    path.push(k.clone());
                    b.dump_into(path, out);
                    path.pop();
                }
                MEntry::Value(v) => {
                    encode_path(path, out);
                    out.push_str(",\"key\":");
                    export::encode_bytes(k, out);
                    out.push_str(",\"value\":");
                    export::encode_bytes(v, out);
                    out.push_str("}\n");
                }
            }
        }
    }

    fn load(b: &Bucket<'_>) -> MBucket {
        let mut m = MBucket {
            sequence: b.sequence(),
            entries: BTreeMap::new(),
        };
        for e in b.iter() {
            let e = e.expect("iterating");
            let entry = match e.value() {
                Some(v) => MEntry::Value(v.to_vec()),
                None => {
                    let sub = b
                        .bucket(e.key())
                        .expect("open sub-bucket")
                        .expect("sub-bucket exists");
                    MEntry::Bucket(MBucket::load(&sub))
                }
            };
            m.entries.insert(e.key().to_vec(), entry);
        }
        m
    }

    /// Every bucket path below this one (this one first), depth-first in key order.
    fn paths(&self, path: &mut Vec<Vec<u8>>, out: &mut Vec<Vec<Vec<u8>>>) {
        out.push(path.clone());
        for (k, e) in &self.entries {
            if let MEntry::Bucket(b) = e {
                path.push(k.clone());
                b.paths(path, out);
                path.pop();
            }
        }
    }

    /// Plain keys in order.
    pub fn plain_keys(&self) -> Vec<Vec<u8>> {
        self.entries
            .iter()
            .filter(|(_, e)| matches!(e, MEntry::Value(_)))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Sub-bucket names in order.
    pub fn bucket_names(&self) -> Vec<Vec<u8>> {
        self.entries
            .iter()
            .filter(|(_, e)| matches!(e, MEntry::Bucket(_)))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

impl Model {
    /// The canonical dump of the model.
    pub fn dump(&self) -> Vec<u8> {
        let mut out = String::new();
        let mut path = Vec::new();
        for (k, e) in &self.root.entries {
            let MEntry::Bucket(b) = e else {
                panic!("model root holds a plain key")
            };
            path.push(k.clone());
            b.dump_into(&mut path, &mut out);
            path.pop();
        }
        out.into_bytes()
    }

    /// Reads the whole content visible to `tx`.
    pub fn load(tx: &Tx) -> Model {
        Model {
            root: MBucket::load(&tx.root()),
        }
    }

    /// Every bucket path, depth-first in key order (top-level buckets first in their subtree).
    pub fn bucket_paths(&self) -> Vec<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut path = Vec::new();
        for (k, e) in &self.root.entries {
            if let MEntry::Bucket(b) = e {
                path.push(k.clone());
                b.paths(&mut path, &mut out);
                path.pop();
            }
        }
        out
    }

    pub fn bucket_mut(&mut self, path: &[Vec<u8>]) -> &mut MBucket {
        let mut b = &mut self.root;
        for p in path {
            b = match b.entries.get_mut(p) {
                Some(MEntry::Bucket(sub)) => sub,
                _ => panic!("model has no bucket {path:?}"),
            };
        }
        b
    }

    pub fn bucket_ref(&self, path: &[Vec<u8>]) -> &MBucket {
        let mut b = &self.root;
        for p in path {
            b = match b.entries.get(p) {
                Some(MEntry::Bucket(sub)) => sub,
                _ => panic!("model has no bucket {path:?}"),
            };
        }
        b
    }

    /// What the peer's `modify` does, applied to the model (see tests/interop/README.md).
    pub fn apply_go_modify(&mut self) {
        for path in self.bucket_paths() {
            let b = self.bucket_mut(&path);
            let doomed: Vec<Vec<u8>> = b
                .plain_keys()
                .into_iter()
                .enumerate()
                .filter(|(i, _)| i % 3 == 2)
                .map(|(_, k)| k)
                .collect();
            for k in doomed {
                b.entries.remove(&k);
            }
            b.entries
                .insert(b"go-mod".to_vec(), MEntry::Value(b"value from go".to_vec()));
            b.sequence = b.sequence.wrapping_add(1);
        }
        let added = self
            .root
            .entries
            .entry(b"go-added".to_vec())
            .or_insert_with(|| MEntry::Bucket(MBucket::default()));
        let MEntry::Bucket(added) = added else {
            panic!("go-added is a plain key")
        };
        for i in 0..500 {
            let k = format!("k{i:05}");
            let v = pattern_bytes(&format!("go-added/{k}"), 100);
            added.entries.insert(k.into_bytes(), MEntry::Value(v));
        }
        let inner = added
            .entries
            .entry(b"inner".to_vec())
            .or_insert_with(|| MEntry::Bucket(MBucket::default()));
        let MEntry::Bucket(inner) = inner else {
            panic!("go-added/inner is a plain key")
        };
        inner
            .entries
            .insert(b"x".to_vec(), MEntry::Value(b"y".to_vec()));
    }
}

/// Applies operations to a Rivet write transaction and to a model at the same time.
pub struct Ops<'a, 'tx> {
    pub tx: &'tx Tx,
    pub model: &'a mut Model,
}

/// Builds a bucket path from byte-string-like elements: `p![b"a", "b", vec]`.
#[macro_export]
macro_rules! p {
    ($($e:expr),* $(,)?) => {
        &[$(AsRef::<[u8]>::as_ref(&$e).to_vec()),*][..]
    };
}

impl<'tx> Ops<'_, 'tx> {
    pub fn bucket(&self, path: &[Vec<u8>]) -> Bucket<'tx> {
        let mut b = self.tx.root();
        for p in path {
            b = b
                .bucket(p)
                .unwrap_or_else(|e| panic!("opening {path:?}: {e}"))
                .unwrap_or_else(|| panic!("Rivet has no bucket {path:?}"));
        }
        b
    }

    pub fn create_bucket(&mut self, path: &[Vec<u8>]) {
        let (name, parent) = path.split_last().expect("non-empty path");
        self.bucket(parent)
            .create_bucket(name)
            .unwrap_or_else(|e| panic!("create_bucket {path:?}: {e}"));
        let old = self
            .model
            .bucket_mut(parent)
            .entries
            .insert(name.clone(), MEntry::Bucket(MBucket::default()));
        assert!(old.is_none(), "model already had {path:?}");
    }

    pub fn create_bucket_if_not_exists(&mut self, path: &[Vec<u8>]) {
        let (name, parent) = path.split_last().expect("non-empty path");
        self.bucket(parent)
            .create_bucket_if_not_exists(name)
            .unwrap_or_else(|e| panic!("create_bucket_if_not_exists {path:?}: {e}"));
        self.model
            .bucket_mut(parent)
            .entries
            .entry(name.clone())
            .or_insert_with(|| MEntry::Bucket(MBucket::default()));
    }

    pub fn delete_bucket(&mut self, path: &[Vec<u8>]) {
        let (name, parent) = path.split_last().expect("non-empty path");
        self.bucket(parent)
            .delete_bucket(name)
            .unwrap_or_else(|e| panic!("delete_bucket {path:?}: {e}"));
        let old = self.model.bucket_mut(parent).entries.remove(name);
        assert!(
            matches!(old, Some(MEntry::Bucket(_))),
            "model had no bucket {path:?}"
        );
    }

    pub fn put(&mut self, path: &[Vec<u8>], key: &[u8], value: &[u8]) {
        self.bucket(path)
            .put(key, value)
            .unwrap_or_else(|e| panic!("put {path:?} {:?}: {e}", String::from_utf8_lossy(key)));
        self.model
            .bucket_mut(path)
            .entries
            .insert(key.to_vec(), MEntry::Value(value.to_vec()));
    }

    pub fn delete(&mut self, path: &[Vec<u8>], key: &[u8]) {
        let existed = self
            .bucket(path)
            .delete(key)
            .unwrap_or_else(|e| panic!("delete {path:?} {:?}: {e}", String::from_utf8_lossy(key)));
        let old = self.model.bucket_mut(path).entries.remove(key);
        assert_eq!(
            existed,
            old.is_some(),
            "delete says whether the key existed"
        );
        assert!(
            !matches!(old, Some(MEntry::Bucket(_))),
            "deleted a bucket as a key"
        );
    }

    /// Walks `path` with a cursor and deletes, through the cursor, every plain key whose
    /// 0-based index among the plain keys satisfies `doomed`. Returns how many were deleted.
    pub fn cursor_delete(&mut self, path: &[Vec<u8>], doomed: impl Fn(usize) -> bool) -> usize {
        let b = self.bucket(path);
        let mut c = b.cursor();
        let mut entry = c.first().expect("cursor first");
        let (mut idx, mut deleted) = (0, 0);
        while let Some(e) = entry {
            if !e.is_bucket() {
                if doomed(idx) {
                    let key = e.key().to_vec();
                    c.delete()
                        .unwrap_or_else(|err| panic!("cursor delete {path:?} {key:?}: {err}"));
                    let old = self.model.bucket_mut(path).entries.remove(&key);
                    assert!(
                        matches!(old, Some(MEntry::Value(_))),
                        "cursor deleted {key:?}"
                    );
                    deleted += 1;
                }
                idx += 1;
            }
            entry = c.next().expect("cursor next");
        }
        assert_eq!(
            idx,
            self.model.bucket_ref(path).plain_keys().len() + deleted,
            "cursor walk of {path:?} saw a different number of plain keys than the model"
        );
        deleted
    }

    pub fn set_sequence(&mut self, path: &[Vec<u8>], n: u64) {
        self.bucket(path)
            .set_sequence(n)
            .unwrap_or_else(|e| panic!("set_sequence {path:?}: {e}"));
        self.model.bucket_mut(path).sequence = n;
    }

    pub fn next_sequence(&mut self, path: &[Vec<u8>]) -> u64 {
        let got = self
            .bucket(path)
            .next_sequence()
            .unwrap_or_else(|e| panic!("next_sequence {path:?}: {e}"));
        let m = self.model.bucket_mut(path);
        m.sequence = m.sequence.wrapping_add(1);
        assert_eq!(got, m.sequence, "next_sequence {path:?}");
        got
    }
}

/// Runs `f` in one Rivet write transaction, applying the same changes to `model`; the model
/// keeps the changes only when the transaction commits.
pub fn update(db: &Db, model: &mut Model, f: impl FnOnce(&mut Ops<'_, '_>)) {
    let mut scratch = model.clone();
    db.update(|tx| {
        let mut ops = Ops {
            tx,
            model: &mut scratch,
        };
        f(&mut ops);
        Ok::<_, rivet::Error>(())
    })
    .unwrap_or_else(|e| panic!("Rivet commit failed: {e}"));
    *model = scratch;
}

// ------------------------------------------------------------------------------------------
// Reading the file directly

/// What the newest valid meta page and the freelist page header it points to say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreelistHeader {
    pub txid: u64,
    pub page_size: u32,
    /// `None` when the freelist is not synced (`0xffffffffffffffff`).
    pub pgid: Option<u64>,
    pub header_count: u16,
    /// The real count (the first u64 when `header_count` is 0xFFFF).
    pub count: u64,
    pub overflow: u32,
}

fn fnv1a64(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Reads the newest valid meta page of `path` and the header of its freelist page.
pub fn read_freelist_header(path: &Path) -> FreelistHeader {
    let data = std::fs::read(path).unwrap();
    let u16_at = |o: usize| u16::from_le_bytes(data[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap());
    let page_size = u32_at(24) as usize;
    let mut best: Option<(u64, usize)> = None;
    for i in 0..2 {
        let base = i * page_size;
        let ok = u16_at(base + 8) == 0x04
            && u32_at(base + 16) == 0xED0C_DAED
            && u32_at(base + 20) == 2
            && fnv1a64(&data[base + 16..base + 72]) == u64_at(base + 72);
        let txid = u64_at(base + 64);
        if ok && best.is_none_or(|(t, _)| txid > t) {
            best = Some((txid, base));
        }
    }
    let (txid, base) = best.expect("no valid meta page");
    let fl = u64_at(base + 48);
    let mut h = FreelistHeader {
        txid,
        page_size: page_size as u32,
        pgid: None,
        header_count: 0,
        count: 0,
        overflow: 0,
    };
    if fl != u64::MAX {
        let p = fl as usize * page_size;
        assert_eq!(u16_at(p + 8), 0x10, "page {fl} is not a freelist page");
        h.pgid = Some(fl);
        h.header_count = u16_at(p + 10);
        h.overflow = u32_at(p + 12);
        h.count = if h.header_count == 0xffff {
            u64_at(p + 16)
        } else {
            u64::from(h.header_count)
        };
    }
    h
}
