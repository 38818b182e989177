//! The lookup API end to end after a full sync (started over HTTP) of a simulator org: both ways between
//! WeCom ids and local users/roles, list lookups, bad input, authentication and tenant isolation.

use std::collections::BTreeSet;

use serde_json::Value;
use wx_sim::SimConfig;

use crate::api_env::{ApiEnv, api_env, backends};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_both_ways_after_a_full_sync() {
    for backend in backends() {
        let env = api_env(backend, SimConfig::new(11, 60, 8)).await;
        env.sync_to_end("").await;
        both_ways(&env).await;
        list_lookups(&env).await;
        bad_input(&env).await;
        auth_and_isolation(&env).await;
        env.shutdown().await;
    }
}

/// A member of the simulator's directory in at least two departments, with a mobile and an email.
fn a_member(env: &ApiEnv) -> wx_sim::Member {
    env.sim
        .directory()
        .members
        .iter()
        .find(|m| m.department.len() >= 2 && !m.mobile.is_empty() && !m.email.is_empty())
        .cloned()
        .expect("the generated org has a member in two departments with mobile and email")
}

fn ids(list: &Value, at: &str) -> BTreeSet<i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v.pointer(at).unwrap().as_i64().unwrap())
        .collect()
}

/// userid -> user -> roles -> role -> department id -> role -> members contain the user.
async fn both_ways(env: &ApiEnv) {
    let member = a_member(env);
    let user = env.ok(&format!("/wecom/users/{}", member.userid)).await;
    assert_eq!(user["name"], member.name.as_str());
    let status = match member.status {
        1 => "active",
        2 => "disabled",
        4 => "inactive",
        other => panic!("a listed member with status {other}"),
    };
    assert_eq!(user["status"], status, "{user}");
    assert_eq!(user["wecom"][0]["corpid"], env.corpid.as_str());
    assert_eq!(user["wecom"][0]["userid"], member.userid.as_str());
    assert_eq!(user["mobile"], member.mobile.as_str());
    assert_eq!(user["email"], member.email.as_str());
    // Userids match case-insensitively.
    let upper = env
        .ok(&format!("/wecom/users/{}", member.userid.to_uppercase()))
        .await;
    assert_eq!(upper["id"], user["id"]);

    let user_id = user["id"].as_i64().unwrap();
    assert_eq!(env.ok(&format!("/users/{user_id}")).await, user);

    let roles = env.ok(&format!("/users/{user_id}/roles")).await;
    assert_eq!(roles["user_id"], user_id);
    let roles = roles["roles"].as_array().unwrap();
    let departments: BTreeSet<i64> = roles
        .iter()
        .map(|r| {
            r["role"]["wecom_department"]["department_id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let expected: BTreeSet<i64> = member.department.iter().map(|d| i64::from(*d)).collect();
    assert_eq!(departments, expected);
    assert_eq!(roles.iter().filter(|r| r["is_main"] == true).count(), 1);
    // Main first.
    assert_eq!(roles[0]["is_main"], true);
    if member.main_department != 0 {
        assert_eq!(
            roles[0]["role"]["wecom_department"]["department_id"],
            i64::from(member.main_department)
        );
    }

    for r in roles {
        let role_id = r["role"]["id"].as_i64().unwrap();
        assert_eq!(r["role"]["origin"], "wecom");
        assert_eq!(r["role"]["archived"], false);
        let role = env.ok(&format!("/roles/{role_id}")).await;
        assert_eq!(role, r["role"]);

        let dept = env.ok(&format!("/roles/{role_id}/department")).await;
        assert_eq!(dept["corpid"], env.corpid.as_str());
        assert_eq!(dept["role_id"], role_id);
        let department_id = dept["department_id"].as_i64().unwrap();
        let back = env.ok(&format!("/wecom/departments/{department_id}")).await;
        assert_eq!(back["id"], role_id);

        let members = env.ok(&format!("/roles/{role_id}/members")).await;
        assert_eq!(members["sub_roles"], false);
        assert_eq!(members["truncated"], false);
        assert!(ids(&members["members"], "/user/id").contains(&user_id));
        assert!(
            members["members"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["role_id"] == role_id)
        );
        let sim_dept = env
            .sim
            .directory()
            .members
            .iter()
            .filter(|m| m.department.iter().any(|d| i64::from(*d) == department_id))
            .count();
        assert_eq!(members["total"], sim_dept);
    }

    // The root department's role with sub-roles holds everyone; without, only its own members.
    let root = env.ok("/wecom/departments/1").await;
    assert_eq!(root["parent_id"], Value::Null);
    let root_id = root["id"].as_i64().unwrap();
    let all = env
        .ok(&format!(
            "/roles/{root_id}/members?sub_roles=true&limit=10000"
        ))
        .await;
    let everyone: BTreeSet<i64> = ids(&all["members"], "/user/id");
    assert_eq!(everyone.len(), env.sim.directory().members.len());
    assert!(everyone.contains(&user_id));
    let own = env.ok(&format!("/roles/{root_id}/members")).await;
    let own_count = env
        .sim
        .directory()
        .members
        .iter()
        .filter(|m| m.department.contains(&1))
        .count();
    assert_eq!(own["total"], own_count);
    // A limit truncates and says so.
    let one = env
        .ok(&format!("/roles/{root_id}/members?sub_roles=true&limit=1"))
        .await;
    assert_eq!(one["members"].as_array().unwrap().len(), 1);
    assert_eq!(one["truncated"], true);
    assert_eq!(one["total"], all["total"]);
}

async fn list_lookups(env: &ApiEnv) {
    let member = a_member(env);
    let user = env.ok(&format!("/wecom/users/{}", member.userid)).await;
    let user_id = user["id"].as_i64().unwrap();

    let found = env
        .ok(&format!("/users?mobile={}", urlencode(&member.mobile)))
        .await;
    assert!(ids(&found["users"], "/id").contains(&user_id), "{found}");
    // Email is matched case-insensitively.
    let email = member.email.to_uppercase();
    let found = env.ok(&format!("/users?email={}", urlencode(&email))).await;
    assert!(ids(&found["users"], "/id").contains(&user_id), "{found}");
    // A list answer carries the full user, links included.
    let me = found["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == user_id)
        .unwrap();
    assert_eq!(me, &user);
    let none = env.ok("/users?mobile=00000000000").await;
    assert_eq!(none["users"], serde_json::json!([]));

    let fragment: String = member.name.chars().skip(1).take(2).collect();
    let found = env.ok(&format!("/users?q={}", urlencode(&fragment))).await;
    let found_ids = ids(&found["users"], "/id");
    let expected = env
        .sim
        .directory()
        .members
        .iter()
        .filter(|m| m.name.to_lowercase().contains(&fragment.to_lowercase()))
        .count();
    assert_eq!(found_ids.len(), expected.min(20), "{found}");
    if expected <= 20 {
        assert!(found_ids.contains(&user_id));
    }
    for u in found["users"].as_array().unwrap() {
        assert!(u["name"].as_str().unwrap().contains(&fragment));
    }
    let one = env
        .ok(&format!("/users?q={}&limit=1", urlencode(&fragment)))
        .await;
    assert_eq!(one["users"].as_array().unwrap().len(), 1);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn bad_input(env: &ApiEnv) {
    let bad = [
        "/users/abc",
        "/users/12x/roles",
        "/roles/abc",
        "/roles/abc/members",
        "/roles/abc/department",
        "/wecom/departments/abc",
        "/users",
        "/users?q=",
        "/users?q=%20%20",
        "/users?q=a&email=b",
        "/users?mobile=1&q=a",
        "/users?q=a&limit=0",
        "/users?q=a&limit=101",
        "/users?q=a&limit=many",
        "/sync/runs/abc",
        "/sync/runs?limit=0",
    ];
    for path in bad {
        let (status, json) = env.get(path).await;
        assert_eq!(status, 400, "{path}: {json}");
        assert_eq!(json["error"]["code"], "bad_request", "{path}: {json}");
        assert!(!json["error"]["message"].as_str().unwrap().is_empty());
    }
    let root = env.ok("/wecom/departments/1").await;
    let (status, json) = env
        .get(&format!("/roles/{}/members?sub_roles=maybe", root["id"]))
        .await;
    assert_eq!(status, 400, "{json}");
    assert_eq!(json["error"]["code"], "bad_request");

    let missing = [
        ("/users/999999999", "user 999999999"),
        ("/users/999999999/roles", "user 999999999"),
        ("/roles/999999999", "role 999999999"),
        ("/roles/999999999/members", "role 999999999"),
        ("/roles/999999999/department", "role 999999999"),
        ("/wecom/users/no-such-member", "no-such-member"),
        ("/wecom/departments/999999", "department 999999"),
        ("/sync/runs/999999999", "run 999999999"),
        ("/sync/runs/999999999/events", "run 999999999"),
    ];
    for (path, names) in missing {
        let (status, json) = env.get(path).await;
        assert_eq!(status, 404, "{path}: {json}");
        assert_eq!(json["error"]["code"], "not_found", "{path}");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{path}: {message}");
    }
}

async fn auth_and_isolation(env: &ApiEnv) {
    let member = a_member(env);
    let user = env.ok(&format!("/wecom/users/{}", member.userid)).await;
    let user_id = user["id"].as_i64().unwrap();
    let role_id = env.ok(&format!("/users/{user_id}/roles")).await["roles"][0]["role"]["id"]
        .as_i64()
        .unwrap();
    let run_id = env.ok("/sync/runs").await["runs"][0]["id"]
        .as_i64()
        .unwrap();
    let paths = [
        format!("/users/{user_id}"),
        format!("/users/{user_id}/roles"),
        format!("/users?q={}", urlencode(&member.name)),
        format!("/wecom/users/{}", member.userid),
        format!("/roles/{role_id}"),
        format!("/roles/{role_id}/members"),
        format!("/roles/{role_id}/department"),
        "/wecom/departments/1".to_owned(),
        "/sync/runs".to_owned(),
        format!("/sync/runs/{run_id}"),
        format!("/sync/runs/{run_id}/events"),
    ];
    for path in &paths {
        // No key, a wrong key, and the other tenant's key on this tenant.
        for key in [None, Some("wxb_wrong"), Some(env.beta_key.as_str())] {
            let (status, json) = env.get_as(key, &env.tenant, path).await;
            assert_eq!(status, 401, "{path} with {key:?}: {json}");
            assert_eq!(json["error"]["code"], "unauthorized");
        }
        // The other tenant's key on its own tenant, asking for this tenant's ids: nothing is found.
        let (status, json) = env.get_as(Some(&env.beta_key), &env.beta, path).await;
        match path.as_str() {
            p if p.starts_with("/users?") => {
                assert_eq!(status, 200, "{p}: {json}");
                assert_eq!(json["users"], serde_json::json!([]), "{p}");
            }
            "/sync/runs" => {
                assert_eq!(status, 200, "{json}");
                assert_eq!(json["runs"], serde_json::json!([]));
            }
            p => {
                assert_eq!(status, 404, "{p}: {json}");
                assert_eq!(json["error"]["code"], "not_found", "{p}");
            }
        }
    }
    // And the other tenant may not start a sync here either.
    let resp = env
        .http
        .post(env.url(&env.tenant, "/sync"))
        .bearer_auth(&env.beta_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Unknown tenant.
    let (status, json) = env.get_as(Some(&env.key), "nobody", "/users/1").await;
    assert_eq!(status, 404);
    assert_eq!(json["error"]["code"], "tenant_not_found");
}

/// Every lookup and sync route is in the OpenAPI document with the API-key requirement and its error
/// answers.
#[test]
fn the_lookup_and_sync_routes_are_documented() {
    let doc: Value = serde_json::from_str(&server::openapi::document_json()).unwrap();
    let routes = [
        ("get", "/users", &["400", "401", "404"][..]),
        ("get", "/users/{user_id}", &["400", "401", "404"]),
        ("get", "/users/{user_id}/roles", &["400", "401", "404"]),
        ("get", "/wecom/users/{userid}", &["401", "404"]),
        ("get", "/roles/{role_id}", &["400", "401", "404"]),
        ("get", "/roles/{role_id}/members", &["400", "401", "404"]),
        ("get", "/roles/{role_id}/department", &["400", "401", "404"]),
        (
            "get",
            "/wecom/departments/{department_id}",
            &["400", "401", "404"],
        ),
        ("post", "/sync", &["202", "400", "401", "404", "409"]),
        ("get", "/sync/runs", &["400", "401", "404"]),
        ("get", "/sync/runs/{run_id}", &["400", "401", "404"]),
        ("get", "/sync/runs/{run_id}/events", &["400", "401", "404"]),
    ];
    for (method, rest, statuses) in routes {
        let path = format!("/api/v1/tenants/{{tenant}}{rest}");
        let op = &doc["paths"][&path][method];
        assert!(op.is_object(), "{method} {path} missing");
        assert_eq!(
            op["security"][0]["api_key"],
            serde_json::json!([]),
            "{path}"
        );
        for status in statuses {
            assert!(op["responses"][status].is_object(), "{path}: no {status}");
        }
    }
    assert!(
        doc["paths"]["/api/v1/tenants/{tenant}/sync/runs/{run_id}/events"]["get"]["responses"]["200"]
            ["content"]["text/event-stream"]
            .is_object()
    );
    for schema in [
        "UserDto",
        "RoleDto",
        "RoleMembersResponse",
        "SyncRunDto",
        "StartSyncRequest",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}
