//! `cjson`: JSON for Lua values with lua-cjson 2.1's behaviour as Redis bundles it:
//! `cjson.null`, numbers written with `%.14g` (`encode_number_precision`), `/` escaped,
//! tables whose keys are all positive integers encoded as arrays (holes as `null`, an
//! "excessively sparse array" error past lua-cjson's ratio), depth limits
//! (`encode_max_depth`, `decode_max_depth`), `encode_invalid_numbers`,
//! `encode_keep_buffer` (accepted; there is no buffer to keep). The decoder is written
//! here rather than taken from serde_json because it must build Lua values directly, keep
//! the nesting limit configurable past serde_json's fixed recursion limit, and report
//! lua-cjson's error messages with their character positions.

use std::cell::RefCell;
use std::rc::Rc;

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

use super::{fmt_g, type_name};

#[derive(Debug, Clone)]
struct Config {
    encode_max_depth: i64,
    decode_max_depth: i64,
    precision: usize,
    /// 0 = refuse NaN/Inf, 1 = write them, 2 = write null.
    invalid_numbers: u8,
    decode_invalid_numbers: bool,
    sparse_convert: bool,
    sparse_ratio: i64,
    sparse_safe: i64,
    keep_buffer: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            precision: 14,
            invalid_numbers: 0,
            decode_invalid_numbers: true,
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
            keep_buffer: true,
        }
    }
}

fn rt(msg: String) -> mlua::Error {
    mlua::Error::RuntimeError(msg)
}

fn is_null(v: &Value) -> bool {
    matches!(v, Value::LightUserData(p) if p.0.is_null())
}

struct Encoder<'c> {
    cfg: &'c Config,
    out: Vec<u8>,
}

impl Encoder<'_> {
    fn number(&mut self, n: f64) -> mlua::Result<()> {
        if !n.is_finite() {
            match self.cfg.invalid_numbers {
                0 => return Err(rt("Cannot serialise number: must not be NaN or Inf".into())),
                1 if n.is_nan() => {
                    self.out.extend_from_slice(b"nan");
                    return Ok(());
                }
                1 => {}
                _ => {
                    self.out.extend_from_slice(b"null");
                    return Ok(());
                }
            }
        }
        self.out
            .extend_from_slice(fmt_g(n, self.cfg.precision).as_bytes());
        Ok(())
    }

    fn string(&mut self, s: &[u8]) {
        self.out.push(b'"');
        for &c in s {
            match c {
                b'"' => self.out.extend_from_slice(b"\\\""),
                b'\\' => self.out.extend_from_slice(b"\\\\"),
                b'/' => self.out.extend_from_slice(b"\\/"),
                b'\x08' => self.out.extend_from_slice(b"\\b"),
                b'\t' => self.out.extend_from_slice(b"\\t"),
                b'\n' => self.out.extend_from_slice(b"\\n"),
                b'\x0c' => self.out.extend_from_slice(b"\\f"),
                b'\r' => self.out.extend_from_slice(b"\\r"),
                0..=0x1f | 0x7f => self
                    .out
                    .extend_from_slice(format!("\\u{:04x}", c).as_bytes()),
                _ => self.out.push(c),
            }
        }
        self.out.push(b'"');
    }

    /// lua-cjson's array test: the largest key if every key is a positive integer
    /// (`None` for an object), with its sparse-array rule.
    fn array_len(&self, t: &Table) -> mlua::Result<Option<usize>> {
        let mut max = 0usize;
        let mut items = 0i64;
        for pair in t.clone().pairs::<Value, Value>() {
            let (k, _) = pair?;
            let k = match k {
                Value::Integer(i) => i as f64,
                Value::Number(n) => n,
                _ => return Ok(None),
            };
            if k < 1.0 || k.fract() != 0.0 {
                return Ok(None);
            }
            max = max.max(k as usize);
            items += 1;
        }
        let c = self.cfg;
        if c.sparse_ratio > 0 && max as i64 > items * c.sparse_ratio && max as i64 > c.sparse_safe {
            if !c.sparse_convert {
                return Err(rt("Cannot serialise table: excessively sparse array".into()));
            }
            return Ok(None);
        }
        Ok(Some(max))
    }

    fn value(&mut self, v: &Value, depth: i64) -> mlua::Result<()> {
        match v {
            Value::Nil => self.out.extend_from_slice(b"null"),
            v if is_null(v) => self.out.extend_from_slice(b"null"),
            Value::Boolean(b) => self
                .out
                .extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Integer(i) => self.number(*i as f64)?,
            Value::Number(n) => self.number(*n)?,
            Value::String(s) => self.string(&s.as_bytes()),
            Value::Table(t) => {
                let depth = depth + 1;
                if depth > self.cfg.encode_max_depth {
                    return Err(rt(format!("Cannot serialise, excessive nesting ({depth})")));
                }
                match self.array_len(t)? {
                    Some(n) if n > 0 => {
                        self.out.push(b'[');
                        for i in 1..=n {
                            if i > 1 {
                                self.out.push(b',');
                            }
                            self.value(&t.raw_get::<Value>(i)?, depth)?;
                        }
                        self.out.push(b']');
                    }
                    _ => {
                        self.out.push(b'{');
                        let mut first = true;
                        for pair in t.clone().pairs::<Value, Value>() {
                            let (k, v) = pair?;
                            if !first {
                                self.out.push(b',');
                            }
                            first = false;
                            match &k {
                                Value::String(s) => self.string(&s.as_bytes()),
                                Value::Integer(i) => {
                                    self.out.push(b'"');
                                    self.number(*i as f64)?;
                                    self.out.push(b'"');
                                }
                                Value::Number(n) => {
                                    self.out.push(b'"');
                                    self.number(*n)?;
                                    self.out.push(b'"');
                                }
                                _ => {
                                    return Err(rt(format!(
                                        "Cannot serialise {}: table key must be a number or string",
                                        type_name(&k)
                                    )))
                                }
                            }
                            self.out.push(b':');
                            self.value(&v, depth)?;
                        }
                        self.out.push(b'}');
                    }
                }
            }
            other => {
                return Err(rt(format!(
                    "Cannot serialise {}: type not supported",
                    type_name(other)
                )))
            }
        }
        Ok(())
    }
}

