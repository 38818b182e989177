//! Turning the file struct into the runtime [`Config`], collecting every problem on the way (not just the
//! first), each with the dotted key and a hint naming the admin console page and field that fixes it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::file::{
    FileConfig, FileSecret, TenantFile, WebhookFile, WechatFile, WechatMiniProgramFile, WecomFile,
};
use crate::model::{
    AdminConfig, AgentId, ApiKeyHash, AppId, CallbackConfig, CallbackToken, Config, ContactsConfig,
    CorpId, DatabaseConfig, DirectoryConfig, DirectorySource, DirectoryStrategy, MessageMode,
    MiniProgramPushConfig, OfficialAccountConfig, ServerConfig, TenantConfig, TenantKey,
    TokenStoreConfig, TokensConfig, UpstreamConfig, WebhookConfig, WebsiteConfig, WechatConfig,
    WechatMiniProgramConfig, WechatTokenApi, WecomAppConfig, WecomConfig, WecomMiniProgramConfig,
};
use crate::problem::Problem;

/// Bounds of the session lifetime and idle timeout (seconds).
const MIN_SESSION_SECS: u64 = 60;
const MAX_SESSION_TTL_SECS: u64 = 365 * 24 * 3600;
/// The dispatch worker's lease: long enough to handle a claim, short enough to matter after a crash.
const MIN_DISPATCH_LEASE_SECS: u64 = 5;
const MAX_DISPATCH_LEASE_SECS: u64 = 3600;

const HINT_CORPID: &str = "WeCom 管理后台 > 我的企业 > 企业信息 > 企业ID (starts with `ww`)";
const HINT_CONTACTS_SECRET: &str =
    "WeCom 管理后台 > 管理工具 > 通讯录同步 > Secret (查看, sent to the admin's WeCom)";
const HINT_APP_SECRET: &str =
    "WeCom 管理后台 > 应用管理 > 应用 > (your app) > Secret (查看, sent to the admin's WeCom)";
const HINT_AGENTID: &str = "WeCom 管理后台 > 应用管理 > 应用 > (your app) > AgentId";
const HINT_WECOM_CALLBACK: &str = "WeCom 管理后台 > 应用管理 > (your app) > 接收消息 > 设置API接收: copy Token and EncodingAESKey (click 随机获取 to generate them) into both places";
const HINT_CONTACTS_CALLBACK: &str = "WeCom 管理后台 > 管理工具 > 通讯录同步 > 设置接收事件服务器: copy Token and EncodingAESKey into both places";
const HINT_OA_APPID: &str =
    "公众平台 (mp.weixin.qq.com) > 设置与开发 > 基本配置 > 开发者ID(AppID) / 开发者密码(AppSecret)";
const HINT_OA_SERVER: &str = "公众平台 > 设置与开发 > 基本配置 > 服务器配置: 令牌(Token), 消息加解密密钥(EncodingAESKey), 消息加解密方式";
const HINT_MP: &str = "小程序后台 (mp.weixin.qq.com) > 开发管理 > 开发设置 > 开发者ID: AppID(小程序ID) and AppSecret(小程序密钥)";
const HINT_WEBSITE: &str =
    "微信开放平台 (open.weixin.qq.com) > 管理中心 > 网站应用 > (your app): AppID and AppSecret";

/// Validate `file`, pushing every problem into `problems`. Returns the runtime config when everything that
/// is needed to build it parsed (the caller still refuses to use it if any problem is an error).
/// `base_dir` resolves relative `*_file` paths (the config file's directory).
pub fn validate(
    file: &FileConfig,
    base_dir: Option<&Path>,
    problems: &mut Vec<Problem>,
) -> Option<Config> {
    let mut v = Validator {
        problems,
        base_dir,
        ok: true,
    };
    let server = v.server(file);
    let database = v.database(file);
    let tokens = v.tokens(file);
    let upstream = v.upstream(file);

    if file.tenants.is_empty() {
        v.error(
            "tenants",
            "no tenant is configured",
            "add a [tenants.<key>] table (for example [tenants.demo] with [tenants.demo.wecom] corpid and an app); \
             see wxbridge.example.toml, or run `wxbridge demo` to try the bridge without one",
        );
    }
    let mut tenants = BTreeMap::new();
    let mut hosts_seen: HashMap<String, String> = HashMap::new();
    for (key, t) in &file.tenants {
        if let Some(tenant) = v.tenant(key, t, &mut hosts_seen) {
            tenants.insert(tenant.key.clone(), tenant);
        }
    }

    let (Some(server), Some(database), Some(tokens), Some(upstream)) =
        (server, database, tokens, upstream)
    else {
        return None;
    };
    if !v.ok {
        return None;
    }
    Some(Config {
        server,
        database,
        tokens,
        upstream,
        tenants,
    })
}

struct Validator<'a> {
    problems: &'a mut Vec<Problem>,
    base_dir: Option<&'a Path>,
    /// False once any error was recorded, so a partly built config is never returned.
    ok: bool,
}

