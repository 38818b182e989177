//! The list of every key the file accepts, derived from the file structs themselves so it cannot drift:
//! used to map `WXBRIDGE_*` variables to keys (and warn about unknown ones), to type environment values,
//! and by the test that checks `wxbridge.example.toml` mentions every key.

use std::collections::BTreeMap;

use crate::file::{
    AdminFile, ContactsFile, DatabaseFile, DirectoryFile, FileConfig, FileSecret,
    OfficialAccountFile, ServerFile, TenantFile, TokensFile, UpstreamFile, WebhookFile,
    WebsiteFile, WechatFile, WechatMiniProgramFile, WecomAppFile, WecomFile, WecomMiniProgramFile,
};

/// The type of a leaf key, so an environment value is read as the type the file struct expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafKind {
    String,
    Integer,
    /// A number that may have a fraction (`max_removal_share`).
    Float,
    Bool,
    StringList,
    /// A list of integers (`wecom_department_ids`); comma-separated in the environment.
    IntegerList,
}

/// One accepted key: its dotted path with `*` for a user-chosen name (tenant key, app name ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    pub path: String,
    pub kind: LeafKind,
}

impl KeySpec {
    /// Does this spec match the concrete `segments` (tenant and app names in place of `*`)?
    pub fn matches(&self, segments: &[&str]) -> bool {
        let pattern: Vec<&str> = self.path.split('.').collect();
        pattern.len() == segments.len()
            && pattern
                .iter()
                .zip(segments)
                .all(|(p, s)| *p == "*" || p == s)
    }

    /// The environment variable for this key, with `*` left in for names.
    pub fn env_name(&self) -> String {
        let mut name = String::from("WXBRIDGE_");
        name.push_str(
            &self
                .path
                .split('.')
                .map(str::to_ascii_uppercase)
                .collect::<Vec<_>>()
                .join("__"),
        );
        name
    }
}

/// Every key of the file, in file order, with `*` for names.
pub fn known_keys() -> Vec<KeySpec> {
    let sample = full_sample();
    let mut out = Vec::new();
    // Serialising to JSON cannot fail for these plain structs; an empty list would only disable env mapping.
    if let Ok(value) = serde_json::to_value(&sample) {
        collect(&value, String::new(), &mut out);
    }
    out
}

fn collect(value: &serde_json::Value, prefix: String, out: &mut Vec<KeySpec>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                collect(v, join(k), out);
            }
        }
        serde_json::Value::Array(items) => out.push(KeySpec {
            path: prefix,
            kind: if items.first().is_some_and(serde_json::Value::is_number) {
                LeafKind::IntegerList
            } else {
                LeafKind::StringList
            },
        }),
        serde_json::Value::Number(n) => out.push(KeySpec {
            path: prefix,
            kind: if n.is_f64() {
                LeafKind::Float
            } else {
                LeafKind::Integer
            },
        }),
        serde_json::Value::Bool(_) => out.push(KeySpec {
            path: prefix,
            kind: LeafKind::Bool,
        }),
        _ => out.push(KeySpec {
            path: prefix,
            kind: LeafKind::String,
        }),
    }
}

