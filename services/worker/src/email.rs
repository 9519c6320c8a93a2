//! The `email` family: `email.order_confirmation` tells a customer their order was received;
//! `email.verify_address` and `email.password_reset` carry auth's single-use links;
//! `email.payment_receipt` and `email.refund` follow a payment (catalog-order's webhook).
//!
//! Rendered from `templates/*.txt` and handed to the transport chosen by
//! `EMAIL_TRANSPORT`: `log` (development: the message goes to the log) or `smtp` (lettre, to
//! `SMTP_URL`). Once per order: the order's job is committed once with it, the runtime's done
//! marker stops redeliveries after success, and the `Message-ID` is derived from the job id, so
//! the rare resend after a crash between sending and marking is recognisable as the same message.
//! An account e-mail is sent once per job likewise; auth makes a new job (and token) per request.

use jobs::email::{
    AccountLink, ORDER_CONFIRMATION_KIND, OrderConfirmation, PASSWORD_RESET_KIND,
    PAYMENT_RECEIPT_KIND, PaymentNotice, REFUND_KIND, VERIFY_ADDRESS_KIND,
};
use jobs::runtime::{Handler, Job, JobError};
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use platform::config::Secret;

const TEMPLATE: &str = include_str!("../templates/order_confirmation.txt");
const VERIFY_ADDRESS: &str = include_str!("../templates/verify_address.txt");
const PASSWORD_RESET: &str = include_str!("../templates/password_reset.txt");
const PAYMENT_RECEIPT: &str = include_str!("../templates/payment_receipt.txt");
const REFUND: &str = include_str!("../templates/refund.txt");

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

/// An amount in minor units as text, with as many decimals as the currency's ISO 4217 minor unit
/// (its exponent): `1234 EUR` → `12.34 EUR`, `1234 JPY` → `1234 JPY`, `1234 KWD` → `1.234 KWD`.
/// Integer arithmetic only. catalog-order accepts only codes with a minor unit, so the fallback
/// is for rows written before it checked: an amount it cannot scale is printed as it is stored,
/// labelled, rather than guessed (a guess of two decimals is what made KWD ten times too large).
fn money(minor: i64, currency: &str) -> String {
    let Some(exponent) = minor_unit_exponent(currency) else {
        return format!("{minor} {currency} (minor units)");
    };
    if exponent == 0 {
        return format!("{minor} {currency}");
    }
    let scale = 10u64.pow(exponent);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let width = exponent as usize;
    format!("{sign}{}.{:0width$} {currency}", abs / scale, abs % scale)
}

