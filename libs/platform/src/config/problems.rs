//! What is wrong with the settings: every problem found, reported at once.

use std::fmt;

use super::Profile;

/// One setting that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingProblem {
    pub setting: String,
    pub message: String,
}

/// Collects every problem found; start-up fails once with all of them.
#[derive(Debug, Default)]
pub struct Problems(pub(super) Vec<SettingProblem>);

impl Problems {
    pub fn add(&mut self, setting: impl Into<String>, message: impl Into<String>) {
        self.0.push(SettingProblem {
            setting: setting.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Start-up refused: the settings have one or more problems.
#[derive(Debug)]
pub struct ConfigError {
    pub profile: Profile,
    pub problems: Vec<SettingProblem>,
}

impl ConfigError {
    /// Whether any problem names this setting (used by tests and by callers deciding exit codes).
    pub fn mentions(&self, setting: &str) -> bool {
        self.problems.iter().any(|p| p.setting == setting)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid configuration (APP_ENV={}): {n} problem{}",
            self.profile,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  - {}: {}", p.setting, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
