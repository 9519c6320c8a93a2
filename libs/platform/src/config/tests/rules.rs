//! What is refused, in prod and for what a command needs.

use super::*;

#[test]
fn a_well_configured_prod_starts() {
    let s = load_vars(GOOD_PROD).unwrap();
    assert_eq!(s.platform.log_format(), LogFormat::Json);
}

#[test]
fn prod_requires_database_and_nats_urls_and_lists_both() {
    let err = load_vars(&[("APP_ENV", "prod")]).unwrap_err();
    assert!(err.mentions("DATABASE_URL"), "{err}");
    assert!(err.mentions("NATS_URL"), "{err}");
    assert_eq!(err.problems.len(), 2, "{err}");
}

#[test]
fn prod_refuses_pretty_logs() {
    let err = prod_with(&[("LOG_FORMAT", "pretty")]).unwrap_err();
    assert!(err.mentions("LOG_FORMAT"));
}

#[test]
fn prod_refuses_wildcard_cors() {
    let err = prod_with(&[("CORS_ALLOWED_ORIGINS", "*")]).unwrap_err();
    assert!(err.mentions("CORS_ALLOWED_ORIGINS"));
    // dev accepts it: a local front-end on any port.
    assert!(load_vars(&[("CORS_ALLOWED_ORIGINS", "*")]).is_ok());
}

#[test]
fn prod_refuses_a_database_without_password_or_with_a_default_one() {
    for url in [
        "postgres://postgres@db/auth",
        "postgres://postgres:@db/auth",
        "postgres://postgres:postgres@db/auth", // secret-scan: allow (test value)
        "postgres://app:Password@db/auth",      // secret-scan: allow (test value)
    ] {
        let err = prod_with(&[("DATABASE_URL", url)]).unwrap_err();
        assert!(err.mentions("DATABASE_URL"), "{url}: {err}");
    }
}

#[test]
fn prod_refuses_auto_migrate() {
    let err = prod_with(&[("AUTO_MIGRATE", "true")]).unwrap_err();
    assert!(err.mentions("AUTO_MIGRATE"));
    assert!(load_vars(&[("AUTO_MIGRATE", "true")]).is_ok());
}

#[test]
fn an_unknown_profile_is_an_error_and_judged_as_prod() {
    let err = load_vars(&[("APP_ENV", "staging")]).unwrap_err();
    assert!(err.mentions("APP_ENV"));
    assert!(err.mentions("DATABASE_URL"), "strictest rules apply: {err}");
}

#[test]
fn semantic_checks_report_zero_values_and_clashing_ports() {
    let err = load_vars(&[
        ("REQUEST_TIMEOUT", "0s"),
        ("BODY_LIMIT_BYTES", "0"),
        ("HTTP_ADDR", "0.0.0.0:7000"),
        ("METRICS_ADDR", "0.0.0.0:7000"),
        ("DB_MAX_CONNECTIONS", "0"),
        ("NATS_NAMESPACE", "has.dots"),
    ])
    .unwrap_err();
    for setting in [
        "REQUEST_TIMEOUT",
        "BODY_LIMIT_BYTES",
        "METRICS_ADDR",
        "DB_MAX_CONNECTIONS",
        "NATS_NAMESPACE",
    ] {
        assert!(err.mentions(setting), "{setting} missing from: {err}");
    }
}

#[test]
fn a_command_is_judged_only_by_the_settings_it_needs() {
    let db: &[(&str, &str)] = &[
        ("APP_ENV", "prod"),
        ("LOG_FORMAT", "json"),
        ("DATABASE_URL", "postgres://auth:s3cr3t-Long@db:5432/auth"), // secret-scan: allow (test value)
    ];
    let load = |pairs: &[(&str, &str)], needs| {
        load_from::<TestSettings>(vars(pairs), Path::new("/nonexistent"), needs)
    };
    assert!(load(db, Needs::DATABASE).is_ok());
    let err = load(db, Needs::SERVE).unwrap_err();
    assert!(err.mentions("NATS_URL"), "{err}");
    let err = load(db, Needs::DATABASE.and(Needs::NATS)).unwrap_err();
    assert!(err.mentions("NATS_URL"), "{err}");

    let nats = &[("APP_ENV", "prod"), ("NATS_URL", "nats://nats:4222")];
    assert!(load(nats, Needs::NATS).is_ok());
    assert!(
        load(nats, Needs::DATABASE)
            .unwrap_err()
            .mentions("DATABASE_URL")
    );

    // Serving settings count only for serve; the basics and any given value count always.
    let mut odd = db.to_vec();
    odd.extend([("CORS_ALLOWED_ORIGINS", "*"), ("BODY_LIMIT_BYTES", "0")]);
    assert!(load(&odd, Needs::DATABASE).is_ok());
    let err = load(&odd, Needs::SERVE).unwrap_err();
    assert!(err.mentions("CORS_ALLOWED_ORIGINS") && err.mentions("BODY_LIMIT_BYTES"));
    for bad in [
        ("LOG_FORMAT", "pretty"),
        ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ("HTTP_ADDR", "x"),
    ] {
        let mut pairs = db.to_vec();
        pairs.retain(|(k, _)| *k != bad.0);
        pairs.push(bad);
        assert!(
            load(&pairs, Needs::DATABASE).unwrap_err().mentions(bad.0),
            "{bad:?}"
        );
    }
}

#[test]
fn otlp_headers_are_checked_at_load_without_echoing_them() {
    let s = load_vars(&[(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "authorization=Basic%20dXNlcjpwYXNz,x-scope-orgid=shop",
    )]);
    assert!(s.is_ok(), "{:?}", s.err());
    for bad in [
        "authorization",
        "authorization=Basic%2",
        "bad key=s3cr3t-value",
    ] {
        let err = load_vars(&[("OTEL_EXPORTER_OTLP_HEADERS", bad)]).unwrap_err();
        assert!(err.mentions("OTEL_EXPORTER_OTLP_HEADERS"), "{bad}: {err}");
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }
}
