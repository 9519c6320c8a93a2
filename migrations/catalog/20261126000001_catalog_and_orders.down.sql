DROP TABLE idempotency_keys;
DROP TABLE order_lines;
DROP TABLE orders;
DROP TABLE customers;
DROP TABLE items;
DROP TABLE categories;
