//! `cmsgpack`: MessagePack for Lua values as Redis's lua_cmsgpack does it: `pack(...)`
//! packs each argument one after the other, `unpack(s)` returns every value, `unpack_one`
//! and `unpack_limit` return the next offset (-1 at the end) then the values. Tables whose
//! keys are exactly 1..n pack as arrays, other tables as maps (in `next` order); nesting is
//! cut at 16 levels (packed as nil), which is how circular tables pack. The encoding uses
//! `rmp`; decoding is a small cursor because it builds Lua values directly and must report
//! lua_cmsgpack's errors.

use mlua::{Lua, MultiValue, Table, Value};

use super::{check_number, check_string};

const MAX_NESTING: usize = 16;

type W = Vec<u8>;

fn enc_err<E: std::fmt::Display>(e: E) -> mlua::Error {
    mlua::Error::RuntimeError(format!("MessagePack encoding failed: {e}"))
}

fn encode_number(out: &mut W, n: f64) -> mlua::Result<()> {
    if n.fract() == 0.0 && (-9.223372036854776e18..9.223372036854776e18).contains(&n) {
        let i = n as i64;
        if i >= 0 {
            rmp::encode::write_uint(out, i as u64).map_err(enc_err)?;
        } else {
            rmp::encode::write_sint(out, i).map_err(enc_err)?;
        }
    } else if (n as f32) as f64 == n {
        rmp::encode::write_f32(out, n as f32).map_err(enc_err)?;
    } else {
        rmp::encode::write_f64(out, n).map_err(enc_err)?;
    }
    Ok(())
}

fn array_len(t: &Table) -> mlua::Result<Option<usize>> {
    let mut count = 0usize;
    let mut max = 0usize;
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair?;
        let n = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => return Ok(None),
        };
        if n <= 0.0 || n.fract() != 0.0 || n > i32::MAX as f64 {
            return Ok(None);
        }
        max = max.max(n as usize);
        count += 1;
    }
    Ok((max == count).then_some(count))
}

fn encode(out: &mut W, v: &Value, level: usize) -> mlua::Result<()> {
    match v {
        Value::String(s) => {
            let b = s.as_bytes();
            rmp::encode::write_str_len(out, b.len() as u32).map_err(enc_err)?;
            out.extend_from_slice(&b);
        }
        Value::Boolean(b) => rmp::encode::write_bool(out, *b).map_err(enc_err)?,
        Value::Integer(i) => encode_number(out, *i as f64)?,
        Value::Number(n) => encode_number(out, *n)?,
        Value::Table(t) if level < MAX_NESTING => match array_len(t)? {
            Some(n) => {
                rmp::encode::write_array_len(out, n as u32).map_err(enc_err)?;
                for i in 1..=n {
                    encode(out, &t.raw_get::<Value>(i)?, level + 1)?;
                }
            }
            None => {
                // Counted first, then encoded while iterating: holding every pair at once
                // would exhaust mlua's reference slots on big tables.
                let mut n = 0u32;
                for pair in t.clone().pairs::<Value, Value>() {
                    pair?;
                    n += 1;
                }
                rmp::encode::write_map_len(out, n).map_err(enc_err)?;
                for pair in t.clone().pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    encode(out, &k, level + 1)?;
                    encode(out, &v, level + 1)?;
                }
            }
        },
        _ => rmp::encode::write_nil(out).map_err(enc_err)?,
    }
    Ok(())
}

/// Why decoding stopped.
enum Stop {
    Eof,
    Bad,
    Lua(mlua::Error),
}

impl From<mlua::Error> for Stop {
    fn from(e: mlua::Error) -> Stop {
        Stop::Lua(e)
    }
}

struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cur<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Stop> {
        if self.b.len() - self.pos < n {
            return Err(Stop::Eof);
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64, Stop> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }
}

fn decode(lua: &Lua, c: &mut Cur<'_>) -> Result<Value, Stop> {
    let t = c.take(1)?[0];
    let v = match t {
        0x00..=0x7f => Value::Number(t as f64),
        0xe0..=0xff => Value::Number((t as i8) as f64),
        0xc0 => Value::Nil,
        0xc2 => Value::Boolean(false),
        0xc3 => Value::Boolean(true),
        0xcc => Value::Number(c.uint(1)? as f64),
        0xcd => Value::Number(c.uint(2)? as f64),
        0xce => Value::Number(c.uint(4)? as f64),
        0xcf => Value::Number(c.uint(8)? as f64),
        0xd0 => Value::Number(c.uint(1)? as u8 as i8 as f64),
        0xd1 => Value::Number(c.uint(2)? as u16 as i16 as f64),
        0xd2 => Value::Number(c.uint(4)? as u32 as i32 as f64),
        0xd3 => Value::Number(c.uint(8)? as i64 as f64),
        0xca => Value::Number(f32::from_bits(c.uint(4)? as u32) as f64),
        0xcb => Value::Number(f64::from_bits(c.uint(8)?)),
        0xa0..=0xbf => str_val(lua, c, (t & 0x1f) as usize)?,
        0xd9 | 0xc4 => {
            let n = c.uint(1)? as usize;
            str_val(lua, c, n)?
        }
        0xda | 0xc5 => {
            let n = c.uint(2)? as usize;
            str_val(lua, c, n)?
        }
        0xdb | 0xc6 => {
            let n = c.uint(4)? as usize;
            str_val(lua, c, n)?
        }
        0x90..=0x9f => array(lua, c, (t & 0xf) as usize)?,
        0xdc => {
            let n = c.uint(2)? as usize;
            array(lua, c, n)?
        }
        0xdd => {
            let n = c.uint(4)? as usize;
            array(lua, c, n)?
        }
        0x80..=0x8f => map(lua, c, (t & 0xf) as usize)?,
        0xde => {
            let n = c.uint(2)? as usize;
            map(lua, c, n)?
        }
        0xdf => {
            let n = c.uint(4)? as usize;
            map(lua, c, n)?
        }
        _ => return Err(Stop::Bad),
    };
    Ok(v)
}

