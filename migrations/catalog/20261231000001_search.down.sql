DROP TRIGGER items_search_words ON items;
DROP FUNCTION search_words_add();
DROP TABLE search_words;
ALTER TABLE items DROP COLUMN search;
ALTER TABLE items ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('english', name || ' ' || description)) STORED;
CREATE INDEX items_search ON items USING gin (search);
DROP TABLE search_settings;
DROP TEXT SEARCH CONFIGURATION catalog_search;
DROP EXTENSION IF EXISTS pg_trgm;
DROP EXTENSION IF EXISTS unaccent;
