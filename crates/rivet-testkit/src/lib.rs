//! Test support shared by the workspace's test suites (a dev-dependency only).
//!
//! It owns one job today: building the Go bbolt peer used by the interop tests, and deciding
//! what a test does when it cannot be built.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Outcome of building the peer.
enum PeerBuild {
    Ready(PathBuf),
    /// Go or the bbolt sources are missing (`build-peer.sh` exited 3).
    Unavailable(String),
    /// The build failed for another reason; always an error.
    Broken(String),
}

/// Root of the repository (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn build(out: &Path) -> PeerBuild {
    let script = repo_root().join("tests/interop/build-peer.sh");
    let output = match Command::new("sh").arg(&script).arg(out).output() {
        Ok(o) => o,
        Err(e) => return PeerBuild::Broken(format!("running {}: {e}", script.display())),
    };
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    match output.status.code() {
        Some(0) if out.is_file() => PeerBuild::Ready(out.to_path_buf()),
        Some(0) => PeerBuild::Broken(format!("{} was not built", out.display())),
        Some(3) => PeerBuild::Unavailable(stderr),
        _ => PeerBuild::Broken(format!(
            "build-peer.sh failed ({}): {stderr}",
            output.status
        )),
    }
}

/// The Go bbolt peer binary, built once per test process at
/// `target/interop/<suite>/bboltpeer` (one path per suite, so test binaries running at the
/// same time never write the same file).
///
/// Returns `None` after a loud message on stderr when Go or the bbolt sources are missing and
/// `CI` is unset, so a developer without Go still runs everything else; panics when `CI` is
/// set (CI must run the interop tests) or when the build fails for any other reason.
pub fn go_peer(suite: &str) -> Option<PathBuf> {
    static PEER: OnceLock<PeerBuild> = OnceLock::new();
    let state = PEER.get_or_init(|| {
        build(
            &repo_root()
                .join("target/interop")
                .join(suite)
                .join("bboltpeer"),
        )
    });
    match state {
        PeerBuild::Ready(bin) => Some(bin.clone()),
        PeerBuild::Unavailable(reason) => {
            if std::env::var_os("CI").is_some() {
                panic!("Go bbolt peer unavailable and CI is set: {reason}");
            }
            // Straight to stderr (not `eprintln!`), so the test harness' capture cannot hide it.
            let stars = "*".repeat(70);
            let _ = writeln!(
                std::io::stderr(),
                "\n{stars}\nSKIPPED: Go bbolt peer unavailable ({reason}); install golang-go \
                 and golang-github-coreos-bbolt-dev to run the interop checks\n{stars}\n"
            );
            None
        }
        PeerBuild::Broken(reason) => panic!("building the Go bbolt peer failed: {reason}"),
    }
}
