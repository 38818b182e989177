//! Defaults, file, environment, overrides and `*_file` secrets, in that order of precedence.

use secrecy::ExposeSecret;
use wxbridge_config::{Sources, TokenStoreConfig, inspect, load};

use crate::support::{error_paths, good_toml, write};

#[test]
fn good_file_loads_with_defaults_filled_in() {
    let w = write(&good_toml());
    let loaded = load(&Sources::file(&w.path)).unwrap();
    let c = loaded.config;
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:9999");
    assert_eq!(
        c.server.public_url_for("/callback/demo"),
        "https://bridge.example.com/callback/demo"
    );
    assert_eq!(c.database.url(), "sqlite://./data/wxbridge.db");
    assert!(matches!(c.tokens.store, TokenStoreConfig::Sql));
    assert_eq!(c.tokens.refresh_margin.as_secs(), 300);
    assert_eq!(
        c.upstream.wecom_base_url.as_str(),
        "https://qyapi.weixin.qq.com/"
    );
    let t = c.tenant("demo").unwrap();
    let app = &t.wecom.as_ref().unwrap().apps["main"];
    assert_eq!(app.agentid.get(), 1000002);
    assert_eq!(app.secret.expose_secret(), "app-secret-value");
    assert!(app.callback.is_some());
}

#[test]
fn env_overrides_file_and_keeps_digit_secrets_as_strings() {
    let w = write(&good_toml());
    let sources = Sources::file(&w.path).with_env([
        (
            "WXBRIDGE_TENANTS__DEMO__WECOM__APPS__MAIN__SECRET",
            "0123456789",
        ),
        (
            "WXBRIDGE_TENANTS__DEMO__WECOM__APPS__MAIN__AGENTID",
            "1000009",
        ),
        ("WXBRIDGE_TOKENS__STORE", "memory"),
        (
            "WXBRIDGE_TENANTS__DEMO__HOSTS",
            "a.example.com, b.example.com",
        ),
        ("PATH", "/usr/bin"),
    ]);
    let c = load(&sources).unwrap().config;
    let t = c.tenant("demo").unwrap();
    let app = &t.wecom.as_ref().unwrap().apps["main"];
    assert_eq!(app.secret.expose_secret(), "0123456789");
    assert_eq!(app.agentid.get(), 1000009);
    assert!(matches!(c.tokens.store, TokenStoreConfig::Memory));
    assert_eq!(t.hosts, vec!["a.example.com", "b.example.com"]);
}

#[test]
fn env_can_add_a_whole_tenant() {
    let w = write(&good_toml());
    let sources = Sources::file(&w.path).with_env([
        (
            "WXBRIDGE_TENANTS__SECOND__WECOM__CORPID",
            "ww0000000000000002",
        ),
        (
            "WXBRIDGE_TENANTS__SECOND__WECOM__APPS__HR__AGENTID",
            "1000003",
        ),
        ("WXBRIDGE_TENANTS__SECOND__WECOM__APPS__HR__SECRET", "s2"),
    ]);
    let c = load(&sources).unwrap().config;
    assert_eq!(c.tenants.len(), 2);
    assert_eq!(
        c.tenant("second").unwrap().wecom.as_ref().unwrap().apps["hr"]
            .agentid
            .get(),
        1000003
    );
}

#[test]
fn overrides_win_over_env() {
    let w = write(&good_toml());
    let sources = Sources::file(&w.path)
        .with_env([("WXBRIDGE_SERVER__LISTEN", "127.0.0.1:1111")])
        .with_override("server.listen", "127.0.0.1:2222");
    assert_eq!(load(&sources).unwrap().config.server.listen.port(), 2222);
}

#[test]
fn unknown_env_variable_is_a_warning_naming_only_the_variable() {
    let w = write(&good_toml());
    let sources = Sources::file(&w.path).with_env([
        (
            "WXBRIDGE_TENANTS__DEMO__WECOM__APPS__MAIN__SECRT",
            "super-secret-value",
        ),
        ("WXBRIDGE_TEST_POSTGRES_URL", "postgres://x"),
        ("WXBRIDGE_LOG", "debug"),
    ]);
    let loaded = load(&sources).unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let w = &loaded.warnings[0];
    assert_eq!(w.path, "WXBRIDGE_TENANTS__DEMO__WECOM__APPS__MAIN__SECRT");
    assert!(!w.to_string().contains("super-secret-value"));
}

#[test]
fn secret_from_file_is_read_and_trimmed() {
    let toml = good_toml().replace(
        "secret = \"app-secret-value\"",
        "secret_file = \"app.secret\"",
    );
    let w = write(&toml);
    std::fs::write(w.dir.path().join("app.secret"), "from-a-file\n").unwrap();
    let c = load(&Sources::file(&w.path)).unwrap().config;
    let app = &c.tenant("demo").unwrap().wecom.as_ref().unwrap().apps["main"];
    assert_eq!(app.secret.expose_secret(), "from-a-file");
}

#[test]
fn secret_file_from_env_works() {
    let toml = good_toml().replace("secret = \"app-secret-value\"\n", "");
    let w = write(&toml);
    let secret_path = w.dir.path().join("s");
    std::fs::write(&secret_path, "env-file-secret").unwrap();
    let sources = Sources::file(&w.path).with_env([(
        "WXBRIDGE_TENANTS__DEMO__WECOM__APPS__MAIN__SECRET_FILE",
        secret_path.to_str().unwrap(),
    )]);
    let c = load(&sources).unwrap().config;
    let app = &c.tenant("demo").unwrap().wecom.as_ref().unwrap().apps["main"];
    assert_eq!(app.secret.expose_secret(), "env-file-secret");
}

#[test]
fn secret_and_secret_file_together_is_an_error_naming_the_key() {
    let toml = good_toml().replace(
        "secret = \"app-secret-value\"",
        "secret = \"a\"\nsecret_file = \"b\"",
    );
    let i = inspect(&Sources::file(&write(&toml).path)).unwrap();
    assert!(i.config.is_none());
    let p = i.problems.iter().find(|p| p.is_error()).unwrap();
    assert_eq!(p.path, "tenants.demo.wecom.apps.main.secret");
    assert!(p.message.contains("secret_file"), "{p}");
}

#[test]
fn missing_secret_file_is_reported_without_failing_the_load_call() {
    let toml = good_toml().replace(
        "secret = \"app-secret-value\"",
        "secret_file = \"nope/missing\"",
    );
    let i = inspect(&Sources::file(&write(&toml).path)).unwrap();
    assert_eq!(
        error_paths(&i),
        vec!["tenants.demo.wecom.apps.main.secret_file"]
    );
}

#[test]
fn missing_config_file_is_its_own_error() {
    let err = inspect(&Sources::file("/definitely/not/here.toml")).unwrap_err();
    assert!(err.to_string().contains("/definitely/not/here.toml"));
}
