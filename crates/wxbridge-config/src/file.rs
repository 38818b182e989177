//! The configuration file as users write it (TOML, `WXBRIDGE_*` environment): plain serde structs with
//! defaults and `deny_unknown_fields`. Nothing here is validated; `validate` turns it into [`crate::Config`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret as written in the file or environment. Its Debug never shows the value, so a `FileConfig` can be
/// logged or printed in a test failure without leaking anything.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FileSecret(String);

impl FileSecret {
    pub fn new(value: impl Into<String>) -> Self {
        FileSecret(value.into())
    }

    /// The raw value, for the one place that turns it into a `SecretString`.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for FileSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The whole file. Field names are the TOML keys; the shape is shared with `wx-sim --write-config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerFile,
    #[serde(default)]
    pub database: DatabaseFile,
    #[serde(default)]
    pub tokens: TokensFile,
    #[serde(default)]
    pub upstream: UpstreamFile,
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default = "default_public_url")]
    pub public_url: String,
    #[serde(default = "default_data_dir")]
    pub data_dir: String,
    /// Absolute lifetime of a login session, in seconds.
    #[serde(default = "default_session_ttl")]
    pub session_ttl_secs: u64,
    /// When set, a session unused for this many seconds expires before its lifetime ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_idle_timeout_secs: Option<u64>,
    /// `sha256:` + hex of the bootstrap admin token: it signs in to the admin UI for every tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token_hash: Option<String>,
    /// How long the callback dispatch worker's claim of an inbox row lasts, in seconds: a row claimed
    /// by a server that died is handled again after this.
    #[serde(default = "default_dispatch_lease")]
    pub dispatch_lease_secs: u64,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./data";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/wxbridge.db";
pub const DEFAULT_REFRESH_MARGIN_SECS: u64 = 300;
/// Seven days.
pub const DEFAULT_SESSION_TTL_SECS: u64 = 7 * 24 * 3600;
pub const DEFAULT_WECOM_BASE_URL: &str = "https://qyapi.weixin.qq.com";
pub const DEFAULT_WECHAT_BASE_URL: &str = "https://api.weixin.qq.com";
pub const DEFAULT_OAUTH_BASE_URL: &str = "https://open.weixin.qq.com";
pub const DEFAULT_WECOM_LOGIN_BASE_URL: &str = "https://login.work.weixin.qq.com";

fn default_session_ttl() -> u64 {
    DEFAULT_SESSION_TTL_SECS
}
fn default_listen() -> String {
    DEFAULT_LISTEN.to_owned()
}
fn default_public_url() -> String {
    DEFAULT_PUBLIC_URL.to_owned()
}
fn default_data_dir() -> String {
    DEFAULT_DATA_DIR.to_owned()
}
fn default_database_url() -> Option<FileSecret> {
    Some(FileSecret::new(DEFAULT_DATABASE_URL))
}
fn default_store() -> String {
    "sql".to_owned()
}
fn default_refresh_margin() -> u64 {
    DEFAULT_REFRESH_MARGIN_SECS
}
fn default_wechat_token_api() -> String {
    "stable".to_owned()
}
fn default_wecom_base_url() -> String {
    DEFAULT_WECOM_BASE_URL.to_owned()
}
fn default_wechat_base_url() -> String {
    DEFAULT_WECHAT_BASE_URL.to_owned()
}
fn default_oauth_base_url() -> String {
    DEFAULT_OAUTH_BASE_URL.to_owned()
}
fn default_wecom_login_base_url() -> String {
    DEFAULT_WECOM_LOGIN_BASE_URL.to_owned()
}
/// The dispatch worker's lease: far longer than handling a claim takes (an upstream read per row).
pub const DEFAULT_DISPATCH_LEASE_SECS: u64 = 120;
fn default_dispatch_lease() -> u64 {
    DEFAULT_DISPATCH_LEASE_SECS
}
fn default_oa_mode() -> String {
    "safe".to_owned()
}

