//! Deterministic generation of a world from (seed, members, departments, wechat users): one corp with a
//! department tree at most 15 levels deep, members (some in 2–3 departments), leaders, tags, the default apps,
//! and the WeChat apps and users. Only the seeded RNG and ordered collections are used, so the same inputs
//! give the same world byte for byte.

use std::collections::{BTreeMap, HashSet};

use base64::Engine;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::SimConfig;
use crate::model::{
    App, Corp, Department, Directory, Member, Scope, Tag, Wechat, WechatApp, WechatUser,
    WecomMiniProgram, World,
};
use crate::names;

/// WeCom allows at most 15 levels of departments.
pub(crate) const MAX_DEPTH: usize = 15;

pub(crate) const MAIN_AGENTID: u32 = 1_000_002;
pub(crate) const LIMITED_AGENTID: u32 = 1_000_003;

const HEX: &[u8] = b"0123456789abcdef";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const OPENID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub(crate) fn rand_from(rng: &mut impl RngCore, alphabet: &[u8], n: usize) -> String {
    (0..n)
        .map(|_| {
            let i = (rng.next_u32() as usize) % alphabet.len();
            char::from(alphabet[i])
        })
        .collect()
}

pub(crate) fn rand_hex(rng: &mut impl RngCore, n: usize) -> String {
    rand_from(rng, HEX, n)
}

pub(crate) fn rand_alnum(rng: &mut impl RngCore, n: usize) -> String {
    rand_from(rng, ALNUM, n)
}

/// A 43-character EncodingAESKey that decodes to 32 bytes (base64 of 32 random bytes without the `=`).
pub(crate) fn rand_aes_key(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(b)
}

/// A base64 16-byte key, the shape of a mini-program session_key.
pub(crate) fn rand_session_key(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    base64::engine::general_purpose::STANDARD.encode(b)
}

pub(crate) fn rand_openid(rng: &mut impl RngCore) -> String {
    format!("o{}", rand_from(rng, OPENID_CHARS, 27))
}

fn pick<'a, T>(rng: &mut impl Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// Builds the world for `cfg`.
pub(crate) fn generate(cfg: &SimConfig) -> World {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let corpid = format!("ww{}", rand_hex(&mut rng, 16));
    let corp_name = format!("模拟科技{}有限公司", cfg.seed % 1000);
    let domain = format!("corp{}.example.com", &corpid[2..8]);

    let mut dir = Directory::default();
    let n_depts = cfg.departments.max(1);
    gen_departments(&mut rng, &mut dir, n_depts, &corp_name);
    let dept_ids: Vec<u32> = dir.departments.keys().copied().collect();
    gen_members(&mut rng, &mut dir, cfg.members, &dept_ids, &domain);
    gen_tags(&mut rng, &mut dir, &dept_ids);
    dir.rebuild();

    let contacts_secret = rand_alnum(&mut rng, 43);
    let contacts_callback_token = rand_alnum(&mut rng, 32);
    let contacts_encoding_aes_key = rand_aes_key(&mut rng);

    let main = App {
        name: "main".to_owned(),
        agentid: MAIN_AGENTID,
        secret: rand_alnum(&mut rng, 43),
        callback_token: rand_alnum(&mut rng, 32),
        encoding_aes_key: rand_aes_key(&mut rng),
        restricted_fields: false,
        trusted_domain: None,
        scope: Scope {
            users: Vec::new(),
            departments: vec![1],
            tags: Vec::new(),
        },
        description: "全员可见的主应用".to_owned(),
        home_url: String::new(),
    };
    // "limited" sees one top-level subtree, two people picked by name and the first tag: every kind of scope
    // entry, so visibility tests can exercise each.
    let mut limited_scope = Scope::default();
    if let Some(first) = dir.children.get(&1).and_then(|k| k.first()) {
        limited_scope.departments.push(*first);
    }
    let keys: Vec<&String> = dir.members.keys().collect();
    if !keys.is_empty() {
        for _ in 0..2 {
            let k = pick(&mut rng, &keys);
            if let Some(m) = dir.members.get(*k)
                && !limited_scope.users.contains(&m.userid)
            {
                limited_scope.users.push(m.userid.clone());
            }
        }
    }
    if let Some(t) = dir.tags.keys().next() {
        limited_scope.tags.push(*t);
    }
    let limited = App {
        name: "limited".to_owned(),
        agentid: LIMITED_AGENTID,
        secret: rand_alnum(&mut rng, 43),
        callback_token: rand_alnum(&mut rng, 32),
        encoding_aes_key: rand_aes_key(&mut rng),
        restricted_fields: true,
        trusted_domain: None,
        scope: limited_scope,
        description: "部分可见、2022年后创建的应用".to_owned(),
        home_url: String::new(),
    };
    let wecom_mp = WecomMiniProgram {
        name: "wecom_mp".to_owned(),
        appid: format!("wx{}", rand_hex(&mut rng, 16)),
        app: "main".to_owned(),
    };
    let corp = Corp {
        corpid,
        name: corp_name,
        contacts_secret,
        contacts_callback_token,
        contacts_encoding_aes_key,
        apps: vec![main, limited],
        mini_programs: vec![wecom_mp],
        dir,
    };

    let wechat = gen_wechat(&mut rng, cfg.wechat_users);
    World {
        corps: vec![corp],
        wechat,
    }
}

