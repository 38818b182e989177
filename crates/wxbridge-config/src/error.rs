//! The configuration layer's error: either the file could not be read at all, or it was read and has
//! problems (all of them, each with a path and a hint).

use std::path::PathBuf;

use crate::problem::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path} not found")]
    FileNotFound { path: PathBuf },
    #[error("{}", summary(problems))]
    Invalid { problems: Vec<Problem> },
}

impl ConfigError {
    /// Every problem (errors and warnings) when the configuration was read but is invalid.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems } => problems,
            ConfigError::FileNotFound { .. } => &[],
        }
    }
}

fn summary(problems: &[Problem]) -> String {
    let errors: Vec<&Problem> = problems.iter().filter(|p| p.is_error()).collect();
    match errors.first() {
        Some(first) if errors.len() == 1 => {
            format!("invalid configuration: `{}`: {}", first.path, first.message)
        }
        Some(first) => format!(
            "invalid configuration: {} problems, the first: `{}`: {}",
            errors.len(),
            first.path,
            first.message
        ),
        None => "invalid configuration".to_owned(),
    }
}
