//! Reading the configuration in layers with figment: defaults, then the TOML file, then `WXBRIDGE_*`
//! environment variables (`__` separates nesting levels), then command-line overrides. Unknown keys in the
//! file are errors naming the full key; unknown environment variables are warnings naming only the variable.

use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use crate::error::ConfigError;
use crate::file::FileConfig;
use crate::model::Config;
use crate::problem::Problem;
use crate::schema::{self, KeySpec, LeafKind};
use crate::validate;

/// The environment prefix of configuration variables.
pub const ENV_PREFIX: &str = "WXBRIDGE_";

/// `WXBRIDGE_*` variables that are read by other parts of wxbridge, not configuration keys, so they are
/// neither mapped nor warned about.
// WXBRIDGE_DATABASE_URL is `wxbridge migrate`'s flag variable (the config key is WXBRIDGE_DATABASE__URL).
const NON_CONFIG_ENV: &[&str] = &["WXBRIDGE_CONFIG", "WXBRIDGE_LOG", "WXBRIDGE_DATABASE_URL"];
const NON_CONFIG_ENV_PREFIXES: &[&str] = &["WXBRIDGE_TEST_", "WXBRIDGE_SIM_", "WXBRIDGE_DEMO_"];

/// Where the configuration comes from. Tests pass an explicit environment instead of touching the process
/// environment.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub file: Option<PathBuf>,
    /// Environment variables (name, value); only `WXBRIDGE_*` ones are looked at.
    pub env: Vec<(String, String)>,
    /// Command-line overrides as (dotted key, value), applied last.
    pub overrides: Vec<(String, String)>,
}

impl Sources {
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Sources {
            file: Some(path.into()),
            ..Sources::default()
        }
    }

    /// Read the `WXBRIDGE_*` variables of this process.
    pub fn with_process_env(mut self) -> Self {
        self.env = std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        self
    }

    pub fn with_env<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }

    pub fn with_override(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.overrides.push((key.into(), value.into()));
        self
    }
}

/// Everything `check` needs: the validated config when there is no error, and every problem found.
#[derive(Debug)]
pub struct Inspection {
    pub config: Option<Config>,
    pub problems: Vec<Problem>,
}

impl Inspection {
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(Problem::is_error)
    }
}

/// A loaded, valid configuration and the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Problem>,
}

/// Load and validate; fails with every problem when any of them is an error. Warnings are logged.
pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
    let inspection = inspect(sources)?;
    for w in inspection.problems.iter().filter(|p| !p.is_error()) {
        tracing::warn!(config.key = %w.path, "{}", w.message);
    }
    match inspection.config {
        Some(config) if !inspection.has_errors() => Ok(Loaded {
            config,
            warnings: inspection.problems,
        }),
        _ => Err(ConfigError::Invalid {
            problems: inspection.problems,
        }),
    }
}

/// Read every layer and validate, collecting all problems. Fails only when the file does not exist.
pub fn inspect(sources: &Sources) -> Result<Inspection, ConfigError> {
    let mut problems = Vec::new();
    let file = match read_file_config(sources, &mut problems)? {
        Some(file) => file,
        None => {
            return Ok(Inspection {
                config: None,
                problems,
            });
        }
    };
    let base_dir = sources
        .file
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf);
    let config = validate::validate(&file, base_dir.as_deref(), &mut problems);
    let config = if problems.iter().any(Problem::is_error) {
        None
    } else {
        config
    };
    Ok(Inspection { config, problems })
}

