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

enum IntOrString {
    Int(i64),
    Str(String),
    Float(f64),
}

/// By hand rather than `#[serde(untagged)]`: untagged buffers the value and tries each variant in turn,
/// formatting an error message for every miss, which made string fields of big `user/list` answers cost
/// several times their parse (a third of a 100k-member sync's CPU). Same outcome per input.
impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = IntOrString;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer or a string")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
                Ok(IntOrString::Int(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
                Ok(i64::try_from(v).map_or(IntOrString::Float(v as f64), IntOrString::Int))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<IntOrString, E> {
                Ok(IntOrString::Float(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::Str(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<IntOrString, E> {
                Ok(IntOrString::Str(v))
            }
        }
        d.deserialize_any(V)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "non_empty")]
        s: Option<String>,
        #[serde(default, deserialize_with = "lenient_opt_i64")]
        n: Option<i64>,
        #[serde(default, deserialize_with = "gender")]
        g: Option<Gender>,
    }

    fn t(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn ints_and_strings_either_way() {
        let v = t(r#"{"s":"a","n":"12","g":"1"}"#);
        assert_eq!(
            (v.s.as_deref(), v.n, v.g),
            (Some("a"), Some(12), Some(Gender::Male))
        );
        let v = t(r#"{"s":7,"n":12,"g":2}"#);
        assert_eq!(
            (v.s.as_deref(), v.n, v.g),
            (Some("7"), Some(12), Some(Gender::Female))
        );
        let v = t(r#"{"s":"","n":null,"g":"0"}"#);
        assert_eq!((v.s, v.n, v.g), (None, None, Some(Gender::Unspecified)));
        let v = t(r#"{"n":3.0,"s":1.5}"#);
        assert_eq!((v.s.as_deref(), v.n, v.g), (Some("1.5"), Some(3), None));
        assert_eq!(t(r#"{"n":3.5}"#).n, None);
        assert_eq!(t(r#"{"n":18446744073709551615}"#).n, None);
        assert!(serde_json::from_str::<T>(r#"{"n":true}"#).is_err());
    }
}
