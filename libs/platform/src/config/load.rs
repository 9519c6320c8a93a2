//! The loader: defaults < `config/{profile}.toml` < environment (and `NAME_FILE` secrets), every
//! bad value named, then the service's checks for what the command needs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::{Figment, Provider};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::values::num_text;
use super::{
    ConfigError, Needs, PLATFORM_SECRETS, Problems, Profile, ServiceSettings, SettingProblem,
};

/// Load the settings of a service from the process environment and `config/{profile}.toml`
/// (under `CONFIG_DIR`, default `./config`), checking those a command with `needs` uses.
pub fn load<S: ServiceSettings>(needs: Needs) -> Result<S, ConfigError> {
    let vars: HashMap<String, String> = std::env::vars().collect();
    let dir = vars
        .get("CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("config"));
    load_from(vars, &dir, needs)
}

/// Like [`load`], from the given variables and config folder (tests pass their own).
/// What prod assumes of every service unless told otherwise: NATS is a cluster of three, so every
/// stream, bucket and the image store is kept three times (a node and its volume may be lost).
/// A single server refuses that, and the service stays unready naming `NATS_REPLICAS`: an
/// operator of one server sets it to 1.
const PROD_DEFAULTS: [(&str, u8); 1] = [("nats_replicas", 3)];

pub fn load_from<S: ServiceSettings>(
    vars: HashMap<String, String>,
    config_dir: &Path,
    needs: Needs,
) -> Result<S, ConfigError> {
    let mut problems = Problems::default();

    let profile = match vars.get("APP_ENV") {
        None => Profile::Dev,
        Some(raw) => Profile::parse(raw).unwrap_or_else(|| {
            problems.add("APP_ENV", format!("{raw:?} is not one of dev, test, prod"));
            // Judge the rest by the strictest rules rather than the laxest.
            Profile::Prod
        }),
    };

    let (env, env_text) = environment_dict::<S>(&vars, &mut problems);

    let mut defaults = Figment::from(Serialized::defaults(S::default()));
    if profile == Profile::Prod {
        for (key, value) in PROD_DEFAULTS {
            defaults = defaults.merge(Serialized::default(key, value));
        }
    }
    for (key, value) in S::profile_defaults(profile) {
        defaults = defaults.merge(Serialized::default(key, value));
    }
    let defaults = defaults.merge(Serialized::default("app_env", profile));
    let default_dict = defaults.data().map(flatten_default).unwrap_or_default();

    let file = config_dir.join(format!("{}.toml", profile.as_str()));
    let mut figment = defaults.merge(Toml::file(&file));
    figment = figment.merge(Serialized::defaults(env));
    figment = figment.merge(Serialized::default("app_env", profile));

    let dict = match figment.data() {
        Ok(data) => flatten_default(data),
        Err(e) => {
            problems.add(file.display().to_string(), e.to_string());
            default_dict.clone()
        }
    };

    let settings = match extract::<S>(&dict) {
        Ok(settings) => Some(settings),
        // serde stops at the first error and, through `flatten`, forgets which key it was in:
        // try each given value alone on top of the defaults to name every bad one. A variable
        // read as a number or boolean that its setting refuses is tried as the text it was (a
        // text setting whose value looks numeric, `OTEL_SERVICE_NAME=2024`).
        Err(first) => {
            let mut usable = default_dict.clone();
            for (key, value) in &dict {
                if default_dict.get(key) == Some(value) {
                    continue;
                }
                let mut trial = default_dict.clone();
                trial.insert(key.clone(), value.clone());
                let error = match extract::<S>(&trial) {
                    Ok(_) => {
                        usable.insert(key.clone(), value.clone());
                        continue;
                    }
                    Err(e) => e,
                };
                if let Some(text) = env_text.get(key) {
                    trial.insert(key.clone(), text.clone());
                    if extract::<S>(&trial).is_ok() {
                        usable.insert(key.clone(), text.clone());
                        continue;
                    }
                }
                problems.add(key.to_ascii_uppercase(), clean_figment_message(&error));
            }
            match extract::<S>(&usable) {
                Ok(settings) => Some(settings),
                Err(_) => {
                    problems.add("settings", clean_figment_message(&first));
                    None
                }
            }
        }
    };

    if let Some(settings) = &settings {
        settings.validate(needs, &mut problems);
    }
    match settings {
        Some(settings) if problems.is_empty() => Ok(settings),
        _ => {
            dedupe(&mut problems.0);
            Err(ConfigError {
                profile,
                problems: problems.0,
            })
        }
    }
}

/// The environment as a figment dictionary: keys lower-cased, values parsed into their most
/// specific type, secrets kept as the exact text given, `NAME_FILE` secrets read from their
/// files. Also, for each value parsed into something else, its text (see [`load_from`]).
fn environment_dict<S: ServiceSettings>(
    vars: &HashMap<String, String>,
    problems: &mut Problems,
) -> (Dict, Dict) {
    let secrets = || PLATFORM_SECRETS.iter().chain(S::SECRETS);
    let mut dict = Dict::new();
    let mut text = Dict::new();
    for (name, raw) in vars {
        let key = name.to_ascii_lowercase();
        if secrets().any(|s| *s == name.as_str()) {
            dict.insert(key, Value::from(raw.clone()));
            continue;
        }
        let value = parse_env_value(raw);
        if !matches!(value, Value::String(..)) {
            text.insert(key.clone(), Value::from(raw.clone()));
        }
        dict.insert(key, value);
    }
    for secret in secrets() {
        let file_var = format!("{secret}_FILE");
        let Some(path) = vars.get(&file_var) else {
            continue;
        };
        if vars.contains_key(*secret) {
            problems.add(
                *secret,
                format!("set either {secret} or {file_var}, not both"),
            );
            continue;
        }
        match std::fs::read_to_string(path) {
            Ok(content) => {
                let value = content.trim_end_matches(['\n', '\r']).to_owned();
                dict.insert(secret.to_ascii_lowercase(), Value::from(value));
            }
            Err(e) => problems.add(file_var, format!("cannot read {path:?}: {e}")),
        }
    }
    (dict, text)
}

// figment::Error is large, but this runs a few times at start-up only.
#[allow(clippy::result_large_err)]
fn extract<S: DeserializeOwned>(dict: &Dict) -> Result<S, figment::Error> {
    Figment::from(Serialized::defaults(dict)).extract::<S>()
}

fn parse_env_value(raw: &str) -> Value {
    // Only scalars are interpreted; lists are written comma-separated and parsed by the field.
    if let Ok(b) = raw.parse::<bool>() {
        return Value::from(b);
    }
    if let Ok(n) = raw.parse::<u64>() {
        return Value::from(n);
    }
    if let Ok(n) = raw.parse::<i64>() {
        return Value::from(n);
    }
    // Fractions (`0.1`, `2.5e-3`); not `inf` or `NaN`, which are words more often than numbers.
    if raw.bytes().any(|b| b.is_ascii_digit())
        && raw
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && let Ok(x) = raw.parse::<f64>()
        && x.is_finite()
    {
        return Value::from(x);
    }
    Value::from(raw.to_owned())
}

/// The environment that would give `settings`: each value as the text its variable would hold
/// (`HTTP_ADDR=0.0.0.0:8081`, `REQUEST_TIMEOUT=10s`, `HTTP_KEEP_ALIVE=true`, `CORS_ALLOWED_ORIGINS=`
/// for an empty list); unset options are left out. Tests use it to check that every setting
/// reads back the text form it writes.
pub fn as_environment<S: Serialize>(settings: &S) -> HashMap<String, String> {
    fn text(value: &Value) -> Option<String> {
        match value {
            Value::String(_, s) => Some(s.clone()),
            Value::Char(_, c) => Some(c.to_string()),
            Value::Bool(_, b) => Some(b.to_string()),
            Value::Num(_, n) => Some(num_text(*n)),
            Value::Array(_, items) => {
                Some(items.iter().filter_map(text).collect::<Vec<_>>().join(","))
            }
            Value::Empty(..) | Value::Dict(..) => None,
        }
    }
    Figment::from(Serialized::defaults(settings))
        .data()
        .map(flatten_default)
        .unwrap_or_default()
        .iter()
        .filter_map(|(key, value)| Some((key.to_ascii_uppercase(), text(value)?)))
        .collect()
}

fn flatten_default(mut data: figment::value::Map<figment::Profile, Dict>) -> Dict {
    data.remove(&figment::Profile::Default).unwrap_or_default()
}

fn clean_figment_message(error: &figment::Error) -> String {
    use figment::error::Kind;
    match &error.kind {
        Kind::MissingField(_) => "is required".to_owned(),
        Kind::InvalidType(actual, expected) => format!("expected {expected}, found {actual}"),
        Kind::InvalidValue(actual, expected) => format!("expected {expected}, found {actual}"),
        Kind::UnknownVariant(v, expected) => {
            format!("{v:?} is not one of {}", expected.join(", "))
        }
        other => other.to_string(),
    }
}

fn dedupe(problems: &mut Vec<SettingProblem>) {
    let mut seen = BTreeMap::new();
    problems.retain(|p| {
        seen.insert((p.setting.clone(), p.message.clone()), ())
            .is_none()
    });
}
