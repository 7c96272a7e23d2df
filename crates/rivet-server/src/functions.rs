//! Redis 7 functions: FUNCTION LOAD|LIST|DELETE|FLUSH|DUMP|RESTORE|STATS|KILL|HELP and
//! FCALL/FCALL_RO.
//!
//! A library is Lua code starting with a `#!lua name=<lib>` line that calls
//! `redis.register_function` while it loads. The code of every library is kept in the data
//! file, in the sub-bucket `functions` of the metadata bucket `rivet-server` (library name →
//! code), written by the writer in the command's transaction, so FUNCTION LOAD is durable
//! when acknowledged. At startup the libraries are read back and loaded again (in a scratch
//! VM for their metadata; the writer's VM loads them when it starts). The metadata (names,
//! flags, descriptions) is kept in [`Libraries`]; the Lua callbacks live in the writer's VM
//! (see [`crate::scripting`]).
//!
//! FUNCTION DUMP's payload is rivet-server's own: `RVFN`, a version byte, then each
//! library's code as a 4-byte big-endian length and the bytes, then the XXH3 of all that
//! (8 bytes, big-endian). It is not Redis's RDB-based payload.

use std::collections::BTreeMap;

use bytes::Bytes;
use mlua::{Function, Lua, MultiValue, Table, Value};

use crate::commands::args::{err, is, lower};
use crate::commands::{CmdResult, Ctx};
use crate::resp::{Reply, OK};
use crate::state::lock;
use crate::store::META_BUCKET;

/// The sub-bucket of `rivet-server` that holds library code.
pub const FUNCTIONS_BUCKET: &[u8] = b"functions";

/// Script flag: the script does not write (`no-writes`).
pub const NO_WRITES: u32 = 1;
/// Script flag `allow-oom`.
pub const ALLOW_OOM: u32 = 1 << 1;
/// Script flag `allow-stale`.
pub const ALLOW_STALE: u32 = 1 << 2;
/// Script flag `no-cluster`.
pub const NO_CLUSTER: u32 = 1 << 3;
/// Script flag `allow-cross-slot-keys`.
pub const ALLOW_CROSS_SLOT: u32 = 1 << 4;

/// The flag names, in Redis's order.
pub const FLAG_NAMES: [(&str, u32); 5] = [
    ("no-writes", NO_WRITES),
    ("allow-oom", ALLOW_OOM),
    ("allow-stale", ALLOW_STALE),
    ("no-cluster", NO_CLUSTER),
    ("allow-cross-slot-keys", ALLOW_CROSS_SLOT),
];

/// Parses one flag name.
pub fn flag(name: &[u8]) -> Option<u32> {
    FLAG_NAMES
        .iter()
        .find(|(n, _)| n.as_bytes() == name)
        .map(|&(_, f)| f)
}

/// One registered function's metadata.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    /// Its description, if given.
    pub desc: Option<String>,
    /// Its flags.
    pub flags: u32,
}

/// One library.
#[derive(Debug, Clone)]
pub struct Library {
    /// Its code, shebang included.
    pub code: Bytes,
    /// Its functions by name.
    pub functions: BTreeMap<String, FunctionInfo>,
}

/// Every loaded library.
#[derive(Debug, Default, Clone)]
pub struct Libraries {
    /// Libraries by name.
    pub libs: BTreeMap<String, Library>,
}

impl Libraries {
    /// The library, registered name and metadata of function `name`.
    pub fn function(&self, name: &str) -> Option<(&str, &str, &FunctionInfo)> {
        // Function names are case-insensitive, as in Redis.
        self.libs.iter().find_map(|(l, lib)| {
            lib.functions
                .iter()
                .find(|(f, _)| f.eq_ignore_ascii_case(name))
                .map(|(f, info)| (l.as_str(), f.as_str(), info))
        })
    }

    fn function_count(&self) -> usize {
        self.libs.values().map(|l| l.functions.len()).sum()
    }
}

/// A function registered while a library loaded.
pub struct Registered {
    /// The function's name.
    pub name: String,
    /// Its metadata.
    pub info: FunctionInfo,
    /// The Lua callback.
    pub callback: Function,
}

