//! Contacts reads against the fixture: shapes, visibility scopes, restricted fields, list_id paging, 48009.

use serde_json::{Value, json};
use wx_sim::{Simulator, Switches};

use crate::common::{Env, errcode};

pub fn example() -> Simulator {
    Simulator::from_fixture_file(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/example.toml"),
    )
    .unwrap()
}

async fn token(env: &Env, secret: &str) -> String {
    let v = env
        .get(&format!(
            "/cgi-bin/gettoken?corpid=ww0000000000000001&corpsecret={secret}"
        ))
        .await;
    v["access_token"].as_str().unwrap().to_owned()
}

fn ids(v: &Value, list: &str, field: &str) -> Vec<Value> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[field].clone())
        .collect()
}

#[tokio::test]
async fn department_apis_with_whole_and_partial_scope() {
    let env = Env::start(example()).await;
    let main = token(&env, "main-app-secret-0001").await;
    let sales = token(&env, "sales-app-secret-0001").await;

    let all = env
        .get(&format!("/cgi-bin/department/list?access_token={main}"))
        .await;
    assert_eq!(all["errcode"], 0);
    // Tree order: root, then siblings by larger order first (2 before 4), 3 under 2.
    assert_eq!(
        ids(&all, "department", "id"),
        [json!(1), json!(2), json!(3), json!(4)]
    );
    let d2 = &all["department"][1];
    assert_eq!(d2["name"], "研发部");
    assert_eq!(d2["name_en"], "R&D");
    assert_eq!(d2["parentid"], 1);
    assert_eq!(d2["department_leader"], json!(["ZhangSan"]));
    let sub = env
        .get(&format!(
            "/cgi-bin/department/list?access_token={main}&id=2"
        ))
        .await;
    assert_eq!(ids(&sub, "department", "id"), [json!(2), json!(3)]);
    let simple = env
        .get(&format!(
            "/cgi-bin/department/simplelist?access_token={main}"
        ))
        .await;
    assert_eq!(
        simple["department_id"][2],
        json!({"id": 3, "parentid": 2, "order": 100})
    );
    let one = env
        .get(&format!("/cgi-bin/department/get?access_token={main}&id=4"))
        .await;
    assert_eq!(one["department"]["name"], "销售部");
    assert_eq!(
        errcode(
            &env.get(&format!(
                "/cgi-bin/department/get?access_token={main}&id=99"
            ))
            .await
        ),
        60123
    );

    // "sales" sees department 4 only.
    let limited = env
        .get(&format!("/cgi-bin/department/list?access_token={sales}"))
        .await;
    assert_eq!(ids(&limited, "department", "id"), [json!(4)]);
    assert_eq!(
        errcode(
            &env.get(&format!(
                "/cgi-bin/department/get?access_token={sales}&id=2"
            ))
            .await
        ),
        60011
    );
    let e = env
        .get(&format!(
            "/cgi-bin/department/list?access_token={sales}&id=1"
        ))
        .await;
    assert_eq!(errcode(&e), 60011);
    assert!(
        e["errmsg"]
            .as_str()
            .unwrap()
            .contains("devtool/query?e=60011")
    );
}

