//! Payment providers (docs/design.md, "Payments"): what catalog-order asks of one — open a
//! payment, refund it — behind [`Provider`], and what it hears back, the provider's signed
//! webhooks ([`signature`], [`WebhookEvent`]).
//!
//! Two providers: [`fake`] (the default outside prod) behaves like a real one — it answers the
//! open call, then delivers signed webhooks over HTTP to the service — so tests and `make dev`
//! go through the real webhook path; [`gateway`] speaks a small JSON protocol to a payment
//! gateway (docs/payments.md) for production. Prod refuses to start with `fake`.

pub mod fake;
pub mod gateway;
pub mod signature;

use std::time::Duration;

use futures_util::future::BoxFuture;
use platform::config::{Problems, Profile, Secret};
use prometheus::{IntCounter, IntCounterVec, Opts};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::PaymentEvent;

/// A payment as a provider is told about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentRef {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub amount_cents: i64,
    pub currency: String,
}

/// How the `fake` provider ends a payment (`test_outcome` of the request; other providers
/// ignore it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TestOutcome {
    /// `payment.succeeded` at once.
    #[default]
    Succeed,
    /// `payment.failed` at once.
    Fail,
    /// `payment.succeeded` after `PAYMENT_FAKE_DELAY`: the payment can be seen `processing`.
    Delay,
}

/// Why a provider call did not work.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached or failed (5xx, timeout): worth another try.
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request (4xx): another try will not help.
    #[error("the payment provider refused: {0}")]
    Refused(String),
}

/// A payment provider. Both calls are idempotent on the payment id: a retried call opens or
/// refunds nothing twice.
pub trait Provider: Send + Sync + 'static {
    /// The provider's name, stored with each payment (`fake`, `gateway`).
    fn name(&self) -> &'static str;

    /// Open a payment; answers the secret the client finishes paying with.
    fn open<'a>(
        &'a self,
        payment: &'a PaymentRef,
        outcome: TestOutcome,
    ) -> BoxFuture<'a, Result<String, ProviderError>>;

    /// Give a succeeded payment's money back; `refund.succeeded` follows as a webhook.
    fn refund<'a>(&'a self, payment: &'a PaymentRef) -> BoxFuture<'a, Result<(), ProviderError>>;
}

/// The body of a provider's webhook (DESIGN §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookEvent {
    /// The provider's event id: an event already applied is answered and not applied again.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: PaymentEvent,
    /// Unix seconds.
    pub created: i64,
    pub data: WebhookData,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookData {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub amount_cents: i64,
    pub currency: String,
}

/// Which provider the service uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Fake,
    Gateway,
}

/// `PAYMENT_*` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentSettings {
    /// `fake` (default; refused in prod) or `gateway`.
    pub payment_provider: ProviderKind,
    /// Secrets a webhook's signature may be made with, comma-separated; all are accepted, so a
    /// secret is rotated by adding the new one, switching the provider to it, then removing the
    /// old one. The `fake` provider signs with the first.
    pub payment_webhook_secrets: Option<Secret>,
    /// `gateway`: the gateway's base URL.
    pub payment_gateway_url: Option<String>,
    /// `gateway`: the bearer token of its API.
    pub payment_gateway_api_key: Option<Secret>,
    /// `fake`: where its webhooks go; by default this replica's own `/v1/payments/webhook`.
    pub payment_fake_webhook_url: Option<String>,
    /// `fake`: how long a `delay` outcome keeps a payment processing.
    #[serde(with = "platform::config::duration")]
    pub payment_fake_delay: Duration,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        PaymentSettings {
            payment_provider: ProviderKind::Fake,
            payment_webhook_secrets: None,
            payment_gateway_url: None,
            payment_gateway_api_key: None,
            payment_fake_webhook_url: None,
            payment_fake_delay: Duration::from_secs(5),
        }
    }
}

/// The webhook secret outside prod when none is set: not a secret, and refused in prod.
pub const DEV_WEBHOOK_SECRET: &str = "dev-only-payment-webhook-secret";

