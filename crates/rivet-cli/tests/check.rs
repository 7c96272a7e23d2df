//! `check` output a person can read (issue 13, kind 4): one damaged branch element leaves a
//! whole subtree unreachable; the text groups those pages into a range after the problems
//! found on single pages, and `--json` still lists every problem.

mod common;

use std::collections::HashSet;

use common::{p, rivet};
use rivet::{Db, Options};

#[test]
fn one_damaged_branch_gives_a_few_grouped_lines() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("big.db");
    {
        let d = Db::open(
            &db,
            Options {
                page_size: Some(4096),
                ..Options::default()
            },
        )
        .unwrap();
        d.update(|tx| {
            let b = tx.create_bucket(b"b")?;
            for i in 0..30_000u32 {
                b.put(format!("k{i:06}").as_bytes(), &[b'v'; 100])?;
            }
            Ok::<_, rivet::Error>(())
        })
        .unwrap();
    }
    // The bucket's root branch is the branch page no other branch points to.
    let r = rivet(&["pages", "--json", p(&db)]).expect(0);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let branches: Vec<u64> = v["pages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "branch")
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    let mut children = HashSet::new();
    for b in &branches {
        let out = rivet(&["page", p(&db), &b.to_string()]).expect(0).out();
        for l in out.lines() {
            if let Some(i) = l.find("-> page ") {
                children.insert(l[i + 8..].trim().parse::<u64>().unwrap());
            }
        }
    }
    let root = *branches.iter().find(|b| !children.contains(b)).unwrap();
    // Point element 1 of the root at element 2's child: element 1's subtree is lost.
    let mut bytes = std::fs::read(&db).unwrap();
    let elem = |i: usize| root as usize * 4096 + 16 + 16 * i + 8;
    let (e1, e2) = (elem(1), elem(2));
    let child2: [u8; 8] = bytes[e2..e2 + 8].try_into().unwrap();
    bytes[e1..e1 + 8].copy_from_slice(&child2);
    std::fs::write(&db, &bytes).unwrap();

    let r = rivet(&["check", p(&db)]).expect(1);
    let out = r.out();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() <= 6, "too many lines:\n{out}");
    let total: usize = lines
        .last()
        .unwrap()
        .strip_suffix(" problem(s) found")
        .unwrap()
        .parse()
        .unwrap();
    assert!(total > 100, "{out}");
    // Single-page problems lead; the unreachable pages come as one range at the end.
    assert!(lines[0].starts_with("page "), "{out}");
    let grouped = lines[lines.len() - 2];
    assert!(
        grouped.starts_with("pages ") && grouped.contains(".."),
        "no range line:\n{out}"
    );
    assert!(grouped.contains("neither reachable nor free"), "{out}");

    // --json: every problem, one per page.
    let r = rivet(&["check", "--json", p(&db)]).expect(1);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), total);
    assert!(problems.iter().all(|p| p["page"].is_u64()));
}
