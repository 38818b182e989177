//! Live checks against wx-sim: errcodes become fixes, token health remembers the last error, and the
//! console setup lists every callback URL.

use std::sync::Arc;

use domain::Tenants;
use domain::check::{CheckReport, Status};
use wx_api::clock::SystemClock;
use wx_api::token::MemoryTokenStore;
use wxbridge_config::{Config, FileConfig, FileSecret, Sources};

struct Setup {
    _dir: tempfile::TempDir,
    config: Config,
}

fn config(sim: &wx_sim::Simulator, edit: impl FnOnce(&mut FileConfig)) -> Setup {
    let mut file =
        FileConfig::from_toml_str(&sim.info().wxbridge_config("127.0.0.1:0").unwrap()).unwrap();
    file.server.public_url = "https://bridge.example.com".into();
    edit(&mut file);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, file.to_toml_string().unwrap()).unwrap();
    let config = wxbridge_config::load(&Sources::file(&path)).unwrap().config;
    Setup { _dir: dir, config }
}

fn tenants(config: &Config) -> Tenants {
    let tokens = Tenants::token_manager(
        config,
        Arc::new(MemoryTokenStore::new()),
        Arc::new(SystemClock),
    );
    Tenants::build(config, tokens).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_simulated_tenant_passes_every_check() {
    let sim = wx_sim::Simulator::generate(wx_sim::SimConfig::new(5, 30, 4));
    let _running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let s = config(&sim, |_| {});
    let mut report = CheckReport::from_config(Vec::new(), Some(&s.config));
    report.run_live(&tenants(&s.config)).await;
    assert!(!report.has_errors(), "{}", report.to_text());
    let t = &report.tenants[0];
    assert!(
        t.items
            .iter()
            .any(|i| i.check == "visible scope" && i.detail.contains("department")),
        "{}",
        report.to_text()
    );
    assert!(
        t.items
            .iter()
            .any(|i| i.check == "jsapi ticket" && i.status == Status::Ok)
    );
    let urls: Vec<&str> = t.callbacks.iter().map(|c| c.url.as_str()).collect();
    assert!(
        urls.contains(&"https://bridge.example.com/callback/demo/wecom/contacts"),
        "{urls:?}"
    );
    assert!(
        urls.iter()
            .any(|u| u.starts_with("https://bridge.example.com/callback/demo/wecom/apps/"))
    );
    assert!(urls.iter().any(|u| {
        u.starts_with("https://bridge.example.com/callback/demo/wechat/official-accounts/")
    }));
    assert!(
        urls.iter().any(
            |u| u.starts_with("https://bridge.example.com/callback/demo/wechat/mini-programs/")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_contacts_secret_gets_the_contacts_page_hint_and_shows_in_token_health() {
    let sim = wx_sim::Simulator::generate(wx_sim::SimConfig::new(5, 30, 4));
    let _running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let s = config(&sim, |f| {
        let c = f
            .tenants
            .get_mut("demo")
            .unwrap()
            .wecom
            .as_mut()
            .unwrap()
            .contacts
            .as_mut()
            .unwrap();
        c.secret = Some(FileSecret::new("definitely-wrong"));
    });
    let tenants = tenants(&s.config);
    let mut report = CheckReport::from_config(Vec::new(), Some(&s.config));
    report.run_live(&tenants).await;
    let failed: Vec<_> = report.tenants[0]
        .items
        .iter()
        .filter(|i| i.status == Status::Error)
        .collect();
    assert_eq!(failed.len(), 1, "{}", report.to_text());
    assert_eq!(failed[0].errcode, Some(40001));
    assert!(
        failed[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("通讯录同步 > Secret"),
        "{:?}",
        failed[0]
    );
    assert!(!report.to_text().contains("definitely-wrong"));

    let health = tenants
        .get("demo")
        .unwrap()
        .token_health(tenants.tokens())
        .await;
    let contacts = health.iter().find(|h| h.name == "contacts").unwrap();
    assert!(!contacts.cached);
    assert_eq!(contacts.last_error_code, Some(40001));
    assert!(
        health
            .iter()
            .filter(|h| h.name != "contacts")
            .all(|h| h.cached && h.last_error_code.is_none())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_ip_is_explained() {
    let sim = wx_sim::Simulator::generate(wx_sim::SimConfig::new(5, 30, 4));
    let _running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    sim.inject_fault("/cgi-bin/gettoken", 60020, None);
    let s = config(&sim, |_| {});
    let mut report = CheckReport::from_config(Vec::new(), Some(&s.config));
    report.run_live(&tenants(&s.config)).await;
    let failed: Vec<_> = report.tenants[0]
        .items
        .iter()
        .filter(|i| i.status == Status::Error)
        .collect();
    assert!(!failed.is_empty());
    for f in failed {
        assert_eq!(f.errcode, Some(60020));
        assert!(f.hint.as_deref().unwrap().contains("企业可信IP"), "{f:?}");
    }
}

#[test]
fn report_serialises_as_data() {
    let report = CheckReport::from_config(
        vec![wxbridge_config::Problem::error(
            "tenants",
            "no tenant is configured",
            Some("add one".into()),
        )],
        None,
    );
    assert!(report.has_errors());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["problems"][0]["path"], "tenants");
    assert_eq!(json["problems"][0]["severity"], "error");
    assert!(
        report
            .to_text()
            .contains("✘ tenants: no tenant is configured")
    );
}