/// A config with every optional key set and one `*` entry in every map. Struct literals without
/// `..Default::default()` on purpose: adding a field to a file struct fails to compile here until it is
/// listed, which keeps the env mapping and the example-file drift test complete.
fn full_sample() -> FileConfig {
    let s = || Some(FileSecret::new("x"));
    let f = || Some("x".to_owned());
    let app = WecomAppFile {
        agentid: 1,
        secret: s(),
        secret_file: f(),
        callback_token: s(),
        callback_token_file: f(),
        encoding_aes_key: s(),
        encoding_aes_key_file: f(),
        trusted_domain: f(),
        js_safe_domains: vec!["x".into()],
        default_reply: f(),
        subscribe_reply: f(),
    };
    let wecom = WecomFile {
        corpid: "x".into(),
        contacts: Some(ContactsFile {
            secret: s(),
            secret_file: f(),
            callback_token: s(),
            callback_token_file: f(),
            encoding_aes_key: s(),
            encoding_aes_key_file: f(),
        }),
        apps: BTreeMap::from([("*".to_owned(), app)]),
        mini_programs: BTreeMap::from([(
            "*".to_owned(),
            WecomMiniProgramFile {
                appid: "x".into(),
                app: "x".into(),
            },
        )]),
        directory: Some(DirectoryFile {
            app: f(),
            calls_per_minute: 1,
            concurrency: 1,
            // A fraction, so the walk types it as a float.
            max_removal_share: 0.5,
            strategy: "x".into(),
        }),
    };
    let oa = OfficialAccountFile {
        appid: "x".into(),
        secret: s(),
        secret_file: f(),
        token: s(),
        token_file: f(),
        encoding_aes_key: s(),
        encoding_aes_key_file: f(),
        mode: "x".into(),
        original_id: f(),
        js_safe_domains: vec!["x".into()],
        default_reply: f(),
        subscribe_reply: f(),
    };
    let wechat = WechatFile {
        official_accounts: BTreeMap::from([("*".to_owned(), oa)]),
        mini_programs: BTreeMap::from([(
            "*".to_owned(),
            WechatMiniProgramFile {
                appid: "x".into(),
                secret: s(),
                secret_file: f(),
                push_token: s(),
                push_token_file: f(),
                push_encoding_aes_key: s(),
                push_encoding_aes_key_file: f(),
                push_mode: f(),
            },
        )]),
        website: Some(WebsiteFile {
            appid: "x".into(),
            secret: s(),
            secret_file: f(),
        }),
    };
    let tenant = TenantFile {
        name: f(),
        hosts: vec!["x".into()],
        api_key_hashes: vec!["x".into()],
        return_to_allow: vec!["x".into()],
        wecom: Some(wecom),
        wechat: Some(wechat),
        webhook: Some(WebhookFile {
            url: "x".into(),
            secret: s(),
            secret_file: f(),
            events: vec!["x".into()],
            max_attempts: 1,
            timeout_secs: 1,
        }),
        admin: Some(AdminFile {
            app: f(),
            wecom_department_ids: vec![1],
            wecom_tag_ids: vec![1],
            wecom_userids: vec!["x".into()],
        }),
    };
    FileConfig {
        server: ServerFile {
            listen: "x".into(),
            public_url: "x".into(),
            data_dir: "x".into(),
            session_ttl_secs: 1,
            session_idle_timeout_secs: Some(1),
            admin_token_hash: f(),
            dispatch_lease_secs: 1,
        },
        database: DatabaseFile {
            url: s(),
            url_file: f(),
        },
        tokens: TokensFile {
            store: "x".into(),
            redis_url: s(),
            redis_url_file: f(),
            refresh_margin_secs: 1,
            wechat_token_api: "x".into(),
        },
        upstream: UpstreamFile {
            wecom_base_url: "x".into(),
            wechat_base_url: "x".into(),
            oauth_base_url: "x".into(),
            wecom_login_base_url: "x".into(),
        },
        tenants: BTreeMap::from([("*".to_owned(), tenant)]),
    }
}

/// The accepted keys of the table at `table_path` (concrete names), for "did you mean" suggestions.
pub fn keys_under(table_path: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = known_keys()
        .into_iter()
        .filter_map(|k| {
            let segs: Vec<&str> = k.path.split('.').collect();
            if segs.len() <= table_path.len() {
                return None;
            }
            let prefix_ok = segs
                .iter()
                .zip(table_path)
                .all(|(p, s)| *p == "*" || p == s);
            prefix_ok.then(|| segs[table_path.len()].to_owned())
        })
        .collect();
    out.dedup();
    out
}

/// The closest of `candidates` to `word` when it is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .filter(|c| *c != "*")
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let v = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            cur.push(v);
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}
