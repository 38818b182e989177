//! The dispatch worker: claims inbox rows (every row starts `pending`) and handles them.
//!
//! - `change_contact` goes to [`crate::directory::incremental::apply_contact_change`] through the
//!   tenant's directory credential ([`crate::directory::options::directory_credential`]), whichever
//!   endpoint received it; then one business webhook event says what changed:
//!   `contact.user.created|updated|deleted`, `contact.department.created|updated|deleted` or
//!   `contact.tag.updated`, with the WeCom ids and the local user / role ids after the apply.
//! - `subscribe` / `unsubscribe` on an official account resolve the follower in the account graph
//!   ([`crate::identity::AccountGraph::resolve_wechat_identity`]; `user/info` is asked for the unionid
//!   on subscribe, and a failed read only means the identity converges at its next login), record the
//!   subscribe state (an older callback than the one recorded changes nothing, and its event says
//!   `"current": false`), and raise `user.subscribed` / `user.unsubscribed` (plus `user.merged` for each
//!   merge the resolution caused). An unsubscribe from an openid the bridge never saw creates its
//!   identity, so the state has somewhere to live; a unionid joining two WeCom-linked users (ID008)
//!   makes the row dead for an operator.
//! - Every other message is `message.received`, every other event `event.received`, with the sender
//!   (WeCom userid or openid), the local user when the bridge knows them, and the parsed fields.
//!
//! Webhook events are enqueued ([`crate::webhooks::enqueue`]) in the row's handling, before the row is
//! marked done, under ids derived from the row (`inbox:<row id>:<type>`; merges `user.merged:<merge
//! id>`): a row handled again after a crash enqueues nothing new. A tenant without a webhook, or one
//! whose `events` do not select the type, stores nothing and the row is simply done. One window
//! remains: a worker that dies after a resolution merged users and before its `user.merged` event was
//! stored loses that event (the merge itself is in `user_merges`; the re-handled row finds nothing
//! left to merge).
//!
//! Exactly once: a claim is a lease (`lease`), so a crashed worker's rows come back; the apply is
//! idempotent (it re-reads upstream and writes nothing for a redelivered event), and the row is marked
//! done right after it, fenced by the claim's attempt number. A worker that dies between the apply and
//! the mark leaves a row that a later claim applies again, writing nothing.
//!
//! Failures: a malformed event (DM007), an unknown tenant or a tenant without a directory credential is
//! dead at once; any other failure (an upstream read, the database) is retried with exponential backoff
//! (`backoff_base` doubling up to `backoff_max`) and dead after `max_attempts` claims. Dead rows keep
//! their last error and are listed by `Db::inbox_messages` (and can be requeued).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use store::{InboxMessage, InboxSettle, InboxSettlement, InboxStatus};
use wx_crypto::CallbackMessage;
use wx_crypto::message::{ChangeType, ContactChange};

use crate::directory::incremental::{
    ChangeAction, IncrementalOptions, IncrementalOutcome, apply_contact_change,
};
use crate::directory::options::{directory_credential, no_directory_app_reason};
use crate::error::DomainError;
use crate::identity::{AccountGraph, AppKind, IdentityError, WechatLogin, WechatProfile};
use crate::webhooks::{self, WebhookEvent};
use crate::{CredentialKind, Db, Tenant, Tenants};

/// How the worker claims and retries.
#[derive(Debug, Clone)]
pub struct DispatchOptions {
    /// Names this worker's claims (unique per process by default).
    pub worker_id: String,
    /// Sleep between claims when the inbox had nothing due.
    pub poll_interval: Duration,
    /// Rows per claim.
    pub batch: i64,
    /// How long a claim is this worker's; after it, another worker may claim the row again.
    pub lease: Duration,
    /// Claims before a failing row is dead.
    pub max_attempts: i64,
    /// Delay before the first retry; doubles per attempt.
    pub backoff_base: Duration,
    /// Longest delay between retries.
    pub backoff_max: Duration,
    /// Longest the worker waits, before each claim, for callbacks being acknowledged to be committed
    /// (see [`Dispatcher::deferring_to`]); zero never waits.
    pub defer_max: Duration,
    pub incremental: IncrementalOptions,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        DispatchOptions {
            worker_id: format!("w{}-{:08x}", std::process::id(), rand::random::<u32>()),
            poll_interval: Duration::from_millis(200),
            batch: 32,
            lease: Duration::from_secs(120),
            max_attempts: 8,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(600),
            defer_max: Duration::from_millis(50),
            incremental: IncrementalOptions::default(),
        }
    }
}

