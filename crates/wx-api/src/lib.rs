//! Typed WeCom/WeChat API client and the token manager. This is the only crate in wxbridge that talks to
//! WeCom or WeChat; every base URL is configurable so tests point it at `wx-sim`.

pub mod clock;
pub mod token;
