//! The JSON Lines protocol between a benchmark child and the driver.
//!
//! A child (`rivet-bench run …` or the Go peer's `bench …`) prints one compact JSON object per
//! line on stdout, flushed immediately so the driver can enforce per-phase time limits and
//! keep the phases that finished before a kill:
//!
//! ```text
//! {"ev":"start","phase":"bulk_load"}
//! {"ev":"end","phase":"bulk_load","secs":1.234,"ops":1000000}
//! {"ev":"value","name":"size_compacted","value":123456,"unit":"bytes"}
//! {"ev":"note","text":"…"}
//! {"ev":"done"}
//! ```
//!
//! `ops` is the number of operations the phase timed (keys, gets, scans, commits or
//! records), so per-operation costs are `secs / ops`.

use std::io::Write;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::engine::Result;

/// One line of a child's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "lowercase")]
pub enum Event {
    /// A timed phase begins.
    Start {
        /// Phase name.
        phase: String,
    },
    /// A timed phase ended.
    End {
        /// Phase name.
        phase: String,
        /// Wall-clock seconds.
        secs: f64,
        /// Operations timed.
        ops: u64,
    },
    /// A measured quantity that is not a time (sizes, counts).
    Value {
        /// Name.
        name: String,
        /// Value.
        value: f64,
        /// Unit (`bytes`, `count`, …).
        unit: String,
    },
    /// Free text for the report (sampling, fallbacks).
    Note {
        /// The text.
        text: String,
    },
    /// The workload finished.
    Done,
}

/// Writes events to stdout, one flushed line each.
#[derive(Debug, Default)]
pub struct Reporter {
    quiet: bool,
}

impl Reporter {
    /// A reporter printing to stdout.
    pub fn stdout() -> Reporter {
        Reporter { quiet: false }
    }

    /// A reporter that prints nothing (library use, tests).
    pub fn quiet() -> Reporter {
        Reporter { quiet: true }
    }

    /// Emits one event.
    pub fn emit(&self, ev: &Event) {
        if self.quiet {
            return;
        }
        let line = serde_json::to_string(ev).expect("events serialise");
        let out = std::io::stdout();
        let mut out = out.lock();
        // A closed pipe means the driver went away; there is nobody left to tell.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// Times `f` as phase `name` covering `ops` operations.
    pub fn phase<T>(&self, name: &str, ops: u64, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.emit(&Event::Start {
            phase: name.to_string(),
        });
        let t = Instant::now();
        let r = f()?;
        let secs = t.elapsed().as_secs_f64();
        self.emit(&Event::End {
            phase: name.to_string(),
            secs,
            ops,
        });
        Ok(r)
    }

    /// Times `f` as phase `name`; `f` returns the number of operations it did.
    pub fn phase_n(&self, name: &str, f: impl FnOnce() -> Result<u64>) -> Result<u64> {
        self.emit(&Event::Start {
            phase: name.to_string(),
        });
        let t = Instant::now();
        let ops = f()?;
        let secs = t.elapsed().as_secs_f64();
        self.emit(&Event::End {
            phase: name.to_string(),
            secs,
            ops,
        });
        Ok(ops)
    }

    /// Emits a value.
    pub fn value(&self, name: &str, value: f64, unit: &str) {
        self.emit(&Event::Value {
            name: name.to_string(),
            value,
            unit: unit.to_string(),
        });
    }

    /// Emits a note.
    pub fn note(&self, text: impl Into<String>) {
        self.emit(&Event::Note { text: text.into() });
    }
}
