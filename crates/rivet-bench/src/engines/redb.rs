//! redb 4: one `&[u8] -> &[u8]` table, `Durability::Immediate` (the default, one fsync per
//! commit), a 4 GiB cache as in redb's own harness; compaction is `Database::compact()`.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::engine::{Engine, ReadTx, Result, WriteTx};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bench");

/// redb backend.
pub struct RedbEngine {
    db: Database,
    dir: PathBuf,
}

impl RedbEngine {
    /// Creates `dir/data.redb` with the table.
    pub fn open(dir: PathBuf) -> Result<RedbEngine> {
        let db = Database::builder()
            .set_cache_size(4 << 30)
            .create(dir.join("data.redb"))?;
        let txn = db.begin_write()?;
        txn.open_table(TABLE)?;
        txn.commit()?;
        Ok(RedbEngine { db, dir })
    }
}

struct RedbRead {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl ReadTx for RedbRead {
    fn get(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        match self.table.get(key)? {
            Some(v) => {
                f(v.value());
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
        for e in self.table.range(start..)?.take(limit) {
            let (k, v) = e?;
            f(k.value(), v.value());
            n += 1;
        }
        Ok(n)
    }

    fn count(&self) -> Result<u64> {
        Ok(self.table.len()?)
    }
}

struct RedbWrite<'t> {
    table: redb::Table<'t, &'static [u8], &'static [u8]>,
}

impl WriteTx for RedbWrite<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.table.insert(key, value)?;
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<bool> {
        Ok(self.table.remove(key)?.is_some())
    }

    fn get(&mut self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        match self.table.get(key)? {
            Some(v) => {
                f(v.value());
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

impl Engine for RedbEngine {
    fn name(&self) -> &'static str {
        "redb"
    }

    fn write(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut w = RedbWrite {
                table: txn.open_table(TABLE)?,
            };
            f(&mut w)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn read(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<()>) -> Result<()> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TABLE)?;
        f(&RedbRead { table })
    }

    fn compact(&mut self) -> Result<()> {
        self.db.compact()?;
        Ok(())
    }

    fn dir(&self) -> &Path {
        &self.dir
    }
}
