//! Starting the real binaries as processes on free ports, against real PostgreSQL and NATS.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use testkit::{TestDb, nats_namespace, nats_url};

/// Where cargo put the service binaries: `STOREFRONT_BIN_DIR`, or next to this test's `deps/`.
pub fn bin(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("STOREFRONT_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the services first (`cargo build --bins`; `make test` does)",
        path.display()
    );
    path
}

/// A port nothing listens on and that this process has not handed out before: the kernel gives
/// a just-released port out again, so two services started in a row could otherwise get the same
/// one before the first has bound it (seen in CI: catalog-order's requests answered by auth).
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap();
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// One service process. Its stdout (JSON logs) goes to a file read by `logs()`.
pub struct Service {
    pub name: &'static str,
    pub base: String,
    pub metrics: String,
    pub child: Child,
    log: PathBuf,
}

impl Service {
    pub fn start(name: &'static str, env: &HashMap<String, String>) -> Service {
        let http = free_port();
        let metrics = free_port();
        let log = std::env::temp_dir().join(format!("sf-e2e-{name}-{http}.log"));
        let child = Command::new(bin(name))
            .env_clear()
            .envs(testkit::coverage_env())
            .envs(env)
            .env("APP_ENV", "test")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("HTTP_ADDR", format!("127.0.0.1:{http}"))
            .env("METRICS_ADDR", format!("127.0.0.1:{metrics}"))
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Service {
            name,
            base: format!("http://127.0.0.1:{http}"),
            metrics: format!("http://127.0.0.1:{metrics}"),
            child,
            log,
        }
    }

    pub async fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(r) = testkit::get(format!("{}/health/ready", self.base)).await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready within {within:?}; log: {}",
                self.name,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Where its stdout (JSON logs) goes.
    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait for the process to exit, for at most `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Databases and a NATS namespace for one test's services.
pub struct Deps {
    pub auth_db: TestDb,
    pub catalog_db: TestDb,
    pub namespace: String,
}

impl Deps {
    /// Empty databases migrated by the binaries' own `migrate up`.
    pub async fn new() -> Deps {
        let deps = Deps {
            auth_db: TestDb::empty("e2e_auth").await,
            catalog_db: TestDb::empty("e2e_catalog").await,
            namespace: nats_namespace(),
        };
        for (name, db) in [("auth", &deps.auth_db), ("catalog-order", &deps.catalog_db)] {
            let out = Command::new(bin(name))
                .args(["migrate", "up"])
                .env("APP_ENV", "test")
                .env("DATABASE_URL", &db.url)
                .env("NATS_URL", nats_url())
                .output()
                .unwrap();
            assert!(out.status.success(), "{name} migrate up: {out:?}");
        }
        deps
    }

    pub fn env(&self, service: &str) -> HashMap<String, String> {
        let mut env = HashMap::from([
            ("NATS_URL".to_owned(), nats_url()),
            ("NATS_NAMESPACE".to_owned(), self.namespace.clone()),
            ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
        ]);
        let db = match service {
            "auth" => Some(&self.auth_db),
            "catalog-order" => Some(&self.catalog_db),
            _ => None,
        };
        if let Some(db) = db {
            env.insert("DATABASE_URL".to_owned(), db.url.clone());
        }
        env
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

/// Create an admin with `auth create-admin` (as an operator would) and a customer through the
/// API; log both in. Returns (admin token, customer token).
pub async fn admin_and_customer(deps: &Deps, auth: &Service) -> (String, String) {
    use std::io::Write;
    let mut cli = Command::new(bin("auth"))
        .args(["create-admin", "--email", "boss@example.com"])
        .env("APP_ENV", "test")
        .env("DATABASE_URL", &deps.auth_db.url)
        .envs(testkit::coverage_env())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(cli.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(cli.wait().unwrap().success());
    let client = testkit::http_client();
    let register = client
        .post(format!("{}/v1/auth/register", auth.base))
        .json(&serde_json::json!({"email": "ann@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), 201);
    (
        login(&client, auth, "boss@example.com").await,
        login(&client, auth, "ann@example.com").await,
    )
}

pub async fn login(client: &reqwest::Client, auth: &Service, email: &str) -> String {
    let pair: serde_json::Value = client
        .post(format!("{}/v1/auth/login", auth.base))
        .json(&serde_json::json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    pair["access_token"].as_str().unwrap().to_owned()
}

/// The JSON body of a 201.
pub async fn created(r: reqwest::Response) -> serde_json::Value {
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

/// The three services of one test, started in order and ready. catalog-order verifies tokens with
/// this auth's JWKS; the worker's scheduler is off (tests publish the jobs they need).
/// `tweak(service, env)` adjusts each environment before the service starts.
pub struct Stack {
    pub auth: Service,
    pub catalog: Service,
    pub worker: Service,
    envs: HashMap<&'static str, HashMap<String, String>>,
}

impl Stack {
    pub async fn start(deps: &Deps, tweak: impl Fn(&str, &mut HashMap<String, String>)) -> Stack {
        let ready = Duration::from_secs(20);
        let mut envs = HashMap::new();
        let mut env_of = |name: &'static str, defaults: &[(&str, String)]| {
            let mut env = deps.env(name);
            env.extend(defaults.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
            tweak(name, &mut env);
            envs.insert(name, env.clone());
            env
        };
        let auth = Service::start("auth", &env_of("auth", &[]));
        auth.wait_ready(ready).await;
        let jwks = format!("{}/.well-known/jwks.json", auth.base);
        let catalog = Service::start(
            "catalog-order",
            &env_of("catalog-order", &[("AUTH_JWKS_URL", jwks)]),
        );
        let worker = Service::start(
            "worker",
            &env_of("worker", &[("SCHEDULER_ENABLED", "false".to_owned())]),
        );
        catalog.wait_ready(ready).await;
        worker.wait_ready(ready).await;
        Stack {
            auth,
            catalog,
            worker,
            envs,
        }
    }

    /// The environment a service was started with (to start another copy of it).
    pub fn env(&self, service: &str) -> &HashMap<String, String> {
        &self.envs[service]
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}{path}", self.catalog.base)
    }
}

/// As the admin: a category "Mugs" and in it the item MUG-1 (9.00 EUR, 3 in stock). Returns the item.
pub async fn mug_for_sale(
    client: &reqwest::Client,
    stack: &Stack,
    admin: &str,
) -> serde_json::Value {
    let category = created(
        client
            .post(stack.api("/v1/categories"))
            .bearer_auth(admin)
            .json(&serde_json::json!({"name": "Mugs", "slug": "mugs"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    created(
        client
            .post(stack.api("/v1/items"))
            .bearer_auth(admin)
            .json(&serde_json::json!({"category_id": category["id"], "sku": "MUG-1", "name": "Mug",
                          "description": "white", "price_cents": 900, "currency": "EUR", "stock": 3}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Run `command` off the async runtime (the stack keeps serving meanwhile), assert it succeeded,
/// and return its stdout.
pub async fn run_ok(mut command: Command) -> String {
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
