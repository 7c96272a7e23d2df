//! Workload 2's user record (the BoltDB record-layout study, anchors.md §5) and its two
//! encodings: compact binary and JSON. The Go peer generates the same records.
//!
//! A record is a pure function of its id (see [`User::generate`]); its key is the id as 8
//! big-endian bytes, so ids inserted in order are appended at the end of the tree.
//!
//! Binary layout (little-endian): `id i64, age i32, height f32, weight f32, balance f64,
//! is_active u8, created_at i64, updated_at i64, login_count i32, score f64`, then the strings
//! `username, email, first_name, last_name, description`, each as a `u16` length and bytes.

use serde::{Deserialize, Serialize};

use crate::gen::mix64;

/// Seed of the record generator.
pub const RECORD_SEED: u64 = 0x5245_434f_5244_5f53; // "RECORD_S"

const FIRST: [&str; 8] = [
    "Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi",
];
const LAST: [&str; 8] = [
    "Smith", "Johnson", "Lee", "Brown", "Garcia", "Miller", "Davis", "Wilson",
];
const WORDS: [&str; 16] = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "labore",
    "magna",
    "aliqua",
];

/// The study's `UserInfo`: 15 fields, about 210 bytes in binary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Record id (also the key).
    pub id: i64,
    /// Login name.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Age in years.
    pub age: i32,
    /// Height in cm.
    pub height: f32,
    /// Weight in kg.
    pub weight: f32,
    /// Account balance; the field FieldSum adds up and Update increments.
    pub balance: f64,
    /// Whether the account is active.
    pub is_active: bool,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// Last update time (Unix seconds).
    pub updated_at: i64,
    /// Number of logins.
    pub login_count: i32,
    /// Some score.
    pub score: f64,
    /// About 95 characters of text.
    pub description: String,
}

/// The key of record `id`: 8 bytes big-endian.
pub fn record_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

impl User {
    /// The deterministic record with this id (the Go peer's `genUser`).
    pub fn generate(id: u64) -> User {
        let r = |j: u64| mix64(RECORD_SEED ^ (id.wrapping_mul(16) + j));
        let mut description = String::with_capacity(100);
        let mut j = 8;
        while description.len() < 90 {
            if !description.is_empty() {
                description.push(' ');
            }
            description.push_str(WORDS[(r(j) % 16) as usize]);
            j += 1;
        }
        description.push('.');
        User {
            id: id as i64,
            username: format!("user{id:07}"),
            email: format!("user{id:07}@example.com"),
            first_name: FIRST[(r(0) % 8) as usize].to_string(),
            last_name: LAST[(r(1) % 8) as usize].to_string(),
            age: 18 + (r(2) % 70) as i32,
            height: 150.0 + (r(3) % 500) as f32 / 10.0,
            weight: 45.0 + (r(4) % 800) as f32 / 10.0,
            balance: (r(5) % 10_000_000) as f64 / 100.0,
            is_active: r(6) % 2 == 0,
            created_at: 1_600_000_000 + (r(7) % 100_000_000) as i64,
            updated_at: 1_700_000_000 + (r(7) % 100_000_000) as i64,
            login_count: (r(5) % 1000) as i32,
            score: (r(6) % 100_000) as f64 / 1000.0,
            description,
        }
    }

    /// Appends the compact binary encoding to `out`.
    pub fn encode_binary(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.age.to_le_bytes());
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&self.weight.to_le_bytes());
        out.extend_from_slice(&self.balance.to_le_bytes());
        out.push(self.is_active as u8);
        out.extend_from_slice(&self.created_at.to_le_bytes());
        out.extend_from_slice(&self.updated_at.to_le_bytes());
        out.extend_from_slice(&self.login_count.to_le_bytes());
        out.extend_from_slice(&self.score.to_le_bytes());
        for s in [
            &self.username,
            &self.email,
            &self.first_name,
            &self.last_name,
            &self.description,
        ] {
            out.extend_from_slice(&(s.len() as u16).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }

    /// Decodes the compact binary encoding.
    pub fn decode_binary(b: &[u8]) -> Option<User> {
        let mut r = Reader { b, at: 0 };
        let id = i64::from_le_bytes(r.take()?);
        let age = i32::from_le_bytes(r.take()?);
        let height = f32::from_le_bytes(r.take()?);
        let weight = f32::from_le_bytes(r.take()?);
        let balance = f64::from_le_bytes(r.take()?);
        let [active] = r.take()?;
        let created_at = i64::from_le_bytes(r.take()?);
        let updated_at = i64::from_le_bytes(r.take()?);
        let login_count = i32::from_le_bytes(r.take()?);
        let score = f64::from_le_bytes(r.take()?);
        Some(User {
            id,
            age,
            height,
            weight,
            balance,
            is_active: active != 0,
            created_at,
            updated_at,
            login_count,
            score,
            username: r.string()?,
            email: r.string()?,
            first_name: r.string()?,
            last_name: r.string()?,
            description: r.string()?,
        })
    }

    /// Appends the JSON encoding (field names as in the study's Go struct tags).
    pub fn encode_json(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(out, self).expect("serialising a plain struct cannot fail");
    }

    /// Decodes the JSON encoding.
    pub fn decode_json(b: &[u8]) -> Option<User> {
        serde_json::from_slice(b).ok()
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let s = self.b.get(self.at..self.at + N)?;
        self.at += N;
        s.try_into().ok()
    }

    fn string(&mut self) -> Option<String> {
        let n = u16::from_le_bytes(self.take()?) as usize;
        let s = self.b.get(self.at..self.at + n)?;
        self.at += n;
        String::from_utf8(s.to_vec()).ok()
    }
}

/// A record encoding under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Packed fields ([`User::encode_binary`]).
    Binary,
    /// JSON ([`User::encode_json`]).
    Json,
}

impl Encoding {
    /// Both encodings, in report order.
    pub const ALL: [Encoding; 2] = [Encoding::Binary, Encoding::Json];

    /// Short name used in phase names.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Binary => "binary",
            Encoding::Json => "json",
        }
    }

    /// Encodes `u`, replacing the contents of `out`.
    pub fn encode(self, u: &User, out: &mut Vec<u8>) {
        out.clear();
        match self {
            Encoding::Binary => u.encode_binary(out),
            Encoding::Json => u.encode_json(out),
        }
    }

    /// Decodes a record.
    pub fn decode(self, b: &[u8]) -> Option<User> {
        match self {
            Encoding::Binary => User::decode_binary(b),
            Encoding::Json => User::decode_json(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for id in [0, 1, 7, 999_999] {
            let u = User::generate(id);
            for e in Encoding::ALL {
                let mut b = Vec::new();
                e.encode(&u, &mut b);
                assert_eq!(e.decode(&b).as_ref(), Some(&u), "{e:?}");
            }
        }
        let mut b = Vec::new();
        User::generate(7).encode_binary(&mut b);
        assert!((180..260).contains(&b.len()), "binary size {}", b.len());
    }
}
