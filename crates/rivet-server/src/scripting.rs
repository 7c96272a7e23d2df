//! Lua scripting (Redis `eval.c`/`script_lua.c` semantics): EVAL EVALSHA EVAL_RO EVALSHA_RO
//! and SCRIPT LOAD|EXISTS|FLUSH|KILL, on Lua 5.1 (Redis's version) through `mlua`.
//!
//! Scripts run in the writer, inside the open write transaction, so they are atomic and
//! `redis.call` reads what the script wrote a line earlier; a script that fails after writing
//! keeps its writes, as in Redis. One Lua VM lives in the writer thread; compiled scripts are
//! kept in its registry as `f_<sha1>`. While a script runs past `busy-reply-threshold`
//! (`lua-time-limit`), connections answer `BUSY` to everything but the commands Redis allows,
//! and SCRIPT KILL stops a script that has not written.
//!
//! Supported: `redis.call`, `redis.pcall`, `redis.error_reply`, `redis.status_reply`,
//! `redis.sha1hex`, `redis.log`, `redis.setresp` (RESP2 or RESP3 conversions both ways),
//! `redis.set_repl` and `redis.replicate_commands` (accepted), KEYS/ARGV, the libraries
//! Redis loads (`cjson`, `cmsgpack`, `bit`, `struct`: see [`crate::lua`]), `#!lua flags=...`
//! shebangs, and a sandbox without `io`, `os`, `loadfile`, `dofile`, `print` or `debug`
//! whose globals and library tables are read-only. The same VM runs Redis 7 functions
//! (FCALL; libraries are loaded by [`crate::functions`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};

use crate::commands::args::{err, int, is, lower};
use crate::commands::{self, arity_ok, unknown_subcommand, CmdResult, Ctx, BLOCKING, CONN, WRITE};
use crate::functions::Libraries;
use crate::resp::{Reply, OK};
use crate::state::{lock, now_ms, ServerState};

/// The BUSY error text.
pub const BUSY: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";

/// Script cache, function libraries and the state of the running script.
#[derive(Debug, Default)]
pub struct Scripts {
    cache: Mutex<HashMap<String, Bytes>>,
    /// Unix ms when the running script started; 0 when none runs.
    started_ms: AtomicI64,
    /// The running script passed the busy threshold.
    busy: AtomicBool,
    /// SCRIPT KILL was asked for.
    kill: AtomicBool,
    /// The running script has written.
    wrote: AtomicBool,
    /// The loaded function libraries (FUNCTION LOAD).
    pub libs: Mutex<Libraries>,
    /// The running function's name and command (None while EVAL runs).
    running_fn: Mutex<Option<(String, Vec<Bytes>)>>,
}

impl Scripts {
    /// True while a script runs past the busy threshold.
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// True while a script or function runs.
    pub fn running(&self) -> bool {
        self.started_ms.load(Ordering::Acquire) != 0
    }

    /// The running function: name, command and milliseconds it has run.
    pub fn running_function(&self) -> Option<(String, Vec<Bytes>, i64)> {
        let started = self.started_ms.load(Ordering::Acquire);
        if started == 0 {
            return None;
        }
        lock(&self.running_fn)
            .clone()
            .map(|(n, c)| (n, c, now_ms() - started))
    }

    /// The BUSY error for the script kind that runs.
    pub fn busy_reply(&self) -> Reply {
        if lock(&self.running_fn).is_some() {
            err(BUSY_FUNCTION)
        } else {
            err(BUSY)
        }
    }

    /// SCRIPT KILL (`is_eval`) or FUNCTION KILL.
    pub fn kill(&self, is_eval: bool) -> Reply {
        if self.started_ms.load(Ordering::Acquire) == 0 {
            return err("NOTBUSY No scripts in execution right now.");
        }
        if self.wrote.load(Ordering::Acquire) {
            return err("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.");
        }
        let is_function = lock(&self.running_fn).is_some();
        if is_eval && is_function {
            return err(BUSY_FUNCTION);
        }
        if !is_eval && !is_function {
            return err(BUSY);
        }
        self.kill.store(true, Ordering::Release);
        OK
    }

    /// Scripts in the EVAL cache (INFO's `number_of_cached_scripts`).
    pub fn cached_count(&self) -> usize {
        lock(&self.cache).len()
    }

    /// Loaded libraries and functions (INFO's `number_of_libraries`/`number_of_functions`).
    pub fn library_counts(&self) -> (usize, usize) {
        let libs = lock(&self.libs);
        (
            libs.libs.len(),
            libs.libs.values().map(|l| l.functions.len()).sum(),
        )
    }

    fn source(&self, sha: &str) -> Option<Bytes> {
        lock(&self.cache).get(sha).cloned()
    }

    fn add(&self, body: &Bytes) -> String {
        let sha = sha1_hex(body);
        lock(&self.cache)
            .entry(sha.clone())
            .or_insert_with(|| body.clone());
        sha
    }
}

/// The BUSY error while a function runs.
pub const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// Whether a command may run while a script is busy (Redis's `allow-busy` commands).
pub fn allowed_while_busy(name: &str, args: &[Bytes]) -> bool {
    match name {
        "auth" | "hello" | "quit" | "reset" | "shutdown" | "discard" | "multi" | "unwatch"
        | "watch" => true,
        "script" | "function" => args.get(1).is_some_and(|a| is(a, "kill") || is(a, "stats")),
        _ => false,
    }
}

/// Lowercase hex SHA1 of `b` (Redis's script ids).
pub fn sha1_hex(b: &[u8]) -> String {
    sha1_smol::Sha1::from(b).digest().to_string()
}

thread_local! {
    /// The writer thread's Lua VM, created on first use.
    static VM: RefCell<Option<Lua>> = const { RefCell::new(None) };
    /// The kill hook replaced the busy hook (see `install_hook`).
    static KILLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The protocol `redis.call` replies are converted from (`redis.setresp`).
    static RESP: std::cell::Cell<u8> = const { std::cell::Cell::new(2) };
}

