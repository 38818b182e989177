//! Follower backfill: every follower of an official account becomes a WeChat identity, before anyone
//! logs in. Pages `cgi-bin/user/get` (openids, 10,000 a page, continued from `next_openid`), fetches
//! their details through `cgi-bin/user/info/batchget` (100 a call) for the unionid, and resolves each
//! through [`AccountGraph::resolve_wechat_identity`] — so a follower whose unionid is already known
//! from a mini program or the website app converges onto that user. Rerunning creates nothing new.

use wx_api::error::ApiError;
use wx_api::wechat::WechatApp;

use super::{AccountGraph, AppKind, IdentityError, WechatLogin, WechatProfile};

/// `user/info/batchget` takes at most this many openids.
pub const BATCHGET_MAX: usize = 100;

/// What a backfill did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BackfillCounts {
    /// Openids `user/get` listed.
    pub listed: u64,
    /// New identities (each with a new user, or attached to the user of its unionid).
    pub created: u64,
    /// Identities that already existed.
    pub already_known: u64,
    /// Resolutions that merged users (a unionid joined two of them).
    pub merged: u64,
    /// Listed, but `batchget` said they no longer follow (skipped).
    pub unsubscribed: u64,
    /// The merges, for the caller to announce (`user.merged` webhooks).
    #[serde(skip)]
    pub events: Vec<super::DomainEvent>,
}

/// Why a backfill stopped.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("WeChat API: {0}")]
    Api(#[from] ApiError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// Backfill the followers of official account `account` into `tenant`'s account graph.
pub async fn backfill_followers(
    graph: &AccountGraph,
    tenant: &str,
    account: &WechatApp,
) -> Result<BackfillCounts, BackfillError> {
    let appid = account.credentials().appid.clone();
    let mut counts = BackfillCounts::default();
    let mut next: Option<String> = None;
    loop {
        let page = account.user_get(next.as_deref()).await?;
        let openids = page.openids();
        if openids.is_empty() {
            break;
        }
        counts.listed += openids.len() as u64;
        for chunk in openids.chunks(BATCHGET_MAX) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            for info in account.user_info_batch(&refs).await? {
                if !info.is_subscribed() {
                    counts.unsubscribed += 1;
                    continue;
                }
                let login = WechatLogin {
                    appid: appid.clone(),
                    app_kind: AppKind::OfficialAccount,
                    openid: info.openid,
                    unionid: info.unionid,
                    profile: WechatProfile {
                        nickname: info.nickname,
                        avatar: info.headimgurl,
                    },
                };
                let r = graph.resolve_wechat_identity(tenant, &login).await?;
                if r.created_identity {
                    counts.created += 1;
                } else {
                    counts.already_known += 1;
                }
                if !r.events.is_empty() {
                    counts.merged += 1;
                    counts.events.extend(r.events);
                }
            }
        }
        if page.next_openid.is_empty() || next.as_deref() == Some(page.next_openid.as_str()) {
            break;
        }
        next = Some(page.next_openid);
    }
    tracing::info!(
        tenant,
        appid = %appid,
        listed = counts.listed,
        created = counts.created,
        already_known = counts.already_known,
        merged = counts.merged,
        "followers backfilled"
    );
    Ok(counts)
}
