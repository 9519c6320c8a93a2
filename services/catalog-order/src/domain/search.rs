//! What a shopper typed into the search box, parsed once: its words, bounded in length and
//! number, and the text search query they make (every word required, the last one also as a
//! prefix of a longer word, since the shopper may still be typing it).

use std::fmt;

/// Characters of `q` at most.
pub const MAX_CHARS: usize = 200;
/// Words of `q` at most: each is a posting list the text index has to intersect.
pub const MAX_TERMS: usize = 8;
/// The last word matches as a prefix from this many characters on; a shorter prefix ("c")
/// would match a large part of the vocabulary, and cost as much.
pub const MIN_PREFIX_CHARS: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText {
    raw: String,
    words: Vec<String>,
    /// Words to find in names only, each whole: a search for what was typed, corrected.
    in_names: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchTextError {
    TooLong,
    TooManyTerms,
    ControlCharacter,
}

impl fmt::Display for SearchTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SearchTextError::TooLong => write!(f, "must be at most {MAX_CHARS} characters"),
            SearchTextError::TooManyTerms => write!(f, "must have at most {MAX_TERMS} words"),
            SearchTextError::ControlCharacter => f.write_str("must not contain control characters"),
        }
    }
}

impl SearchText {
    /// `None` for a query with no words at all (blank, or punctuation only): no search.
    pub fn parse(raw: &str) -> Result<Option<SearchText>, SearchTextError> {
        let raw = raw.trim();
        if raw.chars().count() > MAX_CHARS {
            return Err(SearchTextError::TooLong);
        }
        if raw.chars().any(char::is_control) {
            return Err(SearchTextError::ControlCharacter);
        }
        // Words are runs of letters and digits; everything else separates them, so nothing of
        // the text search query syntax (`&`, `|`, `!`, `:*`, quotes) can come from the client.
        let words: Vec<String> = raw
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        if words.len() > MAX_TERMS {
            return Err(SearchTextError::TooManyTerms);
        }
        if words.is_empty() {
            return Ok(None);
        }
        Ok(Some(SearchText {
            raw: raw.to_owned(),
            words,
            in_names: false,
        }))
    }

    /// Its words, lower-case, in order.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// A search for `words` (each a word of some item's name, as `store::items::corrections`
    /// gives them) in names only, each word whole.
    pub fn in_names(&self, words: Vec<String>) -> SearchText {
        SearchText {
            raw: self.raw.clone(),
            words,
            in_names: true,
        }
    }

    /// As typed (trimmed): what names are compared with when the words match nothing.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The `to_tsquery` text: `w1 & w2 & w3:*` (the last word also as a prefix when it is long
    /// enough). Words hold letters and digits only, so this is always a valid query.
    pub fn tsquery(&self) -> String {
        let last = self.words.len() - 1;
        let mut out = String::new();
        for (i, word) in self.words.iter().enumerate() {
            if i > 0 {
                out.push_str(" & ");
            }
            out.push_str(word);
            if self.in_names {
                // Weight A: the name (see the search migration's `setweight`).
                out.push_str(":A");
            } else if i == last && word.chars().count() >= MIN_PREFIX_CHARS {
                out.push_str(":*");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tsquery(raw: &str) -> Option<String> {
        SearchText::parse(raw).unwrap().map(|s| s.tsquery())
    }

    #[test]
    fn words_become_a_conjunction_with_the_last_one_as_a_prefix() {
        assert_eq!(tsquery("Leather coll").as_deref(), Some("leather & coll:*"));
        assert_eq!(tsquery("  collar ").as_deref(), Some("collar:*"));
        // Too short to be a useful prefix: the word itself.
        assert_eq!(tsquery("red xl").as_deref(), Some("red & xl"));
        assert_eq!(tsquery("Crème brûlée").as_deref(), Some("crème & brûlée:*"));
    }

    #[test]
    fn corrected_words_are_looked_for_whole_in_names() {
        let typed = SearchText::parse("colar leathr").unwrap().unwrap();
        let fixed = typed.in_names(vec!["collar".into(), "leather".into()]);
        assert_eq!(fixed.tsquery(), "collar:A & leather:A");
        assert_eq!(fixed.as_str(), "colar leathr");
    }

    #[test]
    fn query_syntax_from_the_client_is_only_a_separator() {
        assert_eq!(
            tsquery("a:* | !b & 'c' <-> (d)").as_deref(),
            Some("a & b & c & d")
        );
        assert_eq!(tsquery("!!! ---"), None);
        assert_eq!(tsquery("   "), None);
    }

    #[test]
    fn bounds_are_clear_errors() {
        assert_eq!(
            SearchText::parse(&"x".repeat(201)),
            Err(SearchTextError::TooLong)
        );
        assert!(SearchText::parse(&"x".repeat(200)).is_ok());
        assert_eq!(
            SearchText::parse("a b c d e f g h i"),
            Err(SearchTextError::TooManyTerms)
        );
        assert!(SearchText::parse("a b c d e f g h").is_ok());
        assert_eq!(
            SearchText::parse("dog\0collar"),
            Err(SearchTextError::ControlCharacter)
        );
    }
}
