//! Callbacks (issue 5): what WeCom and WeChat push to the bridge, from the HTTP request to the durable
//! inbox (`receive`: the endpoint's checks and the insert that happens before the answer) and from the
//! inbox to the directory (`dispatch`: the worker that claims inbox rows and handles them).
//!
//! Endpoints, one per receiving app (the paths `wxbridge check` prints):
//! - `/callback/{tenant}/wecom/apps/{name}`: a self-built app's 接收消息 URL;
//! - `/callback/{tenant}/wecom/contacts`: the contacts-sync assistant's 接收事件服务器;
//! - `/callback/{tenant}/wechat/official-accounts/{name}`: an official account's 服务器配置, in plain,
//!   compatible or safe mode;
//! - `/callback/{tenant}/wechat/mini-programs/{name}`: a mini program's 消息推送 (`push_token`,
//!   `push_encoding_aes_key`, `push_mode`), XML or JSON, plain, compatible or safe mode.
//!
//! What is stored is the decrypted plaintext, keyed by `CallbackMessage::dedup_key` per (tenant, source),
//! so WeCom's and WeChat's retries of an unanswered callback, or a replayed one, insert nothing and are
//! handled once.
//!
//! The answer goes back once the row is committed (or recognised as a redelivery). A WeCom app or an
//! official account with `default_reply` / `subscribe_reply` configured answers a user's message or
//! the `subscribe` event with a passive text reply (`Receiver::passive_reply`: To/From swapped,
//! encrypted when the request was, always on WeCom and in safe mode); a redelivery gets the same reply.
//! Everything else — change_contact, the contacts assistant, mini programs, other events — is answered
//! with an empty body (WeCom) or `success` (WeChat), which both platforms take as "received, no reply".

mod dispatch;
mod receive;

/// The inbox's stored shapes, for the REST view of the inbox.
pub use store::{InboxMessage, InboxStatus};

pub use dispatch::{DispatchHandle, DispatchOptions, DispatchReport, Dispatcher};
pub use receive::{
    Accepted, CallbackQuery, CallbackSource, InboxWriter, Opened, PassiveReplies, PassiveReply,
    ReceiveError, Receiver, accept, initial_status, message_kind,
};
