-- Payments of orders (docs/design.md, "Payments"). A payment is opened with the provider and
-- moved by the provider's signed webhooks; `payment_events` remembers every event applied, so a
-- redelivered event is answered without being applied again.
CREATE TABLE payments (
    id            uuid PRIMARY KEY,
    order_id      uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    status        text NOT NULL CHECK (status IN ('processing', 'succeeded', 'failed', 'refunded')),
    amount_cents  bigint NOT NULL CHECK (amount_cents >= 0),
    currency      text NOT NULL,
    provider      text NOT NULL,
    -- What the provider hands the client to finish paying (its own secret for the payment).
    client_secret text NOT NULL,
    -- Where the receipt and refund e-mails go: the address of the token that opened the payment.
    -- Emptied when the account is deleted.
    email         text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- One open payment per order: a second request while one is processing answers that one.
CREATE UNIQUE INDEX payments_one_open ON payments (order_id) WHERE status = 'processing';
CREATE INDEX payments_order_created ON payments (order_id, created_at DESC);

CREATE TABLE payment_events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    payment_id  uuid NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_events_received ON payment_events (received_at);
