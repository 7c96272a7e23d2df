//! The README's library example is `examples/quickstart.rs`, which cargo compiles: this test
//! keeps the README's copy identical, so the snippet a newcomer copies compiles as shown.

#[test]
fn readme_library_example_is_the_quickstart_example() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/quickstart.rs"
    ))
    .expect("examples/quickstart.rs");
    let start = readme
        .find("```rust\n")
        .expect("a rust code block in the README")
        + "```rust\n".len();
    let len = readme[start..]
        .find("```\n")
        .expect("end of the code block");
    assert_eq!(
        &readme[start..start + len],
        example,
        "README.md's library example differs from crates/rivet/examples/quickstart.rs"
    );
}