/// A library parsed and run: its name and functions.
pub struct Loaded {
    /// The library's name.
    pub name: String,
    /// Its code.
    pub code: Bytes,
    /// Its functions.
    pub functions: Vec<Registered>,
}

impl Loaded {
    /// Its metadata.
    pub fn library(&self) -> Library {
        Library {
            code: self.code.clone(),
            functions: self
                .functions
                .iter()
                .map(|r| (r.name.clone(), r.info.clone()))
                .collect(),
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

const NAME_ERR: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// Splits a shebang line into words like Redis's `sdssplitargs`: whitespace separates,
/// and double or single quotes group (and are removed).
pub fn split_args(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for ch in line.chars() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => cur.push(ch),
            None if ch == '"' || ch == '\'' => {
                quote = Some(ch);
                in_word = true;
            }
            None if ch.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(ch);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// Parses the `#!<engine> name=<lib>` line: the library name, or the error reply text.
pub fn parse_metadata(code: &[u8]) -> Result<String, String> {
    if !code.starts_with(b"#!") {
        return Err("ERR Missing library metadata".into());
    }
    let Some(end) = code.iter().position(|&b| b == b'\n') else {
        return Err("ERR Invalid library metadata".into());
    };
    let line = String::from_utf8_lossy(&code[..end]);
    let parts = split_args(&line);
    let mut parts = parts.iter().map(String::as_str);
    let engine = parts
        .next()
        .unwrap_or("#!")
        .trim_start_matches("#!")
        .to_string();
    let mut name: Option<String> = None;
    for p in parts {
        if p.len() >= 5 && p[..5].eq_ignore_ascii_case("name=") {
            if name.is_some() {
                return Err(
                    "ERR Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(p[5..].to_string());
        } else {
            return Err(format!("ERR Invalid metadata value given: {p}"));
        }
    }
    let Some(name) = name else {
        return Err("ERR Library name was not given".into());
    };
    if !valid_name(&name) {
        return Err(format!("ERR {NAME_ERR}"));
    }
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("ERR Engine '{engine}' not found"));
    }
    Ok(name)
}

/// The code as compiled: the shebang line becomes a comment, so line numbers stay.
pub fn lua_source(code: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(code.len() + 2);
    v.extend_from_slice(b"--");
    v.extend_from_slice(code);
    v
}

/// The innermost message of an mlua error (Lua's own text for errors raised in Lua,
/// ours for errors raised by Rust callbacks).
pub fn lua_error_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => lua_error_message(cause),
        // Lua errors raised through mlua carry a traceback after the message.
        mlua::Error::RuntimeError(m) => m
            .split("\nstack traceback:")
            .next()
            .unwrap_or(m)
            .to_string(),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::ExternalError(x) => x.to_string(),
        other => other.to_string(),
    }
}

fn read_flags(v: &Value) -> Result<u32, String> {
    let Value::Table(t) = v else {
        return Err(
            "flags argument to redis.register_function must be a table representing function flags"
                .into(),
        );
    };
    let mut flags = 0;
    for i in 1.. {
        match t.raw_get::<Value>(i).map_err(|e| e.to_string())? {
            Value::Nil => break,
            Value::String(s) => {
                flags |= flag(&s.as_bytes()).ok_or("unknown flag given")?;
            }
            _ => return Err("unknown flag given".into()),
        }
    }
    Ok(flags)
}

/// Reads `redis.register_function`'s arguments (positional or one table of named ones).
fn read_registration(args: MultiValue) -> Result<(String, Option<String>, u32, Function), String> {
    let args: Vec<Value> = args.into_iter().collect();
    match args.as_slice() {
        [Value::Table(t)] => {
            let mut name = None;
            let mut desc = None;
            let mut flags = 0;
            let mut cb = None;
            for pair in t.clone().pairs::<Value, Value>() {
                let (k, v) = pair.map_err(|e| e.to_string())?;
                let Value::String(k) = k else {
                    return Err(
                        "named argument key given to redis.register_function is not a string"
                            .into(),
                    );
                };
                match &*k.as_bytes() {
                    b"function_name" => match v {
                        Value::String(s) => name = Some(s.to_string_lossy().to_string()),
                        _ => {
                            return Err("function_name argument given to redis.register_function must be a string".into())
                        }
                    },
                    b"description" => match v {
                        Value::String(s) => desc = Some(s.to_string_lossy().to_string()),
                        _ => {
                            return Err("description argument given to redis.register_function must be a string".into())
                        }
                    },
                    b"callback" => match v {
                        Value::Function(f) => cb = Some(f),
                        _ => {
                            return Err("callback argument given to redis.register_function must be a function".into())
                        }
                    },
                    b"flags" => flags = read_flags(&v)?,
                    _ => return Err("unknown argument given to redis.register_function".into()),
                }
            }
            let name = name.ok_or("redis.register_function must get a function name argument")?;
            let cb = cb.ok_or("redis.register_function must get a callback argument")?;
            Ok((name, desc, flags, cb))
        }
        [_] => Err("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).".into()),
        [n, f] => {
            let Value::String(n) = n else {
                return Err("first argument to redis.register_function must be a string".into());
            };
            let Value::Function(f) = f else {
                return Err("second argument to redis.register_function must be a function".into());
            };
            Ok((n.to_string_lossy().to_string(), None, 0, f.clone()))
        }
        _ => Err("wrong number of arguments to redis.register_function".into()),
    }
}

thread_local! {
    /// The functions registered by the library being loaded (None outside FUNCTION LOAD).
    static LOADING: std::cell::RefCell<Option<Vec<Registered>>> = const { std::cell::RefCell::new(None) };
    /// Unix ms after which the library being loaded is stopped (0: none loading).
    static LOAD_DEADLINE: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

/// How long a library's code may run while it loads (Redis's 500 ms).
const LOAD_TIMEOUT_MS: i64 = 500;

/// True when a library being loaded has run past its time (checked by the VM hook).
pub fn load_timed_out() -> bool {
    LOAD_DEADLINE.with(|d| {
        let t = d.get();
        t != 0 && crate::state::now_ms() > t
    })
}

/// `redis.register_function` of the load-time API.
fn register_function(_: &Lua, args: MultiValue) -> mlua::Result<()> {
    let loading = LOADING.with(|l| l.borrow().is_some());
    if !loading {
        return Err(mlua::Error::RuntimeError(
            "redis.register_function can only be called on FUNCTION LOAD command".into(),
        ));
    }
    let (fname, desc, flags, cb) = read_registration(args).map_err(mlua::Error::RuntimeError)?;
    if !valid_name(&fname) {
        return Err(mlua::Error::RuntimeError(NAME_ERR.into()));
    }
    LOADING.with(|l| {
        let mut l = l.borrow_mut();
        let r = l.get_or_insert_with(Vec::new);
        if r.iter().any(|x| x.name.eq_ignore_ascii_case(&fname)) {
            return Err(mlua::Error::RuntimeError(
                "Function already exists in the library".into(),
            ));
        }
        r.push(Registered {
            name: fname,
            info: FunctionInfo { desc, flags },
            callback: cb,
        });
        Ok(())
    })
}

/// Lua code making the function environment: globals read through to `_G` (or, while a
/// library loads, to the load-time API only), and never written.
const FENV: &str = r#"
local env, mt = {}, {}
mt.__newindex = function() error("Attempt to modify a readonly table", 2) end
mt.__metatable = false
setmetatable(env, mt)
local function strict(t)
  setmetatable(t, {
    __index = function(_, k)
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end,
    __newindex = function() error("Attempt to modify a readonly table", 2) end,
    __metatable = false,
  })
  return t
end
return env, mt, strict
"#;

/// Sets up the function environment in `lua` (once per VM).
pub fn init_vm(lua: &Lua) -> mlua::Result<()> {
    let (env, mt, strict): (Table, Table, Function) =
        lua.load(FENV).set_name("@bootstrap").call(())?;
    let globals: Table = lua.named_registry_value("__P")?;
    mt.raw_set("__index", globals)?;
    lua.set_named_registry_value("__fenv", env)?;
    lua.set_named_registry_value("__fenv_mt", mt)?;
    lua.set_named_registry_value("__fstrict", strict)?;
    lua.set_named_registry_value("__functions", lua.create_table()?)?;
    Ok(())
}

/// Runs a library's code in `lua` with the load-time API: its name and registered
/// functions, or the error reply text. Changes nothing in `lua` that outlives the call
/// other than the callbacks it returns.
pub fn load(lua: &Lua, code: &Bytes) -> Result<Loaded, String> {
    let name = parse_metadata(code)?;
    let vm_err = |e: mlua::Error| format!("ERR {e}");
    let src = lua_source(code);
    let chunk = match lua.load(&src).set_name("@user_function").into_function() {
        Ok(f) => f,
        Err(e) => {
            return Err(format!(
                "ERR Error compiling function: {}",
                lua_error_message(&e)
            ))
        }
    };
    let env: Table = lua.named_registry_value("__fenv").map_err(vm_err)?;
    let mt: Table = lua.named_registry_value("__fenv_mt").map_err(vm_err)?;
    let strict: Function = lua.named_registry_value("__fstrict").map_err(vm_err)?;
    let setfenv: Function = lua.named_registry_value("__setfenv").map_err(vm_err)?;
    setfenv.call::<()>((chunk.clone(), env)).map_err(vm_err)?;
    LOADING.with(|l| *l.borrow_mut() = Some(Vec::new()));
    LOAD_DEADLINE.with(|d| d.set(crate::state::now_ms() + LOAD_TIMEOUT_MS));
    let run = (|| -> mlua::Result<mlua::Result<()>> {
        let redis = lua.create_table()?;
        redis.raw_set("register_function", lua.create_function(register_function)?)?;
        let real: Table = lua.named_registry_value("__redis")?;
        for k in [
            "log",
            "LOG_DEBUG",
            "LOG_VERBOSE",
            "LOG_NOTICE",
            "LOG_WARNING",
            "REDIS_VERSION",
            "REDIS_VERSION_NUM",
        ] {
            redis.raw_set(k, real.raw_get::<Value>(k)?)?;
        }
        let api = lua.create_table()?;
        api.raw_set("redis", strict.call::<Table>(redis)?)?;
        let api = strict.call::<Table>(api)?;
        mt.raw_set("__index", api)?;
        let out = chunk.call::<()>(());
        mt.raw_set("__index", lua.named_registry_value::<Table>("__P")?)?;
        Ok(out)
    })();
    LOAD_DEADLINE.with(|d| d.set(0));
    let registered = LOADING.with(|l| l.borrow_mut().take()).unwrap_or_default();
    match run {
        Ok(Ok(())) => {}
        Ok(Err(e)) | Err(e) => {
            if let Ok(p) = lua.named_registry_value::<Table>("__P") {
                let _ = mt.raw_set("__index", p);
            }
            return Err(format!(
                "ERR Error registering functions: ERR {}",
                lua_error_message(&e)
            ));
        }
    }
    let functions = registered;
    if functions.is_empty() {
        return Err("ERR No functions registered".into());
    }
    Ok(Loaded {
        name,
        code: code.clone(),
        functions,
    })
}

/// Makes `loaded`'s callbacks callable in `lua` (and forgets those of `removed` libraries).
pub fn link(lua: &Lua, removed: &[Library], loaded: &[Loaded]) -> mlua::Result<()> {
    let t: Table = lua.named_registry_value("__functions")?;
    for lib in removed {
        for f in lib.functions.keys() {
            t.raw_set(f.to_ascii_lowercase(), Value::Nil)?;
        }
    }
    for l in loaded {
        for r in &l.functions {
            t.raw_set(r.name.to_ascii_lowercase(), r.callback.clone())?;
        }
    }
    Ok(())
}

/// The callback of function `name` in `lua`.
pub fn callback(lua: &Lua, name: &str) -> mlua::Result<Option<Function>> {
    let t: Table = lua.named_registry_value("__functions")?;
    t.raw_get(name.to_ascii_lowercase())
}

/// Reads the stored libraries' code from the data file.
pub fn stored(tx: &rivet::Tx) -> Result<Vec<Bytes>, rivet::Error> {
    let mut out = Vec::new();
    let Some(meta) = tx.bucket(META_BUCKET)? else {
        return Ok(out);
    };
    let Some(b) = meta.bucket(FUNCTIONS_BUCKET)? else {
        return Ok(out);
    };
    b.for_each(|_, v| {
        if let Some(v) = v {
            out.push(Bytes::copy_from_slice(v));
        }
        Ok(())
    })?;
    Ok(out)
}

/// Loads the stored libraries' metadata in a scratch VM (at startup).
pub fn load_stored(tx: &rivet::Tx) -> Result<Libraries, String> {
    let codes = stored(tx).map_err(|e| e.to_string())?;
    let mut libs = Libraries::default();
    if codes.is_empty() {
        return Ok(libs);
    }
    let lua = crate::scripting::scratch_vm().map_err(|e| e.to_string())?;
    for code in codes {
        let l = load(&lua, &code).map_err(|e| format!("stored function library: {e}"))?;
        libs.libs.insert(l.name.clone(), l.library());
    }
    Ok(libs)
}

fn persist(ctx: &Ctx<'_>, removed: &[String], added: &[Loaded]) -> Result<(), rivet::Error> {
    let meta = ctx
        .tx
        .bucket(META_BUCKET)?
        .ok_or_else(|| rivet::Error::corrupted(0, "bucket rivet-server is missing"))?;
    let b = meta.create_bucket_if_not_exists(FUNCTIONS_BUCKET)?;
    for name in removed {
        b.delete(name.as_bytes())?;
    }
    for l in added {
        b.put(l.name.as_bytes(), &l.code)?;
    }
    Ok(())
}

/// Loads and links new libraries into the writer's VM and the file: the common end of
/// LOAD and RESTORE. `replace` allows replacing libraries of the same name; `flush` drops
/// every library first.
fn install(
    ctx: &mut Ctx<'_>,
    lua: &Lua,
    codes: &[Bytes],
    replace: bool,
    flush: bool,
    restore: bool,
) -> Result<Result<Vec<String>, String>, rivet::Error> {
    let current = lock(&ctx.state.scripts.libs).clone();
    let mut loaded = Vec::new();
    for code in codes {
        // Redis checks the name before running the code.
        let name = match parse_metadata(code) {
            Ok(n) => n,
            Err(e) => return Ok(Err(e)),
        };
        if !flush && !replace && current.libs.contains_key(&name) {
            // FUNCTION LOAD quotes the name, RESTORE does not (as Redis).
            return Ok(Err(if codes.len() == 1 && !restore {
                format!("ERR Library '{name}' already exists")
            } else {
                format!("ERR Library {name} already exists")
            }));
        }
        match load(lua, code) {
            Ok(l) => loaded.push(l),
            Err(e) => return Ok(Err(e)),
        }
    }
    let mut next = if flush {
        Libraries::default()
    } else {
        current.clone()
    };
    let mut removed_names: Vec<String> = if flush {
        current.libs.keys().cloned().collect()
    } else {
        Vec::new()
    };
    for l in &loaded {
        if next.libs.remove(&l.name).is_some() && !flush {
            removed_names.push(l.name.clone());
        }
    }
    for (i, l) in loaded.iter().enumerate() {
        for r in &l.functions {
            if next.function(&r.name).is_some()
                || loaded[..i].iter().any(|o| {
                    o.functions
                        .iter()
                        .any(|x| x.name.eq_ignore_ascii_case(&r.name))
                })
            {
                return Ok(Err(format!("ERR Function {} already exists", r.name)));
            }
        }
    }
    for l in &loaded {
        next.libs.insert(l.name.clone(), l.library());
    }
    persist(ctx, &removed_names, &loaded)?;
    let removed: Vec<Library> = removed_names
        .iter()
        .filter_map(|n| current.libs.get(n).cloned())
        .collect();
    if let Err(e) = link(lua, &removed, &loaded) {
        return Err(rivet::Error::Callback(e.to_string()));
    }
    *lock(&ctx.state.scripts.libs) = next;
    Ok(Ok(loaded.into_iter().map(|l| l.name).collect()))
}

fn dump(libs: &Libraries) -> Vec<u8> {
    let mut out = b"RVFN\x01".to_vec();
    for l in libs.libs.values() {
        out.extend_from_slice(&(l.code.len() as u32).to_be_bytes());
        out.extend_from_slice(&l.code);
    }
    let sum = xxhash_rust::xxh3::xxh3_64(&out);
    out.extend_from_slice(&sum.to_be_bytes());
    out
}

fn undump(p: &[u8]) -> Option<Vec<Bytes>> {
    if p.len() < 13 || !p.starts_with(b"RVFN\x01") {
        return None;
    }
    let (body, sum) = p.split_at(p.len() - 8);
    if xxhash_rust::xxh3::xxh3_64(body).to_be_bytes() != sum {
        return None;
    }
    let mut out = Vec::new();
    let mut rest = &body[5..];
    while !rest.is_empty() {
        let n = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let code = rest.get(4..4 + n)?;
        out.push(Bytes::copy_from_slice(code));
        rest = &rest[4 + n..];
    }
    Some(out)
}

fn help() -> Reply {
    let lines = [
        "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "LOAD [REPLACE] <FUNCTION CODE>",
        "    Create a new library with the given library name and code.",
        "DELETE <LIBRARY NAME>",
        "    Delete the given library.",
        "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
        "    Return general information on all the libraries:",
        "    * Library name",
        "    * The engine used to run the Library",
        "    * Library description",
        "    * Functions list",
        "    * Library code (if WITHCODE is given)",
        "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
        "STATS",
        "    Return information about the current function running:",
        "    * Function name",
        "    * Command used to run the function",
        "    * Duration in MS that the function is running",
        "    If no function is running, return nil",
        "    In addition, returns a list of available engines.",
        "KILL",
        "    Kill the current running function.",
        "FLUSH [ASYNC|SYNC]",
        "    Delete all the libraries.",
        "    When called without the optional mode argument, the behavior is determined by the",
        "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the libraries.",
        "    * SYNC: Synchronously flush the libraries.",
        "DUMP",
        "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
        "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
        "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
        "    control how to handle existing libraries (default APPEND):",
        "    * FLUSH: delete all existing libraries.",
        "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
        "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
        "      libraries with the new libraries (notice that even on this option there is a chance of failure",
        "      in case of functions name collision with another library).",
        "HELP",
        "    Prints this help.",
    ];
    Reply::Array(
        lines
            .iter()
            .map(|l| Reply::StatusOwned(l.to_string()))
            .collect(),
    )
}

fn list(libs: &Libraries, a: &[Bytes]) -> Reply {
    let mut with_code = false;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 2;
    while i < a.len() {
        if !with_code && is(&a[i], "withcode") {
            with_code = true;
            i += 1;
            continue;
        }
        if pattern.is_none() && is(&a[i], "libraryname") {
            let Some(p) = a.get(i + 1) else {
                return err("ERR library name argument was not given");
            };
            pattern = Some(p);
            i += 2;
            continue;
        }
        return Reply::err(format!(
            "ERR Unknown argument {}",
            String::from_utf8_lossy(&a[i])
        ));
    }
    let mut out = Vec::new();
    for (name, lib) in &libs.libs {
        if let Some(p) = pattern {
            if !crate::glob::matches(p, name.as_bytes(), true) {
                continue;
            }
        }
        let functions = lib
            .functions
            .iter()
            .map(|(f, info)| {
                Reply::Map(vec![
                    (Reply::bulk(b"name"), Reply::bulk(f.as_bytes())),
                    (
                        Reply::bulk(b"description"),
                        info.desc
                            .as_ref()
                            .map_or(Reply::Nil, |d| Reply::bulk(d.as_bytes())),
                    ),
                    (
                        Reply::bulk(b"flags"),
                        Reply::Set(
                            FLAG_NAMES
                                .iter()
                                .filter(|(_, b)| info.flags & b != 0)
                                .map(|(n, _)| Reply::StatusOwned(n.to_string()))
                                .collect(),
                        ),
                    ),
                ])
            })
            .collect();
        let mut m = vec![
            (Reply::bulk(b"library_name"), Reply::bulk(name.as_bytes())),
            (Reply::bulk(b"engine"), Reply::bulk(b"LUA")),
            (Reply::bulk(b"functions"), Reply::Array(functions)),
        ];
        if with_code {
            m.push((Reply::bulk(b"library_code"), Reply::Bulk(lib.code.to_vec())));
        }
        out.push(Reply::Map(m));
    }
    Reply::Array(out)
}

fn stats(ctx: &Ctx<'_>) -> Reply {
    let s = &ctx.state.scripts;
    let running = s.running_function();
    if running.is_none() && s.running() {
        return err(crate::scripting::BUSY);
    }
    let libs = lock(&s.libs);
    let running = match running {
        None => Reply::Nil,
        Some((name, cmd, ms)) => Reply::Map(vec![
            (Reply::bulk(b"name"), Reply::bulk(name.as_bytes())),
            (
                Reply::bulk(b"command"),
                Reply::Array(cmd.iter().map(|x| Reply::bulk(x)).collect()),
            ),
            (Reply::bulk(b"duration_ms"), Reply::Int(ms)),
        ]),
    };
    Reply::Map(vec![
        (Reply::bulk(b"running_script"), running),
        (
            Reply::bulk(b"engines"),
            Reply::Map(vec![(
                Reply::bulk(b"LUA"),
                Reply::Map(vec![
                    (
                        Reply::bulk(b"libraries_count"),
                        Reply::Int(libs.libs.len() as i64),
                    ),
                    (
                        Reply::bulk(b"functions_count"),
                        Reply::Int(libs.function_count() as i64),
                    ),
                ]),
            )]),
        ),
    ])
}

/// Whether FUNCTION `sub` runs on the connection rather than in the writer (KILL and
/// STATS must answer while a function runs).
pub fn runs_on_connection(args: &[Bytes]) -> bool {
    args.get(1)
        .is_some_and(|a| is(a, "kill") || is(a, "stats") || is(a, "help"))
}

/// FUNCTION <subcommand> ...
pub fn function(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let sub = lower(&a[1]);
    match sub.as_str() {
        "help" if a.len() == 2 => return Ok(help()),
        "stats" if a.len() == 2 => return Ok(stats(ctx)),
        "kill" if a.len() == 2 => return Ok(ctx.state.scripts.kill(false)),
        "list" => return Ok(list(&lock(&ctx.state.scripts.libs), a)),
        "dump" if a.len() == 2 => return Ok(Reply::Bulk(dump(&lock(&ctx.state.scripts.libs)))),
        "load" | "delete" | "flush" | "restore" => {}
        _ => {
            return Ok(subcommand_error(&a[1]));
        }
    }
    if ctx.log.is_none() {
        return Ok(err("ERR FUNCTION writes must run in the writer"));
    }
    match sub.as_str() {
        "load" => {
            let mut replace = false;
            let mut i = 2;
            while i < a.len() - 1 {
                if is(&a[i], "replace") {
                    replace = true;
                    i += 1;
                } else {
                    return Ok(Reply::err(format!(
                        "ERR Unknown option given: {}",
                        String::from_utf8_lossy(&a[i])
                    )));
                }
            }
            if i >= a.len() {
                return Ok(err("ERR Function code is missing"));
            }
            let code = a[i].clone();
            crate::scripting::with_vm(ctx, |ctx, lua| {
                Ok(match install(ctx, lua, &[code], replace, false, false)? {
                    Ok(names) => Reply::Bulk(names.concat().into_bytes()),
                    Err(e) => Reply::Error(e),
                })
            })
        }
        "delete" if a.len() == 3 => {
            let name = String::from_utf8_lossy(&a[2]).to_string();
            let Some(lib) = lock(&ctx.state.scripts.libs).libs.get(&name).cloned() else {
                return Ok(err("ERR Library not found"));
            };
            persist(ctx, std::slice::from_ref(&name), &[])?;
            crate::scripting::with_vm(ctx, |ctx, lua| {
                link(lua, &[lib], &[]).map_err(|e| rivet::Error::Callback(e.to_string()))?;
                lock(&ctx.state.scripts.libs).libs.remove(&name);
                Ok(OK)
            })
        }
        "flush" if a.len() <= 3 => {
            if a.len() == 3 && !(is(&a[2], "sync") || is(&a[2], "async")) {
                return Ok(err("ERR FUNCTION FLUSH only supports SYNC|ASYNC option"));
            }
            flush(ctx)?;
            Ok(OK)
        }
        "restore" if a.len() == 3 || a.len() == 4 => {
            let (replace, flush_first) = match a.get(3) {
                None => (false, false),
                Some(p) if is(p, "append") => (false, false),
                Some(p) if is(p, "replace") => (true, false),
                Some(p) if is(p, "flush") => (false, true),
                Some(_) => {
                    return Ok(err("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE."))
                }
            };
            let Some(codes) = undump(&a[2]) else {
                return Ok(err("ERR DUMP payload version or checksum are wrong"));
            };
            crate::scripting::with_vm(ctx, |ctx, lua| {
                Ok(
                    match install(ctx, lua, &codes, replace, flush_first, true)? {
                        Ok(_) => OK,
                        Err(e) => Reply::Error(e),
                    },
                )
            })
        }
        _ => Ok(subcommand_error(&a[1])),
    }
}

/// Redis's reply to an unknown subcommand or a wrong argument count.
fn subcommand_error(sub: &[u8]) -> Reply {
    Reply::err(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
        String::from_utf8_lossy(sub)
    ))
}

/// Drops every library (FUNCTION FLUSH; FLUSHALL does not touch functions, as in Redis).
fn flush(ctx: &mut Ctx<'_>) -> Result<(), rivet::Error> {
    let names: Vec<String> = lock(&ctx.state.scripts.libs).libs.keys().cloned().collect();
    persist(ctx, &names, &[])?;
    let old = std::mem::take(&mut *lock(&ctx.state.scripts.libs));
    let removed: Vec<Library> = old.libs.into_values().collect();
    crate::scripting::with_vm(ctx, |_, lua| {
        link(lua, &removed, &[]).map_err(|e| rivet::Error::Callback(e.to_string()))?;
        Ok(OK)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_errors_match_redis() {
        assert_eq!(parse_metadata(b"#!lua name=lib\n").as_deref(), Ok("lib"));
        assert_eq!(
            parse_metadata(b"#!lua name=\"foo\"\n").as_deref(),
            Ok("foo")
        );
        assert_eq!(
            parse_metadata(b"lua name=x\n"),
            Err("ERR Missing library metadata".into())
        );
        assert_eq!(
            parse_metadata(b"#!lua\n"),
            Err("ERR Library name was not given".into())
        );
        assert_eq!(
            parse_metadata(b"#!luax name=a\n"),
            Err("ERR Engine 'luax' not found".into())
        );
        assert_eq!(
            parse_metadata(b"#!lua name=a foo=bar\n"),
            Err("ERR Invalid metadata value given: foo=bar".into())
        );
    }

    #[test]
    fn dump_round_trips() {
        let mut libs = Libraries::default();
        libs.libs.insert(
            "a".into(),
            Library {
                code: Bytes::from_static(b"#!lua name=a\nx"),
                functions: BTreeMap::new(),
            },
        );
        let p = dump(&libs);
        assert_eq!(
            undump(&p).unwrap(),
            vec![Bytes::from_static(b"#!lua name=a\nx")]
        );
        let mut bad = p.clone();
        bad[6] ^= 1;
        assert!(undump(&bad).is_none());
    }
}
