//! The one error type of this crate. Its Display and Debug never contain a secret, a token or a request URL
//! (URLs carry `access_token=` in their query string); each variant starts with a short greppable code.

use std::time::Duration;

use crate::errcode::ErrCode;
use crate::token::{StoreError, TokenKind};

/// Why a WeCom/WeChat call (or a token refresh) failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// HTTP 200 with a non-zero errcode. `errmsg` is for humans only; branch on `code`.
    #[error("TK001 {api} answered errcode {code}: {errmsg}")]
    Upstream {
        api: &'static str,
        code: ErrCode,
        errmsg: String,
    },

    /// A 45009 opened a block window for this (tenant, owner, api); the call was not sent.
    #[error("TK002 {api} is rate limited for tenant {tenant}; retry in {} ms", retry_after.as_millis())]
    RateLimited {
        api: &'static str,
        tenant: String,
        retry_after: Duration,
    },

    /// The server answered with a non-200 HTTP status.
    #[error("TK003 {api} answered HTTP {status}")]
    HttpStatus { api: &'static str, status: u16 },

    /// No answer within the request timeout.
    #[error("TK004 {api} timed out")]
    Timeout { api: &'static str },

    /// Connection refused, reset, TLS failure... (`message` is stripped of the URL).
    #[error("TK005 {api} transport error: {message}")]
    Transport { api: &'static str, message: String },

    /// The body was not the JSON we expect (`message` is stripped of quoted values).
    #[error("TK006 {api} answered an unreadable body: {message}")]
    BadResponse { api: &'static str, message: String },

    /// The token store failed.
    #[error("TK007 {0}")]
    Store(#[from] StoreError),

    /// Another replica held the refresh lease and no fresh token appeared within the wait budget.
    #[error("TK008 no fresh {} for tenant {tenant} after waiting {} ms for another replica", kind.as_str(), waited.as_millis())]
    TokenWaitTimeout {
        tenant: String,
        kind: TokenKind,
        waited: Duration,
    },

    /// Busy answers (-1 / 45033) kept coming after every retry in the budget.
    #[error("TK009 {api} still busy (errcode {code}) after {attempts} attempts")]
    BusyRetriesExhausted {
        api: &'static str,
        code: ErrCode,
        attempts: u32,
    },

    /// A request could not be built (bad base URL, a value that cannot be serialised).
    #[error("TK010 invalid request for {api}: {message}")]
    InvalidRequest { api: &'static str, message: String },
}

impl ApiError {
    /// The upstream errcode, if this error is one.
    pub fn errcode(&self) -> Option<ErrCode> {
        match self {
            ApiError::Upstream { code, .. } | ApiError::BusyRetriesExhausted { code, .. } => {
                Some(*code)
            }
            _ => None,
        }
    }

    /// How long to wait before calling again, when a block window is open.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    pub(crate) fn from_reqwest(api: &'static str, err: reqwest::Error) -> ApiError {
        // reqwest's Display includes the URL, and ours carry tokens and secrets in the query string.
        let err = err.without_url();
        if err.is_timeout() {
            return ApiError::Timeout { api };
        }
        if let Some(status) = err.status() {
            return ApiError::HttpStatus {
                api,
                status: status.as_u16(),
            };
        }
        let mut message = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        ApiError::Transport { api, message }
    }

    pub(crate) fn from_json(api: &'static str, err: &serde_json::Error) -> ApiError {
        ApiError::BadResponse {
            api,
            message: redact_quoted(&err.to_string()),
        }
    }
}

/// serde_json quotes offending string values in its messages ("invalid type: string \"…\""); such a value
/// could be a token, so everything between double quotes is dropped.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for ch in message.chars() {
        if ch == '"' {
            if !inside {
                out.push_str("\"…\"");
            }
            inside = !inside;
        } else if !inside {
            out.push(ch);
        }
    }
    out
}

/// Remove every occurrence of the given secrets from an upstream message before it is kept in an error.
pub(crate) fn scrub(message: &str, secrets: &[&str]) -> String {
    let mut out = message.to_owned();
    for secret in secrets {
        if !secret.is_empty() && out.contains(secret) {
            out = out.replace(secret, "[redacted]");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_quoted_values() {
        assert_eq!(
            redact_quoted("invalid type: string \"SECRET\", expected i64 at line 1"),
            "invalid type: string \"…\", expected i64 at line 1"
        );
    }

    #[test]
    fn scrubs_secrets() {
        assert_eq!(
            scrub("bad token abc here abc", &["abc", ""]),
            "bad token [redacted] here [redacted]"
        );
    }
}
