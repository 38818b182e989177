//! SHA-1 signatures: callback `msg_signature` (4 fields), plain `signature` (3 fields), JS-SDK and
//! constant-time verification.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use crate::CryptoError;

/// Lower-case hex of a SHA-1 digest, on the stack.
pub(crate) type HexDigest = [u8; 40];

/// SHA-1 of `parts` concatenated, as lower-case hex bytes; feeding the hasher piecewise avoids building
/// the joined string.
pub(crate) fn sha1_hex<'p>(parts: impl IntoIterator<Item = &'p str>) -> HexDigest {
    let mut hasher = Sha1::new();
    for p in parts {
        hasher.update(p.as_bytes());
    }
    let mut out = [0u8; 40];
    // 20 digest bytes always fill exactly 40 hex characters, so this cannot fail.
    let _ = hex::encode_to_slice(hasher.finalize(), &mut out);
    out
}

/// SHA-1 of the byte-order sorted `parts` concatenated without separator, as lower-case hex bytes.
pub(crate) fn sorted_sha1_hex<const N: usize>(mut parts: [&str; N]) -> HexDigest {
    parts.sort_unstable();
    sha1_hex(parts)
}

pub(crate) fn hex_to_string(h: HexDigest) -> String {
    // Only ASCII hex digits are ever written, so this never fails; the fallback keeps the function total.
    String::from_utf8(h.to_vec()).unwrap_or_default()
}

/// Constant-time comparison of a computed digest with a caller-supplied hex signature (either case).
pub(crate) fn ct_eq_hex(expected: &HexDigest, given: &str) -> Result<(), CryptoError> {
    let given = given.as_bytes();
    if given.len() != expected.len() {
        return Err(CryptoError::SignatureMismatch);
    }
    let mut lower = [0u8; 40];
    for (dst, src) in lower.iter_mut().zip(given) {
        *dst = src.to_ascii_lowercase();
    }
    if bool::from(lower.ct_eq(expected)) {
        Ok(())
    } else {
        Err(CryptoError::SignatureMismatch)
    }
}

/// Callback `msg_signature = sha1(sort([token, timestamp, nonce, encrypt]).join(""))`, lower-case hex.
pub fn msg_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    hex_to_string(sorted_sha1_hex([token, timestamp, nonce, encrypt]))
}

/// Plain-mode (WeChat GET URL check, plaintext push) `signature = sha1(sort([token, timestamp, nonce]))`.
pub fn signature(token: &str, timestamp: &str, nonce: &str) -> String {
    hex_to_string(sorted_sha1_hex([token, timestamp, nonce]))
}

/// Verify a plain-mode 3-field signature in constant time.
pub fn verify_signature(
    token: &str,
    timestamp: &str,
    nonce: &str,
    signature: &str,
) -> Result<(), CryptoError> {
    ct_eq_hex(&sorted_sha1_hex([token, timestamp, nonce]), signature)
}

/// Verify a 4-field callback `msg_signature` in constant time.
pub fn verify_msg_signature(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypt: &str,
    msg_signature: &str,
) -> Result<(), CryptoError> {
    ct_eq_hex(
        &sorted_sha1_hex([token, timestamp, nonce, encrypt]),
        msg_signature,
    )
}

/// JS-SDK `wx.config` / `wx.agentConfig` signature:
/// `sha1("jsapi_ticket=T&noncestr=N&timestamp=TS&url=URL")`, values raw (not URL-encoded).
///
/// `url` must already be without its `#fragment`; see [`jssdk_signature_for_page`] to strip it.
pub fn jssdk_signature(ticket: &str, noncestr: &str, timestamp: &str, url: &str) -> String {
    hex_to_string(sha1_hex([
        "jsapi_ticket=",
        ticket,
        "&noncestr=",
        noncestr,
        "&timestamp=",
        timestamp,
        "&url=",
        url,
    ]))
}

/// The page URL as it must be signed: everything from the first `#` on removed, the query kept.
pub fn strip_url_fragment(url: &str) -> &str {
    match url.find('#') {
        Some(i) => &url[..i],
        None => url,
    }
}

/// [`jssdk_signature`] for a page URL that may still carry a `#fragment`.
pub fn jssdk_signature_for_page(
    ticket: &str,
    noncestr: &str,
    timestamp: &str,
    page_url: &str,
) -> String {
    jssdk_signature(ticket, noncestr, timestamp, strip_url_fragment(page_url))
}
