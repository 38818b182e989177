//! Lenient deserialisers for the real-world variance of WeCom/WeChat answers: numbers sent as strings,
//! withheld fields left out or sent empty, `|`-joined lists, secrets that must land in a redacting wrapper.

use secrecy::SecretString;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

/// Member gender. WeCom sends a string "0"/"1"/"2", WeChat a number; 0 also means "withheld".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Gender {
    /// 0: not set, or withheld from this app.
    Unspecified,
    Male,
    Female,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IntOrString {
    Int(i64),
    Str(String),
    Float(f64),
}

impl IntOrString {
    fn as_i64(&self) -> Option<i64> {
        match self {
            IntOrString::Int(n) => Some(*n),
            IntOrString::Str(s) => s.trim().parse().ok(),
            // Only whole numbers are accepted; a fraction here is not a count or an id.
            IntOrString::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            IntOrString::Float(_) => None,
        }
    }
}

/// `"1"`, `1` or absent/empty/null -> `Option<Gender>`.
pub(crate) fn gender<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Gender>, D::Error> {
    let raw: Option<IntOrString> = Option::deserialize(d)?;
    Ok(match raw.as_ref().and_then(IntOrString::as_i64) {
        Some(1) => Some(Gender::Male),
        Some(2) => Some(Gender::Female),
        Some(_) => Some(Gender::Unspecified),
        None => None,
    })
}

/// An integer that may arrive as a JSON string (old 企业号 answers send `"agentid":"1"`).
pub(crate) fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let raw = IntOrString::deserialize(d)?;
    raw.as_i64()
        .ok_or_else(|| de::Error::custom("expected an integer"))
}

/// Like `lenient_i64`, absent, null or empty -> None.
pub(crate) fn lenient_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let raw: Option<IntOrString> = Option::deserialize(d)?;
    Ok(raw.as_ref().and_then(IntOrString::as_i64))
}

/// A string that may be absent, null or empty; all three mean "not given".
pub(crate) fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let raw: Option<IntOrString> = Option::deserialize(d)?;
    Ok(match raw {
        Some(IntOrString::Str(s)) if !s.is_empty() => Some(s),
        Some(IntOrString::Str(_)) | None => None,
        // msgid and similar ids are documented as strings; accept a number too.
        Some(IntOrString::Int(n)) => Some(n.to_string()),
        Some(IntOrString::Float(f)) => Some(f.to_string()),
    })
}

/// `"a|b | c"` -> `["a", "b", "c"]`; absent or empty -> `[]`.
pub(crate) fn pipe_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(raw
        .unwrap_or_default()
        .split('|')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect())
}

/// A list that may be absent or null.
pub(crate) fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A secret string (session key, web-auth token) straight into the redacting wrapper.
pub(crate) fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    let raw = String::deserialize(d)?;
    Ok(SecretString::from(raw))
}

/// An optional secret string; empty means absent.
pub(crate) fn opt_secret<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SecretString>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(raw.filter(|s| !s.is_empty()).map(SecretString::from))
}