struct Decoder<'a, 'c> {
    lua: &'a Lua,
    cfg: &'c Config,
    s: &'a [u8],
    pos: usize,
    depth: i64,
}

impl Decoder<'_, '_> {
    fn ws(&mut self) {
        while self.pos < self.s.len() && matches!(self.s[self.pos], b' ' | b'\t' | b'\r' | b'\n') {
            self.pos += 1;
        }
    }

    fn found(&self) -> &'static str {
        match self.s.get(self.pos) {
            None => "T_END",
            Some(b'{') => "T_OBJ_BEGIN",
            Some(b'}') => "T_OBJ_END",
            Some(b'[') => "T_ARR_BEGIN",
            Some(b']') => "T_ARR_END",
            Some(b'"') => "T_STRING",
            Some(b':') => "T_COLON",
            Some(b',') => "T_COMMA",
            Some(b'-' | b'0'..=b'9') => "T_NUMBER",
            Some(b't' | b'f') => "T_BOOLEAN",
            Some(b'n') => "T_NULL",
            _ => "invalid token",
        }
    }

    fn expected(&self, what: &str) -> mlua::Error {
        rt(format!(
            "Expected {what} but found {} at character {}",
            self.found(),
            self.pos + 1
        ))
    }

    fn descend(&mut self) -> mlua::Result<()> {
        self.depth += 1;
        if self.depth > self.cfg.decode_max_depth {
            return Err(rt(format!(
                "Found too many nested data structures ({}) at character {}",
                self.depth, self.pos
            )));
        }
        Ok(())
    }

    fn value(&mut self) -> mlua::Result<Value> {
        self.ws();
        let Some(&c) = self.s.get(self.pos) else {
            return Err(self.expected("value"));
        };
        match c {
            b'{' => {
                self.pos += 1;
                self.descend()?;
                let t = self.lua.create_table()?;
                self.ws();
                if self.s.get(self.pos) == Some(&b'}') {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Table(t));
                }
                loop {
                    self.ws();
                    if self.s.get(self.pos) != Some(&b'"') {
                        return Err(self.expected("object key string"));
                    }
                    let k = self.string()?;
                    self.ws();
                    if self.s.get(self.pos) != Some(&b':') {
                        return Err(self.expected("colon"));
                    }
                    self.pos += 1;
                    let v = self.value()?;
                    t.raw_set(k, v)?;
                    self.ws();
                    match self.s.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            break;
                        }
                        _ => return Err(self.expected("comma or object end")),
                    }
                }
                self.depth -= 1;
                Ok(Value::Table(t))
            }
            b'[' => {
                self.pos += 1;
                self.descend()?;
                let t = self.lua.create_table()?;
                self.ws();
                if self.s.get(self.pos) == Some(&b']') {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Table(t));
                }
                let mut i = 1;
                loop {
                    let v = self.value()?;
                    t.raw_set(i, v)?;
                    i += 1;
                    self.ws();
                    match self.s.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            break;
                        }
                        _ => return Err(self.expected("comma or array end")),
                    }
                }
                self.depth -= 1;
                Ok(Value::Table(t))
            }
            b'"' => Ok(Value::String(self.string()?)),
            b't' if self.s[self.pos..].starts_with(b"true") => {
                self.pos += 4;
                Ok(Value::Boolean(true))
            }
            b'f' if self.s[self.pos..].starts_with(b"false") => {
                self.pos += 5;
                Ok(Value::Boolean(false))
            }
            b'n' if self.s[self.pos..].starts_with(b"null") => {
                self.pos += 4;
                Ok(Value::LightUserData(LightUserData(std::ptr::null_mut())))
            }
            _ => self.number(),
        }
    }

    fn number(&mut self) -> mlua::Result<Value> {
        let start = self.pos;
        while self.pos < self.s.len()
            && matches!(self.s[self.pos], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E' | b'x' | b'X' | b'a'..=b'd' | b'f' | b'A'..=b'D' | b'F' | b'i' | b'n' | b'I' | b'N' | b't' | b'y')
        {
            self.pos += 1;
        }
        let tok = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        let lower = tok.to_ascii_lowercase();
        let special = lower.contains("inf") || lower.contains("nan") || lower.contains('x');
        let v = if special {
            if !self.cfg.decode_invalid_numbers {
                None
            } else if let Some(h) = lower.strip_prefix("0x") {
                i64::from_str_radix(h, 16).ok().map(|x| x as f64)
            } else if let Some(h) = lower.strip_prefix("-0x") {
                i64::from_str_radix(h, 16).ok().map(|x| -(x as f64))
            } else {
                lower.parse::<f64>().ok()
            }
        } else {
            tok.parse::<f64>().ok()
        };
        match v {
            Some(n) if !tok.is_empty() => Ok(Value::Number(n)),
            _ => {
                self.pos = start;
                Err(rt(format!(
                    "Expected value but found invalid token at character {}",
                    start + 1
                )))
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.pos..self.pos + 4)?;
        let v = u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
        self.pos += 4;
        Some(v)
    }

    fn string(&mut self) -> mlua::Result<mlua::String> {
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        let bad = |p: usize| {
            rt(format!(
                "Expected value but found invalid string at character {}",
                p + 1
            ))
        };
        loop {
            let Some(&c) = self.s.get(self.pos) else {
                return Err(bad(start));
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.pos) else {
                        return Err(bad(start));
                    };
                    self.pos += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let Some(mut cp) = self.hex4() else {
                                return Err(bad(start));
                            };
                            if (0xd800..0xdc00).contains(&cp) {
                                if self.s.get(self.pos..self.pos + 2) != Some(b"\\u") {
                                    return Err(bad(start));
                                }
                                self.pos += 2;
                                let Some(lo) = self.hex4().filter(|l| (0xdc00..0xe000).contains(l))
                                else {
                                    return Err(bad(start));
                                };
                                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                            }
                            let ch = char::from_u32(cp).ok_or_else(|| bad(start))?;
                            let mut b = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                        }
                        _ => return Err(bad(start)),
                    }
                }
                _ => out.push(c),
            }
        }
        self.lua.create_string(&out)
    }
}

