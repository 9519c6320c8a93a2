//! `email.order_confirmation`: tell a customer their order was received.
//!
//! Rendered from `templates/order_confirmation.txt` and handed to the transport chosen by
//! `EMAIL_TRANSPORT`: `log` (development: the message goes to the log) or `smtp` (lettre, to
//! `SMTP_URL`). Once per order: the order's job is committed once with it, the runtime's done
//! marker stops redeliveries after success, and the `Message-ID` is derived from the job id, so
//! the rare resend after a crash between sending and marking is recognisable as the same message.

use jobs::email::OrderConfirmation;
use jobs::runtime::{Handler, Job, JobError};
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use platform::config::Secret;

const TEMPLATE: &str = include_str!("../templates/order_confirmation.txt");

/// Where e-mails go.
pub enum Transport {
    Log,
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// The SMTP transport of `url` (checked at start-up by the settings).
pub fn smtp_transport(url: &Secret) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
        .map(|b| b.build())
        .map_err(|e| e.to_string())
}

pub struct Rendered {
    pub subject: String,
    pub body: String,
}

/// Amounts in minor units as text: `1234, EUR` → `12.34 EUR`; currencies without minor units
/// (ISO 4217 exponent 0) print whole.
fn money(cents: i64, currency: &str) -> String {
    const NO_MINOR_UNITS: &[&str] = &["JPY", "KRW", "ISK", "CLP", "VND", "XOF", "XAF", "UGX"];
    if NO_MINOR_UNITS.contains(&currency) {
        return format!("{cents} {currency}");
    }
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", abs / 100, abs % 100)
}

pub fn render(order: &OrderConfirmation, from_name: &str) -> Result<Rendered, String> {
    let mut env = minijinja::Environment::new();
    env.add_filter("money", |cents: i64, currency: String| {
        money(cents, &currency)
    });
    env.add_template("order_confirmation", TEMPLATE)
        .map_err(|e| e.to_string())?;
    let body = env
        .get_template("order_confirmation")
        .and_then(|t| {
            t.render(minijinja::context! {
                order_id => order.order_id.to_string(),
                lines => minijinja::Value::from(minijinja::value::Serde(&order.lines)),
                total_cents => order.total_cents,
                currency => order.currency.as_str(),
                from_name => from_name,
            })
        })
        .map_err(|e| e.to_string())?;
    Ok(Rendered {
        subject: format!("Your Storefront order {}", order.order_id),
        body,
    })
}

pub struct OrderConfirmationEmail {
    pub from: Mailbox,
    pub transport: Transport,
}

impl Handler for OrderConfirmationEmail {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        // A payload or address that does not parse never will: dead-letter it, don't retry.
        let order: OrderConfirmation = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Fail(format!("bad order_confirmation payload: {e}")))?;
        let to: Mailbox = order
            .email
            .parse()
            .map_err(|e| JobError::Fail(format!("the customer's address is unusable: {e}")))?;
        let from_name = self
            .from
            .name
            .clone()
            .unwrap_or_else(|| "Storefront".into());
        let mail = render(&order, &from_name).map_err(JobError::Fail)?;
        match &self.transport {
            Transport::Log => tracing::info!(
                transport = "log",
                job_id = %job.id,
                to = %to,
                subject = %mail.subject,
                body = %mail.body,
                "e-mail sent"
            ),
            Transport::Smtp(smtp) => {
                let message = Message::builder()
                    .from(self.from.clone())
                    .to(to)
                    .subject(mail.subject)
                    .message_id(Some(format!("<{}@storefront>", job.id)))
                    .header(ContentType::TEXT_PLAIN)
                    .body(mail.body)
                    .map_err(|e| JobError::Fail(format!("building the message: {e}")))?;
                // A refusal of this message (5xx) will not change; anything else may.
                smtp.send(message).await.map_err(|e| {
                    if e.is_permanent() {
                        JobError::Fail(format!("the mail server refused the message: {e}"))
                    } else {
                        JobError::Retry(format!("sending failed: {e}"))
                    }
                })?;
                tracing::info!(transport = "smtp", job_id = %job.id, "e-mail sent");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use jobs::email::OrderLine;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn the_confirmation_names_the_order_its_lines_and_total() {
        let order = OrderConfirmation {
            order_id: Uuid::now_v7(),
            customer_id: Uuid::now_v7(),
            email: "ann@example.com".into(),
            total_cents: 2598,
            currency: "EUR".into(),
            lines: vec![OrderLine {
                name: "Mug <b>".into(),
                quantity: 2,
                unit_price_cents: 1299,
            }],
        };
        let mail = render(&order, "Storefront").unwrap();
        assert!(mail.subject.contains(&order.order_id.to_string()));
        assert!(mail.body.contains(&order.order_id.to_string()));
        assert!(
            mail.body.contains("2 × Mug <b> — 12.99 EUR"),
            "{}",
            mail.body
        );
        assert!(mail.body.contains("Total: 25.98 EUR"), "{}", mail.body);
        assert!(mail.body.contains("— Storefront"));
    }

    #[test]
    fn money_is_printed_from_minor_units_without_floats() {
        assert_eq!(money(5, "EUR"), "0.05 EUR");
        assert_eq!(money(123_456_789, "USD"), "1234567.89 USD");
        assert_eq!(money(1200, "JPY"), "1200 JPY");
        assert_eq!(money(-150, "EUR"), "-1.50 EUR");
    }
}
