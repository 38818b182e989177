//! Validation reports every problem with its dotted path and a hint.

use wxbridge_config::Severity;

use crate::support::{KEY_A, error_paths, good_toml, inspect_toml};

#[test]
fn unknown_key_names_full_path_and_suggests() {
    let toml = good_toml().replace(
        "secret = \"app-secret-value\"",
        "secrt = \"app-secret-value\"",
    );
    let i = inspect_toml(&toml);
    let p = i
        .problems
        .iter()
        .find(|p| p.path == "tenants.demo.wecom.apps.main.secrt")
        .expect("unknown key reported");
    assert!(
        p.message
            .contains("unknown key `tenants.demo.wecom.apps.main.secrt`"),
        "{p}"
    );
    assert!(
        p.hint
            .as_deref()
            .unwrap()
            .contains("did you mean `secret`?"),
        "{p}"
    );
}

#[test]
fn all_unknown_keys_are_reported_at_once() {
    let toml = format!(
        "{}\n[server2]\nx = 1\n",
        good_toml().replace("listen =", "listn =")
    );
    let i = inspect_toml(&toml);
    let mut paths = error_paths(&i);
    paths.sort();
    assert_eq!(paths, vec!["server.listn", "server2"]);
}

#[test]
fn bad_encoding_aes_key_is_reported_with_path_and_hint() {
    let toml = good_toml().replace("6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", "tooshort");
    let i = inspect_toml(&toml);
    let p = i.problems.iter().find(|p| p.is_error()).unwrap();
    assert_eq!(p.path, "tenants.demo.wecom.apps.main.encoding_aes_key");
    assert!(p.message.contains("43"), "{p}");
    assert!(p.hint.as_deref().unwrap().contains("EncodingAESKey"), "{p}");
    assert!(
        !p.to_string().contains("tooshort"),
        "the key value must not be echoed: {p}"
    );
}

#[test]
fn non_base64_key_of_right_length_is_rejected() {
    let bad = format!("{}!", &KEY_A[..42]);
    let toml = good_toml().replace("6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", &bad);
    assert_eq!(
        error_paths(&inspect_toml(&toml)),
        vec!["tenants.demo.wecom.apps.main.encoding_aes_key"]
    );
}

#[test]
fn many_problems_are_collected_in_one_pass() {
    let toml = format!(
        r#"
[server]
public_url = "ftp://example.com"
[tokens]
store = "redis"
[tenants.Bad_Key.wecom]
corpid = "ww1436e0e65a779aee"
[tenants.Bad_Key.wecom.apps.a]
agentid = 1000002
secret = "s"
callback_token = "x"
encoding_aes_key = "{KEY_A}"
[tenants.Bad_Key.wecom.apps.b]
agentid = 1000002
[tenants.Bad_Key.wecom.mini_programs.m]
appid = "wx00000000000000a1"
app = "nope"
"#
    );
    let i = inspect_toml(&toml);
    assert!(i.config.is_none());
    let mut paths = error_paths(&i);
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "server.public_url",
            "tenants.Bad_Key",
            "tenants.Bad_Key.wecom.apps.a.callback_token",
            "tenants.Bad_Key.wecom.apps.b.agentid",
            "tenants.Bad_Key.wecom.apps.b.secret",
            "tenants.Bad_Key.wecom.mini_programs.m.app",
            "tokens.redis_url",
        ]
    );
    assert!(
        i.problems
            .iter()
            .filter(|p| p.is_error())
            .all(|p| p.hint.is_some()),
        "{:#?}",
        i.problems
    );
}

#[test]
fn empty_tenants_is_an_error() {
    let i = inspect_toml("[server]\nlisten = \"127.0.0.1:1\"\n");
    assert_eq!(error_paths(&i), vec!["tenants"]);
}

#[test]
fn unusual_ids_are_warnings_not_errors() {
    let toml = good_toml().replace("ww1436e0e65a779aee", "corp-from-sim");
    let i = inspect_toml(&toml);
    assert!(i.config.is_some());
    let w = i
        .problems
        .iter()
        .find(|p| p.path == "tenants.demo.wecom.corpid")
        .unwrap();
    assert_eq!(w.severity, Severity::Warning);
}

