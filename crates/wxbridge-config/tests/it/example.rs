//! `wxbridge.example.toml` at the repository root loads, and mentions every key the file structs accept.

use std::collections::BTreeSet;
use std::path::PathBuf;

use wxbridge_config::{Sources, load, schema};

fn example_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../wxbridge.example.toml")
}

#[test]
fn example_config_is_valid() {
    let loaded = load(&Sources::file(example_path())).unwrap();
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    let t = loaded.config.tenant("demo").unwrap();
    assert_eq!(t.api_key_hashes.len(), 1);
}

/// Section headers and `key =` lines, commented or not, normalised with `*` for user-chosen names.
fn keys_in_example() -> BTreeSet<String> {
    let text = std::fs::read_to_string(example_path()).unwrap();
    let mut section: Vec<String> = Vec::new();
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let l = line.trim_start_matches('#').trim();
        if l.starts_with('[') && l.ends_with(']') {
            section = l[1..l.len() - 1].split('.').map(str::to_owned).collect();
            // Names chosen by the user sit after these keys.
            for i in 1..section.len() {
                if ["tenants", "apps", "mini_programs", "official_accounts"]
                    .contains(&section[i - 1].as_str())
                {
                    section[i] = "*".into();
                }
            }
            continue;
        }
        let Some((key, _)) = l.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            let mut p = section.clone();
            p.push(key.to_owned());
            out.insert(p.join("."));
        }
    }
    out
}

#[test]
fn example_mentions_every_key_and_no_other() {
    let in_example = keys_in_example();
    let in_structs: BTreeSet<String> = schema::known_keys().into_iter().map(|k| k.path).collect();
    assert!(
        in_structs.len() > 40,
        "the schema walk found too few keys: {in_structs:?}"
    );
    let missing: Vec<_> = in_structs.difference(&in_example).collect();
    let extra: Vec<_> = in_example.difference(&in_structs).collect();
    assert!(
        missing.is_empty(),
        "keys missing from wxbridge.example.toml: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "keys in wxbridge.example.toml the structs do not accept: {extra:?}"
    );
}

#[test]
fn example_shows_the_env_name_of_every_top_level_key() {
    let text = std::fs::read_to_string(example_path()).unwrap();
    for k in schema::known_keys()
        .into_iter()
        .filter(|k| !k.path.starts_with("tenants."))
    {
        assert!(
            text.contains(&k.env_name()),
            "missing env name {}",
            k.env_name()
        );
    }
}
