//! Starting the real auth `App` in-process on port 0, against a fresh database and NATS
//! namespace, and a small client for its API.
#![allow(dead_code)]

use std::time::Duration;

use auth::settings::Settings;
use platform::config::{Profile, Secret};
use platform::shutdown::Shutdown;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use testkit::{TestDb, nats_namespace, nats_url};

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestAuth {
    pub base: String,
    pub metrics: String,
    pub db: TestDb,
    pub settings: Settings,
    pub shutdown: Shutdown,
    pub client: reqwest::Client,
}

/// Settings for a test: port 0, own database and namespace, cheap argon2, generous rate limits.
pub async fn settings(db: &TestDb) -> Settings {
    let mut s = Settings::default();
    s.platform.app_env = Profile::Test;
    s.platform.http_addr = "127.0.0.1:0".parse().unwrap();
    s.platform.metrics_addr = "127.0.0.1:0".parse().unwrap();
    s.database.database_url = Some(Secret::new(&db.url));
    s.nats.nats_url = Some(Secret::new(nats_url()));
    s.nats.nats_namespace = nats_namespace();
    s.auth.argon2_memory_kib = 1024;
    s.auth.argon2_iterations = 1;
    s.auth.rate_limit_auth_per_minute = 10_000;
    s.auth.rate_limit_auth_burst = 10_000;
    s.auth.auth_signing_keys = Some(Secret::new(auth::keys::generate_pem().unwrap()));
    s
}

impl TestAuth {
    pub async fn spawn() -> TestAuth {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> TestAuth {
        let db = TestDb::new("auth", &auth::MIGRATOR).await;
        let mut s = settings(&db).await;
        tweak(&mut s);
        Self::start(db, s).await
    }

    /// Start an app on an existing database (a "restart" with other settings).
    pub async fn start(db: TestDb, settings: Settings) -> TestAuth {
        let app = auth::app::build(settings.clone()).await.unwrap();
        let t = TestAuth {
            base: format!("http://{}", app.http_addr()),
            metrics: format!("http://{}", app.metrics_addr()),
            shutdown: app.shutdown(),
            db,
            settings,
            client: testkit::http_client(),
        };
        tokio::spawn(app.run());
        t
    }

    /// Another instance on the same database, namespace and keys (a replica behind the same load
    /// balancer); it stops when dropped.
    pub async fn replica(&self) -> Replica {
        let app = auth::app::build(self.settings.clone()).await.unwrap();
        let replica = Replica {
            base: format!("http://{}", app.http_addr()),
            shutdown: app.shutdown(),
        };
        tokio::spawn(app.run());
        replica
    }

    /// Stop this instance and hand back its database.
    pub async fn stop(self) -> (TestDb, Settings) {
        self.shutdown.trigger();
        tokio::time::sleep(Duration::from_millis(600)).await;
        let TestAuth { db, settings, .. } = self;
        (db, settings)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_bearer(&self, path: &str, token: &str, body: Option<Value>) -> Response {
        let mut req = self.client.post(self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, email: &str) -> Value {
        let r = self
            .post(
                "/v1/auth/register",
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
        r.json().await.unwrap()
    }

    /// Log in; returns `{access_token, refresh_token, …}`.
    pub async fn login(&self, email: &str) -> Value {
        let r = self
            .post(
                "/v1/auth/login",
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        r.json().await.unwrap()
    }

    /// A registered, logged-in customer.
    pub async fn customer(&self, email: &str) -> Value {
        self.register(email).await;
        self.login(email).await
    }

    /// An admin (created as the CLI does), logged in.
    pub async fn admin(&self, email: &str) -> Value {
        let body = self.register(email).await;
        let id: uuid::Uuid = body["id"].as_str().unwrap().parse().unwrap();
        sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
            .bind(id)
            .execute(&self.db.pool().await)
            .await
            .unwrap();
        self.login(email).await
    }

    pub async fn me(&self, access_token: &str) -> Response {
        self.get_bearer("/v1/auth/me", access_token).await
    }

    pub async fn metrics_text(&self) -> String {
        testkit::get(format!("{}/metrics", self.metrics))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The e-mail jobs auth has published for the worker since the last call, taken off the
    /// `email` family's consumer as the worker would take them (and acknowledged, so each is seen
    /// once): `(kind, payload)`, in publication order. Waits up to `within` for at least `least`.
    pub async fn take_emails(&self, least: usize, within: Duration) -> Vec<(String, Value)> {
        use futures_util::StreamExt;
        let js = async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap());
        let topology = jobs::Topology::from_settings(&self.settings.nats).unwrap();
        let name = topology.consumer_name(&jobs::email::FAMILY);
        let deadline = tokio::time::Instant::now() + within;
        let mut taken = Vec::new();
        loop {
            // The consumer exists once the relay has provisioned the topology.
            let consumer = match js.get_stream(topology.jobs_stream()).await {
                Ok(stream) => stream
                    .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&name)
                    .await
                    .ok(),
                Err(_) => None,
            };
            if let Some(consumer) = consumer {
                let mut batch = consumer
                    .fetch()
                    .max_messages(100)
                    .expires(Duration::from_millis(500))
                    .messages()
                    .await
                    .unwrap();
                while let Some(Ok(message)) = batch.next().await {
                    let kind = message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(jobs::headers::JOB_KIND))
                        .map(|k| k.to_string())
                        .unwrap();
                    taken.push((kind, serde_json::from_slice(&message.payload).unwrap()));
                    message.ack().await.unwrap();
                }
            } else {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if taken.len() >= least || tokio::time::Instant::now() >= deadline {
                return taken;
            }
        }
    }

    /// The token of the link in the e-mail of `kind` to `to`, waiting for it (10 s at most); the
    /// other e-mails taken meanwhile are dropped.
    pub async fn email_token(&self, kind: &str, to: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            seen.extend(self.take_emails(1, Duration::from_secs(2)).await);
            let mine: Vec<&Value> = seen
                .iter()
                .filter(|(k, m)| k == kind && m["email"] == to)
                .map(|(_, m)| m)
                .collect();
            if !mine.is_empty() || tokio::time::Instant::now() >= deadline {
                assert_eq!(mine.len(), 1, "{kind} to {to}: {seen:?}");
                return link_token(mine[0]["link"].as_str().unwrap());
            }
        }
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.db.pool().await)
            .await
            .unwrap()
    }
}

/// A second (or third) instance started by [`TestAuth::replica`].
pub struct Replica {
    pub base: String,
    shutdown: Shutdown,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// The `token` query parameter of an e-mail's link.
pub fn link_token(link: &str) -> String {
    let (_, query) = link.split_once('?').unwrap();
    query
        .split('&')
        .find_map(|p| p.strip_prefix("token="))
        .unwrap()
        .to_owned()
}

pub fn token(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap().to_owned()
}

/// Assert a problem+json answer with this status; returns the body.
pub async fn problem(r: Response, status: StatusCode) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert!(body["request_id"].is_string(), "{body}");
    body
}