fn gen_departments(rng: &mut ChaCha8Rng, dir: &mut Directory, n: usize, corp_name: &str) {
    dir.departments.insert(
        1,
        Department {
            id: 1,
            name: corp_name.to_owned(),
            name_en: "Simulated Technology Co., Ltd.".to_owned(),
            parentid: 0,
            order: 100_000_000,
            department_leader: Vec::new(),
        },
    );
    // depth[i] is the depth of department id i (root = 1). Departments at MAX_DEPTH take no children.
    let mut depth: Vec<usize> = vec![0, 1];
    let mut eligible: Vec<u32> = vec![1];
    let top_level = n.min(9);
    for id in 2..=(n as u32) {
        let parent = if (id as usize) <= top_level {
            1
        } else {
            // Prefer recent departments a little so the tree gets some depth, not only breadth.
            let len = eligible.len();
            if rng.random_range(0..4) == 0 {
                eligible[len - 1 - rng.random_range(0..len.min(8))]
            } else {
                eligible[rng.random_range(0..len)]
            }
        };
        let d = depth[parent as usize] + 1;
        depth.push(d);
        if d < MAX_DEPTH {
            eligible.push(id);
        }
        let (p_zh, p_en) = pick(rng, names::DEPT_PREFIX);
        let (s_zh, s_en) = pick(rng, names::DEPT_SUFFIX);
        dir.departments.insert(
            id,
            Department {
                id,
                name: format!("{p_zh}{s_zh}"),
                name_en: format!("{p_en} {s_en}"),
                parentid: parent,
                order: rng.random_range(1..=100_000u32) * 1000,
                department_leader: Vec::new(),
            },
        );
    }
}