/// What one claim amounted to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchReport {
    pub claimed: usize,
    pub done: usize,
    /// Webhook events newly stored for delivery by the rows done in this claim.
    pub webhooks: usize,
    pub retried: usize,
    pub dead: usize,
    /// Rows whose claim had moved on before this worker finished them (nothing written).
    pub lost: usize,
}

/// Claims and handles inbox rows of every tenant.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    db: Db,
    tenants: Tenants,
    opts: Arc<DispatchOptions>,
    /// The receive side's group commit, whose waiting callbacks go first.
    acks: Option<super::InboxWriter>,
}

enum Verdict {
    /// Handled: the outcome JSON, and how many webhook events were newly stored.
    Done(String, usize),
    Retry(String),
    Dead(String),
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The event type a `change_contact` raises; None for a ChangeType this version does not know.
fn contact_event_type(change: &ChangeType) -> Option<&'static str> {
    Some(match change {
        ChangeType::CreateUser => "contact.user.created",
        ChangeType::UpdateUser => "contact.user.updated",
        ChangeType::DeleteUser => "contact.user.deleted",
        ChangeType::CreateParty => "contact.department.created",
        ChangeType::UpdateParty => "contact.department.updated",
        ChangeType::DeleteParty => "contact.department.deleted",
        ChangeType::UpdateTag => "contact.tag.updated",
        ChangeType::Other(_) => return None,
    })
}

/// The message's fields as a JSON object of strings (first occurrence of a name wins).
fn fields_json(msg: &CallbackMessage) -> Value {
    let mut m = Map::new();
    for (k, v) in msg.fields() {
        m.entry(k.to_owned())
            .or_insert_with(|| Value::String(v.to_owned()));
    }
    Value::Object(m)
}

/// A store failure while handling a row: retried.
fn retry_db(e: store::Error) -> Verdict {
    Verdict::Retry(DomainError::Database(e.to_string()).to_string())
}

/// `(kind, name)` of an inbox row's `source` (`wechat_oa:<name>` -> `("wechat_oa", Some(name))`).
fn split_source(source: &str) -> (&str, Option<&str>) {
    match source.split_once(':') {
        Some((kind, name)) => (kind, Some(name)),
        None => (source, None),
    }
}

impl Dispatcher {
    pub fn new(db: Db, tenants: Tenants, opts: DispatchOptions) -> Self {
        Dispatcher {
            db,
            tenants,
            opts: Arc::new(opts),
            acks: None,
        }
    }

    /// Let acknowledgements go first: before each claim the running worker waits, up to
    /// `defer_max`, while `acks` has callbacks waiting to be committed. Claims and settles take
    /// the same write lock as the inbox's group commit, and the endpoint must answer fast whatever
    /// the worker is doing; the bound keeps a sustained burst from starving the worker (it then still
    /// claims a batch every `defer_max`), and the backlog drains at full speed once the burst ends.
    pub fn deferring_to(mut self, acks: super::InboxWriter) -> Self {
        self.acks = Some(acks);
        self
    }

