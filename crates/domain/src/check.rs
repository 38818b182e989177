//! What `wxbridge check` reports, as data (serde) so the admin UI can show the same thing later: every
//! configuration problem, live checks per credential (token, visible scope, JSSDK tickets) with errcodes
//! explained as fixes, and the callback URLs and domains to enter in the WeCom/WeChat consoles.

use std::fmt::Write as _;

use serde::Serialize;
use wx_api::{ApiError, ErrCode};
use wxbridge_config::{Config, MessageMode, Problem, Severity};

use crate::tenants::{Credential, CredentialKind, Tenant, Tenants};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Error,
    Skipped,
}

/// One live check of one credential.
#[derive(Debug, Clone, Serialize)]
pub struct CheckItem {
    pub status: Status,
    /// What was checked, e.g. "wecom app `main` (agentid 1000002)".
    pub subject: String,
    /// Which check: "access token", "visible scope", "jsapi ticket" ...
    pub check: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errcode: Option<i64>,
}

/// A callback URL to paste into a console, with reminders of the other fields (never their values).
#[derive(Debug, Clone, Serialize)]
pub struct CallbackSetup {
    pub subject: String,
    /// Where in the console to paste it.
    pub console: String,
    pub url: String,
    pub token: String,
    pub encoding_aes_key: String,
    /// Whether wxbridge has the Token and key it needs to answer this URL.
    pub configured: bool,
}

/// A domain to enter in a console (trusted domain, JS-safe domain, OAuth callback domain).
#[derive(Debug, Clone, Serialize)]
pub struct DomainSetup {
    pub subject: String,
    pub console: String,
    pub domain: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantReport {
    pub key: String,
    pub name: String,
    pub items: Vec<CheckItem>,
    pub callbacks: Vec<CallbackSetup>,
    pub domains: Vec<DomainSetup>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Live checks were skipped (`--offline`) or could not run (invalid configuration).
    pub offline: bool,
    /// Every configuration problem, errors and warnings.
    pub problems: Vec<Problem>,
    pub tenants: Vec<TenantReport>,
}

impl CheckReport {
    /// The static part: problems, and for a valid configuration the URLs and domains to enter.
    pub fn from_config(problems: Vec<Problem>, config: Option<&Config>) -> Self {
        let tenants = config
            .map(|c| {
                c.tenants
                    .values()
                    .map(|t| TenantReport {
                        key: t.key.to_string(),
                        name: t.name.clone(),
                        items: Vec::new(),
                        callbacks: callbacks(c, t),
                        domains: domains(c, t),
                    })
                    .collect()
            })
            .unwrap_or_default();
        CheckReport {
            offline: true,
            problems,
            tenants,
        }
    }

    /// Any error-level problem or failed live check.
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(Problem::is_error)
            || self
                .tenants
                .iter()
                .flat_map(|t| &t.items)
                .any(|i| i.status == Status::Error)
    }

    /// Run the live checks against WeCom/WeChat (or whatever `upstream` points at).
    pub async fn run_live(&mut self, tenants: &Tenants) {
        self.offline = false;
        for report in &mut self.tenants {
            let Some(tenant) = tenants.get(&report.key) else {
                continue;
            };
            report.items = live_checks(tenants, tenant).await;
        }
    }

    /// The human-readable form printed by `wxbridge check`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Configuration");
        if self.problems.is_empty() {
            let _ = writeln!(out, "  ✔ no problems found");
        }
        for p in &self.problems {
            let mark = if p.is_error() { "✘" } else { "!" };
            let _ = writeln!(out, "  {mark} {}: {}", p.path, p.message);
            if let Some(h) = &p.hint {
                let _ = writeln!(out, "      fix: {h}");
            }
        }
        for t in &self.tenants {
            let _ = writeln!(out, "\nTenant `{}` ({})", t.key, t.name);
            if self.offline {
                let _ = writeln!(out, "  - live checks skipped (--offline)");
            }
            for i in &t.items {
                let mark = match i.status {
                    Status::Ok => "✔",
                    Status::Warning => "!",
                    Status::Error => "✘",
                    Status::Skipped => "-",
                };
                let _ = writeln!(out, "  {mark} {} — {}: {}", i.subject, i.check, i.detail);
                if let Some(h) = &i.hint {
                    let _ = writeln!(out, "      fix: {h}");
                }
            }
            if !t.callbacks.is_empty() {
                let _ = writeln!(out, "  Callback URLs to paste into the consoles:");
            }
            for c in &t.callbacks {
                let _ = writeln!(out, "    {} ({})", c.subject, c.console);
                let _ = writeln!(out, "      URL:            {}", c.url);
                let _ = writeln!(out, "      Token:          {}", c.token);
                let _ = writeln!(out, "      EncodingAESKey: {}", c.encoding_aes_key);
            }
            if !t.domains.is_empty() {
                let _ = writeln!(out, "  Domains to enter:");
            }
            for d in &t.domains {
                let _ = writeln!(out, "    {} — {}: {}", d.subject, d.console, d.domain);
            }
        }
        let errors = self
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
            + self
                .tenants
                .iter()
                .flat_map(|t| &t.items)
                .filter(|i| i.status == Status::Error)
                .count();
        let _ = writeln!(
            out,
            "\n{}",
            if errors == 0 {
                "OK".to_owned()
            } else {
                format!("{errors} error(s)")
            }
        );
        out
    }
}

