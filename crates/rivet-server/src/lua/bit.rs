//! `bit`: LuaBitOp's operations on 32-bit integers (the library Redis bundles). Numbers are
//! normalised like LuaBitOp's `tobit` (rounded, wrapped modulo 2^32, signed result).

use mlua::{Lua, MultiValue, Table, Value};

use super::check_number;

/// LuaBitOp's normalisation of a Lua number to a signed 32-bit integer.
pub fn tobit(x: f64) -> i32 {
    if !x.is_finite() {
        return 0;
    }
    let r = x.round_ties_even();
    (r.rem_euclid(4294967296.0) as u64 as u32) as i32
}

fn arg(args: &[Value], n: usize, func: &str) -> mlua::Result<i32> {
    Ok(tobit(check_number(args, n, func)?))
}

fn unary(lua: &Lua, t: &Table, name: &'static str, f: fn(i32) -> i32) -> mlua::Result<()> {
    t.set(
        name,
        lua.create_function(move |_, a: MultiValue| {
            let a: Vec<Value> = a.into_iter().collect();
            Ok(f(arg(&a, 1, name)?) as f64)
        })?,
    )
}

fn fold(lua: &Lua, t: &Table, name: &'static str, f: fn(i32, i32) -> i32) -> mlua::Result<()> {
    t.set(
        name,
        lua.create_function(move |_, a: MultiValue| {
            let a: Vec<Value> = a.into_iter().collect();
            let mut acc = arg(&a, 1, name)?;
            for i in 2..=a.len() {
                acc = f(acc, arg(&a, i, name)?);
            }
            Ok(acc as f64)
        })?,
    )
}

fn shift(lua: &Lua, t: &Table, name: &'static str, f: fn(i32, u32) -> i32) -> mlua::Result<()> {
    t.set(
        name,
        lua.create_function(move |_, a: MultiValue| {
            let a: Vec<Value> = a.into_iter().collect();
            let x = arg(&a, 1, name)?;
            let n = (arg(&a, 2, name)? as u32) & 31;
            Ok(f(x, n) as f64)
        })?,
    )
}

/// The `bit` table.
pub fn library(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    unary(lua, &t, "tobit", |x| x)?;
    unary(lua, &t, "bnot", |x| !x)?;
    unary(lua, &t, "bswap", |x| x.swap_bytes())?;
    fold(lua, &t, "band", |a, b| a & b)?;
    fold(lua, &t, "bor", |a, b| a | b)?;
    fold(lua, &t, "bxor", |a, b| a ^ b)?;
    shift(lua, &t, "lshift", |x, n| ((x as u32) << n) as i32)?;
    shift(lua, &t, "rshift", |x, n| ((x as u32) >> n) as i32)?;
    shift(lua, &t, "arshift", |x, n| x >> n)?;
    shift(lua, &t, "rol", |x, n| (x as u32).rotate_left(n) as i32)?;
    shift(lua, &t, "ror", |x, n| (x as u32).rotate_right(n) as i32)?;
    t.set(
        "tohex",
        lua.create_function(|_, a: MultiValue| {
            let a: Vec<Value> = a.into_iter().collect();
            let x = arg(&a, 1, "tohex")? as u32;
            let n = match a.get(1) {
                None | Some(Value::Nil) => 8,
                Some(_) => arg(&a, 2, "tohex")?,
            };
            let upper = n < 0;
            let n = n.unsigned_abs().min(8) as usize;
            let s = format!("{x:08x}");
            let s = &s[8 - n..];
            Ok(if upper {
                s.to_ascii_uppercase()
            } else {
                s.to_string()
            })
        })?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::tobit;

    #[test]
    fn tobit_wraps_like_luabitop() {
        assert_eq!(tobit(4294967295.0), -1);
        assert_eq!(tobit(4294967296.0), 0);
        assert_eq!(tobit(2147483648.0), -2147483648);
        assert_eq!(tobit(-1.0), -1);
        assert_eq!(tobit(1.5), 2);
        assert_eq!(tobit(2.5), 2);
    }
}