impl Default for ServerFile {
    fn default() -> Self {
        ServerFile {
            listen: default_listen(),
            public_url: default_public_url(),
            data_dir: default_data_dir(),
            session_ttl_secs: default_session_ttl(),
            session_idle_timeout_secs: None,
            admin_token_hash: None,
            dispatch_lease_secs: default_dispatch_lease(),
        }
    }
}

/// The database URL may carry a password, so it is a secret with a `*_file` twin like the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseFile {
    #[serde(
        default = "default_database_url",
        skip_serializing_if = "Option::is_none"
    )]
    pub url: Option<FileSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<String>,
}

impl Default for DatabaseFile {
    fn default() -> Self {
        DatabaseFile {
            url: default_database_url(),
            url_file: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensFile {
    #[serde(default = "default_store")]
    pub store: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<FileSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url_file: Option<String>,
    #[serde(default = "default_refresh_margin")]
    pub refresh_margin_secs: u64,
    #[serde(default = "default_wechat_token_api")]
    pub wechat_token_api: String,
}

impl Default for TokensFile {
    fn default() -> Self {
        TokensFile {
            store: default_store(),
            redis_url: None,
            redis_url_file: None,
            refresh_margin_secs: default_refresh_margin(),
            wechat_token_api: default_wechat_token_api(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    #[serde(default = "default_wecom_base_url")]
    pub wecom_base_url: String,
    #[serde(default = "default_wechat_base_url")]
    pub wechat_base_url: String,
    #[serde(default = "default_oauth_base_url")]
    pub oauth_base_url: String,
    #[serde(default = "default_wecom_login_base_url")]
    pub wecom_login_base_url: String,
}

impl Default for UpstreamFile {
    fn default() -> Self {
        UpstreamFile {
            wecom_base_url: default_wecom_base_url(),
            wechat_base_url: default_wechat_base_url(),
            oauth_base_url: default_oauth_base_url(),
            wecom_login_base_url: default_wecom_login_base_url(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_key_hashes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub return_to_allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wecom: Option<WecomFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wechat: Option<WechatFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminFile>,
}

pub const DEFAULT_WEBHOOK_MAX_ATTEMPTS: u32 = 12;
pub const DEFAULT_WEBHOOK_TIMEOUT_SECS: u64 = 10;

fn default_webhook_max_attempts() -> u32 {
    DEFAULT_WEBHOOK_MAX_ATTEMPTS
}
fn default_webhook_timeout_secs() -> u64 {
    DEFAULT_WEBHOOK_TIMEOUT_SECS
}

/// Business webhook of a tenant (`[tenants.<key>.webhook]`): where events are POSTed, signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookFile {
    #[serde(default)]
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<FileSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
    /// Event types or `prefix.*` patterns to deliver; empty: every event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    #[serde(default = "default_webhook_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_webhook_timeout_secs")]
    pub timeout_secs: u64,
}

impl Default for WebhookFile {
    fn default() -> Self {
        WebhookFile {
            url: String::new(),
            secret: None,
            secret_file: None,
            events: Vec::new(),
            max_attempts: default_webhook_max_attempts(),
            timeout_secs: default_webhook_timeout_secs(),
        }
    }
}

/// Who may sign in to the admin UI of a tenant through WeCom (`[tenants.<key>.admin]`): members of these
/// departments (with sub-departments) or tags, or these userids.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// The WeCom app (under `wecom.apps`) whose login is used; unset: the first app by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wecom_department_ids: Vec<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wecom_tag_ids: Vec<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wecom_userids: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomFile {
    #[serde(default)]
    pub corpid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<ContactsFile>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub apps: BTreeMap<String, WecomAppFile>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mini_programs: BTreeMap<String, WecomMiniProgramFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectoryFile>,
}

pub const DEFAULT_DIRECTORY_CALLS_PER_MINUTE: u32 = 9_000;
pub const DEFAULT_DIRECTORY_CONCURRENCY: u32 = 8;
pub const DEFAULT_DIRECTORY_MAX_REMOVAL_SHARE: f64 = 0.10;

fn default_directory_calls_per_minute() -> u32 {
    DEFAULT_DIRECTORY_CALLS_PER_MINUTE
}
fn default_directory_concurrency() -> u32 {
    DEFAULT_DIRECTORY_CONCURRENCY
}
fn default_directory_max_removal_share() -> f64 {
    DEFAULT_DIRECTORY_MAX_REMOVAL_SHARE
}
fn default_directory_strategy() -> String {
    "auto".to_owned()
}

/// How the corp's directory is synchronised (`[tenants.<key>.wecom.directory]`); every key has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryFile {
    /// `contacts` or the name of an app under `apps`; unset: contacts when configured, else the first app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default = "default_directory_calls_per_minute")]
    pub calls_per_minute: u32,
    #[serde(default = "default_directory_concurrency")]
    pub concurrency: u32,
    #[serde(default = "default_directory_max_removal_share")]
    pub max_removal_share: f64,
    #[serde(default = "default_directory_strategy")]
    pub strategy: String,
}

impl Default for DirectoryFile {
    fn default() -> Self {
        DirectoryFile {
            app: None,
            calls_per_minute: default_directory_calls_per_minute(),
            concurrency: default_directory_concurrency(),
            max_removal_share: default_directory_max_removal_share(),
            strategy: default_directory_strategy(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactsFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<FileSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_token: Option<FileSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_token_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_aes_key: Option<FileSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_aes_key_file: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomAppFile {
    #[serde(default)]
    pub agentid: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<FileSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_token: Option<FileSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_token_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_aes_key: Option<FileSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_aes_key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub js_safe_domains: Vec<String>,
    /// Passive text reply to a message sent to the app (unset: an empty answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_reply: Option<String>,
    /// Passive text reply to the `subscribe` event (a member follows the app).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe_reply: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomMiniProgramFile {
    #[serde(default)]
    pub appid: String,
    #[serde(default)]
    pub app: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatFile {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub official_accounts: BTreeMap<String, OfficialAccountFile>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mini_programs: BTreeMap<String, WechatMiniProgramFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<WebsiteFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficialAccountFile {
    #[serde(default)]
    pub appid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<FileSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<FileSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_aes_key: Option<FileSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_aes_key_file: Option<String>,
    #[serde(default = "default_oa_mode")]
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub js_safe_domains: Vec<String>,
    /// Passive text reply to a user's message (unset: an empty answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_reply: Option<String>,
    /// Passive text reply to the `subscribe` (follow) event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe_reply: Option<String>,
}

impl Default for OfficialAccountFile {
    fn default() -> Self {
        OfficialAccountFile {
            appid: String::new(),
            secret: None,
            secret_file: None,
            token: None,
            token_file: None,
            encoding_aes_key: None,
            encoding_aes_key_file: None,
            mode: default_oa_mode(),
            original_id: None,
            js_safe_domains: Vec::new(),
            default_reply: None,
            subscribe_reply: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatMiniProgramFile {
    #[serde(default)]
    pub appid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<FileSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
    /// Message push (消息推送) Token; with `encoding_aes_key` unless `push_mode = "plain"`. Unset: no push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_token: Option<FileSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_token_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_encoding_aes_key: Option<FileSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_encoding_aes_key_file: Option<String>,
    /// 消息加密方式: "plain", "compat" or "safe" (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_mode: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebsiteFile {
    #[serde(default)]
    pub appid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<FileSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
}

impl FileConfig {
    /// Parse TOML text (no environment, no validation): for tools that edit a generated file.
    pub fn from_toml_str(s: &str) -> Result<FileConfig, String> {
        toml::from_str(s).map_err(|e| e.message().to_owned())
    }

    /// The TOML form, secrets included (this is what goes into the file).
    pub fn to_toml_string(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| e.to_string())
    }
}