fn callbacks(c: &Config, t: &wxbridge_config::TenantConfig) -> Vec<CallbackSetup> {
    let key = t.key.as_str();
    let url = |path: String| c.server.public_url_for(&path);
    let mut out = Vec::new();
    if let Some(w) = &t.wecom {
        for (name, a) in &w.apps {
            let base = format!("tenants.{key}.wecom.apps.{name}");
            out.push(CallbackSetup {
                subject: format!("WeCom app `{name}` (agentid {})", a.agentid),
                console: format!("WeCom 管理后台 > 应用管理 > {name} > 接收消息 > 设置API接收"),
                url: url(format!("/callback/{key}/wecom/apps/{name}")),
                token: as_configured(a.callback.is_some(), &format!("{base}.callback_token")),
                encoding_aes_key: as_configured(
                    a.callback.is_some(),
                    &format!("{base}.encoding_aes_key"),
                ),
                configured: a.callback.is_some(),
            });
        }
        if let Some(contacts) = &w.contacts {
            let base = format!("tenants.{key}.wecom.contacts");
            let ok = contacts.callback.is_some();
            out.push(CallbackSetup {
                subject: "WeCom contacts sync (通讯录同步)".into(),
                console: "WeCom 管理后台 > 管理工具 > 通讯录同步 > 设置接收事件服务器".into(),
                url: url(format!("/callback/{key}/wecom/contacts")),
                token: as_configured(ok, &format!("{base}.callback_token")),
                encoding_aes_key: as_configured(ok, &format!("{base}.encoding_aes_key")),
                configured: ok,
            });
        }
    }
    for (name, o) in &t.wechat.official_accounts {
        let base = format!("tenants.{key}.wechat.official_accounts.{name}");
        let mode = match o.mode {
            MessageMode::Plain => "明文模式",
            MessageMode::Compat => "兼容模式",
            MessageMode::Safe => "安全模式",
        };
        out.push(CallbackSetup {
            subject: format!("official account `{name}` ({})", o.appid.as_str()),
            console: format!(
                "公众平台 > 设置与开发 > 基本配置 > 服务器配置 (消息加解密方式: {mode})"
            ),
            url: url(format!("/callback/{key}/wechat/official-accounts/{name}")),
            token: as_configured(true, &format!("{base}.token")),
            encoding_aes_key: if o.aes_key.is_some() {
                as_configured(true, &format!("{base}.encoding_aes_key"))
            } else {
                "not used in plain mode".into()
            },
            configured: true,
        });
    }
    for (name, m) in &t.wechat.mini_programs {
        let base = format!("tenants.{key}.wechat.mini_programs.{name}");
        let push = m.push.as_ref();
        const PAGE: &str = "小程序后台 > 开发管理 > 开发设置 > 消息推送";
        let console = match push.map(|p| p.mode) {
            Some(mode) => {
                let mode = match mode {
                    MessageMode::Plain => "明文模式",
                    MessageMode::Compat => "兼容模式",
                    MessageMode::Safe => "安全模式",
                };
                format!("{PAGE} (消息加密方式: {mode}; 数据格式: XML or JSON)")
            }
            None => format!("{PAGE} (optional; off until `{base}.push_token` is set)"),
        };
        out.push(CallbackSetup {
            subject: format!("mini program `{name}` ({})", m.appid.as_str()),
            console,
            url: url(format!("/callback/{key}/wechat/mini-programs/{name}")),
            token: as_configured(push.is_some(), &format!("{base}.push_token")),
            encoding_aes_key: match push {
                Some(p) if p.aes_key.is_none() => "not used in plain mode".into(),
                _ => as_configured(push.is_some(), &format!("{base}.push_encoding_aes_key")),
            },
            configured: push.is_some(),
        });
    }
    out
}

fn as_configured(configured: bool, key: &str) -> String {
    if configured {
        format!("as configured ({key})")
    } else {
        format!("not configured: set `{key}` first")
    }
}

