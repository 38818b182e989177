//! Typed WeChat (official account, mini program, open platform) request and response bodies. WeChat success
//! bodies often carry no `errcode`; gender is a number here (`sex`), not WeCom's string.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::de;
pub use crate::de::Gender;

#[derive(Serialize)]
pub(crate) struct StableTokenRequest<'a> {
    pub grant_type: &'static str,
    pub appid: &'a str,
    pub secret: &'a str,
    pub force_refresh: bool,
}

/// `sns/oauth2/access_token`: a web-authorisation token (not the base access token) and who it is for.
#[derive(Debug, Clone, Deserialize)]
pub struct OAuthAccessToken {
    #[serde(deserialize_with = "de::secret")]
    pub access_token: SecretString,
    #[serde(default, deserialize_with = "de::lenient_opt_i64")]
    pub expires_in: Option<i64>,
    #[serde(default, deserialize_with = "de::opt_secret")]
    pub refresh_token: Option<SecretString>,
    pub openid: String,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub scope: Option<String>,
    /// 1 for the virtual user of a snapshot page.
    #[serde(default, deserialize_with = "de::lenient_opt_i64")]
    pub is_snapshotuser: Option<i64>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub unionid: Option<String>,
}

/// `sns/userinfo` (scope `snsapi_userinfo` or `snsapi_login`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SnsUserInfo {
    pub openid: String,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub nickname: Option<String>,
    #[serde(default, deserialize_with = "de::gender")]
    pub sex: Option<Gender>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub province: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub city: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub country: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub headimgurl: Option<String>,
    #[serde(default, deserialize_with = "de::list")]
    pub privilege: Vec<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub unionid: Option<String>,
}

/// WeChat mini program `sns/jscode2session`.
#[derive(Debug, Clone, Deserialize)]
pub struct MiniSession {
    pub openid: String,
    #[serde(deserialize_with = "de::secret")]
    pub session_key: SecretString,
    /// Only when the mini program is bound to an open-platform account.
    #[serde(default, deserialize_with = "de::non_empty")]
    pub unionid: Option<String>,
}

/// An official-account follower from `cgi-bin/user/info` (or one entry of `user/info/batchget`).
/// Since 2021 nickname and avatar are no longer returned; they stay optional for older answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FollowerInfo {
    /// 0 when the user does not (or no longer) follow the account; then little else is returned.
    #[serde(default, deserialize_with = "de::lenient_opt_i64")]
    pub subscribe: Option<i64>,
    pub openid: String,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub unionid: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub language: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_i64")]
    pub subscribe_time: Option<i64>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub remark: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_i64")]
    pub groupid: Option<i64>,
    #[serde(default, deserialize_with = "de::list")]
    pub tagid_list: Vec<i64>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub subscribe_scene: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_i64")]
    pub qr_scene: Option<i64>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub qr_scene_str: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub nickname: Option<String>,
    #[serde(default, deserialize_with = "de::gender")]
    pub sex: Option<Gender>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub headimgurl: Option<String>,
}

impl FollowerInfo {
    pub fn is_subscribed(&self) -> bool {
        self.subscribe == Some(1)
    }
}

#[derive(Serialize)]
pub(crate) struct BatchGetItem<'a> {
    pub openid: &'a str,
    pub lang: &'a str,
}

#[derive(Serialize)]
pub(crate) struct BatchGetRequest<'a> {
    pub user_list: Vec<BatchGetItem<'a>>,
}

/// One page of `cgi-bin/user/get`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FollowerPage {
    /// Followers in all.
    #[serde(default)]
    pub total: u64,
    /// Openids on this page.
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    pub data: Option<FollowerOpenids>,
    /// Where the next page starts (the last openid of this page); empty at the end.
    #[serde(default)]
    pub next_openid: String,
}

impl FollowerPage {
    /// The openids on this page.
    pub fn openids(&self) -> &[String] {
        self.data
            .as_ref()
            .map(|d| d.openid.as_slice())
            .unwrap_or(&[])
    }
}

/// The `data` of a [`FollowerPage`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FollowerOpenids {
    #[serde(default)]
    pub openid: Vec<String>,
}

#[derive(Deserialize)]
pub(crate) struct BatchGetBody {
    #[serde(default, deserialize_with = "de::list")]
    pub user_info_list: Vec<FollowerInfo>,
}

#[derive(Serialize)]
pub(crate) struct PhoneCodeRequest<'a> {
    pub code: &'a str,
}

/// The watermark WeChat adds to phone numbers and decrypted data: check `appid` is yours.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Watermark {
    #[serde(default, deserialize_with = "de::lenient_opt_i64")]
    pub timestamp: Option<i64>,
    #[serde(default)]
    pub appid: String,
}

/// `wxa/business/getuserphonenumber`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PhoneInfo {
    /// With country code for foreign numbers.
    #[serde(rename = "phoneNumber")]
    pub phone_number: String,
    #[serde(rename = "purePhoneNumber", default)]
    pub pure_phone_number: String,
    #[serde(rename = "countryCode", default, deserialize_with = "de::non_empty")]
    pub country_code: Option<String>,
    #[serde(default)]
    pub watermark: Option<Watermark>,
}

#[derive(Deserialize)]
pub(crate) struct PhoneBody {
    pub phone_info: PhoneInfo,
}
