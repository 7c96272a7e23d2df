//! Smoke test: builds the suite and runs every available backend through every workload at
//! tiny N, then checks that the results JSON is complete and the report and charts exist.
//! Not a timing test — it only checks that everything runs and reports.
//!
//! Go bbolt runs when Go and Debian's bbolt sources are installed; otherwise the test prints a
//! loud SKIPPED line for that backend and checks the others.

use std::path::Path;
use std::process::Command;

use rivet_bench::driver::{Results, GO_ENGINE};
use rivet_bench::engine::compiled_engines;
use rivet_bench::workload::{expected_phases, expected_values, Params, Workload};

fn scratch_root() -> std::path::PathBuf {
    // tmpfs makes every fsync free, which keeps this test fast; fall back to the temp dir.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

#[test]
fn every_backend_every_workload_tiny_n() {
    let exe = env!("CARGO_BIN_EXE_rivet-bench");
    let tmp = tempfile::tempdir_in(scratch_root()).expect("scratch dir");
    let db = tmp.path().join("db");
    let out = tmp.path().join("out");
    let publish = tmp.path().join("BENCHMARKS.md");
    std::fs::write(
        &publish,
        "# Head\n\nkept\n\n<!-- BEGIN GENERATED -->\nold\n<!-- END GENERATED -->\n\ntail kept\n",
    )
    .unwrap();
    let p = Params {
        n: 1000,
        individual_writes: 10,
        batch_commits: 3,
        batch_size: 100,
        threads: 4,
        sample: 10,
        load_batch: 0,
        seed: 3,
    };
    let o = Command::new(exe)
        .args([
            "all",
            "--runs",
            "1",
            "--phase-limit",
            "120",
            "--fsync-samples",
            "5",
        ])
        .args(["--n", &p.n.to_string()])
        .args(["--individual-writes", &p.individual_writes.to_string()])
        .args(["--batch-commits", &p.batch_commits.to_string()])
        .args(["--batch-size", &p.batch_size.to_string()])
        .args(["--sample", &p.sample.to_string()])
        .args(["--scale-ns", "500,1000"])
        .arg("--dir")
        .arg(&db)
        .arg("--out")
        .arg(&out)
        .arg("--publish")
        .arg(&publish)
        .output()
        .expect("run rivet-bench");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "rivet-bench all failed:\n{stderr}");

    let results: Results =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap())
            .expect("results.json parses");
    let mut engines: Vec<String> = compiled_engines().into_iter().map(String::from).collect();
    match results.skipped.get(GO_ENGINE) {
        Some(why) => eprintln!(
            "\n*** SKIPPED: Go bbolt backend not run: {why} ***\n*** (apt-get install -y golang-go golang-github-coreos-bbolt-dev) ***\n"
        ),
        None => engines.push(GO_ENGINE.into()),
    }
    for engine in &engines {
        for w in Workload::ALL {
            let ns: &[u64] = if w == Workload::Scale {
                &[500, 1000]
            } else {
                &[1000]
            };
            for &n in ns {
                let run = results
                    .runs
                    .iter()
                    .find(|r| &r.engine == engine && r.workload == w.name() && r.n == n)
                    .unwrap_or_else(|| panic!("no {engine} {} n={n} run", w.name()));
                assert_eq!(run.error, None, "{engine} {}", w.name());
                assert_eq!(run.timed_out, None, "{engine} {}", w.name());
                assert!(run.peak_rss_kib > 0, "{engine} {}: no peak RSS", w.name());
                for ph in expected_phases(w, &p) {
                    let got = run
                        .phase(&ph)
                        .unwrap_or_else(|| panic!("{engine} {}: phase {ph} missing", w.name()));
                    assert!(got.secs.is_some_and(|s| s >= 0.0), "{engine} {ph}");
                    assert!(got.ops > 0, "{engine} {ph}: no ops");
                }
                for v in expected_values(w) {
                    let got = run.values.get(&v).copied().unwrap_or(0.0);
                    assert!(got > 0.0, "{engine} {}: value {v} missing", w.name());
                }
            }
        }
    }
    assert!(results.meta.fsync_floor_us > 0.0);
    assert!(!results.meta.cpu.is_empty());

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for needle in [
        "### Targets",
        "### Workload 1",
        "### Workload 2",
        "### Workload 3",
    ] {
        assert!(report.contains(needle), "report lacks {needle}");
    }
    for chart in ["kv-1000.svg", "kv-1000-space.svg", "records-1000.svg"] {
        let svg = std::fs::read_to_string(out.join(chart)).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
    let published = std::fs::read_to_string(&publish).unwrap();
    assert!(published.starts_with("# Head\n\nkept\n"));
    assert!(published.contains("### Targets") && !published.contains("\nold\n"));
    assert!(published.trim_end().ends_with("tail kept"));
    assert!(
        published.contains("](out/kv-1000.svg)"),
        "chart links are relative"
    );
}

/// The Go peer generates exactly the same keys, values, records and random picks.
#[test]
fn go_peer_generates_the_same_data() {
    let repo = rivet_bench::peer::repo_root();
    let peer = match rivet_bench::peer::build(&repo) {
        Ok(p) => p,
        Err(rivet_bench::peer::PeerError::Missing(why)) => {
            eprintln!("\n*** SKIPPED: Go bbolt backend: {why} ***\n");
            return;
        }
        Err(e) => panic!("Go peer: {e}"),
    };
    let exe = env!("CARGO_BIN_EXE_rivet-bench");
    let rust = Command::new(exe).arg("selftest").output().unwrap();
    let go = Command::new(peer)
        .args(["bench", "-selftest"])
        .output()
        .unwrap();
    assert!(rust.status.success() && go.status.success());
    assert_eq!(
        String::from_utf8_lossy(&rust.stdout),
        String::from_utf8_lossy(&go.stdout)
    );
}

/// A child that stops reporting is killed at the phase limit and the phase is marked.
#[test]
fn driver_kills_a_phase_at_the_limit() {
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        r#"echo '{"ev":"start","phase":"a"}'; echo '{"ev":"end","phase":"a","secs":0.5,"ops":3}'; echo '{"ev":"start","phase":"slow"}'; exec sleep 30"#,
    ]);
    let t = std::time::Instant::now();
    let r = rivet_bench::driver::run_child(cmd, std::time::Duration::from_millis(700));
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(r.timed_out.as_deref(), Some("slow"));
    assert_eq!(r.phase("a").and_then(|p| p.secs), Some(0.5));
    assert_eq!(r.phase("slow").map(|p| p.secs), Some(None));
    assert_eq!(r.error, None);
}
