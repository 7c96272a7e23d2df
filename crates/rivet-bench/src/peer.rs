//! Builds the Go bbolt peer *with* its `bench` subcommand.
//!
//! `tests/interop/build-peer.sh` compiles `peer/main.go` alone (the interop tests do not need
//! the benchmark). `bench.go` registers itself with `main.go`'s command table from an `init`
//! function, so this module compiles both files, offline and in GOPATH mode exactly like the
//! script (Debian's bbolt 1.3.6 sources under `/usr/share/gocode`), into
//! `target/rivet-bench/bboltpeer`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why the Go backend is unavailable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerError {
    /// Go or the bbolt sources are not installed: skip the backend (loudly).
    Missing(String),
    /// They are installed but the build failed: a real error.
    BuildFailed(String),
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::Missing(s) => write!(f, "unavailable: {s}"),
            PeerError::BuildFailed(s) => write!(f, "build failed: {s}"),
        }
    }
}

/// The repository root this binary was built from.
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

fn find_go() -> Option<PathBuf> {
    if let Some(g) = std::env::var_os("GO").filter(|g| !g.is_empty()) {
        return Some(PathBuf::from(g));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            let c = d.join("go");
            if c.is_file() {
                return Some(c);
            }
        }
    }
    let fallback = PathBuf::from("/usr/lib/go/bin/go");
    fallback.is_file().then_some(fallback)
}

/// Builds the peer from `repo`'s sources into `repo/target/rivet-bench/bboltpeer`.
pub fn build(repo: &Path) -> Result<PathBuf, PeerError> {
    let go = find_go().ok_or_else(|| {
        PeerError::Missing(
            "go not found (apt-get install -y golang-go golang-github-coreos-bbolt-dev)".into(),
        )
    })?;
    let gocode = Path::new("/usr/share/gocode");
    if !gocode.join("src/go.etcd.io/bbolt/db.go").is_file() {
        return Err(PeerError::Missing(
            "bbolt sources not found in /usr/share/gocode (apt-get install -y golang-github-coreos-bbolt-dev)".into(),
        ));
    }
    let src = repo.join("tests/interop/peer");
    let work = repo.join("target/rivet-bench");
    let out = work.join("bboltpeer");
    for d in ["gopath", "gocache"] {
        std::fs::create_dir_all(work.join(d))
            .map_err(|e| PeerError::BuildFailed(format!("mkdir: {e}")))?;
    }
    let gopath = std::env::join_paths([work.join("gopath"), gocode.to_path_buf()])
        .map_err(|e| PeerError::BuildFailed(e.to_string()))?;
    // Build under a unique name and rename: concurrent callers (parallel tests) never see a
    // half-written binary.
    let tmp = work.join(format!(
        "bboltpeer.tmp.{}.{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let o = Command::new(&go)
        .arg("build")
        .arg("-o")
        .arg(&tmp)
        .arg(src.join("main.go"))
        .arg(src.join("bench.go"))
        .env("GO111MODULE", "off")
        .env("GOPATH", gopath)
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOCACHE", work.join("gocache"))
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .output()
        .map_err(|e| PeerError::Missing(format!("cannot run {}: {e}", go.display())))?;
    if !o.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(PeerError::BuildFailed(
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ));
    }
    std::fs::rename(&tmp, &out).map_err(|e| PeerError::BuildFailed(format!("rename: {e}")))?;
    Ok(out)
}
