//! The one place that sends requests: URL and query building (tokens only in the query string), envelope
//! parsing (a missing errcode is success), and the retry rules shared by the WeCom and WeChat clients:
//! 40014/42001 refresh once, -1/45033 back off within a budget, 45009 opens a block window, configuration
//! errors are never retried.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::de;
use crate::errcode::ErrCode;
use crate::error::{ApiError, scrub};
use crate::token::{CachedToken, TokenKey, TokenManager};

/// Connecting to WeCom/WeChat takes at most this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole request (connect, send, read the answer) takes at most this long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Busy answers (-1, 45033) are retried this many times; the platform's advice is "no more than 3".
pub const DEFAULT_BUSY_RETRIES: u32 = 3;
/// The first backoff after a busy answer; it doubles with each retry.
pub const DEFAULT_BUSY_BACKOFF: Duration = Duration::from_millis(200);
/// How long a 45009 blocks further calls to the same API (the platform's per-minute window).
pub const DEFAULT_RATE_LIMIT_WINDOW: Duration = Duration::from_secs(60);

/// A `reqwest::Client` with this crate's timeouts; share one between the WeCom and WeChat clients.
pub fn http_client() -> Result<reqwest::Client, ApiError> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| ApiError::from_reqwest("http_client", e))
}

/// How upstream failures are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub busy_retries: u32,
    pub busy_backoff: Duration,
    pub rate_limit_window: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            busy_retries: DEFAULT_BUSY_RETRIES,
            busy_backoff: DEFAULT_BUSY_BACKOFF,
            rate_limit_window: DEFAULT_RATE_LIMIT_WINDOW,
        }
    }
}

/// Open block windows after 45009, per (tenant, owner, api), on the token manager's clock. Callers (the
/// directory sync) read `blocked_for` to wait and resume instead of failing.
#[derive(Debug, Default)]
pub struct RateLimits {
    windows: Mutex<HashMap<(String, String, String), i64>>,
}

impl RateLimits {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<(String, String, String), i64>) -> R) -> R {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut windows)
    }

    /// How long calls to `api` stay blocked for (tenant, owner), or None if they may go now.
    pub fn blocked_for(
        &self,
        tenant: &str,
        owner: &str,
        api: &str,
        now_ms: i64,
    ) -> Option<Duration> {
        let key = (tenant.to_owned(), owner.to_owned(), api.to_owned());
        self.with(|windows| match windows.get(&key) {
            Some(until) if *until > now_ms => Some(Duration::from_millis(
                u64::try_from(until - now_ms).unwrap_or(0),
            )),
            Some(_) => {
                windows.remove(&key);
                None
            }
            None => None,
        })
    }

    /// Block calls to `api` for (tenant, owner) until `until_ms`.
    pub fn block_until(&self, tenant: &str, owner: &str, api: &str, until_ms: i64) {
        let key = (tenant.to_owned(), owner.to_owned(), api.to_owned());
        self.with(|windows| {
            let entry = windows.entry(key).or_insert(until_ms);
            *entry = (*entry).max(until_ms);
        });
    }
}

/// A token endpoint's `expires_in` (seconds; negative means already expired) as a lifetime.
pub(crate) fn lifetime(expires_in: i64) -> Duration {
    Duration::from_secs(u64::try_from(expires_in).unwrap_or(0))
}

/// Who a call is made for: the block window's scope and the tracing fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub tenant: &'a str,
    pub owner: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
}

/// One request. `api` is the path (also the rate-limit scope); `secrets` are scrubbed from any errmsg.
pub(crate) struct Request<'a> {
    pub api: &'static str,
    pub method: Method,
    pub query: Vec<(&'static str, Cow<'a, str>)>,
    pub body: Option<serde_json::Value>,
    pub secrets: Vec<&'a str>,
}

impl<'a> Request<'a> {
    pub fn get(api: &'static str) -> Self {
        Request {
            api,
            method: Method::Get,
            query: Vec::new(),
            body: None,
            secrets: Vec::new(),
        }
    }

    pub fn post(api: &'static str, body: serde_json::Value) -> Self {
        Request {
            api,
            method: Method::Post,
            query: Vec::new(),
            body: Some(body),
            secrets: Vec::new(),
        }
    }

    pub fn query(mut self, name: &'static str, value: impl Into<Cow<'a, str>>) -> Self {
        self.query.push((name, value.into()));
        self
    }