fn bool_opt(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Boolean(b) => Some(*b),
        Value::String(s) => Some(&*s.as_bytes() == b"on"),
        Value::Integer(i) => Some(*i != 0),
        Value::Number(n) => Some(*n != 0.0),
        _ => None,
    }
}

/// The `cjson` table.
pub fn library(lua: &Lua) -> mlua::Result<Table> {
    let cfg = Rc::new(RefCell::new(Config::default()));
    let t = lua.create_table()?;
    let c = cfg.clone();
    t.set(
        "encode",
        lua.create_function(move |lua, a: MultiValue| {
            if a.len() != 1 {
                return Err(rt(
                    "bad argument #1 to 'encode' (expected 1 argument)".into()
                ));
            }
            let cfg = c.borrow().clone();
            let mut e = Encoder {
                cfg: &cfg,
                out: Vec::new(),
            };
            e.value(&a[0], 0)?;
            lua.create_string(&e.out)
        })?,
    )?;
    let c = cfg.clone();
    t.set(
        "decode",
        lua.create_function(move |lua, a: MultiValue| {
            let s = match a.front() {
                Some(Value::String(s)) if a.len() == 1 => s.as_bytes().to_vec(),
                _ => {
                    return Err(rt(
                        "bad argument #1 to 'decode' (expected 1 argument)".into()
                    ))
                }
            };
            let cfg = c.borrow().clone();
            let mut d = Decoder {
                lua,
                cfg: &cfg,
                s: &s,
                pos: 0,
                depth: 0,
            };
            let v = d.value()?;
            d.ws();
            if d.pos < s.len() {
                return Err(d.expected("the end"));
            }
            Ok(v)
        })?,
    )?;
    let c = cfg.clone();
    t.set(
        "encode_max_depth",
        lua.create_function(move |_, a: MultiValue| {
            if let Some(n) = a.front().and_then(super::to_number) {
                c.borrow_mut().encode_max_depth = n as i64;
            }
            Ok(c.borrow().encode_max_depth)
        })?,
    )?;
    let c = cfg.clone();
    t.set(
        "decode_max_depth",
        lua.create_function(move |_, a: MultiValue| {
            if let Some(n) = a.front().and_then(super::to_number) {
                c.borrow_mut().decode_max_depth = n as i64;
            }
            Ok(c.borrow().decode_max_depth)
        })?,
    )?;
    let c = cfg.clone();
    t.set(
        "encode_number_precision",
        lua.create_function(move |_, a: MultiValue| {
            if let Some(n) = a.front().and_then(super::to_number) {
                if !(1.0..=14.0).contains(&n) {
                    return Err(rt(
                        "bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)".into(),
                    ));
                }
                c.borrow_mut().precision = n as usize;
            }
            Ok(c.borrow().precision)
        })?,
    )?;
    let c = cfg.clone();
    t.set(
        "encode_keep_buffer",
        lua.create_function(move |_, a: MultiValue| {
            if let Some(b) = bool_opt(a.front()) {
                c.borrow_mut().keep_buffer = b;
            }
            Ok(c.borrow().keep_buffer)
        })?,
    )?;
    let c = cfg.clone();
    t.set(
        "encode_invalid_numbers",
        lua.create_function(move |_, a: MultiValue| {
            match a.front() {
                Some(Value::String(s)) if &*s.as_bytes() == b"null" => {
                    c.borrow_mut().invalid_numbers = 2
                }
                v => {
                    if let Some(b) = bool_opt(v) {
                        c.borrow_mut().invalid_numbers = b as u8;
                    }
                }
            }
            Ok(c.borrow().invalid_numbers != 0)
        })?,
    )?;
    let c = cfg.clone();
    t.set(
        "decode_invalid_numbers",
        lua.create_function(move |_, a: MultiValue| {
            if let Some(b) = bool_opt(a.front()) {
                c.borrow_mut().decode_invalid_numbers = b;
            }
            Ok(c.borrow().decode_invalid_numbers)
        })?,
    )?;
    let c = cfg.clone();
    t.set(
        "encode_sparse_array",
        lua.create_function(move |_, a: MultiValue| {
            let a: Vec<Value> = a.into_iter().collect();
            let mut cfg = c.borrow_mut();
            if let Some(b) = bool_opt(a.first()) {
                cfg.sparse_convert = b;
            }
            if let Some(n) = a.get(1).and_then(super::to_number) {
                cfg.sparse_ratio = n as i64;
            }
            if let Some(n) = a.get(2).and_then(super::to_number) {
                cfg.sparse_safe = n as i64;
            }
            Ok((cfg.sparse_convert, cfg.sparse_ratio, cfg.sparse_safe))
        })?,
    )?;
    t.set(
        "null",
        Value::LightUserData(LightUserData(std::ptr::null_mut())),
    )?;
    t.set("_NAME", "cjson")?;
    t.set("_VERSION", "2.1.0")?;
    Ok(t)
}
