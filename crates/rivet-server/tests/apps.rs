//! Real Python applications against rivet-server, each also run against Debian's
//! redis-server in the same test (so that a failure is ours, not the scenario's):
//!
//! - `rq`: an `rq worker --burst` process runs enqueued jobs; results (kept in streams) and a
//!   failure come back.
//! - `celery`: a Celery worker with the server as broker and result backend (BRPOP, pub/sub,
//!   Lua) runs tasks; results and a failure come back.
//! - `limits`: the rate limiter's Redis storage refuses the N+1th hit in a window (moving
//!   window through Lua, fixed window, sliding-window counter).
//! - `lock`: redis-py's `Lock` (EVALSHA) excludes a second holder and expires.
//! - `redis_lock`: python-redis-lock hands a released lock to a blocked waiter.
//!
//! The scenarios are in `tests/py/apps_check.py` (workers import `tests/py/apps_tasks.py`).
//! The interpreter is `$RIVET_PYTHON`, else `python3` if it has the libraries. A missing peer
//! prints a loud SKIPPED line and passes, unless `CI` is set, where it fails. Local setup
//! (CI pins the same versions in `.ci/run`):
//!
//! ```text
//! python3 -m venv /tmp/venv && /tmp/venv/bin/pip install rq celery limits redis python-redis-lock
//! RIVET_PYTHON=/tmp/venv/bin/python cargo test -p rivet-server --test apps
//! ```

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{python_with, redis_or_skip, RivetServer};

const MODULES: &str = "rq, celery, limits, redis, redis_lock";
const PIP: &str = "rq celery limits redis python-redis-lock";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/apps_check.py")
}

/// Runs `scenario` against a server on `port`; returns its `ok` line or panics with the
/// scenario's output.
fn run(python: &Path, port: u16, scenario: &str, against: &str) -> String {
    let out = Command::new(python)
        .arg(script())
        .arg(port.to_string())
        .arg(scenario)
        .output()
        .expect("run apps_check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{scenario} against {against} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
        .lines()
        .find(|l| l.starts_with("ok "))
        .unwrap_or_else(|| panic!("{scenario} against {against}: no ok line:\n{stdout}"))
        .to_string()
}

/// The scenario against redis-server first, then against a fresh rivet-server, which is
/// stopped with SIGTERM and must exit 0 with a file `rivet check` accepts.
fn both(test: &str, scenario: &str) {
    let Some(python) = python_with(test, MODULES, PIP) else {
        return;
    };
    let Some(redis) = redis_or_skip(test) else {
        return;
    };
    let theirs = run(&python, redis.port(), scenario, "redis-server");
    drop(redis);
    let rivet = RivetServer::start(&[]);
    let ours = run(&python, rivet.port(), scenario, "rivet-server");
    common::stop_and_check(rivet);
    println!("redis-server: {theirs}\nrivet-server: {ours}");
}

#[test]
fn rq_worker_runs_jobs() {
    both("rq_worker_runs_jobs", "rq");
}

#[test]
fn celery_worker_runs_tasks() {
    both("celery_worker_runs_tasks", "celery");
}

#[test]
fn limits_refuses_the_hit_past_the_limit() {
    both("limits_refuses_the_hit_past_the_limit", "limits");
}

#[test]
fn redis_py_lock_excludes_and_expires() {
    both("redis_py_lock_excludes_and_expires", "lock");
}

#[test]
fn python_redis_lock_hands_over() {
    both("python_redis_lock_hands_over", "redis_lock");
}
