//! fjall 3 (LSM tree): `SingleWriterTxDatabase`, one keyspace, every commit persisted with
//! `PersistMode::SyncAll` (fjall's durable mode), a 4 GiB block cache as in redb's harness.
//! `len()` is a scan (fjall has no O(1) count). Compaction is a blocking major compaction.

use std::path::{Path, PathBuf};

use fjall::{
    KeyspaceCreateOptions, PersistMode, Readable, SingleWriterTxDatabase, SingleWriterTxKeyspace,
};

use crate::engine::{Engine, ReadTx, Result, WriteTx};

/// fjall backend.
pub struct FjallEngine {
    db: SingleWriterTxDatabase,
    ks: SingleWriterTxKeyspace,
    dir: PathBuf,
}

impl FjallEngine {
    /// Opens a database in `dir`.
    pub fn open(dir: PathBuf) -> Result<FjallEngine> {
        let db = SingleWriterTxDatabase::builder(&dir)
            .cache_size(4 << 30)
            .open()?;
        let ks = db.keyspace("bench", KeyspaceCreateOptions::default)?;
        Ok(FjallEngine { db, ks, dir })
    }
}

struct FjallRead<'a> {
    ks: &'a SingleWriterTxKeyspace,
    snap: fjall::Snapshot,
}

impl ReadTx for FjallRead<'_> {
    fn get(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        match self.snap.get(self.ks, key)? {
            Some(v) => {
                f(&v);
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
        let mut n = 0;
        for g in self.snap.range(self.ks, start..).take(limit) {
            let (k, v) = g.into_inner()?;
            f(&k, &v);
            n += 1;
        }
        Ok(n)
    }

    fn count(&self) -> Result<u64> {
        Ok(self.snap.len(self.ks)? as u64)
    }
}

struct FjallWrite<'a, 'db> {
    ks: &'a SingleWriterTxKeyspace,
    tx: &'a mut fjall::SingleWriterWriteTx<'db>,
}

impl WriteTx for FjallWrite<'_, '_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.tx.insert(self.ks, key, value);
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<bool> {
        self.tx.remove(self.ks, key);
        Ok(true)
    }

    fn get(&mut self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        match self.tx.get(self.ks, key)? {
            Some(v) => {
                f(&v);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

impl Engine for FjallEngine {
    fn name(&self) -> &'static str {
        "fjall"
    }

    fn write(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>) -> Result<()> {
        let mut tx = self.db.write_tx().durability(Some(PersistMode::SyncAll));
        f(&mut FjallWrite {
            ks: &self.ks,
            tx: &mut tx,
        })?;
        tx.commit()?;
        Ok(())
    }

    fn read(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<()>) -> Result<()> {
        let snap = self.db.read_tx();
        f(&FjallRead { ks: &self.ks, snap })
    }

    fn compact(&mut self) -> Result<()> {
        self.db.persist(PersistMode::SyncAll)?;
        self.ks.inner().major_compact()?;
        Ok(())
    }

    fn dir(&self) -> &Path {
        &self.dir
    }
}
