//! Directory write speed on SQLite: a first sync of a generated org (5,000 departments, 100,000
//! members, 1-2 memberships each) applied as batches, then loading it back, then a no-change re-apply
//! of every member. Plain timing with a summary, not criterion: one run takes seconds and writes a real
//! file, which is the figure the issue asks for. Run: `cargo bench -p store --bench directory_apply`
//! (set WXBRIDGE_BENCH_MEMBERS to scale down).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use store::{
    Db, DepartmentUpsert, DirectoryChanges, MemberUpsert, MembershipSpec, UserFields, UserStatus,
};

const DEPARTMENTS: i64 = 5_000;
const BATCH: usize = 10_000;

fn org(members: usize) -> (Vec<DepartmentUpsert>, Vec<MemberUpsert>) {
    let departments = (1..=DEPARTMENTS)
        .map(|id| DepartmentUpsert {
            department_id: id,
            name: format!("Department {id}"),
            // A tree ten wide: 1 is the root.
            parent_department_id: if id == 1 {
                None
            } else {
                Some((id - 2) / 10 + 1)
            },
            sort_order: id * 10,
        })
        .collect();
    let members = (0..members)
        .map(|i| {
            let main = (i as i64 % DEPARTMENTS) + 1;
            let mut memberships = vec![MembershipSpec {
                department_id: main,
                is_leader: i % 50 == 0,
                sort_order: i as i64,
                is_main: true,
            }];
            if i % 3 == 0 {
                memberships.push(MembershipSpec {
                    department_id: ((i as i64 * 7) % DEPARTMENTS) + 1,
                    is_leader: false,
                    sort_order: 0,
                    is_main: false,
                });
                memberships.dedup_by_key(|m| m.department_id);
            }
            MemberUpsert {
                userid: format!("User{i:06}"),
                open_userid: None,
                fields: UserFields {
                    name: format!("Member {i}"),
                    mobile: Some(format!("138{i:08}")),
                    email: Some(format!("user{i}@example.com")),
                    avatar: None,
                    position: Some("Engineer".to_owned()),
                    gender: None,
                    status: UserStatus::Active,
                },
                memberships: Some(memberships),
            }
        })
        .collect();
    (departments, members)
}

fn rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let members: usize = std::env::var("WXBRIDGE_BENCH_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/bench.db", dir.path().display()))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let (departments, all_members) = org(members);

    let started = Instant::now();
    let report = db
        .apply_directory_changes(
            "bench",
            "wwbench",
            &DirectoryChanges {
                departments,
                ..Default::default()
            },
            1,
        )
        .await
        .unwrap();
    let mut rows = report.roles_created * 2;
    let mut memberships = 0;
    for chunk in all_members.chunks(BATCH) {
        let report = db
            .apply_directory_changes(
                "bench",
                "wwbench",
                &DirectoryChanges {
                    members: chunk.to_vec(),
                    ..Default::default()
                },
                2,
            )
            .await
            .unwrap();
        rows += report.users_created * 2 + report.memberships_opened;
        memberships += report.memberships_opened;
    }
    let first = started.elapsed();

    let started = Instant::now();
    let local = db.load_directory("bench", "wwbench").await.unwrap();
    let load = started.elapsed();
    assert_eq!(local.members.len(), members);

    // Re-sending every member unchanged: the store compares and writes no row. A planner would send
    // nothing at all; this bounds the cost of a big no-op batch.
    let started = Instant::now();
    for chunk in all_members.chunks(BATCH) {
        let report = db
            .apply_directory_changes(
                "bench",
                "wwbench",
                &DirectoryChanges {
                    members: chunk.to_vec(),
                    ..Default::default()
                },
                3,
            )
            .await
            .unwrap();
        assert_eq!(
            report,
            store::ApplyReport::default(),
            "an unchanged batch writes nothing"
        );
    }
    let reapply = started.elapsed();

    println!(
        "directory_apply sqlite: {DEPARTMENTS} departments, {members} members, {memberships} memberships, \
         {rows} rows written in {:.2?} ({:.0} rows/s); load_directory {:.2?}; \
         no-change re-apply of all members {:.2?}; peak RSS {} MB",
        first,
        rows as f64 / first.as_secs_f64(),
        load,
        reapply,
        rss_kb().map_or("?".to_owned(), |kb| (kb / 1024).to_string()),
    );
    db.close().await;
}
