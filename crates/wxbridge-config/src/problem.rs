//! One configuration problem: where it is (the dotted key), what is wrong, and how to fix it. Validation
//! collects all of them so an operator fixes a file in one pass, and `wxbridge check` shows them as data.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look, but the bridge can run (an id with an unusual shape, an ignored variable).
    Warning,
    /// The bridge refuses to start.
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    /// The dotted key, e.g. `tenants.demo.wecom.apps.main.encoding_aes_key` (or an env variable name).
    pub path: String,
    pub message: String,
    /// How to fix it: which admin console page and field, or which key to set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Problem {
    pub fn error(
        path: impl Into<String>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Self {
        Problem {
            severity: Severity::Error,
            path: path.into(),
            message: message.into(),
            hint,
        }
    }

    pub fn warning(
        path: impl Into<String>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Self {
        Problem {
            severity: Severity::Warning,
            path: path.into(),
            message: message.into(),
            hint,
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{level}: `{}`: {}", self.path, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}