#[tokio::test]
async fn user_get_visibility_and_restricted_fields() {
    let env = Env::start(example()).await;
    let main = token(&env, "main-app-secret-0001").await;
    let sales = token(&env, "sales-app-secret-0001").await;

    let u = env
        .get(&format!(
            "/cgi-bin/user/get?access_token={main}&userid=zhangsan"
        ))
        .await;
    assert_eq!(u["errcode"], 0);
    assert_eq!(u["userid"], "ZhangSan", "lookup is case-insensitive");
    assert_eq!(u["department"], json!([2, 3]));
    assert_eq!(u["order"], json!([10, 5]));
    assert_eq!(u["is_leader_in_dept"], json!([1, 0]));
    assert_eq!(u["main_department"], 2);
    assert_eq!(u["gender"], "1");
    assert_eq!(u["mobile"], "13800000001");
    assert_eq!(u["status"], 1);
    assert_eq!(
        errcode(
            &env.get(&format!(
                "/cgi-bin/user/get?access_token={main}&userid=nobody"
            ))
            .await
        ),
        60111
    );

    // sales: LiSi is in scope by name, WangWu through department 4, ZhangSan is outside.
    let lisi = env
        .get(&format!(
            "/cgi-bin/user/get?access_token={sales}&userid=LiSi"
        ))
        .await;
    assert_eq!(lisi["errcode"], 0);
    assert_eq!(
        lisi["department"],
        json!([]),
        "departments outside the scope are filtered"
    );
    let wangwu = env
        .get(&format!(
            "/cgi-bin/user/get?access_token={sales}&userid=WangWu"
        ))
        .await;
    assert_eq!(wangwu["department"], json!([4]));
    // Restricted (post-2022) app: withheld fields left out, gender "0".
    for f in [
        "mobile",
        "email",
        "biz_mail",
        "avatar",
        "thumb_avatar",
        "qr_code",
        "address",
    ] {
        assert!(wangwu.get(f).is_none(), "{f} must be withheld");
    }
    assert_eq!(wangwu["gender"], "0");
    assert_eq!(wangwu["name"], "王五");
    assert_eq!(
        errcode(
            &env.get(&format!(
                "/cgi-bin/user/get?access_token={sales}&userid=ZhangSan"
            ))
            .await
        ),
        60011
    );

    env.sim.set_switches(&Switches {
        withheld_as_empty: Some(true),
        ..Switches::default()
    });
    let again = env
        .get(&format!(
            "/cgi-bin/user/get?access_token={sales}&userid=WangWu"
        ))
        .await;
    assert_eq!(again["mobile"], "");
    assert!(env.sim.set_restricted_fields(1000003, false));
    let full = env
        .get(&format!(
            "/cgi-bin/user/get?access_token={sales}&userid=WangWu"
        ))
        .await;
    assert_eq!(full["mobile"], "13800000003");
}

#[tokio::test]
async fn user_lists_and_tags() {
    let env = Env::start(example()).await;
    let main = token(&env, "main-app-secret-0001").await;
    let sales = token(&env, "sales-app-secret-0001").await;
    let simple = env
        .get(&format!(
            "/cgi-bin/user/simplelist?access_token={main}&department_id=2"
        ))
        .await;
    assert_eq!(ids(&simple, "userlist", "userid"), [json!("ZhangSan")]);
    let rec = env
        .get(&format!(
            "/cgi-bin/user/simplelist?access_token={main}&department_id=2&fetch_child=1"
        ))
        .await;
    assert_eq!(
        ids(&rec, "userlist", "userid"),
        [json!("ZhangSan"), json!("LiSi")]
    );
    let list = env
        .get(&format!(
            "/cgi-bin/user/list?access_token={main}&department_id=3"
        ))
        .await;
    assert_eq!(list["userlist"].as_array().unwrap().len(), 2);
    assert_eq!(
        list["userlist"][0]["mobile"].as_str().map(|s| s.len()),
        Some(11)
    );
    assert_eq!(
        errcode(
            &env.get(&format!(
                "/cgi-bin/user/list?access_token={sales}&department_id=2"
            ))
            .await
        ),
        60011
    );

    let tags = env
        .get(&format!("/cgi-bin/tag/list?access_token={main}"))
        .await;
    assert_eq!(
        tags["taglist"],
        json!([{"tagid": 1, "tagname": "管理层"}, {"tagid": 2, "tagname": "后端"}])
    );
    let t1 = env
        .get(&format!("/cgi-bin/tag/get?access_token={main}&tagid=1"))
        .await;
    assert_eq!(t1["tagname"], "管理层");
    assert_eq!(
        ids(&t1, "userlist", "userid"),
        [json!("ZhangSan"), json!("WangWu")]
    );
    assert_eq!(
        errcode(
            &env.get(&format!("/cgi-bin/tag/get?access_token={main}&tagid=9"))
                .await
        ),
        40068
    );
    // sales has no tag in scope.
    assert_eq!(
        env.get(&format!("/cgi-bin/tag/list?access_token={sales}"))
            .await["taglist"],
        json!([])
    );
    assert_eq!(
        errcode(
            &env.get(&format!("/cgi-bin/tag/get?access_token={sales}&tagid=1"))
                .await
        ),
        60011
    );

    let agent = env
        .get(&format!(
            "/cgi-bin/agent/get?access_token={sales}&agentid=1000003"
        ))
        .await;
    assert_eq!(agent["allow_partys"], json!({"partyid": [4]}));
    assert_eq!(
        agent["allow_userinfos"],
        json!({"user": [{"userid": "LiSi"}]})
    );
    assert_eq!(
        errcode(
            &env.get(&format!(
                "/cgi-bin/agent/get?access_token={sales}&agentid=1000002"
            ))
            .await
        ),
        60011
    );
}

