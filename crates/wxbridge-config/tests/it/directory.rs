//! `[tenants.<key>.wecom.directory]`: defaults, file and environment values, and the validation of each key.

use wxbridge_config::{
    DirectoryConfig, DirectorySource, DirectoryStrategy, Sources, inspect, load,
};

use crate::support::{error_paths, good_toml, inspect_toml, write};

fn directory_of(toml: &str, env: &[(&str, &str)]) -> DirectoryConfig {
    let w = write(toml);
    let sources = Sources::file(&w.path).with_env(env.iter().copied());
    let c = load(&sources).unwrap().config;
    c.tenant("demo").unwrap().wecom.clone().unwrap().directory
}

fn with_directory(body: &str) -> String {
    format!("{}\n[tenants.demo.wecom.directory]\n{body}\n", good_toml())
}

#[test]
fn defaults_apply_without_a_directory_table() {
    let d = directory_of(&good_toml(), &[]);
    assert_eq!(d, DirectoryConfig::default());
    assert_eq!(d.source, DirectorySource::Auto);
    assert_eq!(d.calls_per_minute, 9_000);
    assert_eq!(d.concurrency, 8);
    assert!((d.max_removal_share - 0.10).abs() < 1e-12);
    assert_eq!(d.strategy, DirectoryStrategy::Auto);
}

#[test]
fn an_empty_directory_table_also_gives_the_defaults() {
    assert_eq!(
        directory_of(&with_directory(""), &[]),
        DirectoryConfig::default()
    );
}

#[test]
fn file_values_are_read() {
    let d = directory_of(
        &with_directory(
            "app = \"main\"\ncalls_per_minute = 0\nconcurrency = 3\nmax_removal_share = 0.25\nstrategy = \"list_id\"",
        ),
        &[],
    );
    assert_eq!(d.source, DirectorySource::App("main".into()));
    assert_eq!(d.calls_per_minute, 0, "0 means unlimited and is accepted");
    assert_eq!(d.concurrency, 3);
    assert!((d.max_removal_share - 0.25).abs() < 1e-12);
    assert_eq!(d.strategy, DirectoryStrategy::ListId);
}

#[test]
fn an_integer_share_is_accepted() {
    let d = directory_of(&with_directory("max_removal_share = 1"), &[]);
    assert!((d.max_removal_share - 1.0).abs() < 1e-12);
}

#[test]
fn environment_sets_directory_keys_with_their_types() {
    let d = directory_of(
        &good_toml(),
        &[
            (
                "WXBRIDGE_TENANTS__DEMO__WECOM__DIRECTORY__CALLS_PER_MINUTE",
                "1200",
            ),
            ("WXBRIDGE_TENANTS__DEMO__WECOM__DIRECTORY__CONCURRENCY", "2"),
            (
                "WXBRIDGE_TENANTS__DEMO__WECOM__DIRECTORY__MAX_REMOVAL_SHARE",
                "0.5",
            ),
            ("WXBRIDGE_TENANTS__DEMO__WECOM__DIRECTORY__STRATEGY", "list"),
        ],
    );
    assert_eq!(d.calls_per_minute, 1200);
    assert_eq!(d.concurrency, 2);
    assert!((d.max_removal_share - 0.5).abs() < 1e-12);
    assert_eq!(d.strategy, DirectoryStrategy::List);
}

#[test]
fn environment_overrides_the_file() {
    let d = directory_of(
        &with_directory("max_removal_share = 0.2"),
        &[(
            "WXBRIDGE_TENANTS__DEMO__WECOM__DIRECTORY__MAX_REMOVAL_SHARE",
            "0",
        )],
    );
    assert_eq!(d.max_removal_share, 0.0);
}

#[test]
fn share_outside_zero_to_one_is_an_error_with_a_hint() {
    for bad in ["1.5", "-0.1"] {
        let i = inspect_toml(&with_directory(&format!("max_removal_share = {bad}")));
        assert_eq!(
            error_paths(&i),
            vec!["tenants.demo.wecom.directory.max_removal_share"],
            "{bad}"
        );
        let p = i.problems.iter().find(|p| p.is_error()).unwrap();
        assert!(p.message.contains("between 0 and 1"), "{p}");
        assert!(
            p.hint.as_deref().unwrap().contains("--override-guard"),
            "{p}"
        );
    }
}

#[test]
fn share_from_env_that_is_not_a_number_names_the_key() {
    let w = write(&good_toml());
    let i = inspect(&Sources::file(&w.path).with_env([(
        "WXBRIDGE_TENANTS__DEMO__WECOM__DIRECTORY__MAX_REMOVAL_SHARE",
        "ten percent",
    )]))
    .unwrap();
    assert!(i.has_errors());
    assert!(
        i.problems
            .iter()
            .any(|p| p.path.contains("max_removal_share")),
        "{:#?}",
        i.problems
    );
}

#[test]
fn unknown_strategy_suggests_the_close_one() {
    let i = inspect_toml(&with_directory("strategy = \"listid\""));
    assert_eq!(
        error_paths(&i),
        vec!["tenants.demo.wecom.directory.strategy"]
    );
    let p = i.problems.iter().find(|p| p.is_error()).unwrap();
    assert!(
        p.hint
            .as_deref()
            .unwrap()
            .contains("did you mean \"list_id\"?"),
        "{p}"
    );
}

#[test]
fn zero_or_huge_concurrency_is_an_error() {
    for bad in ["0", "1000"] {
        let i = inspect_toml(&with_directory(&format!("concurrency = {bad}")));
        assert_eq!(
            error_paths(&i),
            vec!["tenants.demo.wecom.directory.concurrency"],
            "{bad}"
        );
    }
}

#[test]
fn app_must_name_a_configured_credential() {
    let i = inspect_toml(&with_directory("app = \"mian\""));
    assert_eq!(error_paths(&i), vec!["tenants.demo.wecom.directory.app"]);
    let p = i.problems.iter().find(|p| p.is_error()).unwrap();
    assert!(
        p.hint.as_deref().unwrap().contains("did you mean `main`?"),
        "{p}"
    );

    // The sample corp has no contacts secret.
    let i = inspect_toml(&with_directory("app = \"contacts\""));
    assert_eq!(error_paths(&i), vec!["tenants.demo.wecom.directory.app"]);
}

#[test]
fn unknown_directory_key_suggests_the_right_one() {
    let i = inspect_toml(&with_directory("max_removal_ratio = 0.2"));
    let p = i
        .problems
        .iter()
        .find(|p| p.path == "tenants.demo.wecom.directory.max_removal_ratio")
        .expect("unknown key reported");
    assert!(
        p.hint
            .as_deref()
            .unwrap()
            .contains("did you mean `max_removal_share`?"),
        "{p}"
    );
}
