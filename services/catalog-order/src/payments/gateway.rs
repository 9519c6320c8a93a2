//! The `gateway` provider: a payment gateway speaking a small JSON protocol (docs/payments.md),
//! the shape of Stripe's PaymentIntents reduced to what the shop needs:
//!
//! - `POST {PAYMENT_GATEWAY_URL}/payments` `{payment_id, order_id, amount_cents, currency}` →
//!   2xx `{client_secret}`;
//! - `POST {PAYMENT_GATEWAY_URL}/refunds` `{payment_id, order_id, amount_cents, currency}` → 2xx;
//!
//! each with `Authorization: Bearer {PAYMENT_GATEWAY_API_KEY}` and an `Idempotency-Key` (the
//! payment id, `refund-<payment id>`), so a retried call does nothing twice. Outcomes arrive as
//! signed webhooks.

use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::{PaymentRef, Provider, ProviderError, TestOutcome};

pub struct GatewayProvider {
    client: reqwest::Client,
    base: String,
    api_key: String,
}

#[derive(Deserialize)]
struct Opened {
    client_secret: String,
}

impl GatewayProvider {
    pub fn new(base: &str, api_key: String) -> anyhow::Result<Self> {
        Ok(GatewayProvider {
            client: platform::http_client::builder()?.build()?,
            base: base.trim_end_matches('/').to_owned(),
            api_key,
        })
    }

    async fn post(
        &self,
        path: &str,
        key: String,
        payment: &PaymentRef,
    ) -> Result<reqwest::Response, ProviderError> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.api_key)
            .header("idempotency-key", key)
            .json(payment)
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        let status = r.status();
        if status.is_success() {
            Ok(r)
        } else if status.is_server_error() || status.as_u16() == 429 {
            Err(ProviderError::Unavailable(format!(
                "{path} answered {status}"
            )))
        } else {
            Err(ProviderError::Refused(format!("{path} answered {status}")))
        }
    }
}

impl Provider for GatewayProvider {
    fn name(&self) -> &'static str {
        "gateway"
    }

    fn open<'a>(
        &'a self,
        payment: &'a PaymentRef,
        _outcome: TestOutcome,
    ) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            let r = self
                .post("/payments", payment.payment_id.to_string(), payment)
                .await?;
            let opened: Opened = r
                .json()
                .await
                .map_err(|e| ProviderError::Unavailable(format!("/payments answered: {e}")))?;
            Ok(opened.client_secret)
        })
    }

    fn refund<'a>(&'a self, payment: &'a PaymentRef) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.post(
                "/refunds",
                format!("refund-{}", payment.payment_id),
                payment,
            )
            .await
            .map(drop)
        })
    }
}