    /// Wait, up to `defer_max`, until no callback is waiting for the inbox.
    async fn defer_to_acks(&self) {
        let Some(acks) = &self.acks else { return };
        let deadline = tokio::time::Instant::now() + self.opts.defer_max;
        while acks.waiting() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn now_ms(&self) -> i64 {
        self.tenants.tokens().clock().now_ms()
    }

    /// Claim one batch of due rows per configured tenant and handle each.
    pub async fn run_once(&self) -> Result<DispatchReport, DomainError> {
        let o = &self.opts;
        let rows = self
            .tenants
            .claim_each(move |tenant| {
                self.db
                    .claim_inbox(tenant, &o.worker_id, self.now_ms(), ms(o.lease), o.batch)
            })
            .await?;
        let mut report = DispatchReport {
            claimed: rows.len(),
            ..DispatchReport::default()
        };
        // Handle every row of the claim, then settle them all in one write transaction: one commit
        // per claim instead of one per row. A worker that dies before the settle leaves the rows to
        // be claimed again after the lease, and handling a row again writes nothing new.
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let verdict = self.handle(row).await;
            let settle = match verdict {
                Verdict::Done(outcome, queued) => {
                    report.done += 1;
                    report.webhooks += queued;
                    InboxSettle::Finish {
                        status: InboxStatus::Done,
                        outcome: Some(outcome),
                        error: None,
                    }
                }
                Verdict::Dead(error) => {
                    report.dead += 1;
                    tracing::warn!(inbox.id = row.id, tenant = %row.tenant, inbox.kind = %row.kind,
                        error = %error, "callback dead");
                    InboxSettle::Finish {
                        status: InboxStatus::Dead,
                        outcome: None,
                        error: Some(error),
                    }
                }
                Verdict::Retry(error) if row.attempts >= o.max_attempts => {
                    report.dead += 1;
                    let error = format!("gave up after {} attempts: {error}", row.attempts);
                    tracing::warn!(inbox.id = row.id, tenant = %row.tenant, inbox.kind = %row.kind,
                        error = %error, "callback dead");
                    InboxSettle::Finish {
                        status: InboxStatus::Dead,
                        outcome: None,
                        error: Some(error),
                    }
                }
                Verdict::Retry(error) => {
                    report.retried += 1;
                    let exp =
                        u32::try_from(row.attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
                    let delay = o
                        .backoff_base
                        .saturating_mul(2u32.saturating_pow(exp))
                        .min(o.backoff_max);
                    tracing::info!(inbox.id = row.id, tenant = %row.tenant, inbox.attempts = row.attempts,
                        retry_in_ms = ms(delay), error = %error, "callback will be retried");
                    InboxSettle::Retry {
                        error,
                        at_ms: self.now_ms().saturating_add(ms(delay)),
                    }
                }
            };
            items.push(InboxSettlement {
                id: row.id,
                attempt: row.attempts,
                settle,
            });
        }
        let written = self
            .db
            .settle_inbox(&o.worker_id, self.now_ms(), &items)
            .await
            .map_err(|e| DomainError::Database(e.to_string()))?;
        report.lost = written.iter().filter(|w| !**w).count();
        Ok(report)
    }

    async fn handle(&self, row: &InboxMessage) -> Verdict {
        let Some(tenant) = self.tenants.get(&row.tenant) else {
            return Verdict::Dead(format!("tenant `{}` is no longer configured", row.tenant));
        };
        let msg = match CallbackMessage::parse(&row.payload) {
            Ok(m) => m,
            Err(e) => return Verdict::Dead(format!("stored payload does not parse: {e}")),
        };
        let handled = if let Some(change) = msg.change_contact() {
            self.contact_change(tenant, row, &msg, &change).await
        } else {
            let (kind, name) = split_source(&row.source);
            match (kind, name, msg.event()) {
                ("wechat_oa", Some(account), Some(e @ ("subscribe" | "unsubscribe"))) => {
                    self.subscription(tenant, row, &msg, account, e == "subscribe")
                        .await
                }
                _ => self.received(tenant, row, &msg).await,
            }
        };
        let (mut outcome, events) = match handled {
            Ok(x) => x,
            Err(v) => return v,
        };
        let now = self.now_ms();
        let mut queued = 0;
        let mut ids = Vec::new();
        for event in &events {
            match webhooks::enqueue(&self.db, tenant, event, now).await {
                Ok(Some(store::WebhookEnqueue::Created(_))) => {
                    queued += 1;
                    ids.push(event.id.clone());
                }
                Ok(Some(store::WebhookEnqueue::Existing(_))) => ids.push(event.id.clone()),
                Ok(None) => {}
                Err(e) => return Verdict::Retry(e.to_string()),
            }
        }
        if let Value::Object(m) = &mut outcome {
            m.insert("webhooks".to_owned(), json!(ids));
        }
        Verdict::Done(outcome.to_string(), queued)
    }

    /// Apply a `change_contact` event, then describe it for the webhook.
    async fn contact_change(
        &self,
        tenant: &Tenant,
        row: &InboxMessage,
        msg: &CallbackMessage,
        change: &ContactChange<'_>,
    ) -> Result<(Value, Vec<WebhookEvent>), Verdict> {
        let Some(app) = directory_credential(tenant).and_then(|c| c.wecom()) else {
            return Err(Verdict::Dead(no_directory_app_reason(tenant)));
        };
        let clock = self.tenants.tokens().clock().clone();
        let outcome = match apply_contact_change(
            &self.db,
            tenant.key(),
            app,
            clock.as_ref(),
            change,
            &self.opts.incremental,
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(e @ DomainError::ContactChange { .. }) => return Err(Verdict::Dead(e.to_string())),
            Err(e) => return Err(Verdict::Retry(e.to_string())),
        };
        let summary = json!({
            "change_type": outcome.change_type,
            "action": outcome.action,
            "wrote": outcome.wrote(),
            "calls": outcome.calls,
        });
        let corpid = app.credentials().corpid.clone();
        let events = match contact_event_type(&change.change_type()) {
            Some(event_type) => {
                let data = self
                    .contact_data(tenant.key(), &corpid, row, msg, change, &outcome)
                    .await?;
                vec![WebhookEvent::from_inbox(row.id, event_type, data)]
            }
            None => Vec::new(),
        };
        Ok((summary, events))
    }

    /// The data of a `contact.*` event: the WeCom ids as sent and the local ids after the apply.
    async fn contact_data(
        &self,
        tenant: &str,
        corpid: &str,
        row: &InboxMessage,
        msg: &CallbackMessage,
        change: &ContactChange<'_>,
        outcome: &IncrementalOutcome,
    ) -> Result<Value, Verdict> {
        let mut data = json!({
            "source": row.source,
            "corpid": corpid,
            "change_type": outcome.change_type,
            "wrote": outcome.wrote(),
            "fields": fields_json(msg),
        });
        let extra = match &outcome.action {
            ChangeAction::Member {
                userid,
                user_id,
                renamed_from,
            } => json!({
                "userid": userid,
                "user_id": user_id,
                "previous_userid": renamed_from,
                "left": false,
            }),
            ChangeAction::MemberLeft { userid, user_id } => json!({
                "userid": userid,
                "user_id": user_id,
                "left": true,
            }),
            ChangeAction::Department { department_id }
            | ChangeAction::DepartmentArchived { department_id } => {
                let role = self
                    .db
                    .role_by_department(tenant, corpid, *department_id)
                    .await
                    .map_err(retry_db)?;
                json!({
                    "department_id": department_id,
                    "role_id": role.map(|r| r.id.get()),
                    "archived": matches!(outcome.action, ChangeAction::DepartmentArchived { .. }),
                })
            }
            ChangeAction::Tag {
                tagid, archived, ..
            } => {
                let role = self
                    .db
                    .role_by_tag(tenant, corpid, *tagid)
                    .await
                    .map_err(retry_db)?;
                json!({
                    "tagid": tagid,
                    "role_id": role.map(|r| r.id.get()),
                    "archived": archived,
                    "add_userids": change.add_user_items(),
                    "del_userids": change.del_user_items(),
                    "add_department_ids": change.add_party_items().unwrap_or_default(),
                    "del_department_ids": change.del_party_items().unwrap_or_default(),
                })
            }
            ChangeAction::Ignored { reason } => {
                // The ids as sent, and whatever the bridge holds for them.
                let userid = change.user_id().map(str::trim).filter(|u| !u.is_empty());
                let user_id = match userid {
                    Some(u) => self
                        .db
                        .user_by_wecom_userid(tenant, corpid, u)
                        .await
                        .map_err(retry_db)?
                        .map(|u| u.id.get()),
                    None => None,
                };
                json!({
                    "ignored": reason,
                    "userid": userid,
                    "user_id": user_id,
                    "department_id": change.party_id().ok().flatten(),
                    "tagid": change.tag_id().ok().flatten(),
                })
            }
        };
        if let (Value::Object(d), Value::Object(x)) = (&mut data, extra) {
            d.extend(x);
        }
        Ok(data)
    }

    /// `subscribe` / `unsubscribe` on official account `account`: the follower into the account graph,
    /// the subscribe state recorded, `user.subscribed` / `user.unsubscribed` (+ `user.merged`).
    async fn subscription(
        &self,
        tenant: &Tenant,
        row: &InboxMessage,
        msg: &CallbackMessage,
        account: &str,
        subscribed: bool,
    ) -> Result<(Value, Vec<WebhookEvent>), Verdict> {
        let Some(cred) = tenant.credential(CredentialKind::OfficialAccount, account) else {
            return Err(Verdict::Dead(format!(
                "official account `{account}` is no longer configured in tenant `{}`",
                tenant.key()
            )));
        };
        let Some(openid) = msg.from_user().map(str::trim).filter(|o| !o.is_empty()) else {
            return Err(Verdict::Dead(
                "DM007 subscribe event without FromUserName".to_owned(),
            ));
        };
        let mut login = WechatLogin {
            appid: cred.owner.clone(),
            app_kind: AppKind::OfficialAccount,
            openid: openid.to_owned(),
            unionid: None,
            profile: WechatProfile::default(),
        };
        // The event carries only the openid; the unionid (which joins this follower to the same person
        // in mini programs and the website app) comes from user/info, when the account may call it.
        if subscribed && let Some(api) = cred.wechat() {
            match api.user_info(openid).await {
                Ok(info) => {
                    login.unionid = info.unionid;
                    login.profile = WechatProfile {
                        nickname: info.nickname,
                        avatar: info.headimgurl,
                    };
                }
                Err(e) => tracing::info!(tenant = %tenant.key(), inbox.id = row.id, error = %e,
                    "user/info failed; the follower is recorded without a unionid"),
            }
        }
        let clock = self.tenants.tokens().clock().clone();
        let graph = AccountGraph::new(self.db.clone(), clock);
        let resolved = match graph.resolve_wechat_identity(tenant.key(), &login).await {
            Ok(r) => r,
            Err(e @ IdentityError::Store(_)) => return Err(Verdict::Retry(e.to_string())),
            Err(e) => return Err(Verdict::Dead(e.to_string())),
        };
        let at_ms = msg
            .create_time()
            .map_or(row.received_at_ms, |s| s.saturating_mul(1000));
        let changed = self
            .db
            .set_wechat_subscription(tenant.key(), resolved.identity.id, subscribed, at_ms)
            .await
            .map_err(retry_db)?;
        let event_type = if subscribed {
            "user.subscribed"
        } else {
            "user.unsubscribed"
        };
        let data = json!({
            "source": row.source,
            "appid": resolved.identity.appid,
            "openid": resolved.identity.openid,
            "unionid": resolved.identity.unionid,
            "identity_id": resolved.identity.id.get(),
            "user_id": resolved.user_id.get(),
            "created_user": resolved.created_user,
            "created_identity": resolved.created_identity,
            "subscribed": subscribed,
            "at_ms": at_ms,
            // False when a later subscribe / unsubscribe was already recorded (out of order).
            "current": changed,
            "event_key": msg.event_key(),
            "fields": fields_json(msg),
        });
        let mut events = vec![WebhookEvent::from_inbox(row.id, event_type, data)];
        events.extend(resolved.events.iter().map(WebhookEvent::from_domain));
        let summary = json!({
            "action": event_type,
            "identity_id": resolved.identity.id.get(),
            "user_id": resolved.user_id.get(),
            "merged": resolved.events.len(),
        });
        Ok((summary, events))
    }

    /// Any other message (`message.received`) or event (`event.received`).
    async fn received(
        &self,
        tenant: &Tenant,
        row: &InboxMessage,
        msg: &CallbackMessage,
    ) -> Result<(Value, Vec<WebhookEvent>), Verdict> {
        let from = msg.from_user().map(str::trim).filter(|f| !f.is_empty());
        let user_id = match from {
            Some(from) => self.local_user(tenant, &row.source, from).await?,
            None => None,
        };
        let is_event = msg.msg_type() == Some("event") || msg.event().is_some();
        let event_type = if is_event {
            "event.received"
        } else {
            "message.received"
        };
        let data = json!({
            "source": row.source,
            "kind": row.kind,
            "msg_type": msg.msg_type(),
            "event": msg.event_raw(),
            "from_user": from,
            "to_user": msg.to_user(),
            "user_id": user_id,
            "agent_id": msg.agent_id(),
            "msg_id": msg.msg_id(),
            "create_time": msg.create_time(),
            "fields": fields_json(msg),
        });
        let summary = json!({ "action": event_type, "user_id": user_id });
        Ok((
            summary,
            vec![WebhookEvent::from_inbox(row.id, event_type, data)],
        ))
    }

    /// The local user behind a sender: a WeCom member by userid (WeCom apps), a WeChat identity by
    /// openid in the receiving account or mini program. None when the bridge does not know them.
    async fn local_user(
        &self,
        tenant: &Tenant,
        source: &str,
        from: &str,
    ) -> Result<Option<i64>, Verdict> {
        let (kind, name) = split_source(source);
        match (kind, name) {
            ("wecom_app", _) => {
                let Some(corpid) = tenant.config.wecom.as_ref().map(|w| w.corpid.as_str()) else {
                    return Ok(None);
                };
                Ok(self
                    .db
                    .user_by_wecom_userid(tenant.key(), corpid, from)
                    .await
                    .map_err(retry_db)?
                    .map(|u| u.id.get()))
            }
            ("wechat_oa" | "wechat_mp", Some(name)) => {
                let cred_kind = if kind == "wechat_oa" {
                    CredentialKind::OfficialAccount
                } else {
                    CredentialKind::WechatMiniProgram
                };
                let Some(cred) = tenant.credential(cred_kind, name) else {
                    return Ok(None);
                };
                Ok(self
                    .db
                    .wechat_identity_by_openid(tenant.key(), &cred.owner, from)
                    .await
                    .map_err(retry_db)?
                    .map(|i| i.user_id.get()))
            }
            _ => Ok(None),
        }
    }

    /// Run until the handle is dropped or shut down: claim, handle, and sleep `poll_interval` when
    /// nothing was due.
    pub fn spawn(self) -> DispatchHandle {
        let task = tokio::spawn(async move {
            loop {
                self.defer_to_acks().await;
                let idle = match self.run_once().await {
                    Ok(r) => r.claimed == 0,
                    Err(e) => {
                        tracing::warn!(error = %e, "callback dispatch: claim failed");
                        true
                    }
                };
                if idle {
                    tokio::time::sleep(self.opts.poll_interval).await;
                }
            }
        });
        DispatchHandle { task }
    }
}

/// The running worker; dropping it stops the worker (a row being handled comes back when its lease
/// runs out, and the idempotent apply makes that harmless).
#[derive(Debug)]
pub struct DispatchHandle {
    task: tokio::task::JoinHandle<()>,
}

impl DispatchHandle {
    /// Stop the worker.
    pub fn shutdown(self) {
        // Drop aborts.
    }
}

impl Drop for DispatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
