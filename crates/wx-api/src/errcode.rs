//! WeCom/WeChat errcodes as typed data. Callers branch on these variants (or the helper predicates), never on
//! `errmsg` text, whose wording the platforms change without notice.

use std::fmt;

macro_rules! errcodes {
    ($( $(#[$meta:meta])* $name:ident = $code:literal ),+ $(,)?) => {
        /// An errcode from a WeCom or WeChat answer. Codes this crate does not name are kept as `Other`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrCode {
            $( $(#[$meta])* $name, )+
            /// Any code without a name here.
            Other(i64),
        }

        impl ErrCode {
            /// The typed form of a raw errcode.
            pub fn from_code(code: i64) -> ErrCode {
                match code {
                    $( $code => ErrCode::$name, )+
                    other => ErrCode::Other(other),
                }
            }

            /// The raw errcode.
            pub fn code(self) -> i64 {
                match self {
                    $( ErrCode::$name => $code, )+
                    ErrCode::Other(code) => code,
                }
            }
        }
    };
}

errcodes! {
    /// -1: the server is busy; retry a few times with backoff.
    SystemBusy = -1,
    /// 40001: bad secret (wrong, reset, app disabled). Configuration error.
    InvalidCredential = 40001,
    /// 40002: bad `grant_type` (WeChat).
    InvalidGrantType = 40002,
    /// 40013: bad corpid / appid. Configuration error.
    InvalidCorpId = 40013,
    /// 40014: the access token is invalid (revoked early, wrong app, garbled).
    InvalidAccessToken = 40014,
    /// 40029: OAuth / mini-program code invalid, used or expired.
    InvalidCode = 40029,
    /// 40091: the secret belongs to another company. Configuration error.
    SecretNotValid = 40091,
    /// 40125: invalid appsecret (WeChat). Configuration error.
    InvalidAppSecret = 40125,
    /// 40163: the code has already been used.
    CodeBeenUsed = 40163,
    /// 40164: caller IP not in the WeChat IP whitelist. Configuration error.
    InvalidIp = 40164,
    /// 40243: the AppSecret is frozen (WeChat). Configuration error.
    AppSecretFrozen = 40243,
    /// 41001: no access token in the query string.
    AccessTokenMissing = 41001,
    /// 42001: the access token expired.
    AccessTokenExpired = 42001,
    /// 45009: frequency limit hit; the platform blocks calls for the limit's window.
    FreqOutOfLimit = 45009,
    /// 45011: mini-program per-user minute quota hit.
    MinuteQuotaReached = 45011,
    /// 45033: too many concurrent calls to one API.
    ConcurrentOutOfLimit = 45033,
    /// 48001: API not authorised for this account / scope.
    ApiUnauthorized = 48001,
    /// 48002: the app has no right to this API. Configuration error.
    ApiForbidden = 48002,
    /// 48009: the API is not allowed for this secret from this (new) IP.
    ApiUnauthorizedIp = 48009,
    /// 50001: the OAuth redirect domain does not match the app's trusted domain.
    RedirectUrlNotTrusted = 50001,
    /// 60011: outside the app's visible scope.
    NoPrivilege = 60011,
    /// 60020: caller IP not in the app's trusted IP list. Configuration error.
    IpNotAllowed = 60020,
    /// 60111: no such userid (or outside the visible scope).
    UserNotFound = 60111,
    /// 61004: IP whitelist (WeChat, newer text). Configuration error.
    IpNotInWhitelist = 61004,
    /// 81013: message/send with every recipient invalid.
    AllRecipientsInvalid = 81013,
    /// 89503: this IP needs admin confirmation (WeChat).
    IpNeedsConfirmation = 89503,
    /// 301002: the token's app does not match the agentid in the body.
    AgentIdMismatch = 301002,
}

impl ErrCode {
    /// 40014 / 42001: drop exactly this token, refresh, and retry the call once.
    pub fn is_token_invalid(self) -> bool {
        matches!(
            self,
            ErrCode::InvalidAccessToken | ErrCode::AccessTokenExpired
        )
    }

    /// Codes that come from a wrong configuration (secret, corpid, IP list, API rights). Retrying cannot
    /// help and, for a wrong secret, repeated calls get the IP blocked for an hour.
    pub fn is_config_error(self) -> bool {
        matches!(
            self,
            ErrCode::InvalidCredential
                | ErrCode::InvalidCorpId
                | ErrCode::ApiForbidden
                | ErrCode::IpNotAllowed
                | ErrCode::SecretNotValid
                | ErrCode::InvalidAppSecret
                | ErrCode::InvalidIp
                | ErrCode::AppSecretFrozen
                | ErrCode::IpNotInWhitelist
                | ErrCode::IpNeedsConfirmation
                | ErrCode::ApiUnauthorizedIp
        )
    }

    /// -1 / 45033: transient, retry with backoff within a small budget.
    pub fn is_retryable_busy(self) -> bool {
        matches!(self, ErrCode::SystemBusy | ErrCode::ConcurrentOutOfLimit)
    }

    /// 45009: the platform's frequency limit; further calls are blocked for a window.
    pub fn is_rate_limited(self) -> bool {
        matches!(self, ErrCode::FreqOutOfLimit)
    }
}

impl fmt::Display for ErrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrCode::Other(code) => write!(f, "{code}"),
            named => write!(f, "{} ({named:?})", named.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_named_and_unknown_codes() {
        for code in [
            -1, 40001, 40013, 40014, 41001, 42001, 45009, 45033, 48002, 48009, 60011, 60020, 60111,
        ] {
            let typed = ErrCode::from_code(code);
            assert!(
                !matches!(typed, ErrCode::Other(_)),
                "{code} should be named"
            );
            assert_eq!(typed.code(), code);
        }
        assert_eq!(ErrCode::from_code(12345), ErrCode::Other(12345));
        assert_eq!(ErrCode::Other(12345).code(), 12345);
    }

    #[test]
    fn classifies_codes() {
        assert!(ErrCode::from_code(40014).is_token_invalid());
        assert!(ErrCode::from_code(42001).is_token_invalid());
        assert!(!ErrCode::from_code(40001).is_token_invalid());
        for code in [40001, 40013, 48002, 60020, 40091, 40125, 40164] {
            assert!(ErrCode::from_code(code).is_config_error(), "{code}");
        }
        assert!(!ErrCode::from_code(-1).is_config_error());
        assert!(ErrCode::from_code(-1).is_retryable_busy());
        assert!(ErrCode::from_code(45033).is_retryable_busy());
        assert!(!ErrCode::from_code(45009).is_retryable_busy());
        assert!(ErrCode::from_code(45009).is_rate_limited());
    }
}
