//! What a simulator tells its users: `SimInfo` (ids and secrets of every corp and app, for scripts and for
//! the generated wxbridge config) and `DirectorySnapshot` (the full directory, to compare a sync against).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::model::{Department, Member, Tag, World};

/// `Debug` for the info structs: names and ids only, never the secrets beside them.
macro_rules! redacted_debug {
    ($t:ident { $($f:ident),* }) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t))$(.field(stringify!($f), &self.$f))*.finish_non_exhaustive()
            }
        }
    };
}

redacted_debug!(AppInfo {
    name,
    agentid,
    restricted_fields
});
redacted_debug!(CorpInfo {
    corpid,
    name,
    apps,
    mini_programs
});
redacted_debug!(OfficialAccountInfo {
    name,
    appid,
    original_id
});
redacted_debug!(WechatAppInfo { name, appid });
redacted_debug!(WechatInfo {
    official_accounts,
    mini_programs,
    website
});

/// A self-built app's ids and secrets.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    pub name: String,
    pub agentid: u32,
    pub secret: String,
    pub callback_token: String,
    pub encoding_aes_key: String,
    pub restricted_fields: bool,
}

/// A WeCom mini program and the app whose token serves its jscode2session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WecomMiniProgramInfo {
    pub name: String,
    pub appid: String,
    pub app: String,
}

/// A corp's ids and secrets.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpInfo {
    pub corpid: String,
    pub name: String,
    pub contacts_secret: String,
    pub contacts_callback_token: String,
    pub contacts_encoding_aes_key: String,
    pub apps: Vec<AppInfo>,
    pub mini_programs: Vec<WecomMiniProgramInfo>,
}

/// An official account's ids and secrets.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficialAccountInfo {
    pub name: String,
    pub appid: String,
    pub secret: String,
    pub token: String,
    pub encoding_aes_key: String,
    pub original_id: String,
}

/// A mini program's or the website app's appid and secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WechatAppInfo {
    pub name: String,
    pub appid: String,
    pub secret: String,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WechatInfo {
    pub official_accounts: Vec<OfficialAccountInfo>,
    pub mini_programs: Vec<WechatAppInfo>,
    pub website: Option<WechatAppInfo>,
}

/// Everything a script needs to drive the simulator. Serialises with the secrets (that is its purpose);
/// `Debug` leaves them out so a stray `{:?}` does not print them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimInfo {
    /// `http://host:port` while serving.
    pub base_url: Option<String>,
    pub corps: Vec<CorpInfo>,
    pub wechat: WechatInfo,
}

impl fmt::Debug for SimInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let corpids: Vec<&str> = self.corps.iter().map(|c| c.corpid.as_str()).collect();
        f.debug_struct("SimInfo")
            .field("base_url", &self.base_url)
            .field("corps", &corpids)
            .field("secrets", &"<redacted>")
            .finish()
    }
}

impl SimInfo {
    pub(crate) fn from_world(world: &World, base_url: Option<String>) -> SimInfo {
        let corps = world
            .corps
            .iter()
            .map(|c| CorpInfo {
                corpid: c.corpid.clone(),
                name: c.name.clone(),
                contacts_secret: c.contacts_secret.clone(),
                contacts_callback_token: c.contacts_callback_token.clone(),
                contacts_encoding_aes_key: c.contacts_encoding_aes_key.clone(),
                apps: c
                    .apps
                    .iter()
                    .map(|a| AppInfo {
                        name: a.name.clone(),
                        agentid: a.agentid,
                        secret: a.secret.clone(),
                        callback_token: a.callback_token.clone(),
                        encoding_aes_key: a.encoding_aes_key.clone(),
                        restricted_fields: a.restricted_fields,
                    })
                    .collect(),
                mini_programs: c
                    .mini_programs
                    .iter()
                    .map(|m| WecomMiniProgramInfo {
                        name: m.name.clone(),
                        appid: m.appid.clone(),
                        app: m.app.clone(),
                    })
                    .collect(),
            })
            .collect();
        let w = &world.wechat;
        let wechat = WechatInfo {
            official_accounts: w
                .official_accounts
                .iter()
                .map(|a| OfficialAccountInfo {
                    name: a.name.clone(),
                    appid: a.appid.clone(),
                    secret: a.secret.clone(),
                    token: a.token.clone(),
                    encoding_aes_key: a.encoding_aes_key.clone(),
                    original_id: a.original_id.clone(),
                })
                .collect(),
            mini_programs: w
                .mini_programs
                .iter()
                .map(|a| WechatAppInfo {
                    name: a.name.clone(),
                    appid: a.appid.clone(),
                    secret: a.secret.clone(),
                })
                .collect(),
            website: w.website.as_ref().map(|a| WechatAppInfo {
                name: a.name.clone(),
                appid: a.appid.clone(),
                secret: a.secret.clone(),
            }),
        };
        SimInfo {
            base_url,
            corps,
            wechat,
        }
    }

