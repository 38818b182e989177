//! Typed WeCom request and response bodies. Every optional field tolerates being absent, null or empty,
//! because post-2022 apps see withheld fields either way and older APIs answer with older shapes.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::de;
pub use crate::de::Gender;

/// `gettoken`, `get_jsapi_ticket`, `ticket/get` all answer `{..., expires_in}` with one value field.
#[derive(Deserialize)]
pub(crate) struct AccessTokenBody {
    pub access_token: String,
    #[serde(deserialize_with = "de::lenient_i64")]
    pub expires_in: i64,
}

#[derive(Deserialize)]
pub(crate) struct TicketBody {
    pub ticket: String,
    #[serde(deserialize_with = "de::lenient_i64")]
    pub expires_in: i64,
}

/// One department from `department/list` or `department/get`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Department {
    #[serde(deserialize_with = "de::lenient_i64")]
    pub id: i64,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub name_en: Option<String>,
    #[serde(default, deserialize_with = "de::list")]
    pub department_leader: Vec<String>,
    /// 0 for the root department.
    #[serde(default, deserialize_with = "de::lenient_opt_i64")]
    pub parentid: Option<i64>,
    /// Larger sorts first.
    #[serde(default, deserialize_with = "de::lenient_opt_i64")]
    pub order: Option<i64>,
}

#[derive(Deserialize)]
pub(crate) struct DepartmentListBody {
    #[serde(default, deserialize_with = "de::list")]
    pub department: Vec<Department>,
}

#[derive(Deserialize)]
pub(crate) struct DepartmentGetBody {
    pub department: Department,
}

/// One row of `department/simplelist`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct DepartmentRef {
    #[serde(deserialize_with = "de::lenient_i64")]
    pub id: i64,
    #[serde(default, deserialize_with = "de::lenient_opt_i64")]
    pub parentid: Option<i64>,
    #[serde(default, deserialize_with = "de::lenient_opt_i64")]
    pub order: Option<i64>,
}

#[derive(Deserialize)]
pub(crate) struct DepartmentSimpleListBody {
    #[serde(default, deserialize_with = "de::list")]
    pub department_id: Vec<DepartmentRef>,
}

/// Member status: 1 activated, 2 disabled, 4 not activated, 5 left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberStatus {
    Active,
    Disabled,
    NotActivated,
    Left,
    Other(i64),
}

impl MemberStatus {
    pub fn from_code(code: i64) -> MemberStatus {
        match code {
            1 => MemberStatus::Active,
            2 => MemberStatus::Disabled,
            4 => MemberStatus::NotActivated,
            5 => MemberStatus::Left,
            other => MemberStatus::Other(other),
        }
    }
}

impl<'de> Deserialize<'de> for MemberStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::lenient_i64(d).map(MemberStatus::from_code)
    }
}

/// A member from `user/get` or `user/list`. Everything but `userid` may be withheld.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct User {
    pub userid: String,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de::list")]
    pub department: Vec<i64>,
    #[serde(default, deserialize_with = "de::list")]
    pub order: Vec<i64>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub position: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub mobile: Option<String>,
    #[serde(default, deserialize_with = "de::gender")]
    pub gender: Option<Gender>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub biz_mail: Option<String>,
    /// Aligned with `department`: 1 where the member leads that department.
    #[serde(default, deserialize_with = "de::list")]
    pub is_leader_in_dept: Vec<i64>,
    #[serde(default, deserialize_with = "de::list")]
    pub direct_leader: Vec<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub avatar: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub thumb_avatar: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub telephone: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub alias: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub address: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub open_userid: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_i64")]
    pub main_department: Option<i64>,
    #[serde(default)]
    pub status: Option<MemberStatus>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub qr_code: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub english_name: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub external_position: Option<String>,
    /// Custom attributes, kept as JSON: their shape is defined per company.
    #[serde(default)]
    pub extattr: Option<serde_json::Value>,
    #[serde(default)]
    pub external_profile: Option<serde_json::Value>,
}

#[derive(Deserialize)]
pub(crate) struct UserListBody {
    #[serde(default, deserialize_with = "de::list")]
    pub userlist: Vec<User>,
}

/// A row of `user/simplelist`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SimpleUser {
    pub userid: String,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de::list")]
    pub department: Vec<i64>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub open_userid: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct SimpleUserListBody {
    #[serde(default, deserialize_with = "de::list")]
    pub userlist: Vec<SimpleUser>,
}

/// One (member, department) row of `user/list_id`; a member in two departments appears twice.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeptUser {
    /// Absent for third-party apps, which get `open_userid`.
    #[serde(default, deserialize_with = "de::non_empty")]
    pub userid: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub open_userid: Option<String>,
    #[serde(deserialize_with = "de::lenient_i64")]
    pub department: i64,
}

