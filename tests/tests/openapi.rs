//! Each API documents itself: OpenAPI 3.1 at /openapi.json covering every route, and /docs served
//! from embedded assets only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use support::{Deps, Service};

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    out.push(v.as_str().unwrap().to_owned());
                }
                refs(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

async fn check(service: &Service, expected: &[(&str, &str)]) {
    let spec: Value = testkit::get(format!("{}/openapi.json", service.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    // The committed file, compiled in (each service's own test keeps it equal to its code).
    assert!(
        testkit::openapi::committed(service.name) == spec,
        "{} serves another spec than openapi/{0}.json: rebuild the binaries",
        service.name
    );
    // The same document under the service's own prefix, the path the chart's Ingress routes.
    let prefixed: Value = testkit::get(format!("{}/{}/openapi.json", service.base, service.name))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(prefixed, spec, "{}", service.name);
    let docs = testkit::get(format!("{}/{}/docs/", service.base, service.name))
        .await
        .unwrap();
    assert_eq!(docs.status(), 200, "{}", service.name);
    assert!(
        docs.text().await.unwrap().contains("swagger-ui"),
        "{}",
        service.name
    );
    let documented: BTreeSet<(String, String)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let wanted: BTreeSet<(String, String)> = expected
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, wanted, "{}", service.name);
    // Client generators name a function per operationId: each must be there, and unique.
    let mut ids = BTreeSet::new();
    for ops in spec["paths"].as_object().unwrap().values() {
        for (method, op) in ops.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_default().to_owned();
            assert!(
                !id.is_empty(),
                "{}: {method} without operationId",
                service.name
            );
            assert!(
                ids.insert(id.clone()),
                "{}: operationId {id} twice",
                service.name
            );
        }
    }

    // Every reference points at a schema that exists.
    let mut all = Vec::new();
    refs(&spec, &mut all);
    for r in all {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(
            spec["components"]["schemas"].get(name).is_some(),
            "{}: dangling {r}",
            service.name
        );
    }
    // Every documented route answers (not 404/405) — the document matches the router.
    let client = testkit::http_client();
    for (method, path) in expected {
        let url = format!(
            "{}{}",
            service.base,
            path.replace("{id}", "00000000-0000-0000-0000-000000000000")
        );
        let r = client
            .request(method.parse().unwrap(), &url)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert!(r.status() != 405, "{method} {path}: 405");
        if !path.contains("{id}") {
            assert!(r.status() != 404, "{method} {path}: 404");
        }
    }

    let html = testkit::get(format!("{}/docs/", service.base))
        .await
        .unwrap();
    assert_eq!(html.status(), 200);
    let html = html.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "docs load remote assets: {html}"
    );
    let js = testkit::get(format!("{}/docs/swagger-ui-bundle.js", service.base))
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
}

#[tokio::test]
async fn auth_and_catalog_order_document_every_route() {
    let deps = Deps::new().await;
    let auth = Service::start("auth", &deps.env("auth"));
    let catalog = Service::start("catalog-order", &deps.env("catalog-order"));
    auth.wait_ready(Duration::from_secs(20)).await;
    catalog.wait_ready(Duration::from_secs(20)).await;
    check(
        &auth,
        &[
            ("POST", "/v1/auth/register"),
            ("POST", "/v1/auth/login"),
            ("POST", "/v1/auth/refresh"),
            ("POST", "/v1/auth/logout"),
            ("POST", "/v1/auth/logout-all"),
            ("GET", "/v1/auth/me"),
            ("DELETE", "/v1/auth/me"),
            ("POST", "/v1/auth/email/verify"),
            ("POST", "/v1/auth/email/verify/resend"),
            ("POST", "/v1/auth/password/forgot"),
            ("POST", "/v1/auth/password/reset"),
            ("POST", "/v1/auth/password"),
            ("GET", "/v1/auth/users"),
            ("PATCH", "/v1/auth/users/{id}"),
            ("DELETE", "/v1/auth/users/{id}"),
            ("GET", "/.well-known/jwks.json"),
        ],
    )
    .await;
    check(
        &catalog,
        &[
            ("GET", "/v1/categories"),
            ("POST", "/v1/categories"),
            ("GET", "/v1/categories/{id}"),
            ("PATCH", "/v1/categories/{id}"),
            ("DELETE", "/v1/categories/{id}"),
            ("GET", "/v1/items"),
            ("POST", "/v1/items"),
            ("GET", "/v1/items/facets"),
            ("GET", "/v1/items/{id}"),
            ("POST", "/v1/items/{id}/images"),
            ("GET", "/v1/items/{id}/images"),
            ("GET", "/v1/items/{id}/images/{image_id}/{size}"),
            ("PATCH", "/v1/items/{id}"),
            ("DELETE", "/v1/items/{id}"),
            ("GET", "/v1/customers/me"),
            ("PUT", "/v1/customers/me"),
            ("GET", "/v1/customers/me/export"),
            ("GET", "/v1/orders"),
            ("POST", "/v1/orders"),
            ("GET", "/v1/orders/{id}"),
            ("POST", "/v1/orders/{id}/cancel"),
            ("POST", "/v1/orders/{id}/status"),
            ("POST", "/v1/orders/{id}/payment"),
            ("POST", "/v1/payments/webhook"),
            ("GET", "/v1/jobs/{id}"),
        ],
    )
    .await;
}
