//! Typed WeCom/WeChat API client and the token manager. This is the only crate in wxbridge that talks to
//! WeCom or WeChat; every base URL is configurable so tests point it at `wx-sim`.
//!
//! Shape: a [`token::TokenManager`] (over a [`token::TokenStore`]: memory, Redis, or SQL in the `store` crate)
//! is shared by a [`wecom::WecomClient`] and a [`wechat::WechatClient`]; each hands out per-app handles
//! ([`wecom::WecomApp`], [`wechat::WechatApp`]) whose typed methods fetch tokens, retry by the platform's
//! rules ([`http`]) and return typed answers or an [`ApiError`] carrying an [`ErrCode`].

pub mod clock;
mod de;
pub mod errcode;
pub mod error;
pub mod http;
pub mod token;
pub mod wechat;
pub mod wecom;

pub use errcode::ErrCode;
pub use error::ApiError;
pub use http::{RateLimits, RetryPolicy, http_client, parse_response};