/// One page of `user/list_id`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserIdPage {
    /// `None` when this is the last page (the field was missing or empty).
    #[serde(default, deserialize_with = "de::non_empty")]
    pub next_cursor: Option<String>,
    #[serde(default, deserialize_with = "de::list")]
    pub dept_user: Vec<DeptUser>,
}

#[derive(Serialize)]
pub(crate) struct UserListIdRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<&'a str>,
    pub limit: u32,
}

/// A tag from `tag/list`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Tag {
    #[serde(deserialize_with = "de::lenient_i64")]
    pub tagid: i64,
    #[serde(default)]
    pub tagname: String,
}

#[derive(Deserialize)]
pub(crate) struct TagListBody {
    #[serde(default, deserialize_with = "de::list")]
    pub taglist: Vec<Tag>,
}

/// A member listed by `tag/get`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TagUser {
    pub userid: String,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub name: Option<String>,
}

/// `tag/get`: the tag's members and departments.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TagMembers {
    #[serde(default, deserialize_with = "de::non_empty")]
    pub tagname: Option<String>,
    #[serde(default, deserialize_with = "de::list")]
    pub userlist: Vec<TagUser>,
    #[serde(default, deserialize_with = "de::list")]
    pub partylist: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct AllowUser {
    pub userid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct AllowUsers {
    #[serde(default, deserialize_with = "de::list")]
    pub user: Vec<AllowUser>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct AllowParties {
    #[serde(default, deserialize_with = "de::list")]
    pub partyid: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct AllowTags {
    #[serde(default, deserialize_with = "de::list")]
    pub tagid: Vec<i64>,
}

/// `agent/get`: the app and its visible scope.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Agent {
    #[serde(deserialize_with = "de::lenient_i64")]
    pub agentid: i64,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub square_logo_url: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub description: Option<String>,
    #[serde(default)]
    pub allow_userinfos: AllowUsers,
    #[serde(default)]
    pub allow_partys: AllowParties,
    #[serde(default)]
    pub allow_tags: AllowTags,
    /// 1 when the app is disabled.
    #[serde(default, deserialize_with = "de::lenient_opt_i64")]
    pub close: Option<i64>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub redirect_domain: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_i64")]
    pub report_location_flag: Option<i64>,
    #[serde(default, deserialize_with = "de::lenient_opt_i64")]
    pub isreportenter: Option<i64>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub home_url: Option<String>,
}

impl Agent {
    /// Userids listed directly in the visible scope.
    pub fn allowed_userids(&self) -> Vec<&str> {
        self.allow_userinfos
            .user
            .iter()
            .map(|u| u.userid.as_str())
            .collect()
    }
}

/// One article of a `news` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewsArticle {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picurl: Option<String>,
}

/// The content of an app message (`msgtype` plus its object).
#[derive(Debug, Clone, PartialEq)]
pub enum MessageBody {
    Text {
        content: String,
    },
    Markdown {
        content: String,
    },
    TextCard {
        title: String,
        description: String,
        url: String,
        btntxt: Option<String>,
    },
    News {
        articles: Vec<NewsArticle>,
    },
    Image {
        media_id: String,
    },
    File {
        media_id: String,
    },
    /// Any other `msgtype` with its object as JSON (template_card, mpnews...).
    Raw {
        msgtype: String,
        content: serde_json::Value,
    },
}

impl MessageBody {
    pub(crate) fn msgtype_and_content(&self) -> (String, serde_json::Value) {
        use serde_json::json;
        match self {
            MessageBody::Text { content } => ("text".into(), json!({ "content": content })),
            MessageBody::Markdown { content } => ("markdown".into(), json!({ "content": content })),
            MessageBody::TextCard {
                title,
                description,
                url,
                btntxt,
            } => {
                let mut card = json!({ "title": title, "description": description, "url": url });
                if let (Some(btn), Some(obj)) = (btntxt, card.as_object_mut()) {
                    obj.insert("btntxt".into(), json!(btn));
                }
                ("textcard".into(), card)
            }
            MessageBody::News { articles } => ("news".into(), json!({ "articles": articles })),
            MessageBody::Image { media_id } => ("image".into(), json!({ "media_id": media_id })),
            MessageBody::File { media_id } => ("file".into(), json!({ "media_id": media_id })),
            MessageBody::Raw { msgtype, content } => (msgtype.clone(), content.clone()),
        }
    }
}

/// An app message for `message/send`. The `agentid` comes from the app handle that sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct AppMessage {
    /// Userids; joined with `|` on the wire (at most 1000).
    pub touser: Vec<String>,
    /// Department ids (at most 100).
    pub toparty: Vec<i64>,
    /// Tag ids (at most 100).
    pub totag: Vec<i64>,
    /// `touser = "@all"`: everyone in the app's visible scope; the other targets are ignored.
    pub to_all: bool,
    pub body: MessageBody,
    /// 0 shareable, 1 no sharing + watermark, 2 company-only (mpnews).
    pub safe: Option<u8>,
    pub enable_duplicate_check: bool,
    pub duplicate_check_interval_secs: Option<u32>,
}

