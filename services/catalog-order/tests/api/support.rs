//! The real catalog-order `App` in-process, with a real auth `App` beside it issuing the tokens
//! (its JWKS and revocations are what catalog-order verifies against).

use catalog_order::settings::Settings;
use platform::config::{Profile, Secret};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use testkit::{TestDb, nats_namespace, nats_url};

pub const PASSWORD: &str = "correct horse battery staple";

/// The payment webhook secret of every test shop.
pub const WEBHOOK_SECRET: &str = "test-webhook-secret-0123456789abcdef";

pub struct Shop {
    pub base: String,
    /// The first replica's `/metrics`.
    pub metrics: String,
    pub namespace: String,
    pub settings: Settings,
    pub auth: String,
    pub db: TestDb,
    pub auth_db: TestDb,
    pub client: reqwest::Client,
    shutdowns: Vec<platform::shutdown::Shutdown>,
}

impl Drop for Shop {
    fn drop(&mut self) {
        for s in &self.shutdowns {
            s.trigger();
        }
    }
}

impl Shop {
    pub async fn spawn() -> Shop {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> Shop {
        let namespace = nats_namespace();
        let db = TestDb::new("catalog", &catalog_order::MIGRATOR).await;
        let mut s = Settings::default();
        s.platform.app_env = Profile::Test;
        s.platform.http_addr = "127.0.0.1:0".parse().unwrap();
        s.platform.metrics_addr = "127.0.0.1:0".parse().unwrap();
        s.database.database_url = Some(Secret::new(&db.url));
        s.database.db_max_connections = 20;
        s.nats.nats_url = Some(Secret::new(nats_url()));
        s.nats.nats_namespace = namespace.clone();
        s.rate_limit_write_per_minute = 100_000;
        s.rate_limit_write_burst = 100_000;
        s.payments.payment_webhook_secrets = Some(Secret::new(WEBHOOK_SECRET));
        s.payments.payment_fake_delay = std::time::Duration::from_secs(2);
        tweak(&mut s);
        let auth_db = TestDb::new("auth", &auth::MIGRATOR).await;
        let mut a = auth::settings::Settings::default();
        a.platform.app_env = Profile::Test;
        a.platform.http_addr = "127.0.0.1:0".parse().unwrap();
        a.platform.metrics_addr = "127.0.0.1:0".parse().unwrap();
        a.database.database_url = Some(Secret::new(&auth_db.url));
        a.nats.nats_url = Some(Secret::new(nats_url()));
        a.nats.nats_namespace = namespace.clone();
        // Every service provisions the same streams and store: the same replicas and limits.
        a.nats.nats_replicas = s.nats.nats_replicas;
        a.nats.nats_images_max_bytes = s.nats.nats_images_max_bytes;
        a.auth.argon2_memory_kib = 1024;
        a.auth.argon2_iterations = 1;
        a.auth.rate_limit_auth_per_minute = 100_000;
        a.auth.rate_limit_auth_burst = 100_000;
        let auth_app = auth::app::build(a).await.unwrap();
        let auth_base = format!("http://{}", auth_app.http_addr());
        let auth_stop = auth_app.shutdown();
        tokio::spawn(auth_app.run());

        s.tokens.auth_jwks_url = Some(format!("{auth_base}/.well-known/jwks.json"));
        let app = catalog_order::app::build(s.clone()).await.unwrap();
        let shop = Shop {
            base: format!("http://{}", app.http_addr()),
            metrics: format!("http://{}/metrics", app.metrics_addr()),
            namespace,
            settings: s,
            auth: auth_base,
            db,
            auth_db,
            client: testkit::http_client(),
            shutdowns: vec![auth_stop, app.shutdown()],
        };
        tokio::spawn(app.run());
        shop
    }

    /// A shop whose database traffic goes through a counter of executed statements.
    pub async fn spawn_counting_statements() -> (Shop, testkit::StatementCounter) {
        Self::spawn_counting_statements_with(|_| {}).await
    }

    /// [`Shop::spawn_counting_statements`] with changed settings.
    pub async fn spawn_counting_statements_with(
        tweak: impl FnOnce(&mut Settings) + Send + 'static,
    ) -> (Shop, testkit::StatementCounter) {
        let slot = std::sync::Arc::new(std::sync::Mutex::new(None));
        let filled = slot.clone();
        let shop = Self::spawn_with(move |s| {
            tweak(s);
            let url = s
                .database
                .database_url
                .as_ref()
                .unwrap()
                .expose()
                .to_owned();
            let proxy = testkit::StatementCounter::start(&testkit::host_port(&url));
            s.database.database_url = Some(Secret::new(proxy.rewrite(&url)));
            *filled.lock().unwrap() = Some(proxy);
        })
        .await;
        let counter = slot.lock().unwrap().take().unwrap();
        (shop, counter)
    }

    /// A worker on the same namespace and NATS; returns its metrics URL.
    pub async fn add_worker(&mut self) -> String {
        self.add_worker_with(|_| {}).await
    }

    /// A worker with changed settings (an SMTP transport, fewer sizes …).
    pub async fn add_worker_with(
        &mut self,
        tweak: impl FnOnce(&mut worker::settings::Settings),
    ) -> String {
        let mut w = worker::settings::Settings::default();
        w.platform.app_env = Profile::Test;
        w.platform.http_addr = "127.0.0.1:0".parse().unwrap();
        w.platform.metrics_addr = "127.0.0.1:0".parse().unwrap();
        w.nats.nats_url = self.settings.nats.nats_url.clone();
        w.nats.nats_namespace = self.namespace.clone();
        w.nats.nats_replicas = self.settings.nats.nats_replicas;
        w.nats.nats_images_max_bytes = self.settings.nats.nats_images_max_bytes;
        // Scheduled jobs would add their own events; the scheduler has tests of its own.
        w.scheduler_enabled = false;
        tweak(&mut w);
        let app = worker::app::build(w).await.unwrap();
        let metrics = format!("http://{}/metrics", app.metrics_addr());
        self.shutdowns.push(app.shutdown());
        tokio::spawn(app.run());
        metrics
    }

    /// Another replica of catalog-order on the same database and namespace.
    pub async fn add_replica(&mut self) -> String {
        self.add_replica_with(|_| {}).await
    }

    /// Another replica with changed settings.
    pub async fn add_replica_with(&mut self, tweak: impl FnOnce(&mut Settings)) -> String {
        let mut settings = self.settings.clone();
        tweak(&mut settings);
        let app = catalog_order::app::build(settings).await.unwrap();
        let base = format!("http://{}", app.http_addr());
        self.shutdowns.push(app.shutdown());
        tokio::spawn(app.run());
        base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A registered customer's access token.
    pub async fn customer(&self, email: &str) -> String {
        self.sign_up(email, "customer").await
    }

    /// An admin's access token.
    pub async fn admin(&self, email: &str) -> String {
        self.sign_up(email, "admin").await
    }

    /// A fresh access token of an account registered before.
    pub async fn login(&self, email: &str) -> String {
        let pair: Value = self
            .client
            .post(format!("{}/v1/auth/login", self.auth))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pair["access_token"].as_str().unwrap().to_owned()
    }

    /// Register through auth, set the role (as `auth create-admin` would), log in.
    async fn sign_up(&self, email: &str, role: &str) -> String {
        let creds = json!({"email": email, "password": PASSWORD});
        let auth = |path: &str| format!("{}{path}", self.auth);
        let r = self
            .client
            .post(auth("/v1/auth/register"))
            .json(&creds)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        sqlx::query("UPDATE users SET role = $2 WHERE email = $1")
            .bind(email)
            .bind(role)
            .execute(&self.auth_db.pool().await)
            .await
            .unwrap();
        self.login(email).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.send(reqwest::Method::POST, path, token, body).await
    }

    pub async fn category(&self, admin: &str, slug: &str) -> String {
        let r = self
            .post("/v1/categories", admin, json!({"name": slug, "slug": slug}))
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let v: Value = r.json().await.unwrap();
        v["id"].as_str().unwrap().to_owned()
    }

    pub async fn item(
        &self,
        admin: &str,
        category: &str,
        sku: &str,
        price: i64,
        stock: u32,
    ) -> String {
        let r = self
            .post(
                "/v1/items",
                admin,
                json!({"category_id": category, "sku": sku, "name": format!("Item {sku}"),
                       "description": "a fine thing", "price_cents": price, "currency": "EUR",
                       "stock": stock}),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let v: Value = r.json().await.unwrap();
        v["id"].as_str().unwrap().to_owned()
    }

    pub async fn stock(&self, item: &str) -> i64 {
        let v: Value = self
            .get(&format!("/v1/items/{item}"), None)
            .await
            .json()
            .await
            .unwrap();
        v["stock"].as_i64().unwrap()
    }

    /// The value of `series` (name and labels as exposed, `service` included) on the first
    /// replica's `/metrics`; 0 when it is not there.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = testkit::get(&self.metrics)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.db.pool().await)
            .await
            .unwrap()
    }
}

pub async fn problem(r: Response, status: StatusCode) -> Value {
    let got = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    assert!(body["request_id"].is_string(), "{body}");
    body
}

pub fn fields(p: &Value) -> Vec<String> {
    p["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `GET /v1/items?{query}`, which must answer 200.
pub async fn list(shop: &Shop, query: &str) -> Value {
    let r = shop.get(&format!("/v1/items?{query}"), None).await;
    assert_eq!(r.status(), 200, "{query}");
    r.json().await.unwrap()
}

/// The SKUs of a page of items, in order.
pub fn skus(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["sku"].as_str().unwrap().to_owned())
        .collect()
}