    /// A query parameter that is a secret (app secret, code): sent, but scrubbed from error text.
    pub fn secret_query(mut self, name: &'static str, value: &'a str) -> Self {
        self.query.push((name, Cow::Borrowed(value)));
        self.secrets.push(value);
        self
    }

    pub fn scrub(mut self, value: &'a str) -> Self {
        self.secrets.push(value);
        self
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default, deserialize_with = "de::lenient_opt_i64")]
    errcode: Option<i64>,
    #[serde(default)]
    errmsg: Option<String>,
}

/// What both clients share: HTTP client, base URL, token manager, retry rules and block windows.
#[derive(Clone)]
pub(crate) struct Transport {
    pub http: reqwest::Client,
    pub base: String,
    pub tokens: Arc<TokenManager>,
    pub policy: RetryPolicy,
    pub limits: Arc<RateLimits>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("base", &self.base)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

enum Next<T> {
    Done(Result<T, ApiError>),
    Retry,
}

impl Transport {
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        tokens: Arc<TokenManager>,
    ) -> Result<Self, ApiError> {
        let parsed = url::Url::parse(base_url).map_err(|e| ApiError::InvalidRequest {
            api: "base_url",
            message: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ApiError::InvalidRequest {
                api: "base_url",
                message: "scheme must be http or https".into(),
            });
        }
        Ok(Transport {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            tokens,
            policy: RetryPolicy::default(),
            limits: Arc::new(RateLimits::default()),
        })
    }

    pub fn now_ms(&self) -> i64 {
        self.tokens.clock().now_ms()
    }

    /// How long calls to `api` for `scope` stay blocked after a 45009, if they are.
    pub fn blocked_for(&self, scope: Scope<'_>, api: &str) -> Option<Duration> {
        self.limits
            .blocked_for(scope.tenant, scope.owner, api, self.now_ms())
    }

    /// Send once and parse, with one debug event per upstream call (never the URL: it holds the token).
    async fn send_once<T: DeserializeOwned>(
        &self,
        scope: Scope<'_>,
        req: &Request<'_>,
        token: Option<&str>,
    ) -> Result<T, ApiError> {
        let started = tokio::time::Instant::now();
        let result = self.send_once_inner(req, token).await;
        tracing::debug!(
            tenant.key = %scope.tenant,
            owner = %scope.owner,
            api = req.api,
            errcode = result.as_ref().err().and_then(ApiError::errcode).map_or(0, ErrCode::code),
            ok = result.is_ok(),
            duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "upstream call"
        );
        result
    }