impl AppMessage {
    /// A text message to the given users.
    pub fn text_to_users(
        users: impl IntoIterator<Item = impl Into<String>>,
        content: impl Into<String>,
    ) -> Self {
        AppMessage {
            touser: users.into_iter().map(Into::into).collect(),
            toparty: Vec::new(),
            totag: Vec::new(),
            to_all: false,
            body: MessageBody::Text {
                content: content.into(),
            },
            safe: None,
            enable_duplicate_check: false,
            duplicate_check_interval_secs: None,
        }
    }

    pub(crate) fn to_json(&self, agentid: i64) -> serde_json::Value {
        fn join<T: ToString>(items: &[T]) -> String {
            items
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("|")
        }
        let (msgtype, content) = self.body.msgtype_and_content();
        let mut obj = serde_json::Map::new();
        if self.to_all {
            obj.insert("touser".into(), "@all".into());
        } else {
            if !self.touser.is_empty() {
                obj.insert("touser".into(), join(&self.touser).into());
            }
            if !self.toparty.is_empty() {
                obj.insert("toparty".into(), join(&self.toparty).into());
            }
            if !self.totag.is_empty() {
                obj.insert("totag".into(), join(&self.totag).into());
            }
        }
        obj.insert("msgtype".into(), msgtype.clone().into());
        obj.insert("agentid".into(), agentid.into());
        obj.insert(msgtype, content);
        if let Some(safe) = self.safe {
            obj.insert("safe".into(), safe.into());
        }
        if self.enable_duplicate_check {
            obj.insert("enable_duplicate_check".into(), 1.into());
            if let Some(secs) = self.duplicate_check_interval_secs {
                obj.insert("duplicate_check_interval".into(), secs.into());
            }
        }
        serde_json::Value::Object(obj)
    }
}

/// `message/send` result. Partly invalid recipients still mean success, listed here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SendResult {
    #[serde(default, deserialize_with = "de::pipe_list")]
    pub invaliduser: Vec<String>,
    #[serde(default, deserialize_with = "de::pipe_list")]
    pub invalidparty: Vec<String>,
    #[serde(default, deserialize_with = "de::pipe_list")]
    pub invalidtag: Vec<String>,
    #[serde(default, deserialize_with = "de::pipe_list")]
    pub unlicenseduser: Vec<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub msgid: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub response_code: Option<String>,
}

/// `auth/getuserinfo`: who the OAuth code belongs to. Accepts the legacy capitalised keys too.
#[derive(Debug, Clone, Deserialize)]
pub struct LoginIdentity {
    /// Set for members of the company.
    #[serde(default, alias = "UserId", deserialize_with = "de::non_empty")]
    pub userid: Option<String>,
    /// Set for non-members.
    #[serde(default, alias = "OpenId", deserialize_with = "de::non_empty")]
    pub openid: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub external_userid: Option<String>,
    #[serde(default, alias = "DeviceId", deserialize_with = "de::non_empty")]
    pub device_id: Option<String>,
    /// Only with scope `snsapi_privateinfo` for a member in scope; valid 1800 s.
    #[serde(default, deserialize_with = "de::opt_secret")]
    pub user_ticket: Option<SecretString>,
    #[serde(default, deserialize_with = "de::lenient_opt_i64")]
    pub expires_in: Option<i64>,
}

#[derive(Serialize)]
pub(crate) struct UserTicketRequest<'a> {
    pub user_ticket: &'a str,
}

/// `auth/getuserdetail`: sensitive fields the member consented to share.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserDetail {
    pub userid: String,
    #[serde(default, deserialize_with = "de::gender")]
    pub gender: Option<Gender>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub avatar: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub qr_code: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub mobile: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub biz_mail: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub address: Option<String>,
}

/// WeCom `miniprogram/jscode2session`: a userid (no openid) and the session key.
#[derive(Debug, Clone, Deserialize)]
pub struct WecomMiniSession {
    #[serde(default, deserialize_with = "de::non_empty")]
    pub corpid: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub userid: Option<String>,
    #[serde(deserialize_with = "de::secret")]
    pub session_key: SecretString,
}

#[derive(Serialize)]
pub(crate) struct MsgIdRequest<'a> {
    pub msgid: &'a str,
}

#[derive(Deserialize)]
pub(crate) struct Empty {}