#[test]
fn official_account_without_key_is_fine_only_in_plain_mode() {
    let oa = |mode: &str| {
        format!(
            "{}\n[tenants.demo.wechat.official_accounts.news]\nappid = \"wx00000000000000b2\"\nsecret = \"s\"\ntoken = \"tok123\"\nmode = \"{mode}\"\n",
            good_toml()
        )
    };
    assert!(error_paths(&inspect_toml(&oa("plain"))).is_empty());
    assert_eq!(
        error_paths(&inspect_toml(&oa("safe"))),
        vec!["tenants.demo.wechat.official_accounts.news.encoding_aes_key"]
    );
    assert_eq!(
        error_paths(&inspect_toml(&oa("loud"))),
        vec!["tenants.demo.wechat.official_accounts.news.mode"]
    );
}

#[test]
fn duplicate_appids_within_a_tenant_are_errors() {
    let toml = format!(
        "{}\n[tenants.demo.wechat.mini_programs.a]\nappid = \"wx00000000000000c3\"\nsecret = \"s\"\n[tenants.demo.wechat.mini_programs.b]\nappid = \"wx00000000000000c3\"\nsecret = \"s\"\n",
        good_toml()
    );
    assert_eq!(
        error_paths(&inspect_toml(&toml)),
        vec!["tenants.demo.wechat.mini_programs.b.appid"]
    );
}

#[test]
fn wrong_type_names_the_key() {
    let toml = good_toml().replace("agentid = 1000002", "agentid = \"abc\"");
    let i = inspect_toml(&toml);
    assert_eq!(
        error_paths(&i),
        vec!["tenants.demo.wecom.apps.main.agentid"]
    );
}

#[test]
fn session_lifetimes_default_load_and_are_bounded() {
    let i = inspect_toml(&good_toml());
    let server = &i.config.as_ref().unwrap().server;
    assert_eq!(server.session_ttl, std::time::Duration::from_secs(604_800));
    assert_eq!(server.session_idle_timeout, None);

    let set = good_toml().replace(
        "listen = \"127.0.0.1:9999\"",
        "listen = \"127.0.0.1:9999\"\nsession_ttl_secs = 3600\nsession_idle_timeout_secs = 900",
    );
    let i = inspect_toml(&set);
    assert!(!i.has_errors(), "{:#?}", i.problems);
    let server = &i.config.as_ref().unwrap().server;
    assert_eq!(server.session_ttl, std::time::Duration::from_secs(3600));
    assert_eq!(
        server.session_idle_timeout,
        Some(std::time::Duration::from_secs(900))
    );

    let bad = good_toml().replace(
        "listen = \"127.0.0.1:9999\"",
        "listen = \"127.0.0.1:9999\"\nsession_ttl_secs = 10\nsession_idle_timeout_secs = 20",
    );
    let i = inspect_toml(&bad);
    let paths = error_paths(&i);
    assert!(
        paths.contains(&"server.session_ttl_secs".to_owned()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"server.session_idle_timeout_secs".to_owned()),
        "{paths:?}"
    );

    // The dispatch worker's lease: 120 s unless set, 5 to 3600 s.
    assert_eq!(server.dispatch_lease, std::time::Duration::from_secs(120));
    let lease = good_toml().replace(
        "listen = \"127.0.0.1:9999\"",
        "listen = \"127.0.0.1:9999\"\ndispatch_lease_secs = 10",
    );
    let i = inspect_toml(&lease);
    assert!(!i.has_errors(), "{:#?}", i.problems);
    assert_eq!(
        i.config.as_ref().unwrap().server.dispatch_lease,
        std::time::Duration::from_secs(10)
    );
    for bad in [
        "dispatch_lease_secs = 0",
        "dispatch_lease_secs = 4",
        "dispatch_lease_secs = 3601",
    ] {
        let toml = good_toml().replace(
            "listen = \"127.0.0.1:9999\"",
            &format!("listen = \"127.0.0.1:9999\"\n{bad}"),
        );
        let paths = error_paths(&inspect_toml(&toml));
        assert_eq!(paths, ["server.dispatch_lease_secs"], "{bad}");
    }

    let longer_idle = good_toml().replace(
        "listen = \"127.0.0.1:9999\"",
        "listen = \"127.0.0.1:9999\"\nsession_ttl_secs = 3600\nsession_idle_timeout_secs = 7200",
    );
    let paths = error_paths(&inspect_toml(&longer_idle));
    assert_eq!(paths, ["server.session_idle_timeout_secs"]);
}
