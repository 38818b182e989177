//! The one error type of wx-sim's library API (fixtures, serving, control changes, callback registration).
//! API callers never see it: they get WeCom/WeChat errcodes in HTTP 200 bodies, as from the real servers.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What went wrong in a library or control-API call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The fixture text is not valid TOML/JSON of the fixture shape, or is inconsistent.
    #[error("invalid fixture: {0}")]
    Fixture(String),
    #[error("cannot read fixture file {path}: {source}")]
    FixtureIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("unknown corp {0:?}")]
    UnknownCorp(String),
    #[error("unknown app {0:?}")]
    UnknownApp(String),
    #[error("unknown member {0:?}")]
    UnknownMember(String),
    #[error("a member with userid {0:?} already exists (userids are case-insensitive)")]
    MemberExists(String),
    #[error("unknown department {0}")]
    UnknownDepartment(u32),
    #[error("department {0} already exists")]
    DepartmentExists(u32),
    #[error("unknown tag {0}")]
    UnknownTag(u32),
    #[error("unknown WeChat appid or openid: {0}")]
    UnknownWechat(String),
    /// A change that WeCom would refuse (e.g. deleting a department that still has members).
    #[error("invalid change: {0}")]
    InvalidChange(String),
    /// The callback URL did not answer the verification GET with the plaintext echo in time.
    #[error("callback URL verification failed for {url}: {reason}")]
    CallbackVerification { url: String, reason: String },
    #[error("invalid callback registration: {0}")]
    BadRegistration(String),
    #[error("cannot write the wxbridge config: {0}")]
    Config(String),
}