/// Lua code run once per VM: the error handler that turns any error into Redis's error
/// table (`{err=..., source=..., line=...}`), then the sandbox.
const BOOTSTRAP: &str = r#"
local dbg = debug
function __redis__err__handler(err)
  local level = 2
  local i = dbg.getinfo(level,'nSl')
  while i and (i.what == 'C' or i.source == '@bootstrap') do
    level = level + 1
    i = dbg.getinfo(level,'nSl')
  end
  if type(err) ~= 'table' then
    err = {err=tostring(err), wrapped=true}
  end
  if i then
    err['source'] = i.source
    err['line'] = i.currentline
  end
  return err
end
debug = nil
loadfile = nil
dofile = nil
print = nil
"#;

/// Run after the libraries exist: scripts see the globals through a read-only proxy that
/// raises Redis's errors for unknown names and for writes; library tables are read-only
/// proxies too; `setmetatable`/`rawset` refuse them; `loadstring` refuses bytecode. Returns
/// the proxy (scripts' environment). Redis marks tables read-only inside its patched Lua;
/// stock Lua 5.1 needs proxies.
const PROTECT: &str = r#"
local R = _G
local ro = setmetatable({}, {__mode = 'k'})
local function err_ro() error("Attempt to modify a readonly table", 2) end
local function proxy(t, strict)
  local p, mt = {}, {__newindex = err_ro}
  if strict then
    mt.__index = function(_, k)
      local v = rawget(t, k)
      if v == nil then
        error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
      end
      return v
    end
  else
    mt.__index = t
  end
  local mtp = setmetatable({}, {__index = mt, __newindex = err_ro, __metatable = false})
  ro[mtp] = true
  mt.__metatable = mtp
  setmetatable(p, mt)
  ro[p] = true
  return p
end
for _, name in ipairs({'redis', 'cjson', 'cmsgpack', 'bit', 'struct', 'string', 'math', 'table', 'coroutine'}) do
  if type(rawget(R, name)) == 'table' then rawset(R, name, proxy(rawget(R, name))) end
end
local P = proxy(R, true)
local setmt, rset, ls, sfe = setmetatable, rawset, loadstring, setfenv
-- Redis has no getfenv/setfenv/newproxy for scripts: through them a script could reach the
-- real globals (or a library's environment) behind the read-only proxies.
rset(R, 'getfenv', nil)
rset(R, 'setfenv', nil)
rset(R, 'newproxy', nil)
-- Strings' metatable: scripts see a read-only stand-in whose __index is the (read-only)
-- string library, as in Redis; the real one keeps the real library for method lookups.
local smt = getmetatable('')
smt.__metatable = proxy({__index = rawget(R, 'string')})
rset(R, '_G', P)
-- A read-only proxy has no metatable for scripts (Redis's read-only tables have none): its
-- real one leads to the writable table behind it.
-- The globals have one, as in Redis (it guards them), but a read-only stand-in.
local gmt = getmetatable
local g_mt = proxy({})
rset(R, 'getmetatable', function(t)
  if t == P then return g_mt end
  if ro[t] then return nil end
  return gmt(t)
end)
rset(R, 'setmetatable', function(t, m)
  if ro[t] then error("Attempt to modify a readonly table", 2) end
  return setmt(t, m)
end)
rset(R, 'rawset', function(t, k, v)
  if ro[t] then error("Attempt to modify a readonly table", 2) end
  return rset(t, k, v)
end)
rset(R, 'loadstring', function(s, name)
  if type(s) == 'string' and s:byte(1) == 27 then return nil, 'binary code is not allowed' end
  local f, e = ls(s, name)
  if f then sfe(f, P) end
  return f, e
end)
return P, sfe
"#;

/// A VM with the libraries and the sandbox but no busy hook (used to read stored function
/// libraries at startup).
pub fn scratch_vm() -> mlua::Result<Lua> {
    base_vm()
}

fn base_vm() -> mlua::Result<Lua> {
    // SAFETY: `unsafe_new_with` is needed only to load the debug library, which the bootstrap
    // captures in a local of the error handler and then removes from the globals, so scripts
    // cannot reach it. No C modules are loaded.
    let lua = unsafe {
        Lua::unsafe_new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG,
            LuaOptions::default(),
        )
    };
    lua.load(BOOTSTRAP).set_name("@bootstrap").exec()?;
    let redis = lua.create_table()?;
    redis.set(
        "sha1hex",
        lua.create_function(|_, a: MultiValue| {
            if a.len() != 1 {
                return Err(mlua::Error::RuntimeError(
                    "ERR wrong number of arguments".into(),
                ));
            }
            let b = match a.front() {
                Some(Value::String(s)) => s.as_bytes().to_vec(),
                Some(Value::Integer(i)) => i.to_string().into_bytes(),
                Some(Value::Number(n)) => crate::lua::fmt_g(*n, 14).into_bytes(),
                _ => Vec::new(),
            };
            Ok(sha1_hex(&b))
        })?,
    )?;
    for (name, field) in [("error_reply", "err"), ("status_reply", "ok")] {
        redis.set(
            name,
            lua.create_function(move |lua, a: MultiValue| {
                let t = lua.create_table()?;
                match (a.len(), a.front()) {
                    (1, Some(Value::String(s))) => t.set(field, s.clone())?,
                    _ => t.set("err", "ERR wrong number or type of arguments")?,
                }
                Ok(t)
            })?,
        )?;
    }
    redis.set(
        "log",
        lua.create_function(|_, a: MultiValue| {
            let a: Vec<Value> = a.into_iter().collect();
            if a.len() < 2 {
                return Err(mlua::Error::RuntimeError(
                    "ERR redis.log() requires two arguments or more.".into(),
                ));
            }
            let Some(level) = crate::lua::to_number(&a[0]) else {
                return Err(mlua::Error::RuntimeError(
                    "ERR First argument must be a number (log level).".into(),
                ));
            };
            if !(0.0..=3.0).contains(&level) {
                return Err(mlua::Error::RuntimeError("ERR Invalid debug level.".into()));
            }
            let msg: Vec<String> = a[1..]
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.to_string_lossy().to_string(),
                    Value::Integer(i) => i.to_string(),
                    Value::Number(n) => crate::lua::fmt_g(*n, 14),
                    _ => String::new(),
                })
                .collect();
            tracing::info!(level, message = %msg.join(" "), "script log");
            Ok(())
        })?,
    )?;
    redis.set(
        "setresp",
        lua.create_function(|_, a: MultiValue| {
            if a.len() != 1 {
                return Err(mlua::Error::RuntimeError(
                    "redis.setresp() requires one argument.".into(),
                ));
            }
            match a.front().and_then(crate::lua::to_number) {
                Some(v) if v == 2.0 || v == 3.0 => {
                    RESP.with(|r| r.set(v as u8));
                    Ok(())
                }
                _ => Err(mlua::Error::RuntimeError(
                    "ERR RESP version must be 2 or 3.".into(),
                )),
            }
        })?,
    )?;
    redis.set(
        "REDIS_VERSION",
        crate::commands::server::REDIS_COMPAT_VERSION,
    )?;
    redis.set("REDIS_VERSION_NUM", 0x0007_000f)?;
    redis.set("set_repl", lua.create_function(|_, _v: i64| Ok(()))?)?;
    // The script debugger's calls do nothing outside a debugging session, as in Redis.
    redis.set(
        "breakpoint",
        lua.create_function(|_, _a: MultiValue| Ok(()))?,
    )?;
    redis.set("debug", lua.create_function(|_, _a: MultiValue| Ok(()))?)?;
    // Every client is the `default` user with every permission: a known command is allowed.
    redis.set(
        "acl_check_cmd",
        lua.create_function(|_, a: MultiValue| {
            let name = match a.front() {
                Some(Value::String(s)) => s.as_bytes().to_vec(),
                _ => {
                    return Err(mlua::Error::RuntimeError(
                        "ERR Please specify at least one argument for this redis lib call".into(),
                    ))
                }
            };
            if crate::commands::lookup(&name).is_none() {
                return Err(mlua::Error::RuntimeError(
                    "ERR Invalid command passed to redis.acl_check_cmd()".into(),
                ));
            }
            Ok(true)
        })?,
    )?;
    redis.set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    for (i, name) in ["LOG_DEBUG", "LOG_VERBOSE", "LOG_NOTICE", "LOG_WARNING"]
        .iter()
        .enumerate()
    {
        redis.set(*name, i as i64)?;
    }
    for (v, name) in [
        (0, "REPL_NONE"),
        (1, "REPL_AOF"),
        (2, "REPL_SLAVE"),
        (2, "REPL_REPLICA"),
        (3, "REPL_ALL"),
    ] {
        redis.set(name, v)?;
    }
    lua.set_named_registry_value("__redis", redis.clone())?;
    lua.globals().set("redis", redis)?;
    crate::lua::install(&lua)?;
    let (proxy, setfenv): (Table, Function) = lua.load(PROTECT).set_name("@bootstrap").call(())?;
    lua.set_named_registry_value("__P", proxy)?;
    lua.set_named_registry_value("__setfenv", setfenv)?;
    crate::functions::init_vm(&lua)?;
    Ok(lua)
}

