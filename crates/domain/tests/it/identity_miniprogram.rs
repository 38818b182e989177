//! Mini-program logins through `domain::identity::miniprogram` against the simulator, on SQLite and on
//! PostgreSQL when WXBRIDGE_TEST_POSTGRES_URL is set (required under CI=true): WeChat login -> account
//! graph -> session, two mini programs converging, the sealed session_key opening encryptedData (phone,
//! user info), a stale key refused with nothing written, the phone-number code, and WeCom logins
//! reading the member on demand (a disabled member refused).

use std::sync::Arc;

use crate::support::{databases, tenant};
use domain::identity::miniprogram::{
    DecryptKind, Decrypted, EncryptedData, MiniProgramError, MiniPrograms, SessionKeySealer,
};
use domain::identity::{SessionConfig, Sessions};
use domain::{CredentialKind, Tenants};
use store::{Db, UserId, UserStatus};
use wx_api::clock::SystemClock;
use wx_api::token::MemoryTokenStore;
use wx_sim::{MiniProgramRequest, Simulator};
use wxbridge_config::{FileConfig, Sources};

const SHOP: &str = "wx0000000000000002";
const CLUB: &str = "wx0000000000000004";
const PORTAL: &str = "wx00000000000000a1";
const MING_SHOP: &str = "oMP00000000000000000000001";
const MING_CLUB: &str = "oCLUB000000000000000000001";
const HUA_SHOP: &str = "oMP00000000000000000000002";

const FIXTURE: &str = r#"
[[corps]]
corpid = "ww0000000000000001"
contacts_secret = "contacts-secret-0001"
[[corps.departments]]
id = 1
name = "Root"
parentid = 0
[[corps.members]]
userid = "ZhangSan"
name = "Zhang San"
department = [1]
status = 1
[[corps.members]]
userid = "LiSi"
name = "Li Si"
department = [1]
status = 2
[[corps.apps]]
name = "main"
agentid = 1000002
secret = "main-app-secret-0001"
scope = { departments = [1] }
[[corps.mini_programs]]
name = "portal"
appid = "wx00000000000000a1"
app = "main"
[[wechat.mini_programs]]
name = "shop"
appid = "wx0000000000000002"
secret = "shop-secret-0001"
[[wechat.mini_programs]]
name = "club"
appid = "wx0000000000000004"
secret = "club-secret-0001"
[[wechat.users]]
unionid = "oUnion000000000000000000001"
nickname = "Ming"
phone = "13900000001"
openids = { wx0000000000000002 = "oMP00000000000000000000001", wx0000000000000004 = "oCLUB000000000000000000001" }
[[wechat.users]]
unionid = "oUnion000000000000000000002"
nickname = "Hua"
phone = "13900000002"
openids = { wx0000000000000002 = "oMP00000000000000000000002" }
"#;

async fn sim_tenants(sim: &Simulator) -> (wx_sim::RunningSim, Tenants) {
    let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
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
    (running, Tenants::build(&config, tokens).unwrap())
}

fn mp(
    appid: &str,
    openid: Option<&str>,
    userid: Option<&str>,
    kind: Option<&str>,
) -> MiniProgramRequest {
    MiniProgramRequest {
        appid: appid.to_owned(),
        openid: openid.map(str::to_owned),
        userid: userid.map(str::to_owned),
        kind: kind.map(str::to_owned),
    }
}

