//! Checks of a service's settings that its tests use.

use std::collections::HashMap;
use std::path::Path;

use platform::config::{Needs, ServiceSettings, as_environment, load_from};

/// Every default of `S`, written as the text the environment would hold (as the kubelet
/// gives every value), loads back with `APP_ENV=test` unrefused and unchanged.
pub fn assert_defaults_round_trip<S: ServiceSettings>() {
    let mut env = as_environment(&S::default());
    env.insert("APP_ENV".into(), "test".into());
    let loaded: S = load_from(env.clone(), Path::new("/nonexistent"), Needs::SERVE)
        .unwrap_or_else(|e| panic!("defaults written as text refused: {e}\n{env:?}"));
    let back = as_environment(&loaded);
    for (name, text) in &env {
        assert_eq!(back.get(name), Some(text), "{name} changed on its way back");
    }
}

/// `S` loaded for `serve` from these variables alone with `APP_ENV=test`; panics if refused.
pub fn load_test_settings<S: ServiceSettings>(pairs: &[(&str, &str)]) -> S {
    let mut env: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.entry("APP_ENV".into()).or_insert_with(|| "test".into());
    load_from(env, Path::new("/nonexistent"), Needs::SERVE)
        .unwrap_or_else(|e| panic!("{pairs:?} refused: {e}"))
}
