-- Catalog (categories, items), customers and orders of the catalog-order service.

CREATE TABLE categories (
    id         uuid PRIMARY KEY,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 100),
    parent_id  uuid REFERENCES categories (id) ON DELETE RESTRICT,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (parent_id IS DISTINCT FROM id)
);
CREATE INDEX categories_name_id ON categories (name, id);
CREATE INDEX categories_parent ON categories (parent_id);

CREATE TABLE items (
    id          uuid PRIMARY KEY,
    category_id uuid NOT NULL REFERENCES categories (id) ON DELETE RESTRICT,
    sku         text NOT NULL UNIQUE CHECK (sku ~ '^[A-Z0-9][A-Z0-9-]{1,63}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 5000),
    -- Money is integer minor units plus an ISO 4217 code; never floats.
    price_cents bigint NOT NULL CHECK (price_cents >= 0),
    currency    text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    stock       integer NOT NULL CHECK (stock >= 0),
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    search      tsvector GENERATED ALWAYS AS (
                    to_tsvector('english', name || ' ' || description)) STORED
);
-- The public list shows active items; each sort has its keyset index, with and without a
-- category filter. `id` is the unique tie-breaker of every cursor.
CREATE INDEX items_created ON items (created_at DESC, id DESC) WHERE active;
CREATE INDEX items_price ON items (price_cents, id) WHERE active;
CREATE INDEX items_name ON items (name, id) WHERE active;
CREATE INDEX items_category_created ON items (category_id, created_at DESC, id DESC) WHERE active;
CREATE INDEX items_category_price ON items (category_id, price_cents, id) WHERE active;
CREATE INDEX items_category_name ON items (category_id, name, id) WHERE active;
CREATE INDEX items_search ON items USING gin (search);

-- A customer profile is keyed by the token's `sub` and created on first use.
CREATE TABLE customers (
    id           uuid PRIMARY KEY,
    full_name    text NOT NULL DEFAULT '' CHECK (length(full_name) <= 200),
    phone        text NOT NULL DEFAULT '' CHECK (length(phone) <= 40),
    address_line text NOT NULL DEFAULT '' CHECK (length(address_line) <= 500),
    city         text NOT NULL DEFAULT '' CHECK (length(city) <= 100),
    postal_code  text NOT NULL DEFAULT '' CHECK (length(postal_code) <= 20),
    country      text NOT NULL DEFAULT '' CHECK (country = '' OR country ~ '^[A-Z]{2}$'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id          uuid PRIMARY KEY,
    customer_id uuid NOT NULL REFERENCES customers (id),
    status      text NOT NULL CHECK (status IN ('pending', 'paid', 'shipped', 'cancelled')),
    total_cents bigint NOT NULL CHECK (total_cents >= 0),
    currency    text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- A customer's own orders, newest first; the admin's lists by status or over everything.
CREATE INDEX orders_customer_created ON orders (customer_id, created_at DESC, id DESC);
CREATE INDEX orders_status_created ON orders (status, created_at DESC, id DESC);
CREATE INDEX orders_created ON orders (created_at DESC, id DESC);

CREATE TABLE order_lines (
    order_id         uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no          integer NOT NULL,
    item_id          uuid NOT NULL REFERENCES items (id),
    -- Name and price as they were when ordered: the catalog may change later.
    name             text NOT NULL,
    quantity         integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    unit_price_cents bigint NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_lines_item ON order_lines (item_id);

-- Idempotency-Key per user: the first request inserts the key (with its body's hash) before
-- doing anything; a repeat replays the stored answer; keys expire after 24 h.
CREATE TABLE idempotency_keys (
    user_id       uuid NOT NULL,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  bytea NOT NULL,
    status_code   integer,
    response_body bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
