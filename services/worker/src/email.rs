//! `email.order_confirmation`: tell a customer their order was received.
//!
//! Rendered from a template and handed to the transport chosen by `EMAIL_TRANSPORT`. `log` (the
//! default, and the only one so far) writes the message to the log; SMTP comes with lettre.

use jobs::runtime::{Handler, Job, JobError};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Deserialize)]
struct OrderConfirmation {
    order_id: Uuid,
    customer_id: Uuid,
}

pub struct Rendered {
    pub to: String,
    pub subject: String,
    pub body: String,
}

pub fn render(order_id: Uuid, customer_id: Uuid, from: &str) -> Rendered {
    Rendered {
        to: format!("customer:{customer_id}"),
        subject: format!("Your Storefront order {order_id}"),
        body: format!(
            "Hello,\n\nthank you for your order {order_id}. We will let you know when it ships.\n\n\
             — {from}\n"
        ),
    }
}

pub struct OrderConfirmationEmail {
    pub from: String,
}

impl Handler for OrderConfirmationEmail {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        // A payload that does not parse will never parse: dead-letter it, don't retry.
        let order: OrderConfirmation = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Fail(format!("bad order_confirmation payload: {e}")))?;
        let mail = render(order.order_id, order.customer_id, &self.from);
        tracing::info!(
            transport = "log",
            job_id = %job.id,
            to = %mail.to,
            subject = %mail.subject,
            body = %mail.body,
            "e-mail sent"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confirmation_names_the_order() {
        let order = Uuid::now_v7();
        let mail = render(order, Uuid::nil(), "Storefront");
        assert!(mail.subject.contains(&order.to_string()));
        assert!(mail.body.contains(&order.to_string()));
    }
}