fn domains(c: &Config, t: &wxbridge_config::TenantConfig) -> Vec<DomainSetup> {
    let public_host = c
        .server
        .public_url
        .host_str()
        .unwrap_or_default()
        .to_owned();
    let mut out = Vec::new();
    if let Some(w) = &t.wecom {
        for (name, a) in &w.apps {
            out.push(DomainSetup {
                subject: format!("WeCom app `{name}`"),
                console: format!("管理后台 > 应用管理 > {name} > 网页授权及JS-SDK > 可信域名 (also 企业微信授权登录 > 授权回调域)"),
                domain: a.trusted_domain.clone().unwrap_or_else(|| public_host.clone()),
            });
            for d in &a.js_safe_domains {
                out.push(DomainSetup {
                    subject: format!("WeCom app `{name}`"),
                    console: format!(
                        "管理后台 > 应用管理 > {name} > 网页授权及JS-SDK > 可调用JS-SDK的可信域名"
                    ),
                    domain: d.clone(),
                });
            }
        }
    }
    for (name, o) in &t.wechat.official_accounts {
        out.push(DomainSetup {
            subject: format!("official account `{name}`"),
            console: "公众平台 > 设置与开发 > 公众号设置 > 功能设置 > 网页授权域名".into(),
            domain: public_host.clone(),
        });
        for d in &o.js_safe_domains {
            out.push(DomainSetup {
                subject: format!("official account `{name}`"),
                console: "公众平台 > 设置与开发 > 公众号设置 > 功能设置 > JS接口安全域名".into(),
                domain: d.clone(),
            });
        }
    }
    if t.wechat.website.is_some() {
        out.push(DomainSetup {
            subject: "website app (QR login)".into(),
            console: "微信开放平台 > 管理中心 > 网站应用 > 授权回调域".into(),
            domain: public_host,
        });
    }
    out
}

fn subject(c: &Credential) -> String {
    match c.kind {
        CredentialKind::WecomApp => format!(
            "WeCom app `{}` (agentid {})",
            c.name,
            c.agentid.unwrap_or_default()
        ),
        CredentialKind::WecomContacts => "WeCom contacts sync secret".into(),
        CredentialKind::OfficialAccount => format!("official account `{}` ({})", c.name, c.owner),
        CredentialKind::WechatMiniProgram => format!("mini program `{}` ({})", c.name, c.owner),
        CredentialKind::Website => format!("website app ({})", c.owner),
    }
}

fn item(status: Status, subject: &str, check: &str, detail: impl Into<String>) -> CheckItem {
    CheckItem {
        status,
        subject: subject.to_owned(),
        check: check.to_owned(),
        detail: detail.into(),
        hint: None,
        errcode: None,
    }
}

fn failed(subject: &str, check: &str, c: &Credential, err: &ApiError) -> CheckItem {
    let (detail, hint) = explain(c, err);
    CheckItem {
        status: Status::Error,
        subject: subject.to_owned(),
        check: check.to_owned(),
        detail,
        hint,
        errcode: err.errcode().map(ErrCode::code),
    }
}

async fn live_checks(tenants: &Tenants, tenant: &Tenant) -> Vec<CheckItem> {
    let mut items = Vec::new();
    for c in &tenant.credentials {
        let s = subject(c);
        if !c.kind.has_access_token() {
            items.push(item(
                Status::Skipped,
                &s,
                "access token",
                "website apps have no server token; checked at the first QR login",
            ));
            continue;
        }
        let token = c.access_token().await;
        let token = match token {
            Ok(t) => t,
            Err(e) => {
                tracing::info!(tenant.key = %tenant.key(), credential.name = %c.name, error = %e, "check: access token failed");
                items.push(failed(&s, "access token", c, &e));
                continue;
            }
        };
        let now = tenants.tokens().clock().now_ms();
        items.push(item(
            Status::Ok,
            &s,
            "access token",
            format!(
                "fetched, valid for {}s",
                (token.expires_at_ms - now).max(0) / 1000
            ),
        ));
        let Some(app) = c.wecom() else { continue };
        if c.kind != CredentialKind::WecomApp {
            continue;
        }
        match app.agent_get().await {
            Ok(agent) => {
                let (users, parties, tags) = (
                    agent.allow_userinfos.user.len(),
                    agent.allow_partys.partyid.len(),
                    agent.allow_tags.tagid.len(),
                );
                let detail =
                    format!("visible to {users} user(s), {parties} department(s), {tags} tag(s)");
                let mut it = item(Status::Ok, &s, "visible scope", detail);
                if agent.close == Some(1) {
                    it.status = Status::Error;
                    it.detail = format!("the app is disabled; {}", it.detail);
                    it.hint = Some(format!(
                        "enable it at 管理后台 > 应用管理 > {} > 启用",
                        c.name
                    ));
                } else if users + parties + tags == 0 {
                    it.status = Status::Warning;
                    it.hint = Some(format!(
                        "nobody can see the app: set 管理后台 > 应用管理 > {} > 可见范围",
                        c.name
                    ));
                }
                items.push(it);
            }
            Err(e) => {
                c.record(&Err::<(), _>(e.clone()));
                items.push(failed(&s, "visible scope (agent/get)", c, &e));
            }
        }
        for (check, result) in [
            ("jsapi ticket", app.jsapi_ticket().await),
            ("agent ticket", app.agent_ticket().await),
        ] {
            match result {
                Ok(_) => items.push(item(Status::Ok, &s, check, "fetched")),
                Err(e) => items.push(failed(&s, check, c, &e)),
            }
        }
    }
    items
}