fn gen_members(
    rng: &mut ChaCha8Rng,
    dir: &mut Directory,
    n: usize,
    dept_ids: &[u32],
    domain: &str,
) {
    let mut taken: HashSet<String> = HashSet::with_capacity(n);
    let mut per_dept: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mobile_offset = rng.random_range(0..1_000_000_000u64);
    let prefixes = [3u8, 5, 7, 8, 9];
    for i in 0..n {
        let (sur, sur_py) = pick(rng, names::SURNAMES);
        let mut name = (*sur).to_owned();
        let mut base = (*sur_py).to_owned();
        let given = if rng.random_range(0..10) < 6 { 2 } else { 1 };
        for _ in 0..given {
            let (g, g_py) = pick(rng, names::GIVEN);
            name.push_str(g);
            base.push_str(g_py);
        }
        let mut userid = base.clone();
        let mut k = 2;
        while taken.contains(&userid.to_lowercase()) {
            userid = format!("{base}{k}");
            k += 1;
        }
        let key = userid.to_lowercase();
        taken.insert(key.clone());

        // Main department: rarely the root, mostly anywhere in the tree.
        let main = if dept_ids.len() == 1 || rng.random_range(0..50) == 0 {
            1
        } else {
            dept_ids[rng.random_range(1..dept_ids.len())]
        };
        let mut depts = vec![main];
        let extra = match rng.random_range(0..100) {
            0..=4 => 2,
            5..=19 => 1,
            _ => 0,
        };
        for _ in 0..extra {
            let d = dept_ids[rng.random_range(0..dept_ids.len())];
            if !depts.contains(&d) {
                depts.push(d);
            }
        }
        let order: Vec<u32> = depts
            .iter()
            .map(|_| rng.random_range(0..10_000u32))
            .collect();
        for d in &depts {
            per_dept.entry(*d).or_default().push(key.clone());
        }
        let status = match rng.random_range(0..100) {
            0..=89 => 1,
            90..=94 => 2,
            _ => 4,
        };
        let gender = if rng.random_range(0..2) == 0 {
            "1"
        } else {
            "2"
        };
        let (prov, city) = pick(rng, names::CITIES);
        let street = pick(rng, names::STREETS);
        let mobile = format!(
            "1{}{:09}",
            prefixes[rng.random_range(0..prefixes.len())],
            (i as u64 * 7919 + mobile_offset) % 1_000_000_000
        );
        let member = Member {
            userid: userid.clone(),
            name,
            department: depts.clone(),
            order,
            is_leader_in_dept: vec![0; depts.len()],
            direct_leader: Vec::new(),
            main_department: main,
            position: (*pick(rng, names::POSITIONS)).to_owned(),
            mobile,
            gender: gender.to_owned(),
            email: format!("{key}@{domain}"),
            biz_mail: format!("{key}@mail.{domain}"),
            avatar: format!("https://wework.qpic.cn/wwhead/sim{}/0", rand_hex(rng, 12)),
            thumb_avatar: String::new(),
            telephone: format!("0755-{:08}", rng.random_range(0..100_000_000u32)),
            alias: String::new(),
            address: format!("{prov}省{city}市{street}{}号", rng.random_range(1..=999)),
            status,
            qr_code: format!(
                "https://open.work.weixin.qq.com/wwopen/userQRCode?vcode=vc{}",
                rand_hex(rng, 16)
            ),
            open_userid: format!("wo{}", rand_hex(rng, 30)),
        };
        let member = Member {
            thumb_avatar: member.avatar.replace("/0", "/100"),
            ..member
        };
        dir.members.insert(key, member);
    }

    // Leaders: one per non-empty department, sometimes two.
    let mut leaders: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for (dept, keys) in &per_dept {
        let count = if keys.len() >= 5 && rng.random_range(0..5) == 0 {
            2
        } else {
            1
        };
        for _ in 0..count {
            let key = &keys[rng.random_range(0..keys.len())];
            if let Some(m) = dir.members.get_mut(key)
                && let Some(pos) = m.department.iter().position(|d| d == dept)
                && m.is_leader_in_dept[pos] == 0
            {
                m.is_leader_in_dept[pos] = 1;
                leaders.entry(*dept).or_default().push(m.userid.clone());
            }
        }
    }
    // Direct leader: a leader of the main department, else of the nearest ancestor that has one.
    for m in dir.members.values_mut() {
        let mut cur = m.main_department;
        for _ in 0..MAX_DEPTH + 1 {
            if let Some(ls) = leaders.get(&cur)
                && let Some(l) = ls.iter().find(|l| **l != m.userid)
            {
                m.direct_leader = vec![l.clone()];
                break;
            }
            match dir.departments.get(&cur) {
                Some(d) if d.parentid != 0 => cur = d.parentid,
                _ => break,
            }
        }
    }
}