/// Installs the busy/kill hook: every 10000 instructions it checks for SCRIPT KILL,
/// shutdown and the busy threshold.
fn install_hook(lua: &Lua, state: &Arc<ServerState>) {
    let st = state.clone();
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(10_000),
        move |lua, _| {
            let s = &st.scripts;
            // SHUTDOWN (allowed while busy) and SIGTERM stop a running script, written or not.
            let stop = if crate::functions::load_timed_out() {
                Some("FUNCTION LOAD timeout")
            } else if st.shutting_down() {
                Some("Script killed because the server is shutting down")
            } else if s.kill.load(Ordering::Acquire) {
                Some("Script killed by user with SCRIPT KILL...")
            } else {
                None
            };
            if let Some(msg) = stop {
                // From now on every line fails, so a pcall in the script cannot keep it
                // running (as Redis does); `run` puts the normal hook back.
                KILLED.with(|k| k.set(true));
                lua.set_hook(HookTriggers::EVERY_LINE, move |_, _| {
                    Err(mlua::Error::RuntimeError(msg.into()))
                });
                return Err(mlua::Error::RuntimeError(msg.into()));
            }
            let started = s.started_ms.load(Ordering::Acquire);
            if started > 0 && !s.busy.load(Ordering::Acquire) {
                let limit: i64 = st
                    .config
                    .get("busy-reply-threshold")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(5000);
                if now_ms() - started >= limit && !s.busy.swap(true, Ordering::AcqRel) {
                    tracing::warn!("a script has been running for {limit} ms; answering BUSY");
                }
            }
            Ok(VmState::Continue)
        },
    );
}

fn new_vm(state: &Arc<ServerState>) -> mlua::Result<Lua> {
    let lua = base_vm()?;
    install_hook(&lua, state);
    // The function libraries loaded so far (from the file, or before a VM restart).
    let libs = lock(&state.scripts.libs).clone();
    for (name, lib) in &libs.libs {
        match crate::functions::load(&lua, &lib.code) {
            Ok(l) => crate::functions::link(&lua, &[], &[l])?,
            Err(e) => tracing::error!(library = %name, error = %e, "cannot load function library"),
        }
    }
    Ok(lua)
}

