ALTER TABLE jobs DROP COLUMN traceparent;
DROP TABLE item_images;
