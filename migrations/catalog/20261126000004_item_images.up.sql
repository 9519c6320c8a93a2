-- Item images: the upload is stored in the object store at once and answered 202; the worker's
-- `image.thumbnail` job makes the variants and its `image.processed` event marks the image ready.
CREATE TABLE item_images (
    id           uuid PRIMARY KEY,
    item_id      uuid NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    job_id       uuid NOT NULL REFERENCES jobs (id),
    status       text NOT NULL DEFAULT 'processing'
                 CHECK (status IN ('processing', 'ready', 'failed')),
    -- The original, as sniffed from its bytes.
    content_type text NOT NULL,
    width        integer NOT NULL CHECK (width > 0),
    height       integer NOT NULL CHECK (height > 0),
    bytes        bigint NOT NULL CHECK (bytes > 0),
    -- [{size, width, height, content_type, bytes}] once ready.
    variants     jsonb NOT NULL DEFAULT '[]',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX item_images_item ON item_images (item_id, created_at);
CREATE INDEX item_images_job ON item_images (job_id);

-- W3C trace context of the request that caused a job; the relay sends it as a header.
ALTER TABLE jobs ADD COLUMN traceparent text;