/// Runs `f` with the writer's Lua VM (created, with the function libraries loaded, on first
/// use).
pub fn with_vm(ctx: &mut Ctx<'_>, f: impl FnOnce(&mut Ctx<'_>, &Lua) -> CmdResult) -> CmdResult {
    let state = ctx.state.clone();
    VM.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            match new_vm(&state) {
                Ok(l) => *slot = Some(l),
                Err(e) => return Ok(Reply::err(format!("ERR cannot start Lua: {e}"))),
            }
        }
        let Some(lua) = slot.as_ref() else {
            return Ok(err("ERR Lua is unavailable"));
        };
        // A killed script left the hook that fails every line: put the normal one back
        // before any Lua runs again (a script, or a library being loaded).
        if KILLED.with(|k| k.replace(false)) {
            install_hook(lua, &state);
        }
        f(ctx, lua)
    })
}

/// Converts a command reply to a Lua value (Redis's rules for RESP2 or, after
/// `redis.setresp(3)`, RESP3).
fn reply_to_lua(lua: &Lua, r: &Reply, resp: u8) -> mlua::Result<Value> {
    let wrap = |field: &str, v: Value| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        t.raw_set(field, v)?;
        Ok(Value::Table(t))
    };
    Ok(match r {
        Reply::Int(n) => Value::Integer(*n),
        Reply::Bool(b) if resp == 3 => Value::Boolean(*b),
        Reply::Bool(b) => Value::Integer(*b as i64),
        Reply::Bulk(b) => Value::String(lua.create_string(b)?),
        Reply::Verbatim(s) if resp == 3 => {
            let v = lua.create_table()?;
            v.raw_set("format", "txt")?;
            v.raw_set("string", lua.create_string(s)?)?;
            wrap("verbatim_string", Value::Table(v))?
        }
        Reply::Verbatim(s) => Value::String(lua.create_string(s)?),
        Reply::Double(d) if resp == 3 => wrap("double", Value::Number(*d))?,
        Reply::Double(d) => {
            Value::String(lua.create_string(crate::resp::reply::format_double(*d))?)
        }
        Reply::BigNumber(n) if resp == 3 => {
            wrap("big_number", Value::String(lua.create_string(n)?))?
        }
        Reply::BigNumber(n) => Value::String(lua.create_string(n)?),
        Reply::Nil | Reply::NilArray if resp == 3 => Value::Nil,
        Reply::Nil | Reply::NilArray => Value::Boolean(false),
        Reply::Status(s) => status_table(lua, s)?,
        Reply::StatusOwned(s) => status_table(lua, s)?,
        Reply::Error(e) => {
            let t = lua.create_table()?;
            t.set("err", e.as_str())?;
            Value::Table(t)
        }
        Reply::Set(items) if resp == 3 => {
            let t = lua.create_table()?;
            for x in items {
                let k = reply_to_lua(lua, x, resp)?;
                if k != Value::Nil {
                    t.raw_set(k, true)?;
                }
            }
            wrap("set", Value::Table(t))?
        }
        Reply::Array(items) | Reply::Set(items) => {
            let t = lua.create_table()?;
            for (i, x) in items.iter().enumerate() {
                t.raw_set(i + 1, reply_to_lua(lua, x, resp)?)?;
            }
            Value::Table(t)
        }
        Reply::Map(pairs) if resp == 3 => {
            let t = lua.create_table()?;
            for (k, v) in pairs {
                let k = reply_to_lua(lua, k, resp)?;
                if k != Value::Nil {
                    t.raw_set(k, reply_to_lua(lua, v, resp)?)?;
                }
            }
            wrap("map", Value::Table(t))?
        }
        Reply::Map(pairs) => {
            let t = lua.create_table()?;
            for (i, (k, v)) in pairs.iter().enumerate() {
                t.raw_set(2 * i + 1, reply_to_lua(lua, k, resp)?)?;
                t.raw_set(2 * i + 2, reply_to_lua(lua, v, resp)?)?;
            }
            Value::Table(t)
        }
        Reply::Raw(_) => Value::Boolean(false),
    })
}

fn status_table(lua: &Lua, s: &str) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.set("ok", s)?;
    Ok(Value::Table(t))
}

/// Converts a script's return value to a reply for a client speaking `proto` (Redis's
/// rules: numbers truncate to integers, false is nil in RESP2 and `#f` in RESP3, tables
/// with `err`/`ok` are errors/statuses, `double`/`big_number`/`map`/`set`/
/// `verbatim_string` tables are RESP3 types, arrays stop at the first nil).
fn lua_to_reply(v: &Value, proto: u8, depth: usize) -> Reply {
    match v {
        Value::Nil => Reply::Nil,
        Value::Boolean(b) if proto == 3 => Reply::Bool(*b),
        Value::Boolean(true) => Reply::Int(1),
        Value::Boolean(false) => Reply::Nil,
        Value::Integer(n) => Reply::Int(*n),
        Value::Number(n) => Reply::Int(c_llong(*n)),
        Value::String(s) => Reply::Bulk(s.as_bytes().to_vec()),
        Value::Table(t) => {
            if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
                // redis.error_reply's text may start with the `-` of the protocol; an empty
                // one is a bare ERR.
                let e = e.to_string_lossy();
                let e = e.strip_prefix('-').unwrap_or(&e).trim_end();
                return Reply::Error(if e.is_empty() {
                    "ERR".into()
                } else {
                    e.to_string()
                });
            }
            if let Ok(Value::String(s)) = t.raw_get::<Value>("ok") {
                return Reply::StatusOwned(s.to_string_lossy().to_string());
            }
            if depth > 100 {
                return Reply::err("ERR reached lua stack limit");
            }
            if let Some(r) = resp3_table(t, proto, depth) {
                return r;
            }
            let mut out = Vec::new();
            for i in 1.. {
                match t.raw_get::<Value>(i) {
                    Ok(Value::Nil) | Err(_) => break,
                    Ok(x) => out.push(lua_to_reply(&x, proto, depth + 1)),
                }
            }
            Reply::Array(out)
        }
        _ => Reply::Nil,
    }
}

