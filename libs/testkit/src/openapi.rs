//! A service's OpenAPI spec is an artefact: `openapi/<service>.json` is committed, compiled into
//! the service and served (`platform::openapi::docs`); clients generate from it. The service's
//! own test compares it with what the code describes, so a change to a wire shape shows in
//! review and fails until the file follows.

use std::path::Path;

use serde_json::Value;

/// Assert that the committed spec (`committed`, the service's compiled-in copy, found on disk at
/// `openapi/<service>.json`) is `generated`. With `UPDATE_OPENAPI=1` the file is written instead.
pub fn committed_spec_is(service: &str, committed: &[u8], generated: &impl serde::Serialize) {
    let generated = serde_json::to_value(generated).unwrap_or_else(|e| panic!("{service}: {e}"));
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../openapi")
        .join(format!("{service}.json"));
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        let pretty = serde_json::to_string_pretty(&generated).unwrap_or_default() + "\n";
        std::fs::write(&path, pretty).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let committed: Value = serde_json::from_slice(committed).unwrap_or(Value::Null);
    assert!(
        committed == generated,
        "{} differs from what {service}'s code describes: run \
         UPDATE_OPENAPI=1 cargo test -p {service} openapi, rebuild, and commit the file",
        path.display()
    );
}
