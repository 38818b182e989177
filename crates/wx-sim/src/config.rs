//! How a simulator is set up: the size and seed of the generated organisation and the behaviour switches
//! (token lifetime and rotation, withheld fields, limits, callback retries). Most switches can also be
//! changed at run time through the library or the control API.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A rate limit on one API: `per_window` calls per `window` per corp (or WeChat appid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub per_window: u32,
    #[serde(with = "secs")]
    pub window: Duration,
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        if !(v.is_finite() && v >= 0.0) {
            return Err(serde::de::Error::custom(
                "a window must be a non-negative number of seconds",
            ));
        }
        Ok(Duration::from_secs_f64(v))
    }
}

/// Configuration of a generated simulator. `SimConfig { seed: 7, members: 1000, ..SimConfig::default() }`.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Same (seed, members, departments, wechat_users) => the same organisation, byte for byte.
    pub seed: u64,
    pub members: usize,
    /// Including the root department; at least 1.
    pub departments: usize,
    /// Size of the WeChat user population (openid per app, shared unionid).
    pub wechat_users: usize,
    /// Lifetime of access tokens and tickets (WeCom gettoken, WeChat token/stable_token). Default 7200 s.
    pub token_lifetime: Duration,
    /// WeCom gettoken issues a new token on every call instead of returning the valid one.
    pub rotate_tokens: bool,
    /// Restricted apps get withheld fields as empty strings ("") instead of leaving them out.
    pub withheld_as_empty: bool,
    /// Pretend the contacts-sync secret is used from a "new IP" (after 2022-08-15): user/get,
    /// user/simplelist, user/list, department/list and department/get answer 48009.
    pub contacts_new_ip: bool,
    /// Self-built apps also receive change_contact callbacks for members/departments in their scope.
    pub app_change_contact: bool,
    /// Contacts-sync member callbacks carry only UserID and Department (URLs set after 2022-08-15).
    pub contacts_callback_minimal: bool,
    /// Deliveries per callback in total (first try + retries). Default 3.
    pub callback_attempts: u32,
    /// How long a callback receiver may take before the delivery counts as failed. Default 5 s.
    pub callback_timeout: Duration,
    /// How long URL verification may take at registration. Default 1 s.
    pub verify_timeout: Duration,
    /// Per-API rate limits (API path -> limit), counted per corp / appid. Default none.
    pub rate_limits: Vec<(String, RateLimit)>,
    /// Per-API concurrency limits (API path -> max in-flight requests per corp / appid). Default none.
    pub concurrency_limits: Vec<(String, u32)>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            members: 200,
            departments: 20,
            wechat_users: 100,
            token_lifetime: Duration::from_secs(7200),
            rotate_tokens: false,
            withheld_as_empty: false,
            contacts_new_ip: false,
            app_change_contact: true,
            contacts_callback_minimal: false,
            callback_attempts: 3,
            callback_timeout: Duration::from_secs(5),
            verify_timeout: Duration::from_secs(1),
            rate_limits: Vec::new(),
            concurrency_limits: Vec::new(),
        }
    }
}

impl SimConfig {
    /// A config for `members` members in `departments` departments from `seed`, other settings default.
    pub fn new(seed: u64, members: usize, departments: usize) -> Self {
        SimConfig {
            seed,
            members,
            departments,
            ..SimConfig::default()
        }
    }
}

/// Run-time switches, changeable through `POST /_sim/switches` (every field optional there).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Switches {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_tokens: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withheld_as_empty: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts_new_ip: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_change_contact: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts_callback_minimal: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_lifetime_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_timeout_ms: Option<u64>,
}

impl SimConfig {
    pub(crate) fn apply(&mut self, s: &Switches) {
        if let Some(v) = s.rotate_tokens {
            self.rotate_tokens = v;
        }
        if let Some(v) = s.withheld_as_empty {
            self.withheld_as_empty = v;
        }
        if let Some(v) = s.contacts_new_ip {
            self.contacts_new_ip = v;
        }
        if let Some(v) = s.app_change_contact {
            self.app_change_contact = v;
        }
        if let Some(v) = s.contacts_callback_minimal {
            self.contacts_callback_minimal = v;
        }
        if let Some(v) = s.token_lifetime_secs {
            self.token_lifetime = Duration::from_secs(v.max(1));
        }
        if let Some(v) = s.callback_attempts {
            self.callback_attempts = v.max(1);
        }
        if let Some(v) = s.callback_timeout_ms {
            self.callback_timeout = Duration::from_millis(v.max(1));
        }
    }
}