impl PaymentSettings {
    /// Every accepted webhook secret.
    pub fn webhook_secrets(&self) -> Vec<String> {
        self.payment_webhook_secrets
            .as_ref()
            .map(|s| {
                s.expose()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn validate(&self, profile: Profile, problems: &mut Problems) {
        let secrets = self.webhook_secrets();
        if secrets.is_empty() {
            problems.add(
                "PAYMENT_WEBHOOK_SECRETS",
                "is required: the secrets provider webhooks are signed with, comma-separated",
            );
        }
        if profile == Profile::Prod {
            if self.payment_provider == ProviderKind::Fake {
                problems.add(
                    "PAYMENT_PROVIDER",
                    "must not be fake in prod: set gateway with PAYMENT_GATEWAY_URL and PAYMENT_GATEWAY_API_KEY",
                );
            }
            if secrets
                .iter()
                .any(|s| s.len() < 32 || s == DEV_WEBHOOK_SECRET)
            {
                problems.add(
                    "PAYMENT_WEBHOOK_SECRETS",
                    "each secret must be at least 32 random characters in prod",
                );
            }
        }
        if self.payment_provider == ProviderKind::Gateway {
            match self.payment_gateway_url.as_deref().map(url::Url::parse) {
                Some(Ok(u)) if matches!(u.scheme(), "http" | "https") => {}
                _ => problems.add(
                    "PAYMENT_GATEWAY_URL",
                    "is required with the gateway provider: an http(s) URL",
                ),
            }
            if self.payment_gateway_api_key.is_none() {
                problems.add(
                    "PAYMENT_GATEWAY_API_KEY",
                    "is required with the gateway provider",
                );
            }
        }
        if let Some(Err(_)) = self
            .payment_fake_webhook_url
            .as_deref()
            .map(url::Url::parse)
        {
            problems.add("PAYMENT_FAKE_WEBHOOK_URL", "must be a URL");
        }
    }
}

/// `payments_total{outcome}` (payments reaching `succeeded`, `failed`, `refunded`) and
/// `payment_webhook_signature_failures_total`.
#[derive(Clone)]
pub struct PaymentMetrics {
    outcomes: IntCounterVec,
    pub signature_failures: IntCounter,
}

impl PaymentMetrics {
    pub const OUTCOMES: [&str; 3] = ["succeeded", "failed", "refunded"];

    pub fn register(metrics: &platform::metrics::Metrics) -> Result<Self, prometheus::Error> {
        let outcomes = IntCounterVec::new(
            Opts::new(
                "payments_total",
                "Payments reaching a final outcome (succeeded, failed, refunded).",
            ),
            &["outcome"],
        )?;
        for outcome in Self::OUTCOMES {
            outcomes.with_label_values(&[outcome]);
        }
        let signature_failures = IntCounter::new(
            "payment_webhook_signature_failures_total",
            "Payment webhooks refused for a missing, malformed, stale or wrong signature.",
        )?;
        metrics.register(Box::new(outcomes.clone()))?;
        metrics.register(Box::new(signature_failures.clone()))?;
        Ok(PaymentMetrics {
            outcomes,
            signature_failures,
        })
    }

    pub fn outcome(&self, status: crate::domain::PaymentStatus) {
        self.outcomes.with_label_values(&[status.as_str()]).inc();
    }
}

/// What the handlers need of payments: the provider, the accepted webhook secrets, the metrics.
pub struct Payments {
    pub provider: std::sync::Arc<dyn Provider>,
    pub webhook_secrets: Vec<String>,
    pub metrics: PaymentMetrics,
}

impl Payments {
    /// The provider `settings` name. The fake's webhooks go to `PAYMENT_FAKE_WEBHOOK_URL`, or to
    /// whatever the caller later sets in `own_webhook` (the service's own address, known once it
    /// listens).
    pub fn from_settings(
        settings: &PaymentSettings,
        metrics: &platform::metrics::Metrics,
        own_webhook: std::sync::Arc<std::sync::OnceLock<String>>,
    ) -> anyhow::Result<Payments> {
        let webhook_secrets = settings.webhook_secrets();
        let provider: std::sync::Arc<dyn Provider> = match settings.payment_provider {
            ProviderKind::Fake => {
                if let Some(url) = &settings.payment_fake_webhook_url {
                    let _ = own_webhook.set(url.clone());
                }
                let secret = webhook_secrets.first().cloned().unwrap_or_default();
                std::sync::Arc::new(fake::FakeProvider::new(
                    secret,
                    settings.payment_fake_delay,
                    own_webhook,
                )?)
            }
            ProviderKind::Gateway => std::sync::Arc::new(gateway::GatewayProvider::new(
                settings.payment_gateway_url.as_deref().unwrap_or_default(),
                settings
                    .payment_gateway_api_key
                    .as_ref()
                    .map(|k| k.expose().to_owned())
                    .unwrap_or_default(),
            )?),
        };
        Ok(Payments {
            provider,
            webhook_secrets,
            metrics: PaymentMetrics::register(metrics)?,
        })
    }
}
