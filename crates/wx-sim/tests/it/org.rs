//! The generated organisation: determinism, shape and scale sanity.

use std::collections::HashSet;

use wx_sim::{SimConfig, Simulator};

#[test]
fn same_seed_gives_identical_org_and_different_seed_differs() {
    let a = Simulator::generate(SimConfig::new(9, 500, 40));
    let b = Simulator::generate(SimConfig::new(9, 500, 40));
    let c = Simulator::generate(SimConfig::new(10, 500, 40));
    let ja = serde_json::to_string(&a.directory()).unwrap();
    let jb = serde_json::to_string(&b.directory()).unwrap();
    let jc = serde_json::to_string(&c.directory()).unwrap();
    assert_eq!(ja, jb);
    assert_ne!(ja, jc);
    assert_eq!(
        serde_json::to_string(&a.info()).unwrap(),
        serde_json::to_string(&b.info()).unwrap()
    );
    assert_ne!(a.info().corps[0].corpid, c.info().corps[0].corpid);
}

#[test]
fn generated_org_has_the_documented_shape() {
    let sim = Simulator::generate(SimConfig::new(3, 2000, 120));
    let dir = sim.directory();
    assert_eq!(dir.members.len(), 2000);
    assert_eq!(dir.departments.len(), 120);
    let root = dir.departments.iter().find(|d| d.id == 1).unwrap();
    assert_eq!(root.parentid, 0);
    assert!(
        dir.max_depth() <= 15 && dir.max_depth() >= 3,
        "depth {}",
        dir.max_depth()
    );
    // userids unique case-insensitively, ASCII.
    let ids: HashSet<String> = dir
        .members
        .iter()
        .map(|m| m.userid.to_lowercase())
        .collect();
    assert_eq!(ids.len(), 2000);
    assert!(dir.members.iter().all(|m| m.userid.is_ascii()));
    // Some members sit in 2 or 3 departments; vectors are aligned.
    assert!(dir.members.iter().any(|m| m.department.len() == 2));
    assert!(dir.members.iter().any(|m| m.department.len() == 3));
    for m in &dir.members {
        assert_eq!(m.order.len(), m.department.len());
        assert_eq!(m.is_leader_in_dept.len(), m.department.len());
        assert!(m.department.contains(&m.main_department));
        assert!(!m.name.is_ascii(), "Chinese name expected: {}", m.name);
    }
    // Leaders: flags and department_leader agree.
    let leaders: usize = dir
        .departments
        .iter()
        .map(|d| d.department_leader.len())
        .sum();
    let flags: usize = dir
        .members
        .iter()
        .map(|m| m.is_leader_in_dept.iter().filter(|x| **x == 1).count())
        .sum();
    assert!(leaders > 0);
    assert_eq!(leaders, flags);
    // Statuses 1, 2 and 4 all occur.
    for s in [1u8, 2, 4] {
        assert!(dir.members.iter().any(|m| m.status == s), "status {s}");
    }
    assert!(!dir.tags.is_empty());
    // Default apps and WeChat apps.
    let info = sim.info();
    let names: Vec<&str> = info.corps[0].apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["main", "limited"]);
    assert_eq!(info.corps[0].apps[0].agentid, 1000002);
    assert!(info.corps[0].apps[1].restricted_fields);
    assert_eq!(info.corps[0].apps[0].encoding_aes_key.len(), 43);
    assert_eq!(info.wechat.official_accounts.len(), 1);
    assert!(
        info.wechat.official_accounts[0]
            .original_id
            .starts_with("gh_")
    );
    assert_eq!(info.wechat.mini_programs.len(), 2);
    assert!(info.wechat.website.is_some());
    assert_eq!(info.corps[0].mini_programs[0].app, "main");
}

#[test]
fn large_org_generates_with_bounded_depth() {
    let sim = Simulator::generate(SimConfig::new(1, 100_000, 5_000));
    let dir = sim.directory();
    assert_eq!(dir.members.len(), 100_000);
    assert_eq!(dir.departments.len(), 5_000);
    assert!(dir.max_depth() <= 15, "depth {}", dir.max_depth());
}

#[test]
fn debug_output_never_shows_secrets() {
    let sim = Simulator::generate(SimConfig::new(5, 10, 3));
    let info = sim.info();
    let dbg = format!("{info:?} {:?}", info.corps[0]);
    assert!(!dbg.contains(&info.corps[0].contacts_secret));
    assert!(!dbg.contains(&info.corps[0].apps[0].secret));
}

#[test]
fn wxbridge_config_has_the_demo_tenant() {
    let sim = Simulator::generate(SimConfig::new(5, 10, 3));
    // Not serving: no base URL, so no config.
    assert!(sim.info().wxbridge_config("127.0.0.1:8080").is_err());
    let mut info = sim.info();
    info.base_url = Some("http://127.0.0.1:9999".to_owned());
    let text = info.wxbridge_config("127.0.0.1:8080").unwrap();
    let v: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(
        v["upstream"]["wecom_base_url"].as_str(),
        Some("http://127.0.0.1:9999")
    );
    assert_eq!(v["tokens"]["store"].as_str(), Some("sql"));
    let demo = &v["tenants"]["demo"];
    assert_eq!(
        demo["wecom"]["corpid"].as_str(),
        Some(info.corps[0].corpid.as_str())
    );
    assert_eq!(
        demo["wecom"]["apps"]["main"]["agentid"].as_integer(),
        Some(1000002)
    );
    assert_eq!(
        demo["wecom"]["contacts"]["secret"].as_str(),
        Some(info.corps[0].contacts_secret.as_str())
    );
    assert_eq!(
        demo["wecom"]["mini_programs"]["wecom_mp"]["app"].as_str(),
        Some("main")
    );
    assert_eq!(
        demo["wechat"]["official_accounts"]["oa"]["mode"].as_str(),
        Some("safe")
    );
    assert!(
        demo["wechat"]["website"]["appid"]
            .as_str()
            .unwrap()
            .starts_with("wx")
    );
}
