//! A service's OpenAPI spec is an artefact: `openapi/<service>.json` is committed, compiled into
//! the service and served (`platform::openapi::docs`); clients generate from it. The service's
//! own test compares it with what the code describes, so a change to a wire shape shows in
//! review and fails until the file follows.

use std::path::PathBuf;

use serde_json::Value;

fn path(service: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../openapi")
        .join(format!("{service}.json"))
}

/// The committed `openapi/<service>.json` (`Null` if it is missing or unreadable).
pub fn committed(service: &str) -> Value {
    std::fs::read(path(service))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}

/// Assert that the committed spec is `generated` (the service's `utoipa` description). With
/// `UPDATE_OPENAPI=1` the file is written instead.
pub fn committed_spec_is(service: &str, generated: &impl serde::Serialize) {
    let generated = serde_json::to_value(generated).unwrap_or_else(|e| panic!("{service}: {e}"));
    let path = path(service);
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        let pretty = serde_json::to_string_pretty(&generated).unwrap_or_default() + "\n";
        std::fs::write(&path, pretty).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    assert!(
        committed(service) == generated,
        "{} differs from what {service}'s code describes: run \
         UPDATE_OPENAPI=1 cargo test -p {service} openapi, rebuild, and commit the file",
        path.display()
    );
}
