//! How settings are read: layers, types, text, secrets and their files, every error named.

use super::*;

#[test]
fn dev_starts_with_no_settings_at_all() {
    let s = load_vars(&[]).unwrap();
    assert_eq!(s.platform.app_env, Profile::Dev);
    assert_eq!(s.platform.http_addr.port(), 8081);
    assert_eq!(s.platform.log_format(), LogFormat::Pretty);
    assert!(s.database.database_url.is_some());
}

#[test]
fn environment_overrides_defaults_with_typed_values() {
    let s = load_vars(&[
        ("HTTP_ADDR", "127.0.0.1:9999"),
        ("REQUEST_TIMEOUT", "250ms"),
        ("SHUTDOWN_GRACE_PERIOD", "7"),
        (
            "CORS_ALLOWED_ORIGINS",
            "https://a.example, https://b.example",
        ),
        ("HTTP_KEEP_ALIVE", "false"),
    ])
    .unwrap();
    assert_eq!(s.platform.http_addr, "127.0.0.1:9999".parse().unwrap());
    assert_eq!(s.platform.request_timeout, Duration::from_millis(250));
    assert_eq!(s.platform.shutdown_grace_period, Duration::from_secs(7));
    assert_eq!(
        s.platform.cors_allowed_origins,
        vec!["https://a.example", "https://b.example"]
    );
    assert!(!s.platform.http_keep_alive);
}

