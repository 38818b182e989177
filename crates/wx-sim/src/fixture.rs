//! The explicit fixture form: a TOML (or JSON) document that lists corps, departments, members, tags, apps,
//! WeChat apps and users exactly, for tests that need exact data. `fixtures/example.toml` documents it.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;

use crate::config::SimConfig;
use crate::error::SimError;
use crate::model::{
    App, Corp, Department, Directory, Member, Tag, Wechat, WechatApp, WechatUser, WecomMiniProgram,
    World,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureFile {
    #[serde(default)]
    settings: Settings,
    #[serde(default)]
    corps: Vec<FixtureCorp>,
    #[serde(default)]
    wechat: FixtureWechat,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    seed: Option<u64>,
    token_lifetime_secs: Option<u64>,
    rotate_tokens: Option<bool>,
    withheld_as_empty: Option<bool>,
    contacts_new_ip: Option<bool>,
    app_change_contact: Option<bool>,
    contacts_callback_minimal: Option<bool>,
    callback_attempts: Option<u32>,
    callback_timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureCorp {
    corpid: String,
    #[serde(default)]
    name: String,
    contacts_secret: String,
    #[serde(default)]
    contacts_callback_token: String,
    #[serde(default)]
    contacts_encoding_aes_key: String,
    #[serde(default)]
    departments: Vec<Department>,
    #[serde(default)]
    members: Vec<Member>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    apps: Vec<App>,
    #[serde(default)]
    mini_programs: Vec<WecomMiniProgram>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureWechat {
    #[serde(default)]
    official_accounts: Vec<WechatApp>,
    #[serde(default)]
    mini_programs: Vec<WechatApp>,
    #[serde(default)]
    website: Option<WechatApp>,
    #[serde(default)]
    users: Vec<WechatUser>,
}

/// Parses a fixture; JSON when the text starts with `{`, TOML otherwise.
pub(crate) fn parse(text: &str) -> Result<(World, SimConfig), SimError> {
    let file: FixtureFile = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| SimError::Fixture(e.to_string()))?
    } else {
        toml::from_str(text).map_err(|e| SimError::Fixture(e.to_string()))?
    };
    let mut cfg = SimConfig {
        members: 0,
        departments: 0,
        wechat_users: 0,
        ..SimConfig::default()
    };
    let s = &file.settings;
    if let Some(v) = s.seed {
        cfg.seed = v;
    }
    if let Some(v) = s.token_lifetime_secs {
        cfg.token_lifetime = Duration::from_secs(v.max(1));
    }
    cfg.rotate_tokens = s.rotate_tokens.unwrap_or(cfg.rotate_tokens);
    cfg.withheld_as_empty = s.withheld_as_empty.unwrap_or(cfg.withheld_as_empty);
    cfg.contacts_new_ip = s.contacts_new_ip.unwrap_or(cfg.contacts_new_ip);
    cfg.app_change_contact = s.app_change_contact.unwrap_or(cfg.app_change_contact);
    cfg.contacts_callback_minimal = s
        .contacts_callback_minimal
        .unwrap_or(cfg.contacts_callback_minimal);
    if let Some(v) = s.callback_attempts {
        cfg.callback_attempts = v.max(1);
    }
    if let Some(v) = s.callback_timeout_ms {
        cfg.callback_timeout = Duration::from_millis(v.max(1));
    }

    let mut corps = Vec::new();
    let mut corpids = HashSet::new();
    for fc in file.corps {
        if !corpids.insert(fc.corpid.clone()) {
            return Err(SimError::Fixture(format!(
                "corp {:?} is listed twice",
                fc.corpid
            )));
        }
        corps.push(build_corp(fc)?);
    }
    let w = file.wechat;
    let mut appids = HashSet::new();
    for a in w
        .official_accounts
        .iter()
        .chain(w.mini_programs.iter())
        .chain(w.website.iter())
    {
        if !appids.insert(a.appid.clone()) {
            return Err(SimError::Fixture(format!(
                "WeChat appid {:?} is listed twice",
                a.appid
            )));
        }
    }
    for u in &w.users {
        for appid in u.openids.keys().chain(u.subscribed.iter()) {
            if !appids.contains(appid) {
                return Err(SimError::Fixture(format!(
                    "WeChat user {:?} refers to unknown appid {appid:?}",
                    u.unionid
                )));
            }
        }
    }
    let mut wechat = Wechat {
        official_accounts: w.official_accounts,
        mini_programs: w.mini_programs,
        website: w.website,
        users: w.users,
        by_openid: Default::default(),
    };
    wechat.reindex();
    Ok((World { corps, wechat }, cfg))
}

fn build_corp(fc: FixtureCorp) -> Result<Corp, SimError> {
    let err = |m: String| SimError::Fixture(format!("corp {}: {m}", fc.corpid));
    let mut dir = Directory::default();
    for d in fc.departments {
        if dir.departments.insert(d.id, d.clone()).is_some() {
            return Err(err(format!("department {} is listed twice", d.id)));
        }
    }
    match dir.departments.get(&1) {
        Some(root) if root.parentid == 0 => {}
        Some(_) => return Err(err("the root department 1 must have parentid 0".to_owned())),
        None => {
            return Err(err(
                "the root department (id 1, parentid 0) is missing".to_owned()
            ));
        }
    }
    for d in dir.departments.values() {
        if d.id != 1 && !dir.departments.contains_key(&d.parentid) {
            return Err(err(format!(
                "department {} has unknown parent {}",
                d.id, d.parentid
            )));
        }
    }
    for mut m in fc.members {
        normalize_member(&mut m).map_err(|e| err(format!("member {}: {e}", m.userid)))?;
        for d in &m.department {
            if !dir.departments.contains_key(d) {
                return Err(err(format!(
                    "member {} is in unknown department {d}",
                    m.userid
                )));
            }
        }
        let key = m.userid.to_lowercase();
        if dir.members.insert(key, m.clone()).is_some() {
            return Err(err(format!(
                "userid {:?} is listed twice (userids are case-insensitive)",
                m.userid
            )));
        }
    }
    for t in fc.tags {
        for d in &t.departments {
            if !dir.departments.contains_key(d) {
                return Err(err(format!("tag {} lists unknown department {d}", t.tagid)));
            }
        }
        for u in &t.users {
            if !dir.members.contains_key(&u.to_lowercase()) {
                return Err(err(format!("tag {} lists unknown member {u}", t.tagid)));
            }
        }
        if dir.tags.insert(t.tagid, t.clone()).is_some() {
            return Err(err(format!("tag {} is listed twice", t.tagid)));
        }
    }
    dir.rebuild();
    if dir.departments.keys().any(|id| dir.depth(*id) > 15) {
        return Err(err(
            "the department tree is deeper than 15 levels (or has a cycle)".to_owned(),
        ));
    }
    let mut agentids = HashSet::new();
    for a in &fc.apps {
        if !agentids.insert(a.agentid) {
            return Err(err(format!("agentid {} is listed twice", a.agentid)));
        }
        if a.secret == fc.contacts_secret {
            return Err(err(format!(
                "app {} has the same secret as the contacts-sync assistant",
                a.name
            )));
        }
    }
    for mp in &fc.mini_programs {
        if !fc.apps.iter().any(|a| a.name == mp.app) {
            return Err(err(format!(
                "mini program {} is linked to unknown app {:?}",
                mp.name, mp.app
            )));
        }
    }
    Ok(Corp {
        corpid: fc.corpid.clone(),
        name: fc.name,
        contacts_secret: fc.contacts_secret,
        contacts_callback_token: fc.contacts_callback_token,
        contacts_encoding_aes_key: fc.contacts_encoding_aes_key,
        apps: fc.apps,
        mini_programs: fc.mini_programs,
        dir,
    })
}

/// Fills the aligned per-department vectors and the main department, and checks their lengths.
pub(crate) fn normalize_member(m: &mut Member) -> Result<(), String> {
    if m.userid.is_empty() || m.userid.len() > 64 {
        return Err("userid must be 1 to 64 bytes".to_owned());
    }
    if m.department.is_empty() {
        return Err("a member needs at least one department".to_owned());
    }
    let n = m.department.len();
    if m.order.is_empty() {
        m.order = vec![0; n];
    }
    if m.is_leader_in_dept.is_empty() {
        m.is_leader_in_dept = vec![0; n];
    }
    if m.order.len() != n || m.is_leader_in_dept.len() != n {
        return Err("order and is_leader_in_dept must align with department".to_owned());
    }
    if m.main_department == 0 || !m.department.contains(&m.main_department) {
        m.main_department = m.department[0];
    }
    Ok(())
}
