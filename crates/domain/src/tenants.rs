//! The per-tenant runtime built from the configuration: one wx-api handle per WeCom app, contacts secret and
//! WeChat account, all sharing ONE token manager over the configured store (memory, SQL, Redis), so every
//! caller in the process (and every replica sharing the store) refreshes each token once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use wx_api::ApiError;
use wx_api::clock::Clock;
use wx_api::token::{
    CachedToken, MemoryTokenStore, TokenKey, TokenManager, TokenManagerConfig, TokenStore,
};
use wx_api::wechat::{TokenEndpoint, WechatApp, WechatClient, WechatCredentials};
use wx_api::wecom::{AppCredentials, WecomApp, WecomClient};
use wxbridge_config::{Config, TenantConfig, TokenStoreConfig, WechatTokenApi};

use crate::error::DomainError;

/// What a credential is, as shown in token health and check reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A WeCom self-built app secret.
    WecomApp,
    /// The WeCom contacts-sync (通讯录同步) secret.
    WecomContacts,
    /// A WeChat official account.
    OfficialAccount,
    /// A WeChat mini program.
    WechatMiniProgram,
    /// An open-platform website app (QR login); it has no client-credential token.
    Website,
}

impl CredentialKind {
    /// Whether this credential has a base access token the bridge caches.
    pub fn has_access_token(self) -> bool {
        !matches!(self, CredentialKind::Website)
    }
}

/// The API handle of a credential.
#[derive(Debug, Clone)]
pub enum Api {
    Wecom(WecomApp),
    Wechat(WechatApp),
}

/// The last failure seen on a credential (never a token or secret: wx-api errors are scrubbed).
#[derive(Debug, Clone, Serialize)]
pub struct LastError {
    /// The WeCom/WeChat errcode, when the platform answered with one.
    pub errcode: Option<i64>,
    /// Our short error code (`TK001` ...), greppable in the docs.
    pub code: String,
}

/// One secret of a tenant with its API handle.
#[derive(Debug)]
pub struct Credential {
    pub kind: CredentialKind,
    /// The local name (`apps.<name>`, `official_accounts.<name>` ...; `contacts` / `website` for the singletons).
    pub name: String,
    /// corpid or appid.
    pub owner: String,
    pub agentid: Option<i64>,
    pub api: Api,
    last_error: Mutex<Option<LastError>>,
}

impl Credential {
    fn new(kind: CredentialKind, name: &str, owner: &str, agentid: Option<i64>, api: Api) -> Self {
        Credential {
            kind,
            name: name.to_owned(),
            owner: owner.to_owned(),
            agentid,
            api,
            last_error: Mutex::new(None),
        }
    }

    /// The cache key of this credential's access token.
    pub fn token_key(&self) -> &TokenKey {
        match &self.api {
            Api::Wecom(a) => a.token_key(),
            Api::Wechat(a) => a.token_key(),
        }
    }

    pub fn wecom(&self) -> Option<&WecomApp> {
        match &self.api {
            Api::Wecom(a) => Some(a),
            Api::Wechat(_) => None,
        }
    }

    pub fn wechat(&self) -> Option<&WechatApp> {
        match &self.api {
            Api::Wechat(a) => Some(a),
            Api::Wecom(_) => None,
        }
    }

    /// The access token, recording the outcome for token health.
    pub async fn access_token(&self) -> Result<CachedToken, ApiError> {
        let result = match &self.api {
            Api::Wecom(a) => a.access_token().await,
            Api::Wechat(a) => a.access_token().await,
        };
        self.record(&result);
        result
    }

    /// Remember the outcome of a call made with this credential.
    pub fn record<T>(&self, result: &Result<T, ApiError>) {
        let mut slot = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        *slot = match result {
            Ok(_) => None,
            Err(e) => Some(LastError {
                errcode: e.errcode().map(|c| c.code()),
                code: short_code(e),
            }),
        };
    }

    pub fn last_error(&self) -> Option<LastError> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The `TKnnn` prefix of a wx-api error's message.
fn short_code(e: &ApiError) -> String {
    e.to_string()
        .split_whitespace()
        .next()
        .unwrap_or("TK000")
        .to_owned()
}

/// Token health of one credential, as served by `GET /api/v1/tenants/{tenant}/tokens`. Never the value.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenHealth {
    pub name: String,
    pub kind: CredentialKind,
    pub owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agentid: Option<i64>,
    pub token_kind: &'static str,
    /// A token is cached and not yet expired.
    pub cached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One tenant: its configuration and its credentials.
#[derive(Debug)]
pub struct Tenant {
    pub config: TenantConfig,
    pub credentials: Vec<Arc<Credential>>,
}

impl Tenant {
    pub fn key(&self) -> &str {
        self.config.key.as_str()
    }