    async fn send_once_inner<T: DeserializeOwned>(
        &self,
        req: &Request<'_>,
        token: Option<&str>,
    ) -> Result<T, ApiError> {
        let api = req.api;
        let url = format!("{}{}", self.base, api);
        let mut query: Vec<(&str, &str)> =
            req.query.iter().map(|(k, v)| (*k, v.as_ref())).collect();
        if let Some(token) = token {
            query.push(("access_token", token));
        }
        let builder = match req.method {
            Method::Get => self.http.get(&url),
            Method::Post => self.http.post(&url),
        };
        let mut builder = builder.query(&query);
        if let Some(body) = &req.body {
            builder = builder.json(body);
        }
        let response = builder
            .send()
            .await
            .map_err(|e| ApiError::from_reqwest(api, e))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(ApiError::HttpStatus {
                api,
                status: status.as_u16(),
            });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ApiError::from_reqwest(api, e))?;
        parse_body(api, &bytes, token, &req.secrets)
    }

    /// A call that needs no access token (token endpoints, sns/* with appid+secret).
    pub async fn call<T: DeserializeOwned>(
        &self,
        scope: Scope<'_>,
        req: &Request<'_>,
    ) -> Result<T, ApiError> {
        self.check_block(scope, req.api)?;
        let mut busy_attempts = 0;
        loop {
            let result = self.send_once::<T>(scope, req, None).await;
            match self.after(scope, req.api, result, &mut busy_attempts).await {
                Next::Done(result) => return result,
                Next::Retry => continue,
            }
        }
    }

    /// A call with the access token from `get_token`; on 40014/42001 that exact token is invalidated and the
    /// call is retried once with a fresh one.
    pub async fn call_with_token<T, G, Fut>(
        &self,
        scope: Scope<'_>,
        req: &Request<'_>,
        key: &TokenKey,
        get_token: G,
    ) -> Result<T, ApiError>
    where
        T: DeserializeOwned,
        G: Fn() -> Fut,
        Fut: Future<Output = Result<CachedToken, ApiError>>,
    {
        self.check_block(scope, req.api)?;
        let mut busy_attempts = 0;
        let mut token_refreshed = false;
        loop {
            let token = get_token().await?;
            let result = self.send_once::<T>(scope, req, Some(token.value())).await;
            if let Err(ApiError::Upstream { code, .. }) = &result
                && code.is_token_invalid()
                && !token_refreshed
            {
                token_refreshed = true;
                tracing::info!(
                    tenant.key = %scope.tenant,
                    owner = %scope.owner,
                    api = req.api,
                    errcode = code.code(),
                    "access token rejected; refreshing once"
                );
                self.tokens.invalidate(key, token.value()).await?;
                continue;
            }
            match self.after(scope, req.api, result, &mut busy_attempts).await {
                Next::Done(result) => return result,
                Next::Retry => continue,
            }
        }
    }

    fn check_block(&self, scope: Scope<'_>, api: &'static str) -> Result<(), ApiError> {
        match self
            .limits
            .blocked_for(scope.tenant, scope.owner, api, self.now_ms())
        {
            Some(retry_after) => Err(ApiError::RateLimited {
                api,
                tenant: scope.tenant.to_owned(),
                retry_after,
            }),
            None => Ok(()),
        }
    }

    async fn after<T>(
        &self,
        scope: Scope<'_>,
        api: &'static str,
        result: Result<T, ApiError>,
        busy_attempts: &mut u32,
    ) -> Next<T> {
        let code = match &result {
            Err(ApiError::Upstream { code, .. }) => *code,
            _ => return Next::Done(result),
        };
        if code.is_retryable_busy() {
            if *busy_attempts >= self.policy.busy_retries {
                return Next::Done(Err(ApiError::BusyRetriesExhausted {
                    api,
                    code,
                    attempts: *busy_attempts + 1,
                }));
            }
            let backoff = self
                .policy
                .busy_backoff
                .saturating_mul(2u32.saturating_pow(*busy_attempts));
            *busy_attempts += 1;
            tracing::info!(
                tenant.key = %scope.tenant,
                owner = %scope.owner,
                api,
                errcode = code.code(),
                backoff_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                "upstream busy; backing off"
            );
            self.tokens.clock().sleep(backoff).await;
            return Next::Retry;
        }
        if code.is_rate_limited() {
            let window_ms =
                i64::try_from(self.policy.rate_limit_window.as_millis()).unwrap_or(i64::MAX);
            self.limits.block_until(
                scope.tenant,
                scope.owner,
                api,
                self.now_ms().saturating_add(window_ms),
            );
            tracing::warn!(tenant.key = %scope.tenant, owner = %scope.owner, api, "rate limited (45009); block window opened");
        } else if code.is_config_error() {
            tracing::warn!(tenant.key = %scope.tenant, owner = %scope.owner, api, errcode = code.code(), "configuration error; not retried");
        }
        Next::Done(result)
    }
}

/// Parse an answer body the way every call does: a missing or zero errcode is success and the body is read
/// as `T`; a non-zero errcode is `ApiError::Upstream`. Public so callers can check recorded answers.
pub fn parse_response<T: DeserializeOwned>(api: &'static str, body: &[u8]) -> Result<T, ApiError> {
    parse_body(api, body, None, &[])
}

/// Parse an answer: non-zero errcode -> `Upstream` (errmsg scrubbed of the token and secrets), else `T`.
pub(crate) fn parse_body<T: DeserializeOwned>(
    api: &'static str,
    bytes: &[u8],
    token: Option<&str>,
    secrets: &[&str],
) -> Result<T, ApiError> {
    let envelope: Envelope =
        serde_json::from_slice(bytes).map_err(|e| ApiError::from_json(api, &e))?;
    if let Some(code) = envelope.errcode
        && code != 0
    {
        let mut hide: Vec<&str> = secrets.to_vec();
        hide.extend(token);
        let errmsg = scrub(envelope.errmsg.as_deref().unwrap_or(""), &hide);
        return Err(ApiError::Upstream {
            api,
            code: ErrCode::from_code(code),
            errmsg,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::from_json(api, &e))
}
