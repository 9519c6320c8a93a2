//! The `fake` provider: opens payments in memory and delivers the outcome as a signed webhook
//! over HTTP, like a real provider (retried with backoff until answered 2xx), so that everything
//! after the open call runs as it would in production. The outcome is the request's
//! `test_outcome`. Deliveries in flight are lost if the process stops, as a real provider's are
//! not; it is for development and tests, and prod refuses it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use platform::backoff::Backoff;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{PaymentRef, Provider, ProviderError, TestOutcome, WebhookData, WebhookEvent};
use crate::domain::PaymentEvent;

/// Before the first delivery: the open call's transaction commits meanwhile (an event about a
/// payment not yet committed is refused and delivered again anyway).
const FIRST_DELIVERY: Duration = Duration::from_millis(100);
/// Deliveries of one event before the fake gives up (about a minute of backoff).
const ATTEMPTS: u32 = 10;
const RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(15));

pub struct FakeProvider {
    client: reqwest::Client,
    secret: String,
    delay: Duration,
    /// Where webhooks go: set at start-up, once the service knows its own address when no
    /// `PAYMENT_FAKE_WEBHOOK_URL` is configured.
    target: Arc<OnceLock<String>>,
}

impl FakeProvider {
    pub fn new(
        secret: String,
        delay: Duration,
        target: Arc<OnceLock<String>>,
    ) -> anyhow::Result<Self> {
        Ok(FakeProvider {
            client: platform::http_client::builder()?
                .timeout(Duration::from_secs(5))
                .build()?,
            secret,
            delay,
            target,
        })
    }

    /// Deliver `kind` about `payment` after `after`, in the background.
    fn deliver_later(&self, kind: PaymentEvent, payment: &PaymentRef, after: Duration) {
        let event = WebhookEvent {
            id: format!("evt_{}", Uuid::now_v7().simple()),
            kind,
            created: OffsetDateTime::now_utc().unix_timestamp(),
            data: WebhookData {
                payment_id: payment.payment_id,
                order_id: payment.order_id,
                amount_cents: payment.amount_cents,
                currency: payment.currency.clone(),
            },
        };
        let client = self.client.clone();
        let secret = self.secret.clone();
        let target = self.target.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            deliver(&client, &secret, &target, &event).await;
        });
    }
}

async fn deliver(
    client: &reqwest::Client,
    secret: &str,
    target: &OnceLock<String>,
    event: &WebhookEvent,
) {
    let Ok(body) = serde_json::to_vec(event) else {
        return;
    };
    for attempt in 1..=ATTEMPTS {
        if let Some(url) = target.get() {
            // Signed at each attempt, as a provider does: the timestamp is the delivery's.
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let sent = client
                .post(url)
                .header("content-type", "application/json")
                .header(
                    super::signature::HEADER,
                    super::signature::sign(secret, now, &body),
                )
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => {
                    tracing::info!(event = %event.id, status = %r.status(), attempt, "fake payment webhook refused; retrying")
                }
                Err(e) => {
                    tracing::info!(event = %event.id, error = %e, attempt, "fake payment webhook not delivered; retrying")
                }
            }
        }
        tokio::time::sleep(RETRY.nth(attempt)).await;
    }
    tracing::warn!(event = %event.id, kind = event.kind.as_str(), "fake payment webhook given up");
}

impl Provider for FakeProvider {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn open<'a>(
        &'a self,
        payment: &'a PaymentRef,
        outcome: TestOutcome,
    ) -> BoxFuture<'a, Result<String, ProviderError>> {
        let (kind, after) = match outcome {
            TestOutcome::Succeed => (PaymentEvent::PaymentSucceeded, FIRST_DELIVERY),
            TestOutcome::Fail => (PaymentEvent::PaymentFailed, FIRST_DELIVERY),
            TestOutcome::Delay => (
                PaymentEvent::PaymentSucceeded,
                self.delay.max(FIRST_DELIVERY),
            ),
        };
        self.deliver_later(kind, payment, after);
        let secret = format!(
            "fake_{}_secret_{}",
            payment.payment_id.simple(),
            Uuid::new_v4().simple()
        );
        Box::pin(async move { Ok(secret) })
    }

    fn refund<'a>(&'a self, payment: &'a PaymentRef) -> BoxFuture<'a, Result<(), ProviderError>> {
        self.deliver_later(PaymentEvent::RefundSucceeded, payment, FIRST_DELIVERY);
        Box::pin(async { Ok(()) })
    }
}