/// Explain a failure as a fix: which console page and field, keyed by errcode (never by message text).
pub fn explain(c: &Credential, err: &ApiError) -> (String, Option<String>) {
    let wecom = matches!(
        c.kind,
        CredentialKind::WecomApp | CredentialKind::WecomContacts
    );
    let secret_page = match c.kind {
        CredentialKind::WecomApp => format!("管理后台 > 应用管理 > {} > Secret", c.name),
        CredentialKind::WecomContacts => "管理后台 > 管理工具 > 通讯录同步 > Secret".into(),
        CredentialKind::OfficialAccount => {
            "公众平台 > 设置与开发 > 基本配置 > 开发者密码(AppSecret)".into()
        }
        CredentialKind::WechatMiniProgram | CredentialKind::Website => {
            "小程序后台 > 开发管理 > 开发设置 > AppSecret(小程序密钥)".into()
        }
    };
    let detail = err.to_string();
    let Some(code) = err.errcode() else {
        let hint = match err {
            ApiError::RateLimited { .. } => Some("a 45009 opened a block window; wait for it to pass".to_owned()),
            ApiError::Timeout { .. } | ApiError::Transport { .. } | ApiError::HttpStatus { .. } => Some(
                "the platform could not be reached: check outbound network access and the [upstream] base URLs".to_owned(),
            ),
            _ => None,
        };
        return (detail, hint);
    };
    let hint = match code {
        ErrCode::InvalidCredential if wecom => {
            format!("the secret does not match corpid: copy it again from {secret_page} (the secret changes when it is reset)")
        }
        ErrCode::InvalidCredential | ErrCode::InvalidAppSecret => {
            format!("the AppSecret is wrong: copy it again from {secret_page} (reset it there if lost)")
        }
        ErrCode::InvalidCorpId if wecom => {
            "the corpid is wrong: copy 企业ID from 管理后台 > 我的企业 > 企业信息".to_owned()
        }
        ErrCode::InvalidCorpId => "the appid is wrong: copy AppID from the account's 开发设置 / 基本配置 page".to_owned(),
        ErrCode::SecretNotValid => format!("the secret belongs to another company: copy it from {secret_page} of this corp"),
        ErrCode::IpNotAllowed => format!(
            "add this server's IP to the app's 企业可信IP: 管理后台 > 应用管理 > {} > 企业可信IP (takes about a minute)",
            c.name
        ),
        ErrCode::InvalidIp | ErrCode::IpNotInWhitelist => {
            "add this server's IP to 公众平台 > 设置与开发 > 基本配置 > IP白名单".to_owned()
        }
        ErrCode::IpNeedsConfirmation => "an admin must confirm this IP in the 公众平台 notification (or add it to the IP白名单)".to_owned(),
        ErrCode::AppSecretFrozen => format!("the AppSecret is frozen: unfreeze or reset it at {secret_page}"),
        ErrCode::ApiForbidden => "the app has no right to this API: contacts write APIs need the contacts-sync secret, \
            the contacts-sync secret cannot send messages, app chat needs the root department in the visible scope"
            .to_owned(),
        ErrCode::ApiUnauthorizedIp => "since 2022-08-15 new IPs of the contacts-sync secret cannot call user/get, user/list, \
            department/list or department/get; wxbridge uses user/list_id and department/simplelist instead"
            .to_owned(),
        ErrCode::AgentIdMismatch => format!(
            "agentid does not belong to this secret: copy AgentId from 管理后台 > 应用管理 > {} (tenants…apps.{}.agentid)",
            c.name, c.name
        ),
        ErrCode::FreqOutOfLimit => {
            "rate limited; a wrong secret tried many times also blocks the IP for an hour".to_owned()
        }
        ErrCode::SystemBusy | ErrCode::ConcurrentOutOfLimit => "the platform is busy; try again in a minute".to_owned(),
        _ => return (detail, None),
    };
    (detail, Some(hint))
}
