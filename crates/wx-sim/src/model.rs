//! The simulated world: WeCom corps (directory, apps, scopes) and WeChat apps and users, with the indexes
//! that let every request be answered without scanning the whole directory.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A WeCom department, as `department/get` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Department {
    pub id: u32,
    pub name: String,
    #[serde(default)]
    pub name_en: String,
    /// 0 only for the root department (id 1).
    pub parentid: u32,
    /// A larger order sorts first among siblings.
    #[serde(default)]
    pub order: u32,
    /// Derived from the members' `is_leader_in_dept`; a value given in a fixture is ignored.
    #[serde(default)]
    pub department_leader: Vec<String>,
}

/// A WeCom member with the fields `user/get` can return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub userid: String,
    pub name: String,
    /// Department ids; `order` and `is_leader_in_dept` are aligned with it.
    pub department: Vec<u32>,
    #[serde(default)]
    pub order: Vec<u32>,
    #[serde(default)]
    pub is_leader_in_dept: Vec<u8>,
    #[serde(default)]
    pub direct_leader: Vec<String>,
    /// 0 in a fixture means "the first department".
    #[serde(default)]
    pub main_department: u32,
    #[serde(default)]
    pub position: String,
    #[serde(default)]
    pub mobile: String,
    /// "0" unknown, "1" male, "2" female (a string, as WeCom sends it).
    #[serde(default = "default_gender")]
    pub gender: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub biz_mail: String,
    #[serde(default)]
    pub avatar: String,
    #[serde(default)]
    pub thumb_avatar: String,
    #[serde(default)]
    pub telephone: String,
    #[serde(default)]
    pub alias: String,
    #[serde(default)]
    pub address: String,
    /// 1 active, 2 disabled, 4 not activated, 5 left.
    #[serde(default = "default_status")]
    pub status: u8,
    #[serde(default)]
    pub qr_code: String,
    #[serde(default)]
    pub open_userid: String,
}

fn default_gender() -> String {
    "0".to_owned()
}

fn default_status() -> u8 {
    1
}

/// A WeCom tag: member users and member departments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tag {
    pub tagid: u32,
    pub tagname: String,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub departments: Vec<u32>,
}

/// An app's visible scope as configured in the admin console.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    #[serde(default)]
    pub users: Vec<String>,
    /// Each department includes its sub-departments recursively.
    #[serde(default)]
    pub departments: Vec<u32>,
    /// Each tag includes its users and its departments (recursively).
    #[serde(default)]
    pub tags: Vec<u32>,
}

/// A self-built WeCom app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// Local name ("main", "limited"); also the key in the generated wxbridge config.
    pub name: String,
    pub agentid: u32,
    pub secret: String,
    #[serde(default)]
    pub callback_token: String,
    #[serde(default)]
    pub encoding_aes_key: String,
    /// Post-2022 app: user/get and user/list withhold mobile, email, avatar... and give gender "0".
    #[serde(default)]
    pub restricted_fields: bool,
    /// Trusted domain (host, or host:port) checked at OAuth code exchange; none means no check.
    #[serde(default)]
    pub trusted_domain: Option<String>,
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub home_url: String,
}

/// A mini program linked to a WeCom app (its jscode2session uses that app's token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomMiniProgram {
    pub name: String,
    pub appid: String,
    /// Local name of the linked app.
    pub app: String,
}

/// What kind of WeChat app an appid is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WechatKind {
    OfficialAccount,
    MiniProgram,
    Website,
}

/// A WeChat official account, mini program or open-platform website app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatApp {
    pub name: String,
    pub appid: String,
    pub secret: String,
    /// Official accounts only: callback token, EncodingAESKey and `gh_` original id.
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub encoding_aes_key: String,
    #[serde(default)]
    pub original_id: String,
    /// OAuth redirect domain (host or host:port); none means no check.
    #[serde(default)]
    pub trusted_domain: Option<String>,
}

/// A person on WeChat: one unionid, one openid per app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatUser {
    pub unionid: String,
    pub nickname: String,
    #[serde(default)]
    pub headimgurl: String,
    /// 0 unknown, 1 male, 2 female.
    #[serde(default)]
    pub sex: u8,
    #[serde(default)]
    pub province: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub country: String,
    /// Phone number for getuserphonenumber / encrypted phone data.
    #[serde(default)]
    pub phone: String,
    /// appid -> openid.
    #[serde(default)]
    pub openids: BTreeMap<String, String>,
    /// Official-account appids this user follows.
    #[serde(default)]
    pub subscribed: Vec<String>,
}

/// The WeChat side of the world.
#[derive(Debug, Clone, Default)]
pub(crate) struct Wechat {
    pub official_accounts: Vec<WechatApp>,
    pub mini_programs: Vec<WechatApp>,
    pub website: Option<WechatApp>,
    pub users: Vec<WechatUser>,
    /// (appid, openid) -> index into `users`.
    pub by_openid: HashMap<(String, String), usize>,
}

impl Wechat {
    pub fn app(&self, appid: &str) -> Option<(WechatKind, &WechatApp)> {
        if let Some(a) = self.official_accounts.iter().find(|a| a.appid == appid) {
            return Some((WechatKind::OfficialAccount, a));
        }
        if let Some(a) = self.mini_programs.iter().find(|a| a.appid == appid) {
            return Some((WechatKind::MiniProgram, a));
        }
        self.website
            .as_ref()
            .filter(|a| a.appid == appid)
            .map(|a| (WechatKind::Website, a))
    }

    pub fn reindex(&mut self) {
        self.by_openid.clear();
        for (i, u) in self.users.iter().enumerate() {
            for (appid, openid) in &u.openids {
                self.by_openid.insert((appid.clone(), openid.clone()), i);
            }
        }
    }

