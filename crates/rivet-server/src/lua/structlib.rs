//! `struct`: Roberto Ierusalimschy's binary packing library as Redis bundles it
//! (`pack`, `unpack`, `size`). Formats: `<` `>` endianness (little is native here), `!n`
//! alignment, `x` pad byte, `b/B h/H l/L T i/In I/In` integers (1, 2, 8, 8, 4 or n bytes),
//! `f` `d` floats, `cn` fixed strings (`c0`: the whole string when packing, the previous
//! number as length when unpacking), `s` zero-terminated strings, spaces ignored.

use mlua::{Lua, MultiValue, Table, Value};

use super::{arg_error, check_number, check_string};

const MAXINTSIZE: usize = 32;
const MAXALIGN: usize = 8;

struct Header {
    little: bool,
    align: usize,
}

fn err(msg: String) -> mlua::Error {
    mlua::Error::RuntimeError(msg)
}

fn getnum(fmt: &[u8], i: &mut usize, default: usize) -> mlua::Result<usize> {
    if *i >= fmt.len() || !fmt[*i].is_ascii_digit() {
        return Ok(default);
    }
    let mut a: usize = 0;
    while *i < fmt.len() && fmt[*i].is_ascii_digit() {
        a = a
            .checked_mul(10)
            .and_then(|a| a.checked_add((fmt[*i] - b'0') as usize))
            .filter(|&a| a <= i32::MAX as usize)
            .ok_or_else(|| err("integral size overflow".into()))?;
        *i += 1;
    }
    Ok(a)
}

fn optsize(opt: u8, fmt: &[u8], i: &mut usize) -> mlua::Result<usize> {
    Ok(match opt {
        b'B' | b'b' | b'x' => 1,
        b'H' | b'h' => 2,
        b'L' | b'l' | b'T' | b'd' => 8,
        b'f' => 4,
        b'c' => getnum(fmt, i, 1)?,
        b'i' | b'I' => {
            let sz = getnum(fmt, i, 4)?;
            if sz > MAXINTSIZE {
                return Err(err(format!(
                    "integral size {sz} is larger than limit of {MAXINTSIZE}"
                )));
            }
            sz
        }
        _ => 0,
    })
}

fn toalign(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    (size - (len & (size - 1))) & (size - 1)
}

fn control(opt: u8, fmt: &[u8], i: &mut usize, h: &mut Header, func: &str) -> mlua::Result<()> {
    match opt {
        b' ' => {}
        b'>' => h.little = false,
        b'<' => h.little = true,
        b'!' => {
            let a = getnum(fmt, i, MAXALIGN)?;
            if !a.is_power_of_two() {
                return Err(err(format!("alignment {a} is not a power of 2")));
            }
            h.align = a;
        }
        _ => {
            return Err(arg_error(
                1,
                func,
                &format!("invalid format option '{}'", opt as char),
            ))
        }
    }
    Ok(())
}

fn put_int(out: &mut Vec<u8>, n: f64, little: bool, size: usize) {
    let value: u64 = if n < 0.0 { n as i64 as u64 } else { n as u64 };
    let mut buf = vec![0u8; size];
    for (k, b) in buf.iter_mut().enumerate() {
        *b = if k < 8 { (value >> (8 * k)) as u8 } else { 0 };
    }
    if !little {
        buf.reverse();
    }
    out.extend_from_slice(&buf);
}

fn get_int(data: &[u8], little: bool, signed: bool, size: usize) -> f64 {
    let mut l: u64 = 0;
    let bytes: Vec<u8> = if little {
        data.iter().rev().copied().collect()
    } else {
        data.to_vec()
    };
    for b in bytes {
        l = (l << 8) | b as u64;
    }
    if !signed {
        return l as f64;
    }
    let bits = (size * 8).min(64);
    if bits < 64 && l & (1u64 << (bits - 1)) != 0 {
        l |= u64::MAX << (bits - 1);
    }
    l as i64 as f64
}