impl Validator<'_> {
    fn error(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.ok = false;
        let hint = hint.into();
        self.problems.push(Problem::error(
            path,
            message,
            (!hint.is_empty()).then_some(hint),
        ));
    }

    fn warn(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let hint = hint.into();
        self.problems.push(Problem::warning(
            path,
            message,
            (!hint.is_empty()).then_some(hint),
        ));
    }

    /// Resolve a secret given either inline (`key`) or through `key_file`. Both set is an error naming the
    /// key; a missing required secret is an error with `hint`. The value never appears in a message.
    fn secret(
        &mut self,
        base: &str,
        key: &str,
        inline: &Option<FileSecret>,
        file: &Option<String>,
        required: bool,
        hint: &str,
    ) -> Option<String> {
        let path = format!("{base}.{key}");
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.error(
                    &path,
                    format!("both `{path}` and `{path}_file` are set"),
                    format!("keep only one: the value inline (or from WXBRIDGE_ env) or the file named by `{key}_file`"),
                );
                None
            }
            (Some(s), None) if s.expose().trim().is_empty() => {
                if required {
                    self.error(&path, format!("`{path}` is empty"), hint);
                }
                None
            }
            (Some(s), None) => Some(s.expose().trim().to_owned()),
            (None, Some(f)) => {
                let p = self.resolve(f);
                match std::fs::read_to_string(&p) {
                    // Secret files usually end with a newline (echo, Docker/Kubernetes secrets).
                    Ok(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                    Ok(_) => {
                        self.error(
                            format!("{path}_file"),
                            format!("the secret file {} is empty", p.display()),
                            hint,
                        );
                        None
                    }
                    Err(e) => {
                        self.error(
                            format!("{path}_file"),
                            format!("cannot read the secret file {}: {}", p.display(), e.kind()),
                            "check the path and that the file is readable by the wxbridge user",
                        );
                        None
                    }
                }
            }
            (None, None) => {
                if required {
                    self.error(
                        &path,
                        format!("`{path}` is missing"),
                        format!("set `{key}` or `{key}_file`; find it at {hint}"),
                    );
                }
                None
            }
        }
    }

    fn resolve(&self, f: &str) -> PathBuf {
        let p = PathBuf::from(f);
        match self.base_dir {
            Some(base) if p.is_relative() => base.join(p),
            _ => p,
        }
    }

    fn url(&mut self, path: &str, s: &str, hint: &str) -> Option<Url> {
        match Url::parse(s) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Some(u),
            Ok(u) => {
                self.error(
                    path,
                    format!(
                        "`{path}` must be an http:// or https:// URL, not {}:",
                        u.scheme()
                    ),
                    hint,
                );
                None
            }
            Err(e) => {
                self.error(path, format!("`{path}` is not a URL: {e}"), hint);
                None
            }
        }
    }

    fn server(&mut self, file: &FileConfig) -> Option<ServerConfig> {
        let listen = match file.server.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(
                    "server.listen",
                    format!("`{}` is not an address:port", file.server.listen),
                    "use an IP and port such as 127.0.0.1:8080 or 0.0.0.0:8080",
                );
                None
            }
        };
        let public_url = self.url(
            "server.public_url",
            &file.server.public_url,
            "the URL WeCom/WeChat and browsers use to reach this server, e.g. https://bridge.example.com",
        );
        if let Some(u) = &public_url
            && (u.query().is_some() || u.fragment().is_some())
        {
            self.error(
                "server.public_url",
                "`server.public_url` must not have a query or fragment",
                "",
            );
        }
        let ttl = file.server.session_ttl_secs;
        if !(MIN_SESSION_SECS..=MAX_SESSION_TTL_SECS).contains(&ttl) {
            self.error(
                "server.session_ttl_secs",
                format!("a session lifetime of {ttl}s is out of range"),
                "use 60 (one minute) to 31536000 (one year); the default is 604800 (seven days)",
            );
        }
        let lease = file.server.dispatch_lease_secs;
        if !(MIN_DISPATCH_LEASE_SECS..=MAX_DISPATCH_LEASE_SECS).contains(&lease) {
            self.error(
                "server.dispatch_lease_secs",
                format!("a dispatch lease of {lease}s is out of range"),
                "use 5 to 3600 seconds; the default is 120",
            );
        }
        if let Some(idle) = file.server.session_idle_timeout_secs
            && (idle < MIN_SESSION_SECS || idle > ttl)
        {
            self.error(
                "server.session_idle_timeout_secs",
                format!(
                    "an idle timeout of {idle}s must be at least {MIN_SESSION_SECS}s and at most session_ttl_secs ({ttl}s)"
                ),
                "leave it unset for no idle timeout, or pick a value such as 1800 (30 minutes)",
            );
        }
        let admin_token_hash = match &file.server.admin_token_hash {
            None => None,
            Some(h) => match ApiKeyHash::parse(h) {
                Ok(h) => Some(h),
                Err(e) => {
                    self.error(
                        "server.admin_token_hash",
                        e.replace("an API key hash", "the admin token hash"),
                        "store the hash, never the token: `sha256:` + hex(sha256(token)); `wxbridge admin token` makes one",
                    );
                    None
                }
            },
        };
        Some(ServerConfig {
            listen: listen?,
            public_url: public_url?,
            data_dir: PathBuf::from(&file.server.data_dir),
            session_ttl: Duration::from_secs(ttl),
            session_idle_timeout: file
                .server
                .session_idle_timeout_secs
                .map(Duration::from_secs),
            admin_token_hash,
            dispatch_lease: Duration::from_secs(lease),
        })
    }

    fn database(&mut self, file: &FileConfig) -> Option<DatabaseConfig> {
        let url = self.secret(
            "database",
            "url",
            &file.database.url,
            &file.database.url_file,
            true,
            "sqlite://./data/wxbridge.db or postgres://user@host/db",
        )?;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            self.error(
                "database.url",
                "`database.url` must start with sqlite: or postgres://",
                "for one machine use sqlite://./data/wxbridge.db; for several replicas postgres://user@host/db",
            );
            return None;
        }
        Some(DatabaseConfig::new(SecretString::from(url)))
    }

    fn tokens(&mut self, file: &FileConfig) -> Option<TokensConfig> {
        let t = &file.tokens;
        let redis_url = self.secret(
            "tokens",
            "redis_url",
            &t.redis_url,
            &t.redis_url_file,
            false,
            "",
        );
        let store = match t.store.as_str() {
            "memory" => Some(TokenStoreConfig::Memory),
            "sql" => Some(TokenStoreConfig::Sql),
            "redis" => match redis_url {
                Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                    Some(TokenStoreConfig::Redis {
                        url: SecretString::from(url),
                    })
                }
                Some(_) => {
                    self.error(
                        "tokens.redis_url",
                        "`tokens.redis_url` must start with redis:// or rediss://",
                        "",
                    );
                    None
                }
                None => {
                    self.error(
                        "tokens.redis_url",
                        "`tokens.store` is \"redis\" but `tokens.redis_url` is not set",
                        "set tokens.redis_url = \"redis://host:6379\" (or WXBRIDGE_TOKENS__REDIS_URL), or use store = \"sql\"",
                    );
                    None
                }
            },
            other => {
                self.error(
                    "tokens.store",
                    format!("unknown token store \"{other}\""),
                    "use \"memory\" (one process), \"sql\" (the database, default) or \"redis\"",
                );
                None
            }
        };
        if t.refresh_margin_secs >= 3600 {
            self.error(
                "tokens.refresh_margin_secs",
                format!(
                    "a refresh margin of {}s leaves no usable token lifetime (tokens live 7200s)",
                    t.refresh_margin_secs
                ),
                "use a value below 3600; the default 300 is right for most setups",
            );
        }
        let wechat_token_api = match t.wechat_token_api.as_str() {
            "stable" => Some(WechatTokenApi::Stable),
            "classic" => Some(WechatTokenApi::Classic),
            other => {
                self.error(
                    "tokens.wechat_token_api",
                    format!("unknown WeChat token API \"{other}\""),
                    "use \"stable\" (cgi-bin/stable_token, default) or \"classic\" (cgi-bin/token)",
                );
                None
            }
        };
        Some(TokensConfig {
            store: store?,
            refresh_margin: Duration::from_secs(t.refresh_margin_secs),
            wechat_token_api: wechat_token_api?,
        })
    }

    fn upstream(&mut self, file: &FileConfig) -> Option<UpstreamConfig> {
        let u = &file.upstream;
        let hint =
            "leave it unset for the real platform; point it at wx-sim only for tests and demos";
        let wecom = self.url("upstream.wecom_base_url", &u.wecom_base_url, hint);
        let wechat = self.url("upstream.wechat_base_url", &u.wechat_base_url, hint);
        let oauth = self.url("upstream.oauth_base_url", &u.oauth_base_url, hint);
        let login = self.url(
            "upstream.wecom_login_base_url",
            &u.wecom_login_base_url,
            hint,
        );
        Some(UpstreamConfig {
            wecom_base_url: wecom?,
            wechat_base_url: wechat?,
            oauth_base_url: oauth?,
            wecom_login_base_url: login?,
        })
    }

    fn tenant(
        &mut self,
        key: &str,
        t: &TenantFile,
        hosts_seen: &mut HashMap<String, String>,
    ) -> Option<TenantConfig> {
        let base = format!("tenants.{key}");
        let tenant_key = match TenantKey::parse(key) {
            Ok(k) => Some(k),
            Err(e) => {
                self.error(
                    &base,
                    format!("tenant key `{key}`: {e}"),
                    "rename the [tenants.<key>] table, e.g. [tenants.acme-corp]",
                );
                None
            }
        };
        let mut api_key_hashes = Vec::new();
        for (i, h) in t.api_key_hashes.iter().enumerate() {
            match ApiKeyHash::parse(h) {
                Ok(h) => api_key_hashes.push(h),
                Err(e) => self.error(
                    format!("{base}.api_key_hashes[{i}]"),
                    e,
                    "store the hash, never the key: `sha256:` + hex(sha256(key)); `wxbridge demo` shows one",
                ),
            }
        }
        for h in &t.hosts {
            if h.contains("://") || h.contains('/') || h.trim().is_empty() {
                self.error(
                    format!("{base}.hosts"),
                    format!("`{h}` is not a bare host name"),
                    "write only the host, e.g. bridge.example.com",
                );
            } else if let Some(other) = hosts_seen.insert(h.to_ascii_lowercase(), key.to_owned()) {
                self.error(
                    format!("{base}.hosts"),
                    format!("host `{h}` is also claimed by tenant `{other}`"),
                    "each host may belong to one tenant",
                );
            }
        }
        let mut return_to_allow = Vec::new();
        for (i, r) in t.return_to_allow.iter().enumerate() {
            if let Some(u) = self.url(
                &format!("{base}.return_to_allow[{i}]"),
                r,
                "an absolute URL prefix such as https://app.example.com/",
            ) {
                return_to_allow.push(u);
            }
        }
        let mut appids: HashMap<String, String> = HashMap::new();
        let wecom = t
            .wecom
            .as_ref()
            .and_then(|w| self.wecom(&base, w, &mut appids));
        let wechat = match &t.wechat {
            Some(w) => self.wechat(&base, w, &mut appids),
            None => Some(WechatConfig::default()),
        };
        if t.wecom.is_none()
            && t.wechat.as_ref().is_none_or(|w| {
                w.official_accounts.is_empty() && w.mini_programs.is_empty() && w.website.is_none()
            })
        {
            self.warn(
                &base,
                format!("tenant `{key}` has no WeCom corp and no WeChat account"),
                "add [tenants.<key>.wecom] or [tenants.<key>.wechat...] tables",
            );
        }
        let webhook = match &t.webhook {
            Some(w) => Some(self.webhook(&base, w)?),
            None => None,
        };
        let admin = self.admin(&base, t);
        Some(TenantConfig {
            key: tenant_key?,
            name: t.name.clone().unwrap_or_else(|| key.to_owned()),
            hosts: t.hosts.clone(),
            api_key_hashes,
            return_to_allow,
            wecom: if t.wecom.is_some() {
                Some(wecom?)
            } else {
                None
            },
            wechat: wechat?,
            webhook,
            admin: admin?,
        })
    }

    fn webhook(&mut self, tbase: &str, w: &WebhookFile) -> Option<WebhookConfig> {
        let base = format!("{tbase}.webhook");
        let url = self.url(
            &format!("{base}.url"),
            &w.url,
            "the business system's endpoint, e.g. https://app.example.com/hooks/wxbridge",
        );
        if let Some(u) = &url
            && !matches!(u.scheme(), "http" | "https")
        {
            self.error(
                format!("{base}.url"),
                format!("webhook URL scheme `{}` is not http or https", u.scheme()),
                "use an http:// or https:// URL",
            );
        }
        let secret = self.secret(
            &base,
            "secret",
            &w.secret,
            &w.secret_file,
            true,
            "a random string of at least 16 characters shared with the business system (it verifies X-Wxbridge-Signature)",
        );
        if let Some(s) = &secret
            && s.len() < 16
        {
            self.error(
                format!("{base}.secret"),
                format!(
                    "the webhook secret has {} characters; at least 16 are needed",
                    s.len()
                ),
                "generate one, e.g. `openssl rand -hex 32`",
            );
        }
        for (i, e) in w.events.iter().enumerate() {
            let ok = !e.is_empty()
                && e.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '*')
                })
                && (!e.contains('*') || (e.ends_with('*') && e.matches('*').count() == 1));
            if !ok {
                self.error(
                    format!("{base}.events[{i}]"),
                    format!("`{e}` is not an event type or a `prefix.*` pattern"),
                    "e.g. \"contact.*\", \"user.merged\", \"message.received\"",
                );
            }
        }
        if !(1..=50).contains(&w.max_attempts) {
            self.error(
                format!("{base}.max_attempts"),
                format!("{} attempts is out of range", w.max_attempts),
                "use 1 to 50 (default 12: retries over about a day)",
            );
        }
        if !(1..=120).contains(&w.timeout_secs) {
            self.error(
                format!("{base}.timeout_secs"),
                format!("a timeout of {}s is out of range", w.timeout_secs),
                "use 1 to 120 seconds (default 10)",
            );
        }
        let url = url?;
        let secret = secret?;
        (secret.len() >= 16 && matches!(url.scheme(), "http" | "https")).then(|| WebhookConfig {
            url,
            secret: SecretString::from(secret),
            events: w.events.clone(),
            max_attempts: w.max_attempts,
            timeout: Duration::from_secs(w.timeout_secs),
        })
    }

    fn admin(&mut self, tbase: &str, t: &TenantFile) -> Option<AdminConfig> {
        let Some(a) = &t.admin else {
            return Some(AdminConfig::default());
        };
        let base = format!("{tbase}.admin");
        let apps = t.wecom.as_ref().map(|w| &w.apps);
        let hint = "name an app under [..wecom.apps]: its WeCom login signs operators in";
        match (&a.app, apps) {
            (_, None) => {
                self.error(&base, "an admin table needs a WeCom corp ([..wecom]) to sign operators in", "add [tenants.<key>.wecom] with an app, or remove [tenants.<key>.admin] and use admin tokens");
                return None;
            }
            (Some(app), Some(apps)) if !apps.contains_key(app) => {
                self.error(
                    format!("{base}.app"),
                    format!("there is no WeCom app `{app}`"),
                    hint,
                );
                return None;
            }
            (None, Some(apps)) if apps.is_empty() => {
                self.error(
                    format!("{base}.app"),
                    "this corp has no WeCom app to sign operators in with",
                    hint,
                );
                return None;
            }
            _ => {}
        }
        for (i, u) in a.wecom_userids.iter().enumerate() {
            if u.trim().is_empty() || u.chars().any(char::is_whitespace) {
                self.error(
                    format!("{base}.wecom_userids[{i}]"),
                    format!("`{u}` is not a WeCom userid"),
                    "a userid as shown in 通讯录 > member > 账号",
                );
                return None;
            }
        }
        let admin = AdminConfig {
            app: a.app.clone(),
            wecom_department_ids: a.wecom_department_ids.clone(),
            wecom_tag_ids: a.wecom_tag_ids.clone(),
            wecom_userids: a.wecom_userids.clone(),
        };
        if admin.is_empty() {
            self.warn(
                &base,
                "nobody can sign in to the admin UI through WeCom",
                "list wecom_department_ids, wecom_tag_ids or wecom_userids",
            );
        }
        Some(admin)
    }

    fn passive_reply(&mut self, base: &str, key: &str, r: &Option<String>) -> bool {
        match r {
            Some(text) if text.trim().is_empty() => {
                self.error(
                    format!("{base}.{key}"),
                    format!("`{key}` is empty"),
                    "remove it for no reply, or write the text to send",
                );
                false
            }
            Some(text) if text.len() > 2048 => {
                self.error(
                    format!("{base}.{key}"),
                    format!(
                        "`{key}` is {} bytes; a text reply may have at most 2048",
                        text.len()
                    ),
                    "shorten the text",
                );
                false
            }
            _ => true,
        }
    }

    fn callback(
        &mut self,
        base: &str,
        token: &Option<FileSecret>,
        token_file: &Option<String>,
        key: &Option<FileSecret>,
        key_file: &Option<String>,
        hint: &str,
    ) -> Result<Option<CallbackConfig>, ()> {
        // Callbacks are optional: neither key is required, but one without the other is an error below.
        let token = self.secret(base, "callback_token", token, token_file, false, hint);
        let key = self.secret(base, "encoding_aes_key", key, key_file, false, hint);
        let token = match token.map(|t| CallbackToken::parse(&t)) {
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                self.error(format!("{base}.callback_token"), e, hint);
                return Err(());
            }
            None => None,
        };
        let key = match key.map(|k| crate::aes::decode(&k)) {
            Some(Ok(k)) => Some(k),
            Some(Err(e)) => {
                self.error(format!("{base}.encoding_aes_key"), e, hint);
                return Err(());
            }
            None => None,
        };
        match (token, key) {
            (Some(token), Some(aes_key)) => Ok(Some(CallbackConfig { token, aes_key })),
            (None, None) => Ok(None),
            (Some(_), None) => {
                self.error(
                    format!("{base}.encoding_aes_key"),
                    "`callback_token` is set but `encoding_aes_key` is not (callbacks need both)",
                    hint,
                );
                Err(())
            }
            (None, Some(_)) => {
                self.error(
                    format!("{base}.callback_token"),
                    "`encoding_aes_key` is set but `callback_token` is not (callbacks need both)",
                    hint,
                );
                Err(())
            }
        }
    }

    fn wecom(
        &mut self,
        tbase: &str,
        w: &WecomFile,
        appids: &mut HashMap<String, String>,
    ) -> Option<WecomConfig> {
        let base = format!("{tbase}.wecom");
        let corpid = match CorpId::parse(&w.corpid) {
            Ok(c) => {
                if !looks_like_corpid(&w.corpid) {
                    self.warn(format!("{base}.corpid"), format!("corpid `{}` does not look like a WeCom corp id (`ww` + 16 hex characters)", w.corpid), HINT_CORPID);
                }
                Some(c)
            }
            Err(e) => {
                self.error(format!("{base}.corpid"), e, HINT_CORPID);
                None
            }
        };
        let contacts = match &w.contacts {
            Some(c) => {
                let cbase = format!("{base}.contacts");
                let secret = self.secret(
                    &cbase,
                    "secret",
                    &c.secret,
                    &c.secret_file,
                    true,
                    HINT_CONTACTS_SECRET,
                );
                let callback = self.callback(
                    &cbase,
                    &c.callback_token,
                    &c.callback_token_file,
                    &c.encoding_aes_key,
                    &c.encoding_aes_key_file,
                    HINT_CONTACTS_CALLBACK,
                );
                match (secret, callback) {
                    (Some(s), Ok(callback)) => Some(Some(ContactsConfig {
                        secret: SecretString::from(s),
                        callback,
                    })),
                    _ => None,
                }
            }
            None => Some(None),
        };
        let mut apps = BTreeMap::new();
        let mut agentids: HashMap<i64, String> = HashMap::new();
        for (name, a) in &w.apps {
            let abase = format!("{base}.apps.{name}");
            let name_ok = is_local_name(name);
            if !name_ok {
                self.error(&abase, format!("app name `{name}` may only use a-z, 0-9, '-' and '_' (it appears in callback URLs)"), "rename the [..apps.<name>] table");
            }
            let agentid = match AgentId::parse(a.agentid) {
                Ok(id) => {
                    if let Some(other) = agentids.insert(a.agentid, name.clone()) {
                        self.error(
                            format!("{abase}.agentid"),
                            format!("agentid {} is also used by app `{other}`", a.agentid),
                            HINT_AGENTID,
                        );
                    }
                    Some(id)
                }
                Err(e) => {
                    self.error(
                        format!("{abase}.agentid"),
                        if a.agentid == 0 {
                            "`agentid` is missing".to_owned()
                        } else {
                            e
                        },
                        HINT_AGENTID,
                    );
                    None
                }
            };
            let secret = self.secret(
                &abase,
                "secret",
                &a.secret,
                &a.secret_file,
                true,
                HINT_APP_SECRET,
            );
            let callback = self.callback(
                &abase,
                &a.callback_token,
                &a.callback_token_file,
                &a.encoding_aes_key,
                &a.encoding_aes_key_file,
                HINT_WECOM_CALLBACK,
            );
            if let Some(d) = &a.trusted_domain {
                self.check_domain(
                    &format!("{abase}.trusted_domain"),
                    d,
                    "WeCom 管理后台 > 应用管理 > (your app) > 网页授权及JS-SDK > 可信域名",
                );
            }
            for d in &a.js_safe_domains {
                self.check_domain(
                    &format!("{abase}.js_safe_domains"),
                    d,
                    "WeCom 管理后台 > 应用管理 > (your app) > 网页授权及JS-SDK > 可信域名",
                );
            }
            let replies_ok = self.passive_reply(&abase, "default_reply", &a.default_reply)
                & self.passive_reply(&abase, "subscribe_reply", &a.subscribe_reply);
            if let (Some(agentid), Some(secret), Ok(callback), true, true) =
                (agentid, secret, callback, name_ok, replies_ok)
            {
                apps.insert(
                    name.clone(),
                    WecomAppConfig {
                        name: name.clone(),
                        agentid,
                        secret: SecretString::from(secret),
                        callback,
                        trusted_domain: a.trusted_domain.clone(),
                        js_safe_domains: a.js_safe_domains.clone(),
                        default_reply: a.default_reply.clone(),
                        subscribe_reply: a.subscribe_reply.clone(),
                    },
                );
            }
        }
        if w.apps.is_empty() && w.contacts.is_none() {
            self.warn(&base, "this WeCom corp has no app and no contacts secret, so nothing can be called", "add [..wecom.apps.<name>] with agentid and secret, or [..wecom.contacts] with the 通讯录同步 secret");
        }
        let mut mini_programs = BTreeMap::new();
        for (name, m) in &w.mini_programs {
            let mbase = format!("{base}.mini_programs.{name}");
            let appid = self.appid(
                &format!("{mbase}.appid"),
                &m.appid,
                "WeCom 管理后台 > 应用管理 > 小程序 > (your mini program) > AppID",
                appids,
            );
            if !w.apps.contains_key(&m.app) {
                let known: Vec<&str> = w.apps.keys().map(String::as_str).collect();
                self.error(
                    format!("{mbase}.app"),
                    format!(
                        "mini program `{name}` refers to app `{}`, which is not configured",
                        m.app
                    ),
                    if known.is_empty() {
                        "add the app under [..wecom.apps.<name>] or fix `app`".to_owned()
                    } else {
                        format!("set `app` to one of: {}", known.join(", "))
                    },
                );
            } else if let Some(appid) = appid {
                mini_programs.insert(
                    name.clone(),
                    WecomMiniProgramConfig {
                        name: name.clone(),
                        appid,
                        app: m.app.clone(),
                    },
                );
            }
        }
        let directory = self.directory(&base, w);
        Some(WecomConfig {
            corpid: corpid?,
            contacts: contacts?,
            apps,
            mini_programs,
            directory: directory?,
        })
    }

    /// `[..wecom.directory]`: the sync's credential, call budget, concurrency, removal guard and strategy.
    fn directory(&mut self, base: &str, w: &WecomFile) -> Option<DirectoryConfig> {
        let Some(d) = &w.directory else {
            return Some(DirectoryConfig::default());
        };
        let dbase = format!("{base}.directory");
        let mut ok = true;
        let source = match d.app.as_deref() {
            None => DirectorySource::Auto,
            Some("contacts") => {
                if w.contacts.is_none() {
                    self.error(
                        format!("{dbase}.app"),
                        "`app = \"contacts\"` but this corp has no [..wecom.contacts] secret",
                        format!("add [..wecom.contacts] with the secret from {HINT_CONTACTS_SECRET}, or name an app under [..wecom.apps]"),
                    );
                    ok = false;
                }
                DirectorySource::Contacts
            }
            Some(name) => {
                if !w.apps.contains_key(name) {
                    let mut known: Vec<&str> = vec!["contacts"];
                    known.extend(w.apps.keys().map(String::as_str));
                    let hint = match crate::schema::suggest(name, known.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`? Use one of: {}", known.join(", ")),
                        None => format!("use one of: {}", known.join(", ")),
                    };
                    self.error(
                        format!("{dbase}.app"),
                        format!(
                            "the directory is to be read with app `{name}`, which is not configured"
                        ),
                        hint,
                    );
                    ok = false;
                }
                DirectorySource::App(name.to_owned())
            }
        };
        if d.concurrency == 0 || d.concurrency > 64 {
            self.error(
                format!("{dbase}.concurrency"),
                format!("a concurrency of {} is out of range", d.concurrency),
                "use 1 to 64 calls in flight; the default 8 keeps well under the platform's limits",
            );
            ok = false;
        }
        if !d.max_removal_share.is_finite() || !(0.0..=1.0).contains(&d.max_removal_share) {
            self.error(
                format!("{dbase}.max_removal_share"),
                format!(
                    "`max_removal_share` is {}, but it is a share of the active users between 0 and 1",
                    d.max_removal_share
                ),
                "use e.g. 0.10 to refuse a run that would mark more than 10% of the users as left \
                 (0 refuses any removal, 1 never refuses); one run can still pass --override-guard",
            );
            ok = false;
        }
        let strategy = match d.strategy.as_str() {
            "auto" => DirectoryStrategy::Auto,
            "list" => DirectoryStrategy::List,
            "list_id" => DirectoryStrategy::ListId,
            other => {
                let hint = match crate::schema::suggest(other, ["auto", "list", "list_id"]) {
                    Some(s) => format!("did you mean \"{s}\"? "),
                    None => String::new(),
                };
                self.error(
                    format!("{dbase}.strategy"),
                    format!("unknown directory strategy \"{other}\""),
                    format!("{hint}use \"auto\" (try user/list, fall back when refused), \"list\" (user/list per department) or \"list_id\" (user/list_id + user/get, for apps created after 2022-08-15)"),
                );
                ok = false;
                DirectoryStrategy::Auto
            }
        };
        ok.then(|| DirectoryConfig {
            source,
            calls_per_minute: d.calls_per_minute,
            concurrency: usize::try_from(d.concurrency).unwrap_or(usize::MAX),
            max_removal_share: d.max_removal_share,
            strategy,
        })
    }

    fn appid(
        &mut self,
        path: &str,
        s: &str,
        hint: &str,
        seen: &mut HashMap<String, String>,
    ) -> Option<AppId> {
        match AppId::parse(s) {
            Ok(id) => {
                if !looks_like_appid(s) {
                    self.warn(path, format!("appid `{s}` does not look like a WeChat appid (`wx` + 16 hex characters)"), hint);
                }
                if let Some(other) = seen.insert(s.to_owned(), path.to_owned()) {
                    self.error(
                        path,
                        format!("appid `{s}` is also used at `{other}`"),
                        "each account or mini program has its own appid",
                    );
                }
                Some(id)
            }
            Err(e) => {
                self.error(path, e, hint);
                None
            }
        }
    }

    fn check_domain(&mut self, path: &str, d: &str, hint: &str) {
        if d.contains("://") || d.contains('/') || d.trim().is_empty() {
            self.error(
                path,
                format!("`{d}` is not a bare domain (no scheme, no path)"),
                format!("write only the host, as entered at {hint}"),
            );
        }
    }

    fn wechat(
        &mut self,
        tbase: &str,
        w: &WechatFile,
        appids: &mut HashMap<String, String>,
    ) -> Option<WechatConfig> {
        let base = format!("{tbase}.wechat");
        let mut ok = true;
        let mut official_accounts = BTreeMap::new();
        for (name, o) in &w.official_accounts {
            let obase = format!("{base}.official_accounts.{name}");
            if !is_local_name(name) {
                self.error(&obase, format!("account name `{name}` may only use a-z, 0-9, '-' and '_' (it appears in callback URLs)"), "rename the table");
                ok = false;
            }
            let appid = self.appid(&format!("{obase}.appid"), &o.appid, HINT_OA_APPID, appids);
            let secret = self.secret(
                &obase,
                "secret",
                &o.secret,
                &o.secret_file,
                true,
                HINT_OA_APPID,
            );
            let token = self.secret(
                &obase,
                "token",
                &o.token,
                &o.token_file,
                true,
                HINT_OA_SERVER,
            );
            let token = match token.map(|t| CallbackToken::parse(&t)) {
                Some(Ok(t)) => Some(t),
                Some(Err(e)) => {
                    self.error(format!("{obase}.token"), e, HINT_OA_SERVER);
                    None
                }
                None => None,
            };
            let mode = match o.mode.as_str() {
                "plain" => Some(MessageMode::Plain),
                "compat" => Some(MessageMode::Compat),
                "safe" => Some(MessageMode::Safe),
                other => {
                    self.error(format!("{obase}.mode"), format!("unknown message mode \"{other}\""), format!("use plain (明文模式), compat (兼容模式) or safe (安全模式), as chosen at {HINT_OA_SERVER}"));
                    None
                }
            };
            let key = self.secret(
                &obase,
                "encoding_aes_key",
                &o.encoding_aes_key,
                &o.encoding_aes_key_file,
                matches!(mode, Some(MessageMode::Compat | MessageMode::Safe)),
                HINT_OA_SERVER,
            );
            let aes_key = match key.map(|k| crate::aes::decode(&k)) {
                Some(Ok(k)) => Some(k),
                Some(Err(e)) => {
                    self.error(format!("{obase}.encoding_aes_key"), e, HINT_OA_SERVER);
                    ok = false;
                    None
                }
                None => None,
            };
            if let Some(g) = &o.original_id
                && !g.starts_with("gh_")
            {
                self.warn(
                    format!("{obase}.original_id"),
                    format!("original id `{g}` does not start with gh_"),
                    "公众平台 > 设置与开发 > 公众号设置 > 注册信息 > 原始ID",
                );
            }
            for d in &o.js_safe_domains {
                self.check_domain(
                    &format!("{obase}.js_safe_domains"),
                    d,
                    "公众平台 > 设置与开发 > 公众号设置 > 功能设置 > JS接口安全域名",
                );
            }
            let replies_ok = self.passive_reply(&obase, "default_reply", &o.default_reply)
                & self.passive_reply(&obase, "subscribe_reply", &o.subscribe_reply);
            if let (Some(appid), Some(secret), Some(token), Some(mode), true) =
                (appid, secret, token, mode, replies_ok)
            {
                official_accounts.insert(
                    name.clone(),
                    OfficialAccountConfig {
                        name: name.clone(),
                        appid,
                        secret: SecretString::from(secret),
                        token,
                        aes_key,
                        mode,
                        original_id: o.original_id.clone(),
                        js_safe_domains: o.js_safe_domains.clone(),
                        default_reply: o.default_reply.clone(),
                        subscribe_reply: o.subscribe_reply.clone(),
                    },
                );
            } else {
                ok = false;
            }
        }
        let mut mini_programs = BTreeMap::new();
        for (name, m) in &w.mini_programs {
            let mbase = format!("{base}.mini_programs.{name}");
            if !is_local_name(name) {
                self.error(&mbase, format!("mini program name `{name}` may only use a-z, 0-9, '-' and '_' (it appears in URLs)"), "rename the table");
                ok = false;
            }
            let appid = self.appid(&format!("{mbase}.appid"), &m.appid, HINT_MP, appids);
            let secret = self.secret(&mbase, "secret", &m.secret, &m.secret_file, true, HINT_MP);
            let push = self.mini_program_push(&mbase, m);
            match (appid, secret, push) {
                (Some(appid), Some(secret), Ok(push)) => {
                    mini_programs.insert(
                        name.clone(),
                        WechatMiniProgramConfig {
                            name: name.clone(),
                            appid,
                            secret: SecretString::from(secret),
                            push,
                        },
                    );
                }
                _ => ok = false,
            }
        }
        let website = match &w.website {
            Some(site) => {
                let sbase = format!("{base}.website");
                let appid =
                    self.appid(&format!("{sbase}.appid"), &site.appid, HINT_WEBSITE, appids);
                let secret = self.secret(
                    &sbase,
                    "secret",
                    &site.secret,
                    &site.secret_file,
                    true,
                    HINT_WEBSITE,
                );
                match (appid, secret) {
                    (Some(appid), Some(secret)) => Some(WebsiteConfig {
                        appid,
                        secret: SecretString::from(secret),
                    }),
                    _ => {
                        ok = false;
                        None
                    }
                }
            }
            None => None,
        };
        ok.then_some(WechatConfig {
            official_accounts,
            mini_programs,
            website,
        })
    }
}

impl Validator<'_> {
    /// A mini program's message push settings: none of the `push_*` keys means no push.
    fn mini_program_push(
        &mut self,
        mbase: &str,
        m: &WechatMiniProgramFile,
    ) -> Result<Option<MiniProgramPushConfig>, ()> {
        let any = m.push_token.is_some()
            || m.push_token_file.is_some()
            || m.push_encoding_aes_key.is_some()
            || m.push_encoding_aes_key_file.is_some()
            || m.push_mode.is_some();
        if !any {
            return Ok(None);
        }
        let mode = match m.push_mode.as_deref().unwrap_or("safe") {
            "plain" => MessageMode::Plain,
            "compat" => MessageMode::Compat,
            "safe" => MessageMode::Safe,
            other => {
                self.error(
                    format!("{mbase}.push_mode"),
                    format!("unknown message mode \"{other}\""),
                    format!("use plain, compat or safe, as chosen at {HINT_MP_PUSH}"),
                );
                return Err(());
            }
        };
        let token = self.secret(
            mbase,
            "push_token",
            &m.push_token,
            &m.push_token_file,
            true,
            HINT_MP_PUSH,
        );
        let token = match token.map(|t| CallbackToken::parse(&t)) {
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                self.error(format!("{mbase}.push_token"), e, HINT_MP_PUSH);
                return Err(());
            }
            None => return Err(()),
        };
        let key = self.secret(
            mbase,
            "push_encoding_aes_key",
            &m.push_encoding_aes_key,
            &m.push_encoding_aes_key_file,
            mode != MessageMode::Plain,
            HINT_MP_PUSH,
        );
        let aes_key = match key.map(|k| crate::aes::decode(&k)) {
            Some(Ok(k)) => Some(k),
            Some(Err(e)) => {
                self.error(format!("{mbase}.push_encoding_aes_key"), e, HINT_MP_PUSH);
                return Err(());
            }
            None if mode != MessageMode::Plain => return Err(()),
            None => None,
        };
        Ok(Some(MiniProgramPushConfig {
            token,
            aes_key,
            mode,
        }))
    }
}

const HINT_MP_PUSH: &str = "微信公众平台 (mini program) > 开发 > 开发管理 > 开发设置 > 消息推送";

fn is_local_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Real corp ids are `ww` + 16 hex characters (old companies: `wx` + 16). Only a warning: a simulator or a
/// future format may differ.
fn looks_like_corpid(s: &str) -> bool {
    (s.starts_with("ww") || s.starts_with("wx"))
        && s.len() == 18
        && s[2..].chars().all(|c| c.is_ascii_hexdigit())
}

fn looks_like_appid(s: &str) -> bool {
    s.starts_with("wx") && s.len() == 18 && s[2..].chars().all(|c| c.is_ascii_hexdigit())
}