fn gen_tags(rng: &mut ChaCha8Rng, dir: &mut Directory, dept_ids: &[u32]) {
    let n_tags = (dir.members.len() / 2000).clamp(3, names::TAG_NAMES.len());
    let keys: Vec<String> = dir.members.keys().cloned().collect();
    for (i, tagname) in names::TAG_NAMES.iter().take(n_tags).enumerate() {
        let tagid = i as u32 + 1;
        let mut users = Vec::new();
        if !keys.is_empty() {
            let count = rng.random_range(3..=30usize).min(keys.len());
            for _ in 0..count {
                let k = &keys[rng.random_range(0..keys.len())];
                if let Some(m) = dir.members.get(k)
                    && !users.contains(&m.userid)
                {
                    users.push(m.userid.clone());
                }
            }
        }
        // Tag departments never include the root: a root tag would make every tag scope whole-company.
        let mut departments = Vec::new();
        if dept_ids.len() > 1 {
            for _ in 0..rng.random_range(0..=2) {
                let d = dept_ids[rng.random_range(1..dept_ids.len())];
                if !departments.contains(&d) {
                    departments.push(d);
                }
            }
        }
        dir.tags.insert(
            tagid,
            Tag {
                tagid,
                tagname: (*tagname).to_owned(),
                users,
                departments,
            },
        );
    }
}

fn gen_wechat_app(rng: &mut ChaCha8Rng, name: &str, with_callback: bool) -> WechatApp {
    let appid = format!("wx{}", rand_hex(rng, 16));
    let secret = rand_hex(rng, 32);
    let (token, encoding_aes_key, original_id) = if with_callback {
        (
            rand_alnum(rng, 32),
            rand_aes_key(rng),
            format!("gh_{}", rand_hex(rng, 12)),
        )
    } else {
        (String::new(), String::new(), String::new())
    };
    WechatApp {
        name: name.to_owned(),
        appid,
        secret,
        token,
        encoding_aes_key,
        original_id,
        trusted_domain: None,
    }
}

fn gen_wechat(rng: &mut ChaCha8Rng, n_users: usize) -> Wechat {
    let oa = gen_wechat_app(rng, "oa", true);
    let mp1 = gen_wechat_app(rng, "mp1", false);
    let mp2 = gen_wechat_app(rng, "mp2", false);
    let web = gen_wechat_app(rng, "web", false);
    let appids = [
        oa.appid.clone(),
        mp1.appid.clone(),
        mp2.appid.clone(),
        web.appid.clone(),
    ];
    let mut users = Vec::with_capacity(n_users);
    for i in 0..n_users {
        let nickname = match rng.random_range(0..3) {
            0 => {
                let (sur, _) = pick(rng, names::SURNAMES);
                let (g, _) = pick(rng, names::GIVEN);
                format!("{sur}{g}")
            }
            _ => {
                let w = pick(rng, names::NICK_WORDS);
                let (g, _) = pick(rng, names::GIVEN);
                format!("{w}{g}")
            }
        };
        let (prov, city) = pick(rng, names::CITIES);
        let unionid = format!("o{}", rand_from(rng, OPENID_CHARS, 27));
        let mut openids = BTreeMap::new();
        for appid in &appids {
            openids.insert(appid.clone(), rand_openid(rng));
        }
        let subscribed = if rng.random_range(0..10) < 8 {
            vec![appids[0].clone()]
        } else {
            Vec::new()
        };
        users.push(WechatUser {
            unionid,
            nickname,
            headimgurl: format!(
                "https://thirdwx.qlogo.cn/mmopen/vi_32/{}/132",
                rand_alnum(rng, 40)
            ),
            sex: rng.random_range(0..=2),
            province: (*prov).to_owned(),
            city: (*city).to_owned(),
            country: "中国".to_owned(),
            phone: format!("139{:08}", (i as u64 * 104_729) % 100_000_000),
            openids,
            subscribed,
        });
    }
    let mut wechat = Wechat {
        official_accounts: vec![oa],
        mini_programs: vec![mp1, mp2],
        website: Some(web),
        users,
        by_openid: Default::default(),
    };
    wechat.reindex();
    wechat
}