    pub fn credential(&self, kind: CredentialKind, name: &str) -> Option<&Arc<Credential>> {
        self.credentials
            .iter()
            .find(|c| c.kind == kind && c.name == name)
    }

    pub fn wecom_app(&self, name: &str) -> Option<&WecomApp> {
        self.credential(CredentialKind::WecomApp, name)
            .and_then(|c| c.wecom())
    }

    pub fn contacts(&self) -> Option<&WecomApp> {
        self.credential(CredentialKind::WecomContacts, "contacts")
            .and_then(|c| c.wecom())
    }

    /// Make sure every credential has a token: a cached one is reused, a missing or expiring one is fetched
    /// once through the token manager. Failures are recorded per credential and show in `token_health`.
    pub async fn probe_tokens(&self) {
        for c in self
            .credentials
            .iter()
            .filter(|c| c.kind.has_access_token())
        {
            // The outcome is recorded on the credential; token_health reports it.
            let _ = c.access_token().await;
        }
    }

    /// The health of every cached token of this tenant, read from the store without calling upstream.
    pub async fn token_health(&self, tokens: &TokenManager) -> Vec<TokenHealth> {
        let now = tokens.clock().now_ms();
        let mut out = Vec::new();
        for c in self
            .credentials
            .iter()
            .filter(|c| c.kind.has_access_token())
        {
            let key = c.token_key();
            let cached = match tokens.store().get(key).await {
                Ok(found) => found.filter(|t| t.expires_at_ms > now),
                Err(e) => {
                    tracing::warn!(tenant.key = %self.key(), credential.name = %c.name, error = %e, "token store read failed");
                    None
                }
            };
            let last = c.last_error();
            out.push(TokenHealth {
                name: c.name.clone(),
                kind: c.kind,
                owner: c.owner.clone(),
                agentid: c.agentid,
                token_kind: key.kind.as_str(),
                cached: cached.is_some(),
                expires_in_secs: cached.map(|t| (t.expires_at_ms - now) / 1000),
                last_error_code: last.as_ref().and_then(|l| l.errcode),
                last_error: last.map(|l| l.code),
            });
        }
        out
    }
}

/// Every tenant of the configuration, sharing one token manager.
#[derive(Debug, Clone)]
pub struct Tenants {
    tenants: Arc<BTreeMap<String, Arc<Tenant>>>,
    tokens: Arc<TokenManager>,
}

impl Tenants {
    /// Open the token store the configuration asks for. `db` is required for `store = "sql"`.
    pub async fn open_token_store(
        config: &Config,
        db: Option<&store::Db>,
    ) -> Result<Arc<dyn TokenStore>, DomainError> {
        match &config.tokens.store {
            TokenStoreConfig::Memory => Ok(Arc::new(MemoryTokenStore::new())),
            TokenStoreConfig::Sql => match db {
                Some(db) => Ok(Arc::new(store::SqlTokenStore::new(db.clone()))),
                None => Err(DomainError::TokenStore {
                    backend: "sql",
                    message: "no database is open".into(),
                }),
            },
            TokenStoreConfig::Redis { url } => {
                let s = wx_api::token::RedisTokenStore::connect(
                    secrecy::ExposeSecret::expose_secret(url),
                )
                .await
                .map_err(|e| DomainError::TokenStore {
                    backend: "redis",
                    message: e.message,
                })?;
                Ok(Arc::new(s))
            }
        }
    }

    /// The one token manager of the process, over `store`, with the configured refresh margin.
    pub fn token_manager(
        config: &Config,
        store: Arc<dyn TokenStore>,
        clock: Arc<dyn Clock>,
    ) -> Arc<TokenManager> {
        let tm_config = TokenManagerConfig {
            refresh_margin: config.tokens.refresh_margin,
            ..TokenManagerConfig::default()
        };
        Arc::new(TokenManager::with_config(store, clock, tm_config))
    }