fn pack(args: &[Value]) -> mlua::Result<Vec<u8>> {
    let fmt = check_string(args, 1, "pack")?;
    let mut h = Header {
        little: true,
        align: 1,
    };
    let mut arg = 2;
    let mut out = Vec::new();
    let mut i = 0;
    while i < fmt.len() {
        let opt = fmt[i];
        i += 1;
        let mut size = optsize(opt, &fmt, &mut i)?;
        let pad = toalign(out.len(), &h, opt, size);
        out.extend(std::iter::repeat_n(0u8, pad));
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = check_number(args, arg, "pack")?;
                arg += 1;
                put_int(&mut out, n, h.little, size);
            }
            b'x' => out.push(0),
            b'f' => {
                let f = check_number(args, arg, "pack")? as f32;
                arg += 1;
                let b = if h.little {
                    f.to_le_bytes()
                } else {
                    f.to_be_bytes()
                };
                out.extend_from_slice(&b);
            }
            b'd' => {
                let d = check_number(args, arg, "pack")?;
                arg += 1;
                let b = if h.little {
                    d.to_le_bytes()
                } else {
                    d.to_be_bytes()
                };
                out.extend_from_slice(&b);
            }
            b'c' | b's' => {
                let s = check_string(args, arg, "pack")?;
                arg += 1;
                if size == 0 || opt == b's' {
                    size = s.len();
                }
                if s.len() < size {
                    return Err(arg_error(arg, "pack", "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => control(opt, &fmt, &mut i, &mut h, "pack")?,
        }
    }
    Ok(out)
}

fn unpack(lua: &Lua, args: &[Value]) -> mlua::Result<MultiValue> {
    let fmt = check_string(args, 1, "unpack")?;
    let data = check_string(args, 2, "unpack")?;
    let ld = data.len();
    let start = match args.get(2) {
        None | Some(Value::Nil) => 1.0,
        Some(_) => check_number(args, 3, "unpack")?,
    };
    if start < 1.0 {
        return Err(arg_error(3, "unpack", "offset must be 1 or greater"));
    }
    let mut pos = start as usize - 1;
    let mut h = Header {
        little: true,
        align: 1,
    };
    let mut out: Vec<Value> = Vec::new();
    let short = || arg_error(2, "unpack", "data string too short");
    let mut i = 0;
    while i < fmt.len() {
        let opt = fmt[i];
        i += 1;
        let mut size = optsize(opt, &fmt, &mut i)?;
        pos += toalign(pos, &h, opt, size);
        if size > ld || pos > ld - size {
            return Err(short());
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let signed = opt.is_ascii_lowercase();
                out.push(Value::Number(get_int(
                    &data[pos..pos + size],
                    h.little,
                    signed,
                    size,
                )));
            }
            b'x' => {}
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[pos..pos + 4]);
                let f = if h.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                out.push(Value::Number(f as f64));
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[pos..pos + 8]);
                let d = if h.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                out.push(Value::Number(d));
            }
            b'c' => {
                if size == 0 {
                    let prev = out.last().and_then(super::to_number);
                    let Some(n) = prev.filter(|_| !out.is_empty()) else {
                        return Err(err("format 'c0' needs a previous size".into()));
                    };
                    out.pop();
                    size = n as usize;
                    if size > ld || pos > ld - size {
                        return Err(short());
                    }
                }
                out.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(e) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err(err("unfinished string in data".into()));
                };
                out.push(Value::String(lua.create_string(&data[pos..pos + e])?));
                size = e + 1;
            }
            _ => control(opt, &fmt, &mut i, &mut h, "unpack")?,
        }
        pos += size;
    }
    out.push(Value::Number((pos + 1) as f64));
    Ok(MultiValue::from_iter(out))
}

fn size(args: &[Value]) -> mlua::Result<f64> {
    let fmt = check_string(args, 1, "size")?;
    let mut h = Header {
        little: true,
        align: 1,
    };
    let mut pos = 0usize;
    let mut i = 0;
    while i < fmt.len() {
        let opt = fmt[i];
        i += 1;
        let size = optsize(opt, &fmt, &mut i)?;
        pos += toalign(pos, &h, opt, size);
        if opt == b's' {
            return Err(arg_error(1, "size", "option 's' has no fixed size"));
        }
        if opt == b'c' && size == 0 {
            return Err(arg_error(1, "size", "option 'c0' has no fixed size"));
        }
        if !opt.is_ascii_alphanumeric() {
            control(opt, &fmt, &mut i, &mut h, "size")?;
        }
        pos += size;
    }
    Ok(pos as f64)
}

/// The `struct` table.
pub fn library(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "pack",
        lua.create_function(|lua, a: MultiValue| {
            let a: Vec<Value> = a.into_iter().collect();
            lua.create_string(pack(&a)?)
        })?,
    )?;
    t.set(
        "unpack",
        lua.create_function(|lua, a: MultiValue| {
            let a: Vec<Value> = a.into_iter().collect();
            unpack(lua, &a)
        })?,
    )?;
    t.set(
        "size",
        lua.create_function(|_, a: MultiValue| {
            let a: Vec<Value> = a.into_iter().collect();
            size(&a)
        })?,
    )?;
    Ok(t)
}