#[test]
fn profile_file_sits_between_defaults_and_environment() {
    let dir = std::env::temp_dir().join(format!("sf-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("dev.toml"),
        "request_timeout = \"3s\"\nbody_limit_bytes = 2048\n",
    )
    .unwrap();
    let s: TestSettings =
        load_from(vars(&[("BODY_LIMIT_BYTES", "4096")]), &dir, Needs::SERVE).unwrap();
    assert_eq!(s.platform.request_timeout, Duration::from_secs(3));
    assert_eq!(s.platform.body_limit_bytes, 4096);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn every_type_error_is_reported_not_just_the_first() {
    let err = load_vars(&[
        ("HTTP_ADDR", "not-an-address"),
        ("REQUEST_TIMEOUT", "soon"),
        ("DB_MAX_CONNECTIONS", "-3"),
        ("LOG_FORMAT", "xml"),
    ])
    .unwrap_err();
    for setting in [
        "HTTP_ADDR",
        "REQUEST_TIMEOUT",
        "DB_MAX_CONNECTIONS",
        "LOG_FORMAT",
    ] {
        assert!(err.mentions(setting), "{setting} missing from: {err:?}");
    }
}

#[test]
fn secrets_can_come_from_files() {
    let path = std::env::temp_dir().join(format!("sf-secret-{}", uuid::Uuid::new_v4()));
    std::fs::write(&path, "postgres://auth:0123456789@db/auth\n").unwrap(); // secret-scan: allow (test value)
    let s = prod_with(&[("DATABASE_URL_FILE", path.to_str().unwrap())]);
    // GOOD_PROD also sets DATABASE_URL: both at once is ambiguous.
    assert!(s.unwrap_err().mentions("DATABASE_URL"));

    let s = load_vars(&[
        ("APP_ENV", "prod"),
        ("NATS_URL", "nats://nats:4222"),
        ("DATABASE_URL_FILE", path.to_str().unwrap()),
    ])
    .unwrap();
    // A numeric-looking password survives as text, and the newline is gone.
    assert_eq!(
        s.database.database_url.unwrap().expose(),
        "postgres://auth:0123456789@db/auth" // secret-scan: allow (test value)
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn an_unreadable_secret_file_is_reported() {
    let err =
        load_vars(&[("APP_ENV", "prod"), ("DATABASE_URL_FILE", "/nonexistent/x")]).unwrap_err();
    assert!(err.mentions("DATABASE_URL_FILE"), "{err}");
}

#[test]
fn secrets_never_show_in_debug_output() {
    let s = load_vars(GOOD_PROD).unwrap();
    let debug = format!("{s:?}");
    assert!(!debug.contains("s3cr3t"), "{debug}");
    assert!(debug.contains("[redacted]"));
}

#[test]
fn the_error_lists_every_problem_on_its_own_line() {
    let err = load_vars(&[("APP_ENV", "prod"), ("LOG_FORMAT", "pretty")]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("invalid configuration (APP_ENV=prod): 3 problems"),
        "{text}"
    );
    assert_eq!(text.lines().filter(|l| l.starts_with("  - ")).count(), 3);
}

#[test]
fn every_default_written_as_text_loads_back() {
    // What testkit::settings::assert_defaults_round_trip checks for each service (testkit's
    // platform is not this test build's, so its helper cannot take TestSettings).
    let mut env = as_environment(&TestSettings::default());
    env.insert("APP_ENV".into(), "test".into());
    let loaded: TestSettings = load_from(env.clone(), Path::new("/nonexistent"), Needs::SERVE)
        .unwrap_or_else(|e| panic!("defaults written as text refused: {e}\n{env:?}"));
    let back = as_environment(&loaded);
    for (name, text) in &env {
        assert_eq!(back.get(name), Some(text), "{name} changed on its way back");
    }
}

#[test]
fn a_fractional_sampler_ratio_given_as_text_is_read() {
    let s = load_vars(&[("APP_ENV", "test"), ("OTEL_TRACES_SAMPLER_ARG", "0.1")]).unwrap();
    assert_eq!(s.platform.otel_traces_sampler_arg, 0.1);
    let s = load_vars(&[("OTEL_TRACES_SAMPLER_ARG", "1")]).unwrap();
    assert_eq!(s.platform.otel_traces_sampler_arg, 1.0);
    let s = load_vars(&[("OTEL_TRACES_SAMPLER_ARG", "5e-2")]).unwrap();
    assert_eq!(s.platform.otel_traces_sampler_arg, 0.05);
    let err = load_vars(&[("OTEL_TRACES_SAMPLER_ARG", "1.5")]).unwrap_err();
    assert!(err.mentions("OTEL_TRACES_SAMPLER_ARG"), "{err}");
    let err = load_vars(&[("OTEL_TRACES_SAMPLER_ARG", "NaN")]).unwrap_err();
    assert!(err.mentions("OTEL_TRACES_SAMPLER_ARG"), "{err}");
}

#[test]
fn a_text_setting_that_looks_like_a_number_keeps_its_text() {
    let s = load_vars(&[
        ("OTEL_SERVICE_NAME", "2024"),
        ("RELEASE", "1.50"),
        ("NATS_NAMESPACE", "true"),
    ])
    .unwrap();
    assert_eq!(s.platform.otel_service_name.as_deref(), Some("2024"));
    assert_eq!(s.release, "1.50");
    assert_eq!(s.nats.nats_namespace, "true");
    // ... and a numeric setting given words is still named.
    let err = load_vars(&[("OTEL_SERVICE_NAME", "7"), ("BODY_LIMIT_BYTES", "lots")]).unwrap_err();
    assert!(
        err.mentions("BODY_LIMIT_BYTES") && !err.mentions("OTEL_SERVICE_NAME"),
        "{err}"
    );
}

#[test]
fn secrets_reach_their_field_as_the_exact_text_given() {
    for raw in [
        "0123",
        "1.50",
        "1e3",
        "-0",
        "true",
        "00000000000000000000000000000042",
    ] {
        let s = load_vars(&[("API_TOKEN", raw)]).unwrap();
        assert_eq!(s.api_token.unwrap().expose(), raw);
        // A platform secret too (OTEL_EXPORTER_OTLP_HEADERS is `key=value` pairs).
        let header = format!("x-token={raw}");
        let s = load_vars(&[("OTEL_EXPORTER_OTLP_HEADERS", header.as_str())]).unwrap();
        assert_eq!(
            s.platform.otel_exporter_otlp_headers.unwrap().expose(),
            header
        );
    }
}

#[test]
fn platform_secrets_come_from_files_for_every_service() {
    let dir = std::env::temp_dir().join(format!("sf-secrets-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let dsn = "https://0123abcd@o1.ingest.sentry.io/42"; // secret-scan: allow (test value)
    std::fs::write(dir.join("dsn"), format!("{dsn}\n")).unwrap();
    std::fs::write(dir.join("headers"), "authorization=Bearer 0123\n").unwrap();
    let s = load_vars(&[
        ("SENTRY_DSN_FILE", dir.join("dsn").to_str().unwrap()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS_FILE",
            dir.join("headers").to_str().unwrap(),
        ),
    ])
    .unwrap();
    assert_eq!(
        s.platform.sentry_dsn.as_ref().map(Secret::expose),
        Some(dsn)
    );
    // The DSN carries the project's key: it never reaches a log line.
    assert!(!format!("{s:?}").contains("0123abcd"));
    assert_eq!(
        s.platform.otel_exporter_otlp_headers.unwrap().expose(),
        "authorization=Bearer 0123"
    );
    let err = load_vars(&[
        ("SENTRY_DSN", dsn),
        ("SENTRY_DSN_FILE", dir.join("dsn").to_str().unwrap()),
    ])
    .unwrap_err();
    assert!(err.mentions("SENTRY_DSN"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn prod_keeps_three_copies_in_nats_unless_told_and_dev_one() {
    assert_eq!(load_vars(GOOD_PROD).unwrap().nats.nats_replicas, 3);
    assert_eq!(load_vars(&[]).unwrap().nats.nats_replicas, 1);
    let single = prod_with(&[("NATS_REPLICAS", "1")]).unwrap();
    assert_eq!(single.nats.nats_replicas, 1);
}
