//! The catalog's text search configuration, `catalog_search` (created by the search migration):
//! set from SEARCH_LANGUAGE and SEARCH_UNACCENT by `migrate up` (and `AUTO_MIGRATE` in dev).

use sqlx::PgPool;

/// Which dictionaries `catalog_search` stems and folds accents with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchConfig {
    /// `english`, `german`, …: the dictionary `<language>_stem`; or `simple` (no stemming).
    pub language: String,
    pub unaccent: bool,
}

impl SearchConfig {
    fn dictionary(&self) -> String {
        if self.language == "simple" {
            "simple".into()
        } else {
            format!("{}_stem", self.language)
        }
    }
}

/// Make `catalog_search` use `config`. When it changes, every item's search vector is computed
/// again (one UPDATE of the whole table, in the same transaction: searches see the old vectors
/// until it commits). Answers whether anything changed.
pub async fn configure(db: &PgPool, config: &SearchConfig) -> anyhow::Result<bool> {
    let mut tx = db.begin().await?;
    let (language, unaccent): (String, bool) =
        sqlx::query_as("SELECT language, unaccent FROM search_settings FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
    if language == config.language && unaccent == config.unaccent {
        return Ok(false);
    }
    let dictionary = config.dictionary();
    let known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_ts_dict WHERE dictname = $1)")
            .bind(&dictionary)
            .fetch_one(&mut *tx)
            .await?;
    if !known {
        anyhow::bail!(
            "SEARCH_LANGUAGE: this database has no text search dictionary {dictionary} \
             (see SELECT dictname FROM pg_ts_dict)"
        );
    }
    // DDL takes no parameters; the name is one the database just said it has, and its form
    // (lower-case letters and `_`) was checked with the settings.
    let chain = if config.unaccent {
        format!("unaccent, {dictionary}")
    } else {
        dictionary
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER TEXT SEARCH CONFIGURATION catalog_search ALTER MAPPING FOR \
         asciiword, asciihword, hword_asciipart, word, hword, hword_part WITH {chain}"
    )))
    .execute(&mut *tx)
    .await?;
    // Stored generated columns are computed again by any UPDATE of their row.
    let rewritten = sqlx::query("UPDATE items SET name = name")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("UPDATE search_settings SET language = $1, unaccent = $2")
        .bind(&config.language)
        .bind(config.unaccent)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(
        language = %config.language,
        unaccent = config.unaccent,
        items = rewritten,
        "search configuration changed; every item's search vector computed again"
    );
    Ok(true)
}
