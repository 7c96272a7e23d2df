//! LMDB through heed 0.22: default (durable) flags, TLS read transactions, one unnamed
//! database; compaction is `copy_to_file(CompactionOption::Enabled)` then rename and reopen,
//! as in redb's harness. The map size is sized from the expected data (LMDB needs it up
//! front; the file only grows as used).

use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use heed::types::Bytes;
use heed::{CompactionOption, Database, Env, EnvOpenOptions, PutFlags};

use crate::engine::{Engine, OpenConfig, ReadTx, Result, WriteTx};

type Db = Database<Bytes, Bytes>;

/// LMDB backend.
pub struct LmdbEngine {
    env: Option<Env>,
    db: Db,
    dir: PathBuf,
    map_size: usize,
}

fn open_env(dir: &Path, map_size: usize) -> Result<Env> {
    // SAFETY: each benchmark process opens this directory once and nothing else touches it.
    let env = unsafe { EnvOpenOptions::new().map_size(map_size).open(dir)? };
    Ok(env)
}

impl LmdbEngine {
    /// Opens an environment in `dir` with a map large enough for `cfg`'s data.
    pub fn open(dir: PathBuf, cfg: &OpenConfig) -> Result<LmdbEngine> {
        // 4x the raw data (LMDB's B-tree after random inserts and removals is ~3x) plus
        // 1 GiB, rounded to a page multiple. The file itself only grows as pages are used.
        let raw = cfg.expected_entries.saturating_mul(cfg.entry_bytes + 16);
        let map_size = (raw.saturating_mul(4) + (1 << 30)).next_multiple_of(1 << 20) as usize;
        let env = open_env(&dir, map_size)?;
        let mut wtxn = env.write_txn()?;
        let db: Db = env.create_database(&mut wtxn, None)?;
        wtxn.commit()?;
        Ok(LmdbEngine {
            env: Some(env),
            db,
            dir,
            map_size,
        })
    }

    fn env(&self) -> &Env {
        self.env.as_ref().expect("environment is open")
    }
}

struct LmdbRead<'e> {
    db: Db,
    txn: heed::RoTxn<'e, heed::WithTls>,
}

impl ReadTx for LmdbRead<'_> {
    fn get(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        match self.db.get(&self.txn, key)? {
            Some(v) => {
                f(v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn scan_from(
        &self,
        start: &[u8],
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<usize> {
        // LMDB rejects zero-length keys, even as a range bound.
        let lower = if start.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Included(start)
        };
        let range = (lower, Bound::Unbounded);
        let mut n = 0;
        for e in self.db.range(&self.txn, &range)?.take(limit) {
            let (k, v) = e?;
            f(k, v);
            n += 1;
        }
        Ok(n)
    }

    fn count(&self) -> Result<u64> {
        Ok(self.db.len(&self.txn)?)
    }
}

struct LmdbWrite<'t, 'e> {
    db: Db,
    txn: &'t mut heed::RwTxn<'e>,
}

impl WriteTx for LmdbWrite<'_, '_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.db.put(self.txn, key, value)?)
    }

    /// LMDB's append mode (`MDB_APPEND`): no tree search, pages filled completely.
    fn put_sorted(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self
            .db
            .put_with_flags(self.txn, PutFlags::APPEND, key, value)?)
    }

    fn delete(&mut self, key: &[u8]) -> Result<bool> {
        Ok(self.db.delete(self.txn, key)?)
    }

    fn get(&mut self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        match self.db.get(self.txn, key)? {
            Some(v) => {
                f(v);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

impl Engine for LmdbEngine {
    fn name(&self) -> &'static str {
        "lmdb"
    }

    fn write(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>) -> Result<()> {
        let mut txn = self.env().write_txn()?;
        f(&mut LmdbWrite {
            db: self.db,
            txn: &mut txn,
        })?;
        txn.commit()?;
        Ok(())
    }

    fn read(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<()>) -> Result<()> {
        let txn = self.env().read_txn()?;
        f(&LmdbRead { db: self.db, txn })
    }

    fn compact(&mut self) -> Result<()> {
        let env = self.env.take().expect("environment is open");
        let tmp = self.dir.join("data2.mdb");
        let _ = std::fs::remove_file(&tmp);
        let mut file = File::create_new(&tmp)?;
        env.copy_to_file(&mut file, CompactionOption::Enabled)?;
        file.sync_all()?;
        drop(file);
        env.prepare_for_closing().wait();
        std::fs::rename(&tmp, self.dir.join("data.mdb"))?;
        let env = open_env(&self.dir, self.map_size)?;
        let rtxn = env.read_txn()?;
        self.db = env
            .open_database(&rtxn, None)?
            .ok_or("database missing after compaction")?;
        drop(rtxn);
        self.env = Some(env);
        Ok(())
    }

    fn dir(&self) -> &Path {
        &self.dir
    }
}