#[tokio::test]
async fn tag_scope_expands_to_users_and_departments() {
    // The generated "limited" app has a department, two users and a tag in its scope.
    let env = Env::generated().await;
    let info = env.sim.info();
    let dir = env.sim.directory();
    let limited = env.wecom_token("limited").await;
    let agent = env
        .get(&format!(
            "/cgi-bin/agent/get?access_token={limited}&agentid=1000003"
        ))
        .await;
    let tagid = agent["allow_tags"]["tagid"][0].as_u64().unwrap() as u32;
    let tag = dir.tags.iter().find(|t| t.tagid == tagid).unwrap();
    for u in &tag.users {
        let v = env
            .get(&format!(
                "/cgi-bin/user/get?access_token={limited}&userid={u}"
            ))
            .await;
        assert_eq!(errcode(&v), 0, "tag user {u} is visible");
    }
    for d in &tag.departments {
        let v = env
            .get(&format!(
                "/cgi-bin/department/get?access_token={limited}&id={d}"
            ))
            .await;
        assert_eq!(errcode(&v), 0, "tag department {d} is visible");
    }
    // Someone outside every scope entry is not visible.
    let scope_dept = agent["allow_partys"]["partyid"][0].as_u64().unwrap() as u32;
    let visible_users: Vec<String> = agent["allow_userinfos"]["user"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userid"].as_str().unwrap().to_owned())
        .collect();
    let outsider = dir.members.iter().find(|m| {
        !tag.users.contains(&m.userid)
            && !visible_users.contains(&m.userid)
            && m.department.iter().all(|d| {
                !within(&dir, *d, scope_dept)
                    && tag.departments.iter().all(|t| !within(&dir, *d, *t))
            })
    });
    let outsider = outsider.expect("an org of 300 has someone outside the limited scope");
    let v = env
        .get(&format!(
            "/cgi-bin/user/get?access_token={limited}&userid={}",
            outsider.userid
        ))
        .await;
    assert_eq!(errcode(&v), 60011);
    assert_eq!(info.corps[0].apps[1].name, "limited");
}

fn within(dir: &wx_sim::DirectorySnapshot, mut id: u32, ancestor: u32) -> bool {
    loop {
        if id == ancestor {
            return true;
        }
        match dir.departments.iter().find(|d| d.id == id) {
            Some(d) if d.parentid != 0 => id = d.parentid,
            _ => return false,
        }
    }
}

#[tokio::test]
async fn list_id_pages_with_cursor_and_only_for_contacts() {
    let env = Env::generated().await;
    let contacts = env.wecom_token("contacts").await;
    let main = env.wecom_token("main").await;
    let path = |t: &str| format!("/cgi-bin/user/list_id?access_token={t}");
    assert_eq!(
        errcode(&env.post(&path(&main), &json!({"limit": 10})).await),
        48002
    );
    let expected: usize = env
        .sim
        .directory()
        .members
        .iter()
        .map(|m| m.department.len())
        .sum();
    let mut cursor = String::new();
    let mut rows = 0;
    let mut pages = 0;
    loop {
        let v = env
            .post(&path(&contacts), &json!({"cursor": cursor, "limit": 37}))
            .await;
        assert_eq!(v["errcode"], 0, "{v}");
        rows += v["dept_user"].as_array().unwrap().len();
        pages += 1;
        cursor = v["next_cursor"].as_str().unwrap().to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!(rows, expected);
    assert_eq!(pages, expected.div_ceil(37));
    assert_eq!(
        errcode(&env.post(&path(&contacts), &json!({"limit": 0})).await),
        40058
    );
}

#[tokio::test]
async fn contacts_secret_from_new_ip_gets_48009() {
    let env = Env::generated().await;
    let contacts = env.wecom_token("contacts").await;
    assert_eq!(
        errcode(
            &env.get(&format!(
                "/cgi-bin/user/get?access_token={contacts}&userid={}",
                env.sim.directory().members[0].userid
            ))
            .await
        ),
        0
    );
    env.sim.set_switches(&Switches {
        contacts_new_ip: Some(true),
        ..Switches::default()
    });
    assert_eq!(
        errcode(
            &env.get(&format!("/cgi-bin/department/list?access_token={contacts}"))
                .await
        ),
        48009
    );
    assert_eq!(
        errcode(
            &env.get(&format!(
                "/cgi-bin/department/simplelist?access_token={contacts}"
            ))
            .await
        ),
        0
    );
    let main = env.wecom_token("main").await;
    assert_eq!(
        errcode(
            &env.get(&format!("/cgi-bin/department/list?access_token={main}"))
                .await
        ),
        0
    );
}
