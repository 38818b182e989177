//! Follower backfill (`domain::identity::backfill`) against the simulator, on SQLite and on PostgreSQL
//! when WXBRIDGE_TEST_POSTGRES_URL is set (required under CI=true): followers become identities, a
//! non-follower is not listed, a rerun creates nothing, and a follower sharing a unionid with a
//! mini-program identity lands on that identity's user.

use std::sync::Arc;

use domain::identity::backfill::backfill_followers;
use domain::identity::{AccountGraph, AppKind, WechatLogin, WechatProfile};
use domain::{CredentialKind, Tenants};
use store::Db;
use wx_api::clock::SystemClock;
use wx_api::token::MemoryTokenStore;
use wx_sim::Simulator;
use wxbridge_config::{FileConfig, Sources};

const OA: &str = "wx0000000000000003";
const SHOP: &str = "wx0000000000000002";

const FIXTURE: &str = r#"
[[corps]]
corpid = "ww0000000000000001"
contacts_secret = "contacts-secret-0001"
[[corps.departments]]
id = 1
name = "Root"
parentid = 0
[[corps.apps]]
name = "main"
agentid = 1000002
secret = "main-app-secret-0001"
scope = { departments = [1] }
[[wechat.official_accounts]]
name = "news"
appid = "wx0000000000000003"
secret = "news-secret-0001"
token = "newstoken"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
original_id = "gh_000000000001"
[[wechat.mini_programs]]
name = "shop"
appid = "wx0000000000000002"
secret = "shop-secret-0001"
[[wechat.users]]
unionid = "oUnion000000000000000000001"
nickname = "Ming"
openids = { wx0000000000000002 = "oMP00000000000000000000001", wx0000000000000003 = "oOA00000000000000000000001" }
subscribed = ["wx0000000000000003"]
[[wechat.users]]
unionid = "oUnion000000000000000000002"
nickname = "Hua"
openids = { wx0000000000000003 = "oOA00000000000000000000002" }
subscribed = ["wx0000000000000003"]
[[wechat.users]]
unionid = "oUnion000000000000000000003"
nickname = "Gone"
openids = { wx0000000000000003 = "oOA00000000000000000000003" }
"#;

async fn databases() -> Vec<(&'static str, Db, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Db::connect(&format!("sqlite://{}/wx.db", dir.path().display()))
        .await
        .unwrap();
    sqlite.migrate().await.unwrap();
    let mut dbs = vec![("sqlite", sqlite, dir)];
    match std::env::var("WXBRIDGE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let pg = Db::connect(&url).await.unwrap();
            pg.migrate().await.unwrap();
            dbs.push(("postgres", pg, tempfile::tempdir().unwrap()));
        }
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but WXBRIDGE_TEST_POSTGRES_URL is not set")
        }
        _ => eprintln!("WXBRIDGE_TEST_POSTGRES_URL unset: backfill tested on SQLite only"),
    }
    dbs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_become_identities_once_and_converge_by_unionid() {
    let sim = Simulator::from_fixture_str(FIXTURE).unwrap();
    let _running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let file =
        FileConfig::from_toml_str(&sim.info().wxbridge_config("127.0.0.1:0").unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxbridge.toml");
    std::fs::write(&path, file.to_toml_string().unwrap()).unwrap();
    let config = wxbridge_config::load(&Sources::file(&path)).unwrap().config;
    let tokens = Tenants::token_manager(
        &config,
        Arc::new(MemoryTokenStore::new()),
        Arc::new(SystemClock),
    );
    let tenants = Tenants::build(&config, tokens).unwrap();
    let account = tenants
        .get("demo")
        .unwrap()
        .credential(CredentialKind::OfficialAccount, "news")
        .and_then(|c| c.wechat())
        .unwrap()
        .clone();

    for (name, db, _dir) in databases().await {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let t = format!("backfill-{nanos}");
        let graph = AccountGraph::new(db.clone(), Arc::new(SystemClock));
        // Ming logged in through the mini program first (with its unionid).
        let ming = graph
            .resolve_wechat_identity(
                &t,
                &WechatLogin {
                    appid: SHOP.to_owned(),
                    app_kind: AppKind::MiniProgram,
                    openid: "oMP00000000000000000000001".to_owned(),
                    unionid: Some("oUnion000000000000000000001".to_owned()),
                    profile: WechatProfile::default(),
                },
            )
            .await
            .unwrap();

        let first = backfill_followers(&graph, &t, &account).await.unwrap();
        assert_eq!(first.listed, 2, "{name}: {first:?}");
        assert_eq!(first.created, 2, "{name}: {first:?}");
        assert_eq!(first.already_known, 0, "{name}");
        assert_eq!(first.unsubscribed, 0, "{name}");

        let ming_oa = db
            .wechat_identity_by_openid(&t, OA, "oOA00000000000000000000001")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            ming_oa.user_id, ming.user_id,
            "{name}: converged by unionid"
        );
        assert_eq!(ming_oa.app_kind, AppKind::OfficialAccount);
        let hua = db
            .wechat_identity_by_openid(&t, OA, "oOA00000000000000000000002")
            .await
            .unwrap()
            .unwrap();
        assert_ne!(hua.user_id, ming.user_id, "{name}");
        assert_eq!(hua.unionid.as_deref(), Some("oUnion000000000000000000002"));
        assert!(
            db.wechat_identity_by_openid(&t, OA, "oOA00000000000000000000003")
                .await
                .unwrap()
                .is_none(),
            "{name}: not a follower, not backfilled"
        );

        let again = backfill_followers(&graph, &t, &account).await.unwrap();
        assert_eq!(again.created, 0, "{name}: {again:?}");
        assert_eq!(again.already_known, 2, "{name}: {again:?}");
        assert_eq!(again.merged, 0, "{name}");
    }
}
