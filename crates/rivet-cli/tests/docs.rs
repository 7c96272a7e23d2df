//! `docs/cli.md` replays exactly: every `$ command` of its console blocks is run in order (in
//! one scratch directory, with this build's `rivet` first on `PATH`) and must print exactly
//! the lines shown after it (stdout and stderr together, then `[exit status N]` when not 0).
//! `bench` lines are run but their timings are not compared.

mod common;

use std::path::Path;
use std::process::Command;

use common::BIN;

/// The `$ ` commands of the console blocks, each with the lines shown after it.
fn sessions(doc: &str) -> Vec<(String, Vec<String>)> {
    let mut cmds: Vec<(String, Vec<String>)> = Vec::new();
    let mut inside = false;
    for line in doc.lines() {
        if line.starts_with("```") {
            inside = line == "```console";
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ ") {
            cmds.push((cmd.to_string(), Vec::new()));
        } else if let Some((_, out)) = cmds.last_mut() {
            out.push(line.to_string());
        }
    }
    for (_, out) in &mut cmds {
        while out.last().is_some_and(|l| l.is_empty()) {
            out.pop();
        }
    }
    cmds
}

#[test]
fn cli_md_replays_exactly() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
    let doc = std::fs::read_to_string(&doc_path).expect("read docs/cli.md");
    let bin_dir = Path::new(BIN).parent().expect("binary directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dir = tempfile::tempdir().unwrap();
    let cmds = sessions(&doc);
    assert!(cmds.len() > 30, "found only {} commands", cmds.len());
    let mut mismatches = Vec::new();
    for (cmd, want) in &cmds {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("{cmd} 2>&1"))
            .current_dir(dir.path())
            .env("PATH", &path)
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("run bash");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut got: Vec<String> = text
            .trim_end_matches('\n')
            .lines()
            .map(String::from)
            .collect();
        if text.trim_end_matches('\n').is_empty() {
            got.clear();
        }
        let code = out.status.code().unwrap_or(-1);
        if code != 0 {
            got.push(format!("[exit status {code}]"));
        }
        if cmd.starts_with("rivet bench") {
            assert_eq!(code, 0, "{cmd}: {text}");
            assert_eq!(got.len(), want.len(), "{cmd}: {text}");
            continue;
        }
        if &got != want {
            mismatches.push(format!(
                "$ {cmd}\n  docs:\n    {}\n  got:\n    {}",
                want.join("\n    "),
                got.join("\n    ")
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "docs/cli.md does not replay:\n{}",
        mismatches.join("\n")
    );
}
