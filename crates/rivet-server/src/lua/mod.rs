//! The Lua libraries Redis loads into its scripting VM (`cjson`, `cmsgpack`, `bit`,
//! `struct`), written against `mlua` because Redis's C modules cannot be loaded into the
//! vendored Lua, plus the helpers they share: Lua-style number formatting and read-only
//! proxy tables.

pub mod bit;
pub mod cjson;
pub mod cmsgpack;
pub mod structlib;

use mlua::{Lua, Table, Value};

/// Registers the four libraries as globals (the caller makes the globals read-only).
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    g.set("bit", readonly(lua, bit::library(lua)?)?)?;
    g.set("cjson", readonly(lua, cjson::library(lua)?)?)?;
    g.set("cmsgpack", readonly(lua, cmsgpack::library(lua)?)?)?;
    g.set("struct", readonly(lua, structlib::library(lua)?)?)?;
    Ok(())
}

/// A proxy of `t` that reads through to it and refuses writes with Redis's error (Redis
/// marks the table itself read-only in its patched Lua; stock Lua 5.1 needs a proxy).
pub fn readonly(lua: &Lua, t: Table) -> mlua::Result<Table> {
    let proxy = lua.create_table()?;
    let mt = lua.create_table()?;
    mt.set("__index", t)?;
    mt.set(
        "__newindex",
        lua.create_function(|_, _: mlua::MultiValue| -> mlua::Result<()> {
            Err(mlua::Error::RuntimeError(
                "Attempt to modify a readonly table".into(),
            ))
        })?,
    )?;
    mt.set("__metatable", false)?;
    proxy.set_metatable(Some(mt));
    Ok(proxy)
}

/// A Lua number argument as `luaL_checknumber` sees it (numbers and numeric strings).
pub fn to_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        Value::String(s) => {
            let s = s.to_str().ok()?;
            let t = s.trim();
            if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                return u64::from_str_radix(h, 16).ok().map(|x| x as f64);
            }
            t.parse::<f64>().ok()
        }
        _ => None,
    }
}

/// Lua's type name of a value (for "number expected, got X" errors).
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::LightUserData(_) => "userdata",
        Value::UserData(_) => "userdata",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

/// The "bad argument" error Lua's `luaL_argerror` raises.
pub fn arg_error(n: usize, func: &str, msg: &str) -> mlua::Error {
    mlua::Error::RuntimeError(format!("bad argument #{n} to '{func}' ({msg})"))
}

/// Argument `n` (1-based) as a number, or Lua's error.
pub fn check_number(args: &[Value], n: usize, func: &str) -> mlua::Result<f64> {
    let v = args.get(n - 1).unwrap_or(&Value::Nil);
    to_number(v)
        .ok_or_else(|| arg_error(n, func, &format!("number expected, got {}", type_name(v))))
}

/// Argument `n` (1-based) as a string, numbers converted as Lua does (`luaL_checklstring`),
/// or Lua's error.
pub fn check_string(args: &[Value], n: usize, func: &str) -> mlua::Result<Vec<u8>> {
    match args.get(n - 1) {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(Value::Integer(i)) => Ok(i.to_string().into_bytes()),
        Some(Value::Number(x)) => Ok(fmt_g(*x, 14).into_bytes()),
        v => Err(arg_error(
            n,
            func,
            &format!(
                "string expected, got {}",
                type_name(v.unwrap_or(&Value::Nil))
            ),
        )),
    }
}

/// C's `%.<prec>g` (what Lua's `tostring` and lua-cjson use for numbers).
pub fn fmt_g(x: f64, prec: usize) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let prec = prec.max(1);
    let sci = format!("{:.*e}", prec - 1, x);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let m = trim_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::fmt_g;

    #[test]
    fn fmt_g_matches_c() {
        assert_eq!(fmt_g(100.0, 14), "100");
        assert_eq!(fmt_g(0.1, 14), "0.1");
        assert_eq!(fmt_g(1023.2, 14), "1023.2");
        assert_eq!(fmt_g(0.0003, 14), "0.0003");
        assert_eq!(fmt_g(1e20, 14), "1e+20");
        assert_eq!(fmt_g(1.5e-7, 14), "1.5e-07");
        assert_eq!(fmt_g(-5000.0, 14), "-5000");
        assert_eq!(fmt_g(std::f64::consts::PI, 14), "3.1415926535898");
        assert_eq!(fmt_g(1e14, 14), "1e+14");
        assert_eq!(fmt_g(99999999999999.0, 14), "99999999999999");
    }
}
