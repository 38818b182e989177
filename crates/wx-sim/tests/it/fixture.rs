//! The fixture form: the documented example loads; JSON works; mistakes are named.

use wx_sim::{SimError, Simulator};

use crate::contacts::example;

#[test]
fn example_fixture_loads_exactly() {
    let sim = example();
    let dir = sim.directory();
    assert_eq!(dir.corpid, "ww0000000000000001");
    assert_eq!(dir.departments.len(), 4);
    assert_eq!(dir.members.len(), 3);
    let zs = dir.member("zhangsan").unwrap();
    assert_eq!(zs.department, [2, 3]);
    let d2 = dir.departments.iter().find(|d| d.id == 2).unwrap();
    assert_eq!(d2.department_leader, ["ZhangSan"]);
    let info = sim.info();
    assert_eq!(info.corps[0].apps[1].name, "sales");
    assert!(info.corps[0].apps[1].restricted_fields);
    assert_eq!(
        info.wechat.official_accounts[0].original_id,
        "gh_000000000001"
    );
}

#[test]
fn json_fixture_is_accepted() {
    let json = r#"{"corps":[{"corpid":"wwjson","contacts_secret":"s","departments":[{"id":1,"name":"root","parentid":0}],
        "members":[{"userid":"a","name":"甲","department":[1]}]}]}"#;
    let sim = Simulator::from_fixture_str(json).unwrap();
    assert_eq!(sim.directory().members[0].main_department, 1);
}

#[test]
fn fixture_mistakes_are_named() {
    let missing_root = "[[corps]]\ncorpid = \"ww1\"\ncontacts_secret = \"s\"\n";
    let e = Simulator::from_fixture_str(missing_root).unwrap_err();
    assert!(
        matches!(e, SimError::Fixture(ref m) if m.contains("root department")),
        "{e}"
    );
    let unknown_key = "[[corps]]\ncorpid = \"ww1\"\ncontacts_secret = \"s\"\ncolour = 1\n";
    let e = Simulator::from_fixture_str(unknown_key).unwrap_err();
    assert!(e.to_string().contains("colour"), "{e}");
    let dup = "[[corps]]\ncorpid = \"ww1\"\ncontacts_secret = \"s\"\n[[corps.departments]]\nid = 1\nname = \"r\"\nparentid = 0\n\
        [[corps.members]]\nuserid = \"Ab\"\nname = \"x\"\ndepartment = [1]\n[[corps.members]]\nuserid = \"aB\"\nname = \"y\"\ndepartment = [1]\n";
    let e = Simulator::from_fixture_str(dup).unwrap_err();
    assert!(e.to_string().contains("case-insensitive"), "{e}");
    assert!(matches!(
        Simulator::from_fixture_file(std::path::Path::new("/nonexistent.toml")),
        Err(SimError::FixtureIo { .. })
    ));
}