fn str_val(lua: &Lua, c: &mut Cur<'_>, n: usize) -> Result<Value, Stop> {
    let b = c.take(n)?;
    Ok(Value::String(lua.create_string(b)?))
}

fn array(lua: &Lua, c: &mut Cur<'_>, n: usize) -> Result<Value, Stop> {
    let t = lua.create_table()?;
    for i in 1..=n {
        let v = decode(lua, c)?;
        t.raw_set(i, v)?;
    }
    Ok(Value::Table(t))
}

fn map(lua: &Lua, c: &mut Cur<'_>, n: usize) -> Result<Value, Stop> {
    let t = lua.create_table()?;
    for _ in 0..n {
        let k = decode(lua, c)?;
        let v = decode(lua, c)?;
        if k != Value::Nil {
            t.raw_set(k, v)?;
        }
    }
    Ok(Value::Table(t))
}

fn unpack_full(lua: &Lua, s: &[u8], limit: i64, offset: i64) -> mlua::Result<MultiValue> {
    let all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        return Err(mlua::Error::RuntimeError(format!(
            "Invalid request to unpack with offset of {offset} and limit of {}.",
            s.len()
        )));
    }
    if offset as usize > s.len() {
        return Err(mlua::Error::RuntimeError(format!(
            "Start offset {offset} greater than input length {}.",
            s.len()
        )));
    }
    let limit = if all { i64::MAX } else { limit };
    let mut c = Cur {
        b: s,
        pos: offset as usize,
    };
    let mut out = Vec::new();
    let mut n = 0;
    while c.pos < s.len() && n < limit {
        match decode(lua, &mut c) {
            Ok(v) => out.push(v),
            Err(Stop::Eof) => {
                return Err(mlua::Error::RuntimeError("Missing bytes in input.".into()))
            }
            Err(Stop::Bad) => {
                return Err(mlua::Error::RuntimeError(
                    "Bad data format in input.".into(),
                ))
            }
            Err(Stop::Lua(e)) => return Err(e),
        }
        n += 1;
    }
    if !all {
        let next = if c.pos == s.len() { -1.0 } else { c.pos as f64 };
        out.insert(0, Value::Number(next));
    }
    Ok(MultiValue::from_iter(out))
}

fn opt_int(a: &[Value], n: usize, func: &str, default: i64) -> mlua::Result<i64> {
    match a.get(n - 1) {
        None | Some(Value::Nil) => Ok(default),
        Some(_) => Ok(check_number(a, n, func)? as i64),
    }
}

/// The `cmsgpack` table.
pub fn library(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "pack",
        lua.create_function(|lua, a: MultiValue| {
            if a.is_empty() {
                return Err(mlua::Error::RuntimeError(
                    "bad argument #0 to 'pack' (MessagePack pack needs input.)".into(),
                ));
            }
            let mut out = Vec::new();
            for v in a.iter() {
                encode(&mut out, v, 0)?;
            }
            lua.create_string(&out)
        })?,
    )?;
    t.set(
        "unpack",
        lua.create_function(|lua, a: MultiValue| {
            let a: Vec<Value> = a.into_iter().collect();
            let s = check_string(&a, 1, "unpack")?;
            unpack_full(lua, &s, 0, 0)
        })?,
    )?;
    t.set(
        "unpack_one",
        lua.create_function(|lua, a: MultiValue| {
            let a: Vec<Value> = a.into_iter().collect();
            let s = check_string(&a, 1, "unpack_one")?;
            let off = opt_int(&a, 2, "unpack_one", 0)?;
            unpack_full(lua, &s, 1, off)
        })?,
    )?;
    t.set(
        "unpack_limit",
        lua.create_function(|lua, a: MultiValue| {
            let a: Vec<Value> = a.into_iter().collect();
            let s = check_string(&a, 1, "unpack_limit")?;
            let limit = check_number(&a, 2, "unpack_limit")? as i64;
            let off = opt_int(&a, 3, "unpack_limit", 0)?;
            unpack_full(lua, &s, limit, off)
        })?,
    )?;
    Ok(t)
}
