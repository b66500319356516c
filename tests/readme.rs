//! The README's "Use it from Rust" program is `examples/embed.rs` word for word (CI compiles
//! the example), and the features its Cargo.toml line names exist.

fn block_after<'a>(text: &'a str, heading: &str, fence: &str) -> &'a str {
    let from = text.find(heading).expect("README heading");
    let rest = &text[from..];
    let start = rest.find(fence).expect("code block") + fence.len();
    let body = &rest[start..];
    &body[..body.find("\n```").expect("closing fence") + 1]
}

#[test]
fn readme_embedding_program_is_the_example() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let example = std::fs::read_to_string(format!("{root}/examples/embed.rs")).unwrap();
    let shown = block_after(&readme, "## Use it from Rust", "```rust\n");
    assert_eq!(
        shown, example,
        "README.md's program differs from examples/embed.rs"
    );

    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap()).unwrap();
    let features = manifest["features"].as_table().unwrap();
    let deps: toml::Table =
        toml::from_str(block_after(&readme, "## Use it from Rust", "```toml\n")).unwrap();
    let ours = deps["dependencies"]["cloudsync"]["features"]
        .as_array()
        .unwrap();
    assert!(!ours.is_empty());
    for f in ours {
        let f = f.as_str().unwrap();
        assert!(
            features.contains_key(f),
            "README names feature {f:?}, which Cargo.toml lacks"
        );
    }
}