    /// A wxbridge configuration (TOML) whose tenant `demo` points at this simulator's first corp and at its
    /// WeChat apps, ready for `wxbridge serve --config FILE`. `listen` is where wxbridge itself listens.
    pub fn wxbridge_config(&self, listen: &str) -> Result<String, SimError> {
        use toml::{Table, Value};
        let base = self
            .base_url
            .clone()
            .ok_or_else(|| SimError::Config("the simulator is not serving".to_owned()))?;
        let corp = self
            .corps
            .first()
            .ok_or_else(|| SimError::Config("the simulator has no corp".to_owned()))?;
        let s = |v: &str| Value::String(v.to_owned());
        let table = |pairs: Vec<(&str, Value)>| -> Value {
            Value::Table(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect::<Table>(),
            )
        };

        let mut root = Table::new();
        root.insert(
            "server".into(),
            table(vec![
                ("listen", s(listen)),
                ("public_url", s(&format!("http://{listen}"))),
                ("data_dir", s("./data")),
            ]),
        );
        root.insert(
            "database".into(),
            table(vec![("url", s("sqlite://./data/wxbridge.db"))]),
        );
        root.insert("tokens".into(), table(vec![("store", s("sql"))]));
        root.insert(
            "upstream".into(),
            table(vec![
                ("wecom_base_url", s(&base)),
                ("wechat_base_url", s(&base)),
                ("oauth_base_url", s(&base)),
                ("wecom_login_base_url", s(&base)),
            ]),
        );

        let mut apps = Table::new();
        for a in &corp.apps {
            apps.insert(
                a.name.clone(),
                table(vec![
                    ("agentid", Value::Integer(i64::from(a.agentid))),
                    ("secret", s(&a.secret)),
                    ("callback_token", s(&a.callback_token)),
                    ("encoding_aes_key", s(&a.encoding_aes_key)),
                ]),
            );
        }
        let mut wecom_mps = Table::new();
        for m in &corp.mini_programs {
            wecom_mps.insert(
                m.name.clone(),
                table(vec![("appid", s(&m.appid)), ("app", s(&m.app))]),
            );
        }
        let mut wecom = Table::new();
        wecom.insert("corpid".into(), s(&corp.corpid));
        wecom.insert(
            "contacts".into(),
            table(vec![
                ("secret", s(&corp.contacts_secret)),
                ("callback_token", s(&corp.contacts_callback_token)),
                ("encoding_aes_key", s(&corp.contacts_encoding_aes_key)),
            ]),
        );
        wecom.insert("apps".into(), Value::Table(apps));
        if !wecom_mps.is_empty() {
            wecom.insert("mini_programs".into(), Value::Table(wecom_mps));
        }

        let mut oas = Table::new();
        for a in &self.wechat.official_accounts {
            oas.insert(
                a.name.clone(),
                table(vec![
                    ("appid", s(&a.appid)),
                    ("secret", s(&a.secret)),
                    ("token", s(&a.token)),
                    ("encoding_aes_key", s(&a.encoding_aes_key)),
                    ("mode", s("safe")),
                    ("original_id", s(&a.original_id)),
                ]),
            );
        }
        let mut mps = Table::new();
        for a in &self.wechat.mini_programs {
            mps.insert(
                a.name.clone(),
                table(vec![("appid", s(&a.appid)), ("secret", s(&a.secret))]),
            );
        }
        let mut wechat = Table::new();
        if !oas.is_empty() {
            wechat.insert("official_accounts".into(), Value::Table(oas));
        }
        if !mps.is_empty() {
            wechat.insert("mini_programs".into(), Value::Table(mps));
        }
        if let Some(w) = &self.wechat.website {
            wechat.insert(
                "website".into(),
                table(vec![("appid", s(&w.appid)), ("secret", s(&w.secret))]),
            );
        }

        let mut demo = Table::new();
        demo.insert("name".into(), s(&corp.name));
        demo.insert("wecom".into(), Value::Table(wecom));
        if !wechat.is_empty() {
            demo.insert("wechat".into(), Value::Table(wechat));
        }
        let mut tenants = Table::new();
        tenants.insert("demo".into(), Value::Table(demo));
        root.insert("tenants".into(), Value::Table(tenants));
        toml::to_string(&root).map_err(|e| SimError::Config(e.to_string()))
    }
}

/// The full directory of one corp, in a stable order (departments by id, members by lower-cased userid,
/// tags by id), for comparing a sync result against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectorySnapshot {
    pub corpid: String,
    pub departments: Vec<Department>,
    pub members: Vec<Member>,
    pub tags: Vec<Tag>,
}

impl DirectorySnapshot {
    /// Depth of the deepest department (the root alone is depth 1).
    pub fn max_depth(&self) -> usize {
        let parents: std::collections::HashMap<u32, u32> = self
            .departments
            .iter()
            .map(|d| (d.id, d.parentid))
            .collect();
        self.departments
            .iter()
            .map(|d| {
                let mut depth = 1;
                let mut cur = d.parentid;
                while cur != 0 && depth <= 64 {
                    depth += 1;
                    cur = parents.get(&cur).copied().unwrap_or(0);
                }
                depth
            })
            .max()
            .unwrap_or(0)
    }

    pub fn member(&self, userid: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.userid.eq_ignore_ascii_case(userid))
    }
}