    pub fn user(&self, appid: &str, openid: &str) -> Option<&WechatUser> {
        self.by_openid
            .get(&(appid.to_owned(), openid.to_owned()))
            .and_then(|i| self.users.get(*i))
    }
}

/// One WeCom corp with its directory and apps.
#[derive(Debug, Clone)]
pub(crate) struct Corp {
    pub corpid: String,
    pub name: String,
    pub contacts_secret: String,
    pub contacts_callback_token: String,
    pub contacts_encoding_aes_key: String,
    pub apps: Vec<App>,
    pub mini_programs: Vec<WecomMiniProgram>,
    pub dir: Directory,
}

impl Corp {
    pub fn app(&self, agentid: u32) -> Option<&App> {
        self.apps.iter().find(|a| a.agentid == agentid)
    }
}

/// A corp's directory with indexes: children per department and members per department.
#[derive(Debug, Clone, Default)]
pub(crate) struct Directory {
    pub departments: BTreeMap<u32, Department>,
    /// Children sorted the way WeCom lists them: larger order first, then id.
    pub children: HashMap<u32, Vec<u32>>,
    /// Keyed by the lower-cased userid (userids are case-insensitive).
    pub members: BTreeMap<String, Member>,
    /// Department id -> lower-cased userids of its direct members.
    pub dept_members: HashMap<u32, BTreeSet<String>>,
    pub tags: BTreeMap<u32, Tag>,
    /// Bumped on every change so cached visibility is recomputed.
    pub version: u64,
}

impl Directory {
    /// Rebuilds every index and derived field (department leaders) from departments, members and tags.
    pub fn rebuild(&mut self) {
        self.children.clear();
        self.dept_members.clear();
        for d in self.departments.values_mut() {
            d.department_leader.clear();
        }
        let mut kids: Vec<(u32, u32, u32)> = self
            .departments
            .values()
            .map(|d| (d.parentid, d.order, d.id))
            .collect();
        kids.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
        for (parent, _, id) in kids {
            if id != 1 || parent != 0 {
                self.children.entry(parent).or_default().push(id);
            }
        }
        for (key, m) in &self.members {
            for (i, d) in m.department.iter().enumerate() {
                self.dept_members.entry(*d).or_default().insert(key.clone());
                if m.is_leader_in_dept.get(i).copied().unwrap_or(0) == 1
                    && let Some(dep) = self.departments.get_mut(d)
                {
                    dep.department_leader.push(m.userid.clone());
                }
            }
        }
        self.version += 1;
    }

    pub fn member(&self, userid: &str) -> Option<&Member> {
        self.members.get(&userid.to_lowercase())
    }

    /// The department and all its descendants in tree order (pre-order, siblings by order desc).
    pub fn subtree(&self, root: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            if !self.departments.contains_key(&id) {
                continue;
            }
            out.push(id);
            if let Some(kids) = self.children.get(&id) {
                stack.extend(kids.iter().rev());
            }
        }
        out
    }

    pub fn depth(&self, id: u32) -> usize {
        let mut depth = 0;
        let mut cur = id;
        while let Some(d) = self.departments.get(&cur) {
            depth += 1;
            if d.parentid == 0 || depth > 64 {
                break;
            }
            cur = d.parentid;
        }
        depth
    }

    /// Whether `id` is `ancestor` or lies below it.
    pub fn is_within(&self, id: u32, ancestor: u32) -> bool {
        let mut cur = id;
        for _ in 0..64 {
            if cur == ancestor {
                return true;
            }
            match self.departments.get(&cur) {
                Some(d) if d.parentid != 0 => cur = d.parentid,
                _ => return false,
            }
        }
        false
    }
}

/// What one app may see. `all` short-circuits the sets for whole-company scopes.
#[derive(Debug, Default)]
pub(crate) struct Visibility {
    pub all: bool,
    pub depts: HashSet<u32>,
    /// Lower-cased userids visible on their own (scope users and tag users).
    pub users: HashSet<String>,
    pub tags: HashSet<u32>,
}

impl Visibility {
    pub fn whole() -> Arc<Visibility> {
        Arc::new(Visibility {
            all: true,
            ..Visibility::default()
        })
    }

    pub fn compute(dir: &Directory, scope: &Scope) -> Visibility {
        let mut v = Visibility::default();
        let mut roots: Vec<u32> = scope.departments.clone();
        for t in &scope.tags {
            v.tags.insert(*t);
            if let Some(tag) = dir.tags.get(t) {
                roots.extend(tag.departments.iter().copied());
                v.users.extend(tag.users.iter().map(|u| u.to_lowercase()));
            }
        }
        if roots.contains(&1) {
            v.all = true;
            return v;
        }
        for r in roots {
            if !v.depts.contains(&r) {
                v.depts.extend(dir.subtree(r));
            }
        }
        v.users.extend(scope.users.iter().map(|u| u.to_lowercase()));
        v
    }

    pub fn dept(&self, id: u32) -> bool {
        self.all || self.depts.contains(&id)
    }

    pub fn member(&self, m: &Member) -> bool {
        self.all
            || self.users.contains(&m.userid.to_lowercase())
            || m.department.iter().any(|d| self.depts.contains(d))
    }

    pub fn tag(&self, id: u32) -> bool {
        self.all || self.tags.contains(&id)
    }
}

/// Everything the simulator knows that is not runtime state (tokens, codes, counters).
#[derive(Debug, Clone, Default)]
pub(crate) struct World {
    pub corps: Vec<Corp>,
    pub wechat: Wechat,
}

impl World {
    pub fn corp_index(&self, corpid: &str) -> Option<usize> {
        self.corps.iter().position(|c| c.corpid == corpid)
    }
}