    /// Build a handle for every credential of every tenant. Makes no network call.
    pub fn build(config: &Config, tokens: Arc<TokenManager>) -> Result<Self, DomainError> {
        let http = wx_api::http_client().map_err(|source| DomainError::Client {
            what: "HTTP",
            source,
        })?;
        let wecom = WecomClient::new(
            http.clone(),
            config.upstream.wecom_base_url.as_str(),
            tokens.clone(),
        )
        .map_err(|source| DomainError::Client {
            what: "WeCom",
            source,
        })?;
        let endpoint = match config.tokens.wechat_token_api {
            WechatTokenApi::Stable => TokenEndpoint::Stable,
            WechatTokenApi::Classic => TokenEndpoint::Classic,
        };
        let wechat = WechatClient::new(
            http,
            config.upstream.wechat_base_url.as_str(),
            tokens.clone(),
        )
        .map_err(|source| DomainError::Client {
            what: "WeChat",
            source,
        })?
        .with_token_endpoint(endpoint);

        let mut tenants = BTreeMap::new();
        for (key, t) in &config.tenants {
            let tenant_key = key.as_str().to_owned();
            let mut creds = Vec::new();
            if let Some(w) = &t.wecom {
                let corpid = w.corpid.as_str();
                if let Some(c) = &w.contacts {
                    let api = wecom.app(AppCredentials {
                        tenant: tenant_key.clone(),
                        corpid: corpid.to_owned(),
                        agentid: None,
                        secret: c.secret.clone(),
                    });
                    creds.push(Credential::new(
                        CredentialKind::WecomContacts,
                        "contacts",
                        corpid,
                        None,
                        Api::Wecom(api),
                    ));
                }
                for (name, a) in &w.apps {
                    let api = wecom.app(AppCredentials {
                        tenant: tenant_key.clone(),
                        corpid: corpid.to_owned(),
                        agentid: Some(a.agentid.get()),
                        secret: a.secret.clone(),
                    });
                    creds.push(Credential::new(
                        CredentialKind::WecomApp,
                        name,
                        corpid,
                        Some(a.agentid.get()),
                        Api::Wecom(api),
                    ));
                }
            }
            let wechat_app = |appid: &str, secret: &secrecy::SecretString| {
                wechat.app(WechatCredentials {
                    tenant: tenant_key.clone(),
                    appid: appid.to_owned(),
                    secret: secret.clone(),
                })
            };
            for (name, o) in &t.wechat.official_accounts {
                let api = wechat_app(o.appid.as_str(), &o.secret);
                creds.push(Credential::new(
                    CredentialKind::OfficialAccount,
                    name,
                    o.appid.as_str(),
                    None,
                    Api::Wechat(api),
                ));
            }
            for (name, m) in &t.wechat.mini_programs {
                let api = wechat_app(m.appid.as_str(), &m.secret);
                creds.push(Credential::new(
                    CredentialKind::WechatMiniProgram,
                    name,
                    m.appid.as_str(),
                    None,
                    Api::Wechat(api),
                ));
            }
            if let Some(site) = &t.wechat.website {
                let api = wechat_app(site.appid.as_str(), &site.secret);
                creds.push(Credential::new(
                    CredentialKind::Website,
                    "website",
                    site.appid.as_str(),
                    None,
                    Api::Wechat(api),
                ));
            }
            let tenant = Tenant {
                config: t.clone(),
                credentials: creds.into_iter().map(Arc::new).collect(),
            };
            tenants.insert(tenant_key, Arc::new(tenant));
        }
        Ok(Tenants {
            tenants: Arc::new(tenants),
            tokens,
        })
    }

    pub fn get(&self, key: &str) -> Option<&Arc<Tenant>> {
        self.tenants.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.tenants.values()
    }

    /// A worker's claim: `claim(tenant key)` once per tenant, in key order, one after the other, and
    /// the rows of all of them. Only the tenants this process has the configuration of: another
    /// deployment sharing the database handles its own. A failed claim ends it with that error.
    pub(crate) async fn claim_each<'a, T, Fut>(
        &'a self,
        mut claim: impl FnMut(&'a str) -> Fut,
    ) -> Result<Vec<T>, DomainError>
    where
        Fut: std::future::Future<Output = Result<Vec<T>, store::Error>>,
    {
        let mut rows = Vec::new();
        for tenant in self.iter() {
            rows.extend(
                claim(tenant.key())
                    .await
                    .map_err(|e| DomainError::Database(e.to_string()))?,
            );
        }
        Ok(rows)
    }

    pub fn len(&self) -> usize {
        self.tenants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    pub fn tokens(&self) -> &Arc<TokenManager> {
        &self.tokens
    }
}

/// Is the database reachable? (`SELECT 1`), for readiness probes.
pub async fn ping_database(db: &store::Db) -> Result<(), DomainError> {
    let result = if let Some(pool) = db.sqlite() {
        sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
    } else if let Some(pool) = db.postgres() {
        sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
    } else {
        Ok(())
    };
    // sqlx errors may quote the connect options; keep only the error kind.
    result.map_err(|e| DomainError::Database(sqlx_kind(&e)))
}

fn sqlx_kind(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".into(),
        sqlx::Error::PoolClosed => "the pool is closed".into(),
        sqlx::Error::Io(io) => format!("I/O error: {}", io.kind()),
        sqlx::Error::Database(d) => format!("database error {}", d.code().unwrap_or_default()),
        _ => "query failed".into(),
    }
}