/// The RESP3 reply tables scripts may return (`{double=...}`, `{big_number='...'}`,
/// `{map={...}}`, `{set={...}}`, `{verbatim_string={format=..., string=...}}`); the
/// connection encodes them for its protocol version.
fn resp3_table(t: &Table, proto: u8, depth: usize) -> Option<Reply> {
    match t.raw_get::<Value>("double").ok()? {
        Value::Number(n) => return Some(Reply::Double(n)),
        Value::Integer(n) => return Some(Reply::Double(n as f64)),
        Value::String(s) => {
            if let Ok(n) = s.to_string_lossy().trim().parse::<f64>() {
                return Some(Reply::Double(n));
            }
        }
        _ => {}
    }
    if let Ok(Value::String(s)) = t.raw_get::<Value>("big_number") {
        return Some(Reply::BigNumber(s.to_string_lossy().to_string()));
    }
    if let Ok(Value::Table(m)) = t.raw_get::<Value>("map") {
        let mut pairs = Vec::new();
        for (k, v) in m.pairs::<Value, Value>().flatten() {
            pairs.push((
                lua_to_reply(&k, proto, depth + 1),
                lua_to_reply(&v, proto, depth + 1),
            ));
        }
        return Some(Reply::Map(pairs));
    }
    if let Ok(Value::Table(m)) = t.raw_get::<Value>("set") {
        let items = m
            .pairs::<Value, Value>()
            .flatten()
            .map(|(k, _)| lua_to_reply(&k, proto, depth + 1))
            .collect();
        return Some(Reply::Set(items));
    }
    if let Ok(Value::Table(v)) = t.raw_get::<Value>("verbatim_string") {
        if let Ok(Value::String(s)) = v.raw_get::<Value>("string") {
            return Some(Reply::Verbatim(s.to_string_lossy().to_string()));
        }
    }
    None
}

/// An error table for `redis.call` to raise or `redis.pcall` to return.
/// `msg` is the scripting layer's own message; it gets the `ERR` code, as Redis's
/// `luaPushError` gives it.
fn error_table(lua: &Lua, msg: &str) -> mlua::Result<Value> {
    reply_error_table(lua, &format!("ERR {msg}"))
}

/// An error table for an error reply of a command, whose text already starts with its code.
fn reply_error_table(lua: &Lua, err: &str) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.set("err", err)?;
    Ok(Value::Table(t))
}

/// The per-call context `redis.call` runs commands in.
struct CallCtx<'c, 'a> {
    ctx: &'c mut Ctx<'a>,
    read_only: bool,
}

