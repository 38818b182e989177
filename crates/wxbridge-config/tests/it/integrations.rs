//! The keys added for callbacks and the admin UI: `[tenants.<key>.webhook]`, `[tenants.<key>.admin]`,
//! passive replies, mini-program message push and `server.admin_token_hash`.

use secrecy::ExposeSecret;
use wxbridge_config::{MessageMode, Sources, TenantConfig, load};

use crate::support::{KEY_A, error_paths, good_toml, inspect_toml, write};

fn tenant_of(toml: &str, env: &[(&str, &str)]) -> TenantConfig {
    let w = write(toml);
    let sources = Sources::file(&w.path).with_env(env.iter().copied());
    load(&sources)
        .unwrap()
        .config
        .tenant("demo")
        .unwrap()
        .clone()
}

#[test]
fn webhook_is_read_with_defaults_and_patterns() {
    let t = tenant_of(
        &format!(
            "{}\n[tenants.demo.webhook]\nurl = \"https://app.example.com/hook\"\nsecret = \"0123456789abcdef\"\nevents = [\"contact.*\", \"user.merged\"]\n",
            good_toml()
        ),
        &[],
    );
    let w = t.webhook.unwrap();
    assert_eq!(w.url.as_str(), "https://app.example.com/hook");
    assert_eq!(w.secret.expose_secret(), "0123456789abcdef");
    assert_eq!(w.max_attempts, 12);
    assert_eq!(w.timeout.as_secs(), 10);
    assert!(w.wants("contact.user.created"));
    assert!(w.wants("user.merged"));
    assert!(!w.wants("user.updated"));
    assert!(!w.wants("message.received"));
}

#[test]
fn no_webhook_table_means_no_webhook() {
    assert!(tenant_of(&good_toml(), &[]).webhook.is_none());
}

#[test]
fn bad_webhook_keys_are_errors_naming_the_key() {
    let i = inspect_toml(&format!(
        "{}\n[tenants.demo.webhook]\nurl = \"ftp://x.example.com/\"\nsecret = \"short\"\nevents = [\"Contact.*\", \"a*b\"]\nmax_attempts = 0\ntimeout_secs = 500\n",
        good_toml()
    ));
    let paths = error_paths(&i);
    for p in [
        "tenants.demo.webhook.url",
        "tenants.demo.webhook.secret",
        "tenants.demo.webhook.events[0]",
        "tenants.demo.webhook.events[1]",
        "tenants.demo.webhook.max_attempts",
        "tenants.demo.webhook.timeout_secs",
    ] {
        assert!(paths.iter().any(|x| x == p), "{p} not in {paths:?}");
    }
    let text = format!("{:?}", i.problems);
    assert!(!text.contains("short\""), "the secret leaked: {text}");
}

#[test]
fn admin_table_needs_a_known_app_and_reads_integer_lists_from_env() {
    let t = tenant_of(
        &format!(
            "{}\n[tenants.demo.admin]\nwecom_userids = [\"boss\"]\n",
            good_toml()
        ),
        &[
            (
                "WXBRIDGE_TENANTS__DEMO__ADMIN__WECOM_DEPARTMENT_IDS",
                "3, 7",
            ),
            ("WXBRIDGE_TENANTS__DEMO__ADMIN__WECOM_TAG_IDS", "12"),
        ],
    );
    assert_eq!(t.admin.wecom_department_ids, vec![3, 7]);
    assert_eq!(t.admin.wecom_tag_ids, vec![12]);
    assert_eq!(t.admin.wecom_userids, vec!["boss".to_owned()]);
    assert!(!t.admin.is_empty());

    let i = inspect_toml(&format!(
        "{}\n[tenants.demo.admin]\napp = \"nope\"\nwecom_userids = [\"boss\"]\n",
        good_toml()
    ));
    assert!(error_paths(&i).contains(&"tenants.demo.admin.app".to_owned()));
}

#[test]
fn passive_replies_are_read_and_bounded() {
    let t = tenant_of(
        &good_toml().replace(
            "agentid = 1000002",
            "agentid = 1000002\ndefault_reply = \"got it\"\nsubscribe_reply = \"hi\"",
        ),
        &[],
    );
    let app = &t.wecom.unwrap().apps["main"];
    assert_eq!(app.default_reply.as_deref(), Some("got it"));
    assert_eq!(app.subscribe_reply.as_deref(), Some("hi"));

    let long = "x".repeat(2049);
    let i = inspect_toml(&good_toml().replace(
        "agentid = 1000002",
        &format!("agentid = 1000002\ndefault_reply = \"{long}\"\nsubscribe_reply = \" \""),
    ));
    let paths = error_paths(&i);
    assert!(paths.contains(&"tenants.demo.wecom.apps.main.default_reply".to_owned()));
    assert!(paths.contains(&"tenants.demo.wecom.apps.main.subscribe_reply".to_owned()));
}

#[test]
fn mini_program_push_is_optional_and_checked() {
    let mp = "\n[tenants.demo.wechat.mini_programs.shop]\nappid = \"wx00000000000000c3\"\nsecret = \"s3cret\"\n";
    let t = tenant_of(&format!("{}{mp}", good_toml()), &[]);
    assert!(t.wechat.mini_programs["shop"].push.is_none());

    let t = tenant_of(
        &format!(
            "{}{mp}push_token = \"tok123\"\npush_encoding_aes_key = \"{KEY_A}\"\n",
            good_toml()
        ),
        &[],
    );
    let push = t.wechat.mini_programs["shop"].push.clone().unwrap();
    assert_eq!(push.mode, MessageMode::Safe);
    assert!(push.aes_key.is_some());

    let t = tenant_of(
        &format!(
            "{}{mp}push_token = \"tok123\"\npush_mode = \"plain\"\n",
            good_toml()
        ),
        &[],
    );
    assert_eq!(
        t.wechat.mini_programs["shop"].push.clone().unwrap().mode,
        MessageMode::Plain
    );

    let i = inspect_toml(&format!("{}{mp}push_token = \"tok123\"\n", good_toml()));
    assert!(
        error_paths(&i)
            .contains(&"tenants.demo.wechat.mini_programs.shop.push_encoding_aes_key".to_owned())
    );
    let i = inspect_toml(&format!("{}{mp}push_mode = \"weird\"\n", good_toml()));
    assert!(
        error_paths(&i).contains(&"tenants.demo.wechat.mini_programs.shop.push_mode".to_owned())
    );
}

#[test]
fn admin_token_hash_must_be_a_hash() {
    let i = inspect_toml(&good_toml().replace(
        "[server]",
        "[server]\nadmin_token_hash = \"wxa_plain_token\"",
    ));
    assert!(error_paths(&i).contains(&"server.admin_token_hash".to_owned()));
    let w = write(&good_toml().replace(
        "[server]",
        &format!(
            "[server]\nadmin_token_hash = \"sha256:{}\"",
            "ab".repeat(32)
        ),
    ));
    let c = load(&Sources::file(&w.path)).unwrap().config;
    assert_eq!(c.server.admin_token_hash.unwrap().as_bytes(), &[0xab; 32]);
}