/// The number of decimals of `currency` (ISO 4217 minor unit), if it is a code with one.
fn minor_unit_exponent(currency: &str) -> Option<u32> {
    iso_currency::Currency::from_code(currency)?
        .exponent()
        .map(u32::from)
        // The ISO table's largest is 4 (CLF, UYW); anything beyond would overflow 10^n.
        .filter(|e| *e <= 18)
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

/// An account e-mail (`email.verify_address`, `email.password_reset`): its link and lifetime.
pub fn render_account(kind: &str, mail: &AccountLink, from_name: &str) -> Result<Rendered, String> {
    let (template, subject) = match kind {
        VERIFY_ADDRESS_KIND => (VERIFY_ADDRESS, "Confirm your Storefront address"),
        PASSWORD_RESET_KIND => (PASSWORD_RESET, "Reset your Storefront password"),
        other => return Err(format!("{other} is not an account e-mail")),
    };
    let valid_for = match mail.valid_for_minutes {
        m if m % 60 == 0 && m >= 120 => format!("{} hours", m / 60),
        60 => "1 hour".to_owned(),
        m => format!("{m} minutes"),
    };
    let body = minijinja::Environment::new()
        .template_from_str(template)
        .and_then(|t| {
            t.render(minijinja::context! {
                link => mail.link.as_str(),
                valid_for => valid_for,
                from_name => from_name,
            })
        })
        .map_err(|e| e.to_string())?;
    Ok(Rendered {
        subject: subject.to_owned(),
        body,
    })
}

/// A payment e-mail (`email.payment_receipt`, `email.refund`): the order and the amount.
pub fn render_payment(
    kind: &str,
    notice: &PaymentNotice,
    from_name: &str,
) -> Result<Rendered, String> {
    let (template, subject) = match kind {
        PAYMENT_RECEIPT_KIND => (
            PAYMENT_RECEIPT,
            format!(
                "Payment received for your Storefront order {}",
                notice.order_id
            ),
        ),
        REFUND_KIND => (
            REFUND,
            format!("Refund of your Storefront order {}", notice.order_id),
        ),
        other => return Err(format!("{other} is not a payment e-mail")),
    };
    let body = minijinja::Environment::new()
        .template_from_str(template)
        .and_then(|t| {
            t.render(minijinja::context! {
                order_id => notice.order_id.to_string(),
                payment_id => notice.payment_id.to_string(),
                amount => money(notice.amount_cents, &notice.currency),
                from_name => from_name,
            })
        })
        .map_err(|e| e.to_string())?;
    Ok(Rendered { subject, body })
}

/// The `email` family's handler: every kind of it.
pub struct Emails {
    pub from: Mailbox,
    pub transport: Transport,
}

impl Handler for Emails {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        let from_name = self
            .from
            .name
            .clone()
            .unwrap_or_else(|| "Storefront".into());
        // A payload or address that does not parse never will: dead-letter it, don't retry.
        let (to, mail) = match job.kind.as_str() {
            ORDER_CONFIRMATION_KIND => {
                let order: OrderConfirmation = serde_json::from_value(job.payload.clone())
                    .map_err(|e| JobError::Fail(format!("bad order_confirmation payload: {e}")))?;
                (order.email.clone(), render(&order, &from_name))
            }
            VERIFY_ADDRESS_KIND | PASSWORD_RESET_KIND => {
                let link: AccountLink = serde_json::from_value(job.payload.clone())
                    .map_err(|e| JobError::Fail(format!("bad {} payload: {e}", job.kind)))?;
                (
                    link.email.clone(),
                    render_account(&job.kind, &link, &from_name),
                )
            }
            PAYMENT_RECEIPT_KIND | REFUND_KIND => {
                let notice: PaymentNotice = serde_json::from_value(job.payload.clone())
                    .map_err(|e| JobError::Fail(format!("bad {} payload: {e}", job.kind)))?;
                (
                    notice.email.clone(),
                    render_payment(&job.kind, &notice, &from_name),
                )
            }
            other => return Err(JobError::unknown_kind(other)),
        };
        let to: Mailbox = to
            .parse()
            .map_err(|e| JobError::Fail(format!("the customer's address is unusable: {e}")))?;
        let mail = mail.map_err(JobError::Fail)?;
        self.send(job, to, mail).await
    }
}