/// The merged file struct (before validation), or None when the layers could not be read into it (the
/// problems say why).
pub fn read_file_config(
    sources: &Sources,
    problems: &mut Vec<Problem>,
) -> Result<Option<FileConfig>, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(FileConfig::default()));
    if let Some(path) = &sources.file {
        if !path.is_file() {
            return Err(ConfigError::FileNotFound { path: path.clone() });
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    let env = EnvProvider::new(&sources.env, problems);
    figment = figment.merge(env);
    for (key, value) in &sources.overrides {
        figment = figment.merge(Serialized::default(key, value));
    }

    let before = problems.len();
    check_unknown_keys(&figment, problems);
    if problems.len() > before {
        return Ok(None);
    }
    match figment.extract::<FileConfig>() {
        Ok(file) => Ok(Some(file)),
        Err(err) => {
            for e in err {
                problems.push(figment_problem(&e));
            }
            Ok(None)
        }
    }
}

/// Walk the merged data against the schema and report every key the file structs do not accept, with a
/// suggestion when one is close. serde's `deny_unknown_fields` would stop at the first one.
fn check_unknown_keys(figment: &Figment, problems: &mut Vec<Problem>) {
    let data = match figment.data() {
        Ok(data) => data,
        Err(err) => {
            for e in err {
                problems.push(figment_problem(&e));
            }
            return;
        }
    };
    let known = schema::known_keys();
    for dict in data.values() {
        walk(figment, dict, &mut Vec::new(), &known, problems);
    }
}

fn walk(
    figment: &Figment,
    dict: &Dict,
    path: &mut Vec<String>,
    known: &[KeySpec],
    problems: &mut Vec<Problem>,
) {
    for (key, value) in dict {
        path.push(key.clone());
        let segs: Vec<&str> = path.iter().map(String::as_str).collect();
        let is_leaf = known.iter().any(|k| k.matches(&segs));
        let is_table = !is_leaf && known.iter().any(|k| is_prefix(&k.path, &segs));
        if is_table {
            if let Value::Dict(_, inner) = value {
                walk(figment, inner, path, known, problems);
            }
        } else if !is_leaf {
            let dotted = path.join(".");
            let parent = &segs[..segs.len() - 1];
            let accepted = schema::keys_under(parent);
            let mut hint = match schema::suggest(key, accepted.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`? "),
                None => String::new(),
            };
            if accepted.iter().any(|k| k != "*") {
                hint.push_str(&format!("Keys accepted here: {}.", accepted.join(", ")));
            }
            let source = figment
                .find_metadata(&dotted)
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            problems.push(Problem::error(
                dotted.clone(),
                format!("unknown key `{dotted}`{source}"),
                (!hint.is_empty()).then(|| hint.trim().to_owned()),
            ));
        }
        path.pop();
    }
}

fn is_prefix(pattern: &str, segs: &[&str]) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    p.len() > segs.len() && p.iter().zip(segs).all(|(p, s)| *p == "*" || p == s)
}

fn figment_problem(e: &figment::Error) -> Problem {
    use figment::error::Kind;
    let path = e.path.join(".");
    let source = e
        .metadata
        .as_ref()
        .map(|m| format!(" (from {})", m.name))
        .unwrap_or_default();
    let (message, hint) = match &e.kind {
        Kind::UnknownField(field, expected) => {
            let full = if path.is_empty() {
                field.clone()
            } else {
                format!("{path}.{field}")
            };
            let hint = schema::suggest(field, expected.iter().copied())
                .map(|s| format!("did you mean `{s}`?"));
            return Problem::error(full.clone(), format!("unknown key `{full}`{source}"), hint);
        }
        Kind::InvalidType(actual, expected) => {
            (format!("expected {expected}, found {actual}{source}"), None)
        }
        Kind::InvalidValue(actual, expected) => (
            format!("invalid value {actual}, expected {expected}{source}"),
            None,
        ),
        other => (format!("{other}{source}"), None),
    };
    Problem::error(
        if path.is_empty() {
            "(file)".to_owned()
        } else {
            path
        },
        message,
        hint,
    )
}

/// `WXBRIDGE_*` variables mapped onto the schema. Values are typed by the key they land on, so a secret
/// made only of digits stays a string and `agentid` becomes a number.
struct EnvProvider {
    dict: Dict,
}

impl EnvProvider {
    fn new(vars: &[(String, String)], problems: &mut Vec<Problem>) -> Self {
        let known = schema::known_keys();
        let mut dict = Dict::new();
        for (name, raw) in vars {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if NON_CONFIG_ENV.contains(&name.as_str())
                || NON_CONFIG_ENV_PREFIXES.iter().any(|p| name.starts_with(p))
            {
                continue;
            }
            let lower = rest.to_ascii_lowercase();
            let segs: Vec<&str> = lower.split("__").collect();
            let Some(spec) = known.iter().find(|k| k.matches(&segs)) else {
                // The name only: the value may be a secret.
                tracing::warn!(env.var = %name, "ignoring unknown WXBRIDGE_ environment variable");
                problems.push(Problem::warning(
                    name.clone(),
                    format!("unknown environment variable {name} is ignored"),
                    Some("configuration variables are WXBRIDGE_ + the key path in capitals with `__` between levels, e.g. WXBRIDGE_TENANTS__DEMO__WECOM__APPS__MAIN__SECRET".into()),
                ));
                continue;
            };
            let value = typed_value(spec.kind, raw);
            if let Some(nested) = figment::util::nest(&lower.replace("__", "."), value).into_dict()
            {
                dict = merge_dicts(dict, nested);
            }
        }
        EnvProvider { dict }
    }
}

fn typed_value(kind: LeafKind, raw: &str) -> Value {
    match kind {
        LeafKind::String => Value::from(raw.to_owned()),
        LeafKind::Integer => raw
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(raw.to_owned())),
        LeafKind::Float => raw
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::from)
            .unwrap_or_else(|| Value::from(raw.to_owned())),
        LeafKind::Bool => raw
            .trim()
            .parse::<bool>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(raw.to_owned())),
        LeafKind::StringList => {
            let items: Vec<Value> = raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::from(s.to_owned()))
                .collect();
            Value::from(items)
        }
        LeafKind::IntegerList => {
            let items: Vec<Value> = raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<i64>()
                        .map(Value::from)
                        .unwrap_or_else(|_| Value::from(s.to_owned()))
                })
                .collect();
            Value::from(items)
        }
    }
}

fn merge_dicts(mut into: Dict, from: Dict) -> Dict {
    for (k, v) in from {
        let merged = match (into.remove(&k), v) {
            (Some(Value::Dict(_, a)), Value::Dict(_, b)) => Value::from(merge_dicts(a, b)),
            (_, v) => v,
        };
        into.insert(k, merged);
    }
    into
}

impl Provider for EnvProvider {
    fn metadata(&self) -> Metadata {
        Metadata::named("`WXBRIDGE_` environment variable").interpolater(|_profile, keys| {
            format!(
                "{ENV_PREFIX}{}",
                keys.iter()
                    .map(|k| k.to_ascii_uppercase())
                    .collect::<Vec<_>>()
                    .join("__")
            )
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}