/// Runs one `redis.call`/`redis.pcall` from a script: returns the reply converted to Lua, or
/// the error table.
fn script_call(
    lua: &Lua,
    cc: &RefCell<CallCtx<'_, '_>>,
    args: MultiValue,
) -> mlua::Result<Result<Value, Value>> {
    let mut argv: Vec<Bytes> = Vec::with_capacity(args.len());
    for a in args.iter() {
        match a {
            Value::String(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
            // Lua 5.1 numbers are doubles (mlua hands integral ones over as integers).
            Value::Integer(n) => argv.push(Bytes::from(lua_number(*n as f64))),
            Value::Number(n) => argv.push(Bytes::from(lua_number(*n))),
            _ => {
                return Ok(Err(error_table(
                    lua,
                    "Lua redis lib command arguments must be strings or integers",
                )?))
            }
        }
    }
    if argv.is_empty() {
        return Ok(Err(error_table(
            lua,
            "Please specify at least one argument for this redis lib call",
        )?));
    }
    let Some(spec) = commands::lookup(&argv[0]) else {
        // CLUSTER is a Redis command scripts may not run; rivet-server has no cluster
        // mode, but answers as Redis does.
        let msg = if is(&argv[0], "cluster") {
            "This Redis command is not allowed from script"
        } else {
            "Unknown Redis command called from script"
        };
        return Ok(Err(error_table(lua, msg)?));
    };
    if !arity_ok(spec.arity, argv.len()) {
        return Ok(Err(error_table(
            lua,
            "Wrong number of args calling Redis command from script",
        )?));
    }
    // Blocking commands are Redis's `noscript`, except XREAD/XREADGROUP, which scripts may
    // run without BLOCK (the commands themselves refuse BLOCK in a script).
    let blocking = spec.flags & BLOCKING != 0 && !matches!(spec.name, "xread" | "xreadgroup");
    let no_script = spec.flags & CONN != 0
        || blocking
        || matches!(
            spec.name,
            "eval"
                | "evalsha"
                | "eval_ro"
                | "evalsha_ro"
                | "fcall"
                | "fcall_ro"
                | "script"
                | "function"
                | "save"
                | "bgsave"
                | "debug"
                | "config"
        );
    let Some(handler) = spec.handler.filter(|_| !no_script) else {
        return Ok(Err(error_table(
            lua,
            "This Redis command is not allowed from script",
        )?));
    };
    let mut cc = cc.borrow_mut();
    // PUBLISH/SPUBLISH change nothing in the file but are `may-replicate` in Redis, which
    // read-only scripts may not call either.
    let may_replicate = matches!(spec.name, "publish" | "spublish");
    if (spec.flags & WRITE != 0 || may_replicate) && cc.read_only {
        return Ok(Err(error_table(
            lua,
            "Write commands are not allowed from read-only scripts.",
        )?));
    }
    if spec.flags & WRITE != 0 {
        cc.ctx.state.scripts.wrote.store(true, Ordering::Release);
    }
    let resp = RESP.with(|r| r.get());
    let proto = std::mem::replace(&mut cc.ctx.proto, resp);
    let reply = handler(cc.ctx, &argv);
    cc.ctx.proto = proto;
    let reply = reply.map_err(|e| mlua::Error::RuntimeError(e.to_string()))?;
    if let Some(log) = cc.ctx.log {
        let flags = cc.ctx.state.config.notify_flags();
        crate::notify::after_script_command(flags, log, spec.name, &argv);
    }
    if let Reply::Error(e) = &reply {
        return Ok(Err(reply_error_table(lua, e)?));
    }
    Ok(Ok(reply_to_lua(lua, &reply, resp)?))
}

/// A Lua number as a command argument: Redis formats it with `%.17g` (not Lua's lossy
/// `%.14g`).
fn lua_number(n: f64) -> String {
    crate::lua::fmt_g(n, 17)
}

/// C's `(long long)` cast of a double on x86-64, which Redis applies to numbers a script
/// returns: truncation, and `LLONG_MIN` for NaN and out-of-range values.
fn c_llong(n: f64) -> i64 {
    if n.is_nan() || !((i64::MIN as f64)..(i64::MAX as f64)).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

/// Parses `numkeys key... arg...` (EVAL's arguments after the script).
fn split_keys(a: &[Bytes]) -> Result<(Vec<Bytes>, Vec<Bytes>), Reply> {
    let n = int(&a[2]).map_err(|_| err("ERR value is not an integer or out of range"))?;
    if n < 0 {
        return Err(err("ERR Number of keys can't be negative"));
    }
    let n = n as usize;
    if n > a.len() - 3 {
        return Err(err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    Ok((a[3..3 + n].to_vec(), a[3 + n..].to_vec()))
}

/// What a run executes: an EVAL script (compiled from its body, cached by sha) or a
/// registered function.
enum Target<'t> {
    Eval { sha: &'t str, body: &'t [u8] },
    Function { name: &'t str },
}

/// Runs a script or function with the busy/kill bookkeeping around it.
fn run(
    ctx: &mut Ctx<'_>,
    target: Target<'_>,
    keys: &[Bytes],
    argv: &[Bytes],
    read_only: bool,
    command: &[Bytes],
) -> CmdResult {
    let state = ctx.state.clone();
    with_vm(ctx, |ctx, lua| {
        let s = &state.scripts;
        s.kill.store(false, Ordering::Release);
        s.wrote.store(false, Ordering::Release);
        s.busy.store(false, Ordering::Release);
        *lock(&s.running_fn) = match &target {
            Target::Function { name } => Some((name.to_string(), command.to_vec())),
            Target::Eval { .. } => None,
        };
        s.started_ms.store(now_ms(), Ordering::Release);
        RESP.with(|r| r.set(2));
        let out = execute(lua, ctx, &target, keys, argv, read_only);
        RESP.with(|r| r.set(2));
        // Stopped by shutdown after it wrote: its writes must not be committed half (Redis
        // would have finished it; an interrupted script is all or nothing). Failing the
        // batch rolls back the whole write transaction, and nothing of it was acknowledged.
        if state.shutting_down() && KILLED.with(|k| k.get()) && s.wrote.load(Ordering::Acquire) {
            s.started_ms.store(0, Ordering::Release);
            *lock(&s.running_fn) = None;
            return Err(rivet::Error::Callback(
                "a script was stopped by shutdown after it wrote; its writes are rolled back"
                    .into(),
            ));
        }
        s.started_ms.store(0, Ordering::Release);
        s.busy.store(false, Ordering::Release);
        s.kill.store(false, Ordering::Release);
        *lock(&s.running_fn) = None;
        match out {
            Ok(r) => Ok(r),
            Err(ScriptError::Engine(e)) => Err(e),
            Err(ScriptError::Lua(e)) => Ok(Reply::err(format!("ERR Error running script: {e}"))),
        }
    })
}

enum ScriptError {
    Engine(rivet::Error),
    Lua(mlua::Error),
}

impl From<mlua::Error> for ScriptError {
    fn from(e: mlua::Error) -> ScriptError {
        ScriptError::Lua(e)
    }
}

fn compile(lua: &Lua, sha: &str, body: &[u8]) -> mlua::Result<Result<Function, String>> {
    let name = format!("f_{sha}");
    if let Ok(f) = lua.named_registry_value::<Function>(&name) {
        return Ok(Ok(f));
    }
    let src = if body.starts_with(b"#!") {
        crate::functions::lua_source(body)
    } else {
        body.to_vec()
    };
    match lua.load(&src).set_name("@user_script").into_function() {
        Ok(f) => {
            let env: Table = lua.named_registry_value("__P")?;
            let setfenv: Function = lua.named_registry_value("__setfenv")?;
            setfenv.call::<()>((f.clone(), env))?;
            lua.set_named_registry_value(&name, f.clone())?;
            Ok(Ok(f))
        }
        Err(e) => Ok(Err(compile_error(&e))),
    }
}

fn compile_error(e: &mlua::Error) -> String {
    let msg = match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        other => other.to_string(),
    };
    format!(
        "ERR Error compiling script (new function): {}",
        msg.trim_start_matches('@')
    )
}

fn execute(
    lua: &Lua,
    ctx: &mut Ctx<'_>,
    target: &Target<'_>,
    keys: &[Bytes],
    argv: &[Bytes],
    read_only: bool,
) -> Result<Reply, ScriptError> {
    let g = lua.globals();
    let (f, id, args) = match target {
        Target::Eval { sha, body } => {
            let f = match compile(lua, sha, body)? {
                Ok(f) => f,
                Err(msg) => return Ok(Reply::Error(msg)),
            };
            g.raw_set("KEYS", string_table(lua, keys)?)?;
            g.raw_set("ARGV", string_table(lua, argv)?)?;
            (f, sha.to_string(), MultiValue::new())
        }
        Target::Function { name } => {
            let Some(f) = crate::functions::callback(lua, name)? else {
                return Ok(err("ERR Function not found"));
            };
            let args = MultiValue::from_iter([
                Value::Table(string_table(lua, keys)?),
                Value::Table(string_table(lua, argv)?),
            ]);
            (f, name.to_string(), args)
        }
    };
    let proto = ctx.proto;
    let redis: Table = lua.named_registry_value("__redis")?;
    let handler: Function = g.raw_get("__redis__err__handler")?;
    let xpcall: Function = g.raw_get("xpcall")?;
    let engine_error: RefCell<Option<rivet::Error>> = RefCell::new(None);
    let cc = RefCell::new(CallCtx { ctx, read_only });
    let result = lua.scope(|scope| {
        let call =
            scope.create_function(|lua, args: MultiValue| match script_call(lua, &cc, args) {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(t)) => Err(mlua::Error::external(ReplyError(error_text(&t)))),
                Err(e) => {
                    *engine_error.borrow_mut() = Some(rivet::Error::Callback(e.to_string()));
                    Err(e)
                }
            })?;
        let pcall =
            scope.create_function(|lua, args: MultiValue| match script_call(lua, &cc, args) {
                Ok(Ok(v)) | Ok(Err(v)) => Ok(v),
                Err(e) => {
                    *engine_error.borrow_mut() = Some(rivet::Error::Callback(e.to_string()));
                    Err(e)
                }
            })?;
        redis.raw_set("call", call)?;
        redis.raw_set("pcall", pcall)?;
        // xpcall in Lua 5.1 passes no arguments: a wrapper closes over them.
        let out: MultiValue = if args.is_empty() {
            xpcall.call((f, handler))?
        } else {
            let bind: Function = lua
                .load("local f, a, b = ... return function() return f(a, b) end")
                .set_name("@bootstrap")
                .call(MultiValue::from_iter(
                    std::iter::once(Value::Function(f)).chain(args),
                ))?;
            xpcall.call((bind, handler))?
        };
        redis.raw_set("call", Value::Nil)?;
        redis.raw_set("pcall", Value::Nil)?;
        Ok(out)
    })?;
    if let Some(e) = engine_error.take() {
        return Err(ScriptError::Engine(e));
    }
    let mut vals = result.into_iter();
    let ok = matches!(vals.next(), Some(Value::Boolean(true)));
    let v = vals.next().unwrap_or(Value::Nil);
    if ok {
        return Ok(lua_to_reply(&v, proto, 0));
    }
    Ok(script_error(&v, &id))
}

/// An error reply raised by `redis.call` (a Rust function, so a script's
/// `return redis.call(...)` keeps its own frame and line, as with Redis's C function).
#[derive(Debug)]
struct ReplyError(String);

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReplyError {}

fn error_text(v: &Value) -> String {
    match v {
        Value::Table(t) => t
            .raw_get::<mlua::String>("err")
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|_| "ERR unknown error".into()),
        _ => "ERR unknown error".into(),
    }
}

/// Builds the reply for a failed script from the error handler's table, in Redis 7.0's
/// format: `<err> script: f_<sha>, on @user_script:<line>.`
fn script_error(v: &Value, sha: &str) -> Reply {
    let Value::Table(t) = v else {
        return Reply::err(format!("ERR Error running script {sha}, execution failure"));
    };
    let raw = t
        .raw_get::<mlua::String>("err")
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|_| "ERR unknown error".into());
    let wrapped = t.raw_get::<bool>("wrapped").unwrap_or(false);
    let msg = if wrapped { clean_error(&raw) } else { raw };
    let source = t
        .raw_get::<mlua::String>("source")
        .ok()
        .map(|s| s.to_string_lossy().to_string());
    let line = t.raw_get::<i64>("line").ok();
    match (source, line) {
        (Some(src), Some(line)) if line > 0 => {
            Reply::Error(format!("{msg} script: {sha}, on {src}:{line}."))
        }
        _ => Reply::Error(msg),
    }
}