impl Emails {
    async fn send(&self, job: &Job, to: Mailbox, mail: Rendered) -> Result<(), JobError> {
        match &self.transport {
            Transport::Log => tracing::info!(
                transport = "log",
                job_id = %job.id,
                kind = %job.kind,
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
                tracing::info!(transport = "smtp", job_id = %job.id, kind = %job.kind, "e-mail sent");
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
    fn payment_emails_name_the_order_and_the_amount() {
        let notice = PaymentNotice {
            order_id: Uuid::now_v7(),
            payment_id: Uuid::now_v7(),
            email: "ann@example.com".into(),
            amount_cents: 2598,
            currency: "EUR".into(),
        };
        for (kind, word) in [(PAYMENT_RECEIPT_KIND, "received"), (REFUND_KIND, "refund")] {
            let mail = render_payment(kind, &notice, "Storefront").unwrap();
            assert!(
                mail.subject.contains(&notice.order_id.to_string()),
                "{kind}"
            );
            assert!(mail.body.contains("25.98 EUR"), "{kind}: {}", mail.body);
            assert!(
                mail.body.to_lowercase().contains(word),
                "{kind}: {}",
                mail.body
            );
        }
        assert!(render_payment(ORDER_CONFIRMATION_KIND, &notice, "Storefront").is_err());
    }

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
    fn account_emails_carry_their_link_and_how_long_it_works() {
        let link = AccountLink {
            email: "ann@example.com".into(),
            link: "https://shop.example.com/reset-password?token=abc_-123".into(),
            valid_for_minutes: 30,
        };
        let reset = render_account(PASSWORD_RESET_KIND, &link, "Storefront").unwrap();
        assert!(reset.subject.contains("password"));
        assert!(reset.body.contains(&link.link), "{}", reset.body);
        assert!(reset.body.contains("for 30 minutes"), "{}", reset.body);
        assert!(reset.body.contains("— Storefront"));
        let verify = AccountLink {
            valid_for_minutes: 24 * 60,
            ..link
        };
        let mail = render_account(VERIFY_ADDRESS_KIND, &verify, "Storefront").unwrap();
        assert!(mail.subject.contains("address"));
        assert!(mail.body.contains("for 24 hours"), "{}", mail.body);
        assert!(render_account(ORDER_CONFIRMATION_KIND, &verify, "Storefront").is_err());
    }

    #[tokio::test]
    async fn a_kind_of_the_family_this_worker_does_not_know_is_retried_not_dead_lettered() {
        let handler = Emails {
            from: "Storefront <no-reply@storefront.invalid>".parse().unwrap(),
            transport: Transport::Log,
        };
        let job = Job {
            id: Uuid::now_v7(),
            kind: "email.from_a_newer_producer".into(),
            payload: serde_json::json!({}),
            attempt: 1,
            delivery: 1,
            request_id: None,
            traceparent: None,
        };
        assert!(matches!(
            handler.handle(&job).await,
            Err(JobError::Retry(_))
        ));
    }

    #[test]
    fn money_is_printed_from_minor_units_without_floats() {
        assert_eq!(money(5, "EUR"), "0.05 EUR");
        assert_eq!(money(123_456_789, "USD"), "1234567.89 USD");
        assert_eq!(money(-150, "EUR"), "-1.50 EUR");
        assert_eq!(money(i64::MIN, "EUR"), "-92233720368547758.08 EUR");
    }

    #[test]
    fn each_currency_gets_its_iso_4217_number_of_decimals() {
        // 0 decimals: JPY, and ones the old hand-written list missed (BIF, PYG).
        assert_eq!(money(1200, "JPY"), "1200 JPY");
        assert_eq!(money(-7, "JPY"), "-7 JPY");
        assert_eq!(money(5000, "PYG"), "5000 PYG");
        // 2 decimals.
        assert_eq!(money(1200, "EUR"), "12.00 EUR");
        // 3 decimals: 12.345 KWD, not 123.45 KWD.
        assert_eq!(money(12_345, "KWD"), "12.345 KWD");
        assert_eq!(money(5, "BHD"), "0.005 BHD");
        assert_eq!(money(-1_050, "TND"), "-1.050 TND");
        // 4 decimals (Chilean Unidad de Fomento).
        assert_eq!(money(10_001, "CLF"), "1.0001 CLF");
    }

    #[test]
    fn an_amount_without_a_known_minor_unit_is_printed_as_stored_not_guessed() {
        assert_eq!(money(1234, "ABC"), "1234 ABC (minor units)");
        // Gold has no minor unit in ISO 4217.
        assert_eq!(money(3, "XAU"), "3 XAU (minor units)");
    }

    fn order_in(currency: &str, unit_price: i64, quantity: i32) -> OrderConfirmation {
        OrderConfirmation {
            order_id: Uuid::now_v7(),
            customer_id: Uuid::now_v7(),
            email: "ann@example.com".into(),
            total_cents: unit_price * i64::from(quantity),
            currency: currency.into(),
            lines: vec![OrderLine {
                name: "Mug".into(),
                quantity,
                unit_price_cents: unit_price,
            }],
        }
    }

    #[test]
    fn a_yen_total_has_no_decimals() {
        let mail = render(&order_in("JPY", 1500, 3), "Storefront").unwrap();
        assert!(mail.body.contains("3 × Mug — 1500 JPY"), "{}", mail.body);
        assert!(mail.body.contains("Total: 4500 JPY"), "{}", mail.body);
    }

    #[test]
    fn a_euro_total_has_two_decimals() {
        let mail = render(&order_in("EUR", 1999, 3), "Storefront").unwrap();
        assert!(mail.body.contains("3 × Mug — 19.99 EUR"), "{}", mail.body);
        assert!(mail.body.contains("Total: 59.97 EUR"), "{}", mail.body);
    }

    #[test]
    fn a_kuwaiti_dinar_total_has_three_decimals() {
        let mail = render(&order_in("KWD", 12_500, 3), "Storefront").unwrap();
        assert!(mail.body.contains("3 × Mug — 12.500 KWD"), "{}", mail.body);
        assert!(mail.body.contains("Total: 37.500 KWD"), "{}", mail.body);
    }
}
