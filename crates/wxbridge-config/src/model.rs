//! The validated runtime configuration: parsed addresses and URLs, durations, decoded keys, secrets in
//! redacting wrappers and typed ids. Only `validate` builds it, so holding a `Config` means it passed.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use url::Url;

pub use crate::aes::AesKey;

/// A tenant key: `[a-z0-9-]`, 1–64 characters. Appears in URLs, cache keys and rows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TenantKey(String);

impl TenantKey {
    /// Parse a tenant key; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 64 {
            return Err("a tenant key must be 1 to 64 characters".into());
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(format!(
                "a tenant key may only use a-z, 0-9 and '-', found {c:?}"
            ));
        }
        Ok(TenantKey(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A WeCom corp id (`ww...` for most companies; older companies have `wx...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CorpId(String);

impl CorpId {
    /// Any non-empty id without whitespace is accepted; the `ww` shape is only a warning in validation.
    pub fn parse(s: &str) -> Result<Self, String> {
        non_blank_id(s, "corpid").map(CorpId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A WeChat appid (`wx` + 16 hex characters for real accounts).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct AppId(String);

impl AppId {
    pub fn parse(s: &str) -> Result<Self, String> {
        non_blank_id(s, "appid").map(AppId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn non_blank_id(s: &str, what: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    if s.chars().any(char::is_whitespace) || s.len() > 64 {
        return Err(format!(
            "{what} must be at most 64 characters without spaces"
        ));
    }
    Ok(s.to_owned())
}

/// A WeCom self-built app id (`agentid`, e.g. 1000002).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AgentId(i64);

impl AgentId {
    pub fn parse(n: i64) -> Result<Self, String> {
        if n <= 0 {
            return Err("agentid must be a positive number".into());
        }
        Ok(AgentId(n))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The callback Token (3–32 letters and digits). A secret: it authenticates callbacks.
#[derive(Clone)]
pub struct CallbackToken(SecretString);

impl CallbackToken {
    pub fn parse(s: &str) -> Result<Self, String> {
        let n = s.chars().count();
        if !(3..=32).contains(&n) || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "the Token must be 3 to 32 letters or digits (this one has {n} characters)"
            ));
        }
        Ok(CallbackToken(SecretString::from(s.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for CallbackToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallbackToken([redacted])")
    }
}

/// Callback settings of one app or account: the Token and the decoded EncodingAESKey.
#[derive(Debug, Clone)]
pub struct CallbackConfig {
    pub token: CallbackToken,
    pub aes_key: AesKey,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub tokens: TokensConfig,
    pub upstream: UpstreamConfig,
    pub tenants: BTreeMap<TenantKey, TenantConfig>,
}

impl Config {
    pub fn tenant(&self, key: &str) -> Option<&TenantConfig> {
        self.tenants
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, t)| t)
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// How WeCom/WeChat and browsers reach this server; callback URLs are built on it. No trailing slash.
    pub public_url: Url,
    pub data_dir: PathBuf,
    /// Absolute lifetime of a login session.
    pub session_ttl: Duration,
    /// When set, a session unused this long expires before `session_ttl`.
    pub session_idle_timeout: Option<Duration>,
    /// Hash of the bootstrap admin token (admin UI sign-in for every tenant); None: no bootstrap token.
    pub admin_token_hash: Option<ApiKeyHash>,
    /// How long the callback dispatch worker's claim of an inbox row lasts.
    pub dispatch_lease: Duration,
}

impl ServerConfig {
    /// `public_url` joined with an absolute path, without doubling the slash.
    pub fn public_url_for(&self, path: &str) -> String {
        format!("{}{}", self.public_url.as_str().trim_end_matches('/'), path)
    }
}

#[derive(Clone)]
pub struct DatabaseConfig {
    url: SecretString,
}

impl DatabaseConfig {
    pub fn new(url: SecretString) -> Self {
        DatabaseConfig { url }
    }

    /// The connection URL (may contain a password: pass it to the driver, never log it).
    pub fn url(&self) -> &str {
        self.url.expose_secret()
    }

    /// Which database the URL points at.
    pub fn backend(&self) -> DatabaseBackend {
        if self.url().starts_with("postgres://") || self.url().starts_with("postgresql://") {
            DatabaseBackend::Postgres
        } else {
            DatabaseBackend::Sqlite
        }
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("backend", &self.backend())
            .field("url", &"[redacted]")
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseBackend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub enum TokenStoreConfig {
    Memory,
    Sql,
    Redis { url: SecretString },
}

impl TokenStoreConfig {
    pub fn name(&self) -> &'static str {
        match self {
            TokenStoreConfig::Memory => "memory",
            TokenStoreConfig::Sql => "sql",
            TokenStoreConfig::Redis { .. } => "redis",
        }
    }
}

impl fmt::Debug for TokenStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenStoreConfig::Redis { .. } => f.write_str("Redis { url: [redacted] }"),
            other => f.write_str(other.name()),
        }
    }
}

/// Which WeChat endpoint issues base access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WechatTokenApi {
    /// `cgi-bin/stable_token`: does not invalidate other holders (the default).
    Stable,
    /// `cgi-bin/token`: every call invalidates the previous token after 5 minutes.
    Classic,
}

#[derive(Debug, Clone)]
pub struct TokensConfig {
    pub store: TokenStoreConfig,
    pub refresh_margin: Duration,
    pub wechat_token_api: WechatTokenApi,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub wecom_base_url: Url,
    pub wechat_base_url: Url,
    pub oauth_base_url: Url,
    pub wecom_login_base_url: Url,
}

/// A per-tenant API key hash (`sha256:` + 64 hex characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyHash([u8; 32]);

impl ApiKeyHash {
    pub fn parse(s: &str) -> Result<Self, String> {
        let hex_part = s
            .strip_prefix("sha256:")
            .ok_or_else(|| "an API key hash must start with `sha256:`".to_owned())?;
        let bytes = decode_hex(hex_part).ok_or_else(|| {
            "an API key hash must be `sha256:` followed by 64 hex characters".to_owned()
        })?;
        Ok(ApiKeyHash(bytes))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ApiKeyHash(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The `sha256:<hex>` form written in the file.
    pub fn to_file_string(&self) -> String {
        let mut s = String::from("sha256:");
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

fn decode_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[derive(Debug, Clone)]
pub struct TenantConfig {
    pub key: TenantKey,
    pub name: String,
    pub hosts: Vec<String>,
    pub api_key_hashes: Vec<ApiKeyHash>,
    pub return_to_allow: Vec<Url>,
    pub wecom: Option<WecomConfig>,
    pub wechat: WechatConfig,
    /// Where business events are delivered; None: events are not delivered (nothing is queued).
    pub webhook: Option<WebhookConfig>,
    /// Who may sign in to this tenant's admin UI through WeCom (empty: nobody, only admin tokens).
    pub admin: AdminConfig,
}

/// A tenant's business webhook (`[tenants.<key>.webhook]`).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: Url,
    /// Signs every delivery (HMAC-SHA256); never sent.
    pub secret: SecretString,
    /// Event types or `prefix.*` patterns; empty: every event.
    pub events: Vec<String>,
    /// Attempts before a delivery is dead (1..=50). Default 12.
    pub max_attempts: u32,
    /// Per-attempt timeout. Default 10 s.
    pub timeout: Duration,
}

impl WebhookConfig {
    /// Whether an event type is selected by `events`.
    pub fn wants(&self, event_type: &str) -> bool {
        self.events.is_empty()
            || self.events.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => event_type.starts_with(prefix),
                None => p == event_type,
            })
    }
}

/// Who may sign in to the admin UI through WeCom (`[tenants.<key>.admin]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminConfig {
    /// The WeCom app whose login is used (validated to exist); None: the first app by name.
    pub app: Option<String>,
    /// Members of these departments or any of their sub-departments.
    pub wecom_department_ids: Vec<i64>,
    /// Members of these tags (directly or through a tagged department).
    pub wecom_tag_ids: Vec<i64>,
    pub wecom_userids: Vec<String>,
}

impl AdminConfig {
    /// True when nobody can sign in through WeCom.
    pub fn is_empty(&self) -> bool {
        self.wecom_department_ids.is_empty()
            && self.wecom_tag_ids.is_empty()
            && self.wecom_userids.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct WecomConfig {
    pub corpid: CorpId,
    pub contacts: Option<ContactsConfig>,
    pub apps: BTreeMap<String, WecomAppConfig>,
    pub mini_programs: BTreeMap<String, WecomMiniProgramConfig>,
    /// Directory sync settings (defaults when the file has no `directory` table).
    pub directory: DirectoryConfig,
}

/// Which credential reads the corp's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectorySource {
    /// The contacts-sync (通讯录同步) secret when configured, else the first app by name.
    Auto,
    /// The contacts-sync secret.
    Contacts,
    /// The self-built app of this local name (under `apps`).
    App(String),
}

/// How members are read: `auto` tries `user/list` and falls back to `user/list_id` + `user/get` when the
/// credential may not list members (48009/48002).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryStrategy {
    Auto,
    /// `user/list` per department.
    List,
    /// `user/list_id` pages, then `user/get` per member.
    ListId,
}

/// Directory sync settings of one corp (`[tenants.<key>.wecom.directory]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectoryConfig {
    pub source: DirectorySource,
    /// Calls per minute to each WeCom API for this corp; 0 = unlimited. Default 9,000 (the platform allows
    /// 10,000 per company and API).
    pub calls_per_minute: u32,
    /// Upstream calls in flight at most (1..=64). Default 8.
    pub concurrency: usize,
    /// A run refuses to mark more than this share of the active users as left unless the operator
    /// overrides the guard (0..=1). Default 0.10.
    pub max_removal_share: f64,
    pub strategy: DirectoryStrategy,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            source: DirectorySource::Auto,
            calls_per_minute: crate::file::DEFAULT_DIRECTORY_CALLS_PER_MINUTE,
            concurrency: crate::file::DEFAULT_DIRECTORY_CONCURRENCY as usize,
            max_removal_share: crate::file::DEFAULT_DIRECTORY_MAX_REMOVAL_SHARE,
            strategy: DirectoryStrategy::Auto,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ContactsConfig {
    pub secret: SecretString,
    pub callback: Option<CallbackConfig>,
}

#[derive(Debug, Clone)]
pub struct WecomAppConfig {
    /// The local name (the key under `apps`), used in URLs and logs.
    pub name: String,
    pub agentid: AgentId,
    pub secret: SecretString,
    pub callback: Option<CallbackConfig>,
    pub trusted_domain: Option<String>,
    pub js_safe_domains: Vec<String>,
    /// Passive text reply to a member's message; None: an empty answer.
    pub default_reply: Option<String>,
    /// Passive text reply to the `subscribe` event.
    pub subscribe_reply: Option<String>,
}

#[derive(Debug, Clone)]
pub struct WecomMiniProgramConfig {
    pub name: String,
    pub appid: AppId,
    /// The local name of the app (under `apps`) whose secret serves this mini program.
    pub app: String,
}

#[derive(Debug, Clone, Default)]
pub struct WechatConfig {
    pub official_accounts: BTreeMap<String, OfficialAccountConfig>,
    pub mini_programs: BTreeMap<String, WechatMiniProgramConfig>,
    pub website: Option<WebsiteConfig>,
}

/// Official-account message encryption mode, as chosen in 公众平台 > 基本配置 > 消息加解密方式.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageMode {
    Plain,
    Compat,
    Safe,
}

#[derive(Debug, Clone)]
pub struct OfficialAccountConfig {
    pub name: String,
    pub appid: AppId,
    pub secret: SecretString,
    pub token: CallbackToken,
    /// Absent only in plain mode.
    pub aes_key: Option<AesKey>,
    pub mode: MessageMode,
    pub original_id: Option<String>,
    pub js_safe_domains: Vec<String>,
    /// Passive text reply to a user's message; None: an empty answer.
    pub default_reply: Option<String>,
    /// Passive text reply to the `subscribe` (follow) event.
    pub subscribe_reply: Option<String>,
}

#[derive(Debug, Clone)]
pub struct WechatMiniProgramConfig {
    pub name: String,
    pub appid: AppId,
    pub secret: SecretString,
    /// Message push (消息推送) settings; None: the push endpoint refuses this mini program.
    pub push: Option<MiniProgramPushConfig>,
}

/// A mini program's message push: the Token, the key (absent only in plain mode) and the mode.
#[derive(Debug, Clone)]
pub struct MiniProgramPushConfig {
    pub token: CallbackToken,
    pub aes_key: Option<AesKey>,
    pub mode: MessageMode,
}

#[derive(Debug, Clone)]
pub struct WebsiteConfig {
    pub appid: AppId,
    pub secret: SecretString,
}
