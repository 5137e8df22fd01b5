//! docs/migrating-from-uwsgi.md carries the server's option table exactly. Run with
//! `UPDATE_DOCS=1` to rewrite the table in the file after changing the options.
//!
//! The table documents the default build (with Python): a build without the `python`
//! feature refuses the Python options, so it has nothing to compare.

#![cfg(feature = "python")]
#![allow(clippy::unwrap_used)]

use uwsgi_server::config::options::markdown_rows;

const HEADER: &str = "| option | aliases | what it does | status |\n|---|---|---|---|\n";

#[test]
fn migration_guide_carries_the_option_table() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/migrating-from-uwsgi.md"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find(HEADER).expect("the table header") + HEADER.len();
    let end = start + text[start..].find("\n\n").unwrap_or(text.len() - start) + 1;
    let rows = markdown_rows();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let updated = format!("{}{}{}", &text[..start], rows, &text[end..]);
        std::fs::write(path, updated).unwrap();
        return;
    }
    assert_eq!(
        &text[start..end],
        rows,
        "the option table is stale: run UPDATE_DOCS=1 cargo test -p uwsgi-server --test docs"
    );
}