/// Strips what mlua adds around errors raised through it (`runtime error: `, callback
/// traces), keeping Redis's `CODE message`.
fn clean_error(raw: &str) -> String {
    let first = raw.lines().next().unwrap_or(raw).trim();
    let mut s = first;
    for prefix in ["runtime error: ", "callback error: "] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest;
        }
    }
    let has_code = s
        .split_whitespace()
        .next()
        .is_some_and(|w| w.len() > 1 && w.chars().all(|c| c.is_ascii_uppercase()));
    if has_code {
        s.to_string()
    } else {
        format!("ERR {s}")
    }
}

fn string_table(lua: &Lua, items: &[Bytes]) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, x) in items.iter().enumerate() {
        t.raw_set(i + 1, lua.create_string(x)?)?;
    }
    Ok(t)
}

/// The flags of an EVAL script's `#!lua` line (`None` without one), or the error reply.
fn shebang_flags(body: &[u8]) -> Result<Option<u32>, Reply> {
    if !body.starts_with(b"#!") {
        return Ok(None);
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err(err("ERR Invalid script shebang"));
    };
    let line = String::from_utf8_lossy(&body[..end]);
    let parts = crate::functions::split_args(&line);
    let mut parts = parts.iter().map(String::as_str);
    let engine = parts.next().unwrap_or("#!");
    if engine != "#!lua" {
        return Err(Reply::err(format!(
            "ERR Unexpected engine in script shebang: {engine}"
        )));
    }
    let mut flags = 0;
    for p in parts {
        let Some(list) = p.strip_prefix("flags=") else {
            return Err(Reply::err(format!("ERR Unknown lua shebang option: {p}")));
        };
        for f in list.split(',').filter(|f| !f.is_empty()) {
            flags |= crate::functions::flag(f.as_bytes())
                .ok_or_else(|| Reply::err(format!("ERR Unexpected flag in script shebang: {f}")))?;
        }
    }
    Ok(Some(flags))
}

