//! Debug output of the file struct and of the runtime config never shows a secret.

use wxbridge_config::{Sources, load};

use crate::support::{KEY_SAMPLE, write};

#[test]
fn debug_of_config_hides_every_secret() {
    let toml = format!(
        r#"
[database]
url = "postgres://user:dbpassword42@localhost/db"
[tokens]
store = "redis"
redis_url = "redis://:redispassword42@localhost:6379"
[tenants.demo.wecom]
corpid = "ww1436e0e65a779aee"
[tenants.demo.wecom.contacts]
secret = "contactssecret42"
[tenants.demo.wecom.apps.main]
agentid = 1000002
secret = "appsecret42"
callback_token = "callbacktoken42"
encoding_aes_key = "{KEY_SAMPLE}"
[tenants.demo.wechat.official_accounts.news]
appid = "wx00000000000000b2"
secret = "oasecret42"
token = "oatoken42"
encoding_aes_key = "{KEY_SAMPLE}"
[tenants.demo.wechat.mini_programs.shop]
appid = "wx00000000000000c3"
secret = "mpsecret42"
[tenants.demo.wechat.website]
appid = "wx00000000000000d4"
secret = "websitesecret42"
"#
    );
    let w = write(&toml);
    let loaded = load(&Sources::file(&w.path)).unwrap();
    let dbg = format!("{:?} {:#?}", loaded.config, loaded.config);
    for secret in [
        "dbpassword42",
        "redispassword42",
        "contactssecret42",
        "appsecret42",
        "callbacktoken42",
        "oasecret42",
        "oatoken42",
        "mpsecret42",
        "websitesecret42",
        KEY_SAMPLE,
    ] {
        assert!(!dbg.contains(secret), "Debug of Config shows {secret}");
    }
    // The non-secret parts are still there, so the test would notice an empty Debug.
    assert!(dbg.contains("ww1436e0e65a779aee") && dbg.contains("1000002"));

    let mut problems = Vec::new();
    let file = wxbridge_config::load::read_file_config(&Sources::file(&w.path), &mut problems)
        .unwrap()
        .unwrap();
    let dbg = format!("{file:?}");
    assert!(
        !dbg.contains("appsecret42") && !dbg.contains("dbpassword42"),
        "Debug of FileConfig leaks"
    );
}