async fn mobile(db: &Db, t: &str, id: UserId) -> Option<String> {
    db.user(t, id).await.unwrap().unwrap().mobile
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_mini_program_logins_decrypt_and_phone_on_each_database() {
    let sim = Simulator::from_fixture_str(FIXTURE).unwrap();
    let (_running, tenants) = sim_tenants(&sim).await;
    let demo = tenants.get("demo").unwrap();
    let wechat = |key: &str| {
        demo.credential(CredentialKind::WechatMiniProgram, key)
            .and_then(|c| c.wechat())
            .unwrap()
            .clone()
    };
    let (shop, club) = (wechat("shop"), wechat("club"));
    let (dbs, dir) = databases("mini programs").await;
    let sealer = Arc::new(SessionKeySealer::open_or_create(dir.path()).unwrap());
    for (name, db) in dbs {
        let t = tenant("mini");
        let clock = Arc::new(SystemClock);
        let minis = MiniPrograms::new(
            db.clone(),
            clock.clone(),
            sealer.clone(),
            SessionConfig::default(),
        );
        let sessions = Sessions::new(db.clone(), clock, SessionConfig::default());

        // Login through two mini programs: one user, two identities, each session verifies.
        let code = sim
            .mint_miniprogram_code(&mp(SHOP, Some(MING_SHOP), None, None))
            .unwrap();
        let a = minis.login_wechat(&t, "shop", &shop, &code).await.unwrap();
        assert!(a.created_user, "{name}");
        let code = sim
            .mint_miniprogram_code(&mp(CLUB, Some(MING_CLUB), None, None))
            .unwrap();
        let b = minis.login_wechat(&t, "club", &club, &code).await.unwrap();
        assert_eq!(a.user.id, b.user.id, "{name}");
        assert!(!b.created_user);
        let v = sessions.verify(&t, b.token.expose()).await.unwrap();
        assert_eq!(v.session.provider, "wechat_mini_program");
        assert_eq!(v.session.app, "club");
        assert_eq!(
            db.wechat_identities_of_user(&t, a.user.id)
                .await
                .unwrap()
                .len(),
            2
        );

        // The code is single use; an invalid code is MP001.
        let err = minis
            .login_wechat(&t, "shop", &shop, &code)
            .await
            .unwrap_err();
        assert!(
            matches!(err, MiniProgramError::InvalidCode { .. }),
            "{name}: {err}"
        );

        // Phone and user info from encryptedData.
        let enc = sim
            .encrypted_data(&mp(SHOP, Some(MING_SHOP), None, Some("phone")))
            .unwrap();
        let out = minis
            .decrypt(
                &t,
                "shop",
                SHOP,
                a.token.expose(),
                &EncryptedData {
                    kind: DecryptKind::Phone,
                    encrypted_data: &enc.encrypted_data,
                    iv: &enc.iv,
                },
            )
            .await
            .unwrap();
        assert!(
            matches!(&out, Decrypted::Phone { phone, .. } if phone.phone_number == "13900000001")
        );
        assert_eq!(
            mobile(&db, &t, a.user.id).await.as_deref(),
            Some("13900000001")
        );
        let enc = sim
            .encrypted_data(&mp(SHOP, Some(MING_SHOP), None, Some("userinfo")))
            .unwrap();
        let out = minis
            .decrypt(
                &t,
                "shop",
                SHOP,
                a.token.expose(),
                &EncryptedData {
                    kind: DecryptKind::UserInfo,
                    encrypted_data: &enc.encrypted_data,
                    iv: &enc.iv,
                },
            )
            .await
            .unwrap();
        let Decrypted::UserInfo { info, user_id, .. } = out else {
            panic!("{name}: not user info")
        };
        assert_eq!(user_id, a.user.id);
        assert_eq!(info.openid, MING_SHOP);
        assert_eq!(info.unionid.as_deref(), Some("oUnion000000000000000000001"));
        assert_eq!(db.user(&t, a.user.id).await.unwrap().unwrap().name, "Ming");

        // Stale session_key: data from before Hua's second login.
        let code = sim
            .mint_miniprogram_code(&mp(SHOP, Some(HUA_SHOP), None, None))
            .unwrap();
        minis.login_wechat(&t, "shop", &shop, &code).await.unwrap();
        let old = sim
            .encrypted_data(&mp(SHOP, Some(HUA_SHOP), None, Some("phone")))
            .unwrap();
        let code = sim
            .mint_miniprogram_code(&mp(SHOP, Some(HUA_SHOP), None, None))
            .unwrap();
        let hua = minis.login_wechat(&t, "shop", &shop, &code).await.unwrap();
        let err = minis
            .decrypt(
                &t,
                "shop",
                SHOP,
                hua.token.expose(),
                &EncryptedData {
                    kind: DecryptKind::Phone,
                    encrypted_data: &old.encrypted_data,
                    iv: &old.iv,
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, MiniProgramError::StaleSessionKey),
            "{name}: {err}"
        );
        assert_eq!(mobile(&db, &t, hua.user.id).await, None);

        // A session of another mini program cannot decrypt here.
        let err = minis
            .decrypt(
                &t,
                "shop",
                SHOP,
                b.token.expose(),
                &EncryptedData {
                    kind: DecryptKind::Phone,
                    encrypted_data: &old.encrypted_data,
                    iv: &old.iv,
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, MiniProgramError::WrongSession { .. }),
            "{name}: {err}"
        );

        // The phone-number code.
        let code = sim
            .mint_phone_code(&mp(SHOP, Some(HUA_SHOP), None, None))
            .unwrap();
        let (uid, phone) = minis
            .phone_by_code(&t, "shop", &shop, hua.token.expose(), &code)
            .await
            .unwrap();
        assert_eq!(uid, hua.user.id);
        assert_eq!(phone.phone_number, "13900000002");
        assert_eq!(
            mobile(&db, &t, hua.user.id).await.as_deref(),
            Some("13900000002")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_mini_program_login_reads_members_on_demand_on_each_database() {
    let sim = Simulator::from_fixture_str(FIXTURE).unwrap();
    let (_running, tenants) = sim_tenants(&sim).await;
    let demo = tenants.get("demo").unwrap();
    let main = demo.wecom_app("main").unwrap().clone();
    let contacts = demo.contacts().unwrap().clone();
    let (dbs, dir) = databases("mini programs").await;
    let sealer = Arc::new(SessionKeySealer::open_or_create(dir.path()).unwrap());
    for (name, db) in dbs {
        let t = tenant("wecom-mini");
        let minis = MiniPrograms::new(
            db.clone(),
            Arc::new(SystemClock),
            sealer.clone(),
            SessionConfig::default(),
        );
        let code = sim
            .mint_miniprogram_code(&mp(PORTAL, None, Some("ZhangSan"), None))
            .unwrap();
        // Without a directory credential and nothing synced: not found, nothing created.
        let err = minis
            .login_wecom(&t, "portal", PORTAL, &main, None, &code)
            .await
            .unwrap_err();
        assert!(
            matches!(err, MiniProgramError::MemberNotFound { .. }),
            "{name}: {err}"
        );
        let code = sim
            .mint_miniprogram_code(&mp(PORTAL, None, Some("ZhangSan"), None))
            .unwrap();
        let login = minis
            .login_wecom(&t, "portal", PORTAL, &main, Some(&contacts), &code)
            .await
            .unwrap();
        assert_eq!(login.user.name, "Zhang San", "{name}");
        assert_eq!(login.session.provider, "wecom_mini_program");
        let code = sim
            .mint_miniprogram_code(&mp(PORTAL, None, Some("LiSi"), None))
            .unwrap();
        let err = minis
            .login_wecom(&t, "portal", PORTAL, &main, Some(&contacts), &code)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                MiniProgramError::MemberNotActive {
                    status: UserStatus::Disabled,
                    ..
                }
            ),
            "{name}: {err}"
        );
        assert_eq!(
            db.sessions_of_user(&t, login.user.id).await.unwrap().len(),
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_mini_program_session_key_is_kept_sealed_and_decrypts_on_each_database() {
    let fixture = FIXTURE.replace(
        "name = \"Zhang San\"\n",
        "name = \"Zhang San\"\nmobile = \"13800000001\"\n",
    );
    let sim = Simulator::from_fixture_str(&fixture).unwrap();
    let (_running, tenants) = sim_tenants(&sim).await;
    let demo = tenants.get("demo").unwrap();
    let main = demo.wecom_app("main").unwrap().clone();
    let contacts = demo.contacts().unwrap().clone();
    let (dbs, dir) = databases("mini programs").await;
    let sealer = Arc::new(SessionKeySealer::open_or_create(dir.path()).unwrap());
    for (name, db) in dbs {
        let t = tenant("wecom-decrypt");
        let minis = MiniPrograms::new(
            db.clone(),
            Arc::new(SystemClock),
            sealer.clone(),
            SessionConfig::default(),
        );
        let login = |code: String| {
            let minis = minis.clone();
            let (t, main, contacts) = (t.clone(), main.clone(), contacts.clone());
            async move {
                minis
                    .login_wecom(&t, "portal", PORTAL, &main, Some(&contacts), &code)
                    .await
                    .unwrap()
            }
        };
        let code = || {
            sim.mint_miniprogram_code(&mp(PORTAL, None, Some("ZhangSan"), None))
                .unwrap()
        };
        let enc = |kind: &str| {
            sim.encrypted_data(&mp(PORTAL, None, Some("ZhangSan"), Some(kind)))
                .unwrap()
        };
        let first = login(code()).await;
        let user = first.user.clone();
        // The directory brought the mobile; blank it so the decrypt's write is visible.
        db.set_user_profile(&t, user.id, &user.name, None, None, 1)
            .await
            .unwrap();
        let old = enc("phone");
        let second = login(code()).await;
        let token = second.token.expose().to_owned();

        // Data made under the first login's key: stale, nothing written.
        let err = minis
            .decrypt_wecom(
                &t,
                "portal",
                PORTAL,
                &token,
                &EncryptedData {
                    kind: DecryptKind::Phone,
                    encrypted_data: &old.encrypted_data,
                    iv: &old.iv,
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, MiniProgramError::StaleSessionKey),
            "{name}: {err}"
        );
        assert_eq!(mobile(&db, &t, user.id).await, None, "{name}");

        // Current data: the mobile is filled.
        let fresh = enc("phone");
        let out = minis
            .decrypt_wecom(
                &t,
                "portal",
                PORTAL,
                &token,
                &EncryptedData {
                    kind: DecryptKind::Phone,
                    encrypted_data: &fresh.encrypted_data,
                    iv: &fresh.iv,
                },
            )
            .await
            .unwrap();
        match out {
            Decrypted::Phone { user_id, phone } => {
                assert_eq!(user_id, user.id);
                assert_eq!(phone.phone_number, "13800000001");
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(
            mobile(&db, &t, user.id).await.as_deref(),
            Some("13800000001"),
            "{name}"
        );

        // Enterprise user info names this member.
        let info = enc("userinfo");
        let out = minis
            .decrypt_wecom(
                &t,
                "portal",
                PORTAL,
                &token,
                &EncryptedData {
                    kind: DecryptKind::UserInfo,
                    encrypted_data: &info.encrypted_data,
                    iv: &info.iv,
                },
            )
            .await
            .unwrap();
        match out {
            Decrypted::WecomUserInfo {
                user_id,
                userid,
                corpid,
                name: n,
            } => {
                assert_eq!(user_id, user.id);
                assert_eq!(userid, "ZhangSan");
                assert_eq!(corpid, "ww0000000000000001");
                assert_eq!(n.as_deref(), Some("Zhang San"));
            }
            other => panic!("{name}: {other:?}"),
        }

        // The key is held per mini-program appid: none for another appid.
        let err = minis
            .decrypt_wecom(
                &t,
                "portal",
                "wx00000000000000ff",
                &token,
                &EncryptedData {
                    kind: DecryptKind::Phone,
                    encrypted_data: &fresh.encrypted_data,
                    iv: &fresh.iv,
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, MiniProgramError::NoSessionKey),
            "{name}: no key is held for another appid: {err}"
        );

        // The stored key is sealed: the clear session_key is nowhere in the row.
        let clear = sim.current_session_key(PORTAL, "ZhangSan").unwrap();
        let sealed = db
            .wecom_session_key(&t, PORTAL, user.id)
            .await
            .unwrap()
            .unwrap();
        assert!(
            !sealed
                .sealed
                .windows(clear.len())
                .any(|w| w == clear.as_bytes()),
            "{name}"
        );
        assert!(!format!("{sealed:?}").contains(&clear));
        // Bound to tenant, appid and user: it opens for none other.
        assert!(
            sealer
                .unseal_wecom("other", PORTAL, user.id, &sealed)
                .is_none()
        );
        assert!(
            sealer
                .unseal_wecom(&t, "wx00000000000000ff", user.id, &sealed)
                .is_none()
        );
        assert!(
            sealer
                .unseal(&t, store::IdentityId::from_raw(user.id.get()), &sealed)
                .is_none()
        );
        drop(first);
    }
}