const RO_WRITE_FLAG: &str = "ERR Can not execute a script with write flag using *_ro command.";

fn eval_body(ctx: &mut Ctx<'_>, sha: &str, body: &Bytes, a: &[Bytes], ro: bool) -> CmdResult {
    let (keys, argv) = match split_keys(a) {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let read_only = match shebang_flags(body) {
        Err(r) => return Ok(r),
        Ok(None) => ro,
        Ok(Some(flags)) => {
            let no_writes = flags & crate::functions::NO_WRITES != 0;
            if ro && !no_writes {
                return Ok(err(RO_WRITE_FLAG));
            }
            no_writes
        }
    };
    run(ctx, Target::Eval { sha, body }, &keys, &argv, read_only, a)
}

/// EVAL script numkeys [key ...] [arg ...] (and EVAL_RO).
pub fn eval(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ro = is(&a[0], "eval_ro");
    let body = a[1].clone();
    let sha = ctx.state.scripts.add(&body);
    eval_body(ctx, &sha, &body, a, ro)
}

/// EVALSHA sha1 numkeys [key ...] [arg ...] (and EVALSHA_RO).
pub fn evalsha(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ro = is(&a[0], "evalsha_ro");
    let sha = String::from_utf8_lossy(&a[1]).to_ascii_lowercase();
    let Some(body) = ctx.state.scripts.source(&sha) else {
        return Ok(err("NOSCRIPT No matching script. Please use EVAL."));
    };
    eval_body(ctx, &sha, &body, a, ro)
}

/// FCALL function numkeys [key ...] [arg ...] (and FCALL_RO).
pub fn fcall(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ro = is(&a[0], "fcall_ro");
    let asked = String::from_utf8_lossy(&a[1]).to_string();
    let (name, flags) = match lock(&ctx.state.scripts.libs).function(&asked) {
        Some((_, name, f)) => (name.to_string(), f.flags),
        None => return Ok(err("ERR Function not found")),
    };
    let n = match int(&a[2]) {
        Ok(n) => n,
        Err(_) => return Ok(err("ERR Bad number of keys provided")),
    };
    if n > (a.len() - 3) as i64 {
        return Ok(err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    if n < 0 {
        return Ok(err("ERR Number of keys can't be negative"));
    }
    let no_writes = flags & crate::functions::NO_WRITES != 0;
    if ro && !no_writes {
        return Ok(err(RO_WRITE_FLAG));
    }
    let n = n as usize;
    let (keys, argv) = (a[3..3 + n].to_vec(), a[3 + n..].to_vec());
    run(
        ctx,
        Target::Function { name: &name },
        &keys,
        &argv,
        no_writes,
        a,
    )
}

/// SCRIPT LOAD|EXISTS|FLUSH|KILL|HELP (runs on the connection, so KILL works while the writer
/// is busy with the script).
pub fn script(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let s = &ctx.state.scripts;
    match lower(&a[1]).as_str() {
        "load" if a.len() == 3 => {
            if let Err(r) = shebang_flags(&a[2]) {
                return Ok(r);
            }
            // Compile in a scratch VM to report syntax errors as Redis does.
            let lua = Lua::new();
            let src = if a[2].starts_with(b"#!") {
                crate::functions::lua_source(&a[2])
            } else {
                a[2].to_vec()
            };
            if let Err(e) = lua.load(&src).set_name("@user_script").into_function() {
                return Ok(Reply::Error(compile_error(&e)));
            }
            Ok(Reply::Bulk(s.add(&a[2]).into_bytes()))
        }
        "exists" if a.len() >= 3 => {
            let cache = lock(&s.cache);
            Ok(Reply::Array(
                a[2..]
                    .iter()
                    .map(|x| {
                        let sha = String::from_utf8_lossy(x).to_ascii_lowercase();
                        Reply::Int(cache.contains_key(&sha) as i64)
                    })
                    .collect(),
            ))
        }
        "flush" if a.len() <= 3 => {
            if a.len() == 3 && !(is(&a[2], "async") || is(&a[2], "sync")) {
                return Ok(err("ERR SCRIPT FLUSH only support SYNC|ASYNC option"));
            }
            lock(&s.cache).clear();
            Ok(OK)
        }
        "kill" if a.len() == 2 => Ok(s.kill(true)),
        "help" => Ok(Reply::Array(
            [
                "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "EXISTS <sha1> [<sha1> ...]",
                "FLUSH [ASYNC|SYNC]",
                "KILL",
                "LOAD <script>",
                "HELP",
            ]
            .iter()
            .map(|x| Reply::StatusOwned(x.to_string()))
            .collect(),
        )),
        _ => Ok(unknown_subcommand("script", &a[1])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_matches_redis() {
        // redis-cli SCRIPT LOAD "return 1"
        assert_eq!(
            sha1_hex(b"return 1"),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
    }

    #[test]
    fn numbers_convert_like_redis() {
        assert_eq!(lua_number(0.1), "0.10000000000000001");
        assert_eq!(lua_number(3.0), "3");
        assert_eq!(lua_number(i64::MAX as f64), "9.2233720368547758e+18");
        assert_eq!(c_llong(i64::MAX as f64), i64::MIN);
        assert_eq!(c_llong(-2.5), -2);
        assert_eq!(c_llong(f64::NAN), i64::MIN);
    }

    #[test]
    fn error_texts_keep_the_code() {
        assert_eq!(
            clean_error("runtime error: WRONGTYPE Operation"),
            "WRONGTYPE Operation"
        );
        assert_eq!(
            clean_error("user_script:1: boom"),
            "ERR user_script:1: boom"
        );
        assert_eq!(clean_error("ERR value is not"), "ERR value is not");
        assert_eq!(clean_error("oops"), "ERR oops");
    }
}
