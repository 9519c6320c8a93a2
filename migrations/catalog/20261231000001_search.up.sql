-- Search (DESIGN §4, docs/design.md "Search"): weighted text (name above description) in a text
-- search configuration of the catalog's own, which `migrate up` sets from SEARCH_LANGUAGE and
-- SEARCH_UNACCENT (store::search::configure); trigram similarity on names answers when the
-- text finds nothing. Both extensions are trusted: the database's owner may create them.
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TEXT SEARCH CONFIGURATION catalog_search (COPY = english);
ALTER TEXT SEARCH CONFIGURATION catalog_search
    ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part
    WITH unaccent, english_stem;

-- What `catalog_search` was last set to; `configure` compares before it rewrites the vectors.
CREATE TABLE search_settings (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    language  text NOT NULL,
    unaccent  boolean NOT NULL
);
INSERT INTO search_settings (language, unaccent) VALUES ('english', true);

ALTER TABLE items DROP COLUMN search;
ALTER TABLE items ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('catalog_search', name), 'A') ||
    setweight(to_tsvector('catalog_search', description), 'B')) STORED;
CREATE INDEX items_search ON items USING gin (search) WHERE active;
-- The words of item names, each once: what a mistyped word is compared with (trigram
-- similarity, pg_trgm). Tens of thousands of words rather than a million names, so the
-- comparison costs the same whatever the catalog's size. Words are only added (a word no item
-- uses any more just finds nothing).
CREATE TABLE search_words (word text PRIMARY KEY);
-- GiST: the planner uses it for a word given per row (it scanned the table with GIN: 33 ms).
CREATE INDEX search_words_trgm ON search_words USING gist (word gist_trgm_ops);

CREATE FUNCTION search_words_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_words (word)
    SELECT DISTINCT w FROM regexp_split_to_table(lower(NEW.name), '[^[:alnum:]]+') AS w
    WHERE w <> '' AND length(w) <= 100
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER items_search_words AFTER INSERT OR UPDATE OF name ON items
    FOR EACH ROW EXECUTE FUNCTION search_words_add();
INSERT INTO search_words (word)
SELECT DISTINCT w FROM items, regexp_split_to_table(lower(items.name), '[^[:alnum:]]+') AS w
WHERE w <> '' AND length(w) <= 100
ON CONFLICT DO NOTHING;
