//! Callbacks (issue 5): what WeCom and WeChat push to the bridge, from the HTTP request to the durable
//! inbox (`receive`: the endpoint's checks and the insert that happens before the answer) and from the
//! inbox to the directory (`dispatch`: the worker that claims inbox rows and handles them).
//!
//! Endpoints, one per receiving app (the paths `wxbridge check` prints):
//! - `/callback/{tenant}/wecom/apps/{name}`: a self-built app's 接收消息 URL;
//! - `/callback/{tenant}/wecom/contacts`: the contacts-sync assistant's 接收事件服务器;
//! - `/callback/{tenant}/wechat/official-accounts/{name}`: an official account's 服务器配置, in plain,
//!   compatible or safe mode.
//!
//! Mini-program message push has no endpoint yet: the configuration has no token or key for it.
//!
//! What is stored is the decrypted plaintext, keyed by `CallbackMessage::dedup_key` per (tenant, source),
//! so WeCom's and WeChat's retries of an unanswered callback, or a replayed one, insert nothing and are
//! handled once. Passive replies are not produced: every callback is answered with an empty body (WeCom)
//! or `success` (WeChat), which both platforms take as "received, no reply".

mod dispatch;
mod receive;

pub use dispatch::{DispatchHandle, DispatchOptions, DispatchReport, Dispatcher};
pub use receive::{
    Accepted, CallbackQuery, CallbackSource, InboxWriter, ReceiveError, Receiver, accept,
    initial_status, message_kind,
};
