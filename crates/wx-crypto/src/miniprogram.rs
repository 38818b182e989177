//! Mini-program open data (WXBizDataCrypt): AES-128-CBC `encryptedData` decryption with the watermark
//! check, its inverse for the simulator, and the `rawData` signature.

use aes::Aes128;
use aes::cipher::block_padding::{NoPadding, Pkcs7};
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine as _;

use crate::CryptoError;
use crate::b64::{LENIENT, STANDARD};
use crate::signature::{ct_eq_hex, hex_to_string, sha1_hex};

/// Decodes base64 that must give exactly 16 bytes; `Err(len)` otherwise (0 when not base64 at all).
fn decode16(b64: &str) -> Result<[u8; 16], usize> {
    let bytes = LENIENT.decode(b64.as_bytes()).map_err(|_| 0usize)?;
    bytes.try_into().map_err(|v: Vec<u8>| v.len())
}

fn key_and_iv(session_key_b64: &str, iv_b64: &str) -> Result<([u8; 16], [u8; 16]), CryptoError> {
    let key = decode16(session_key_b64).map_err(|len| CryptoError::MiniProgramKey { len })?;
    let iv = decode16(iv_b64).map_err(|len| CryptoError::MiniProgramIv { len })?;
    Ok((key, iv))
}

/// Decrypts `encryptedData` (AES-128-CBC, key = base64-decoded session_key, standard 16-byte PKCS#7) into
/// JSON. When `expected_appid` is given, `watermark.appid` must equal it (for WeCom too, this is the
/// mini-program appid, not the corpid).
pub fn decrypt_data(
    session_key_b64: &str,
    iv_b64: &str,
    encrypted_data_b64: &str,
    expected_appid: Option<&str>,
) -> Result<serde_json::Value, CryptoError> {
    let (key, iv) = key_and_iv(session_key_b64, iv_b64)?;
    let mut buf =
        LENIENT
            .decode(encrypted_data_b64.as_bytes())
            .map_err(|_| CryptoError::Base64 {
                field: "encryptedData",
            })?;
    let len = buf.len();
    if len == 0 || len % 16 != 0 {
        return Err(CryptoError::CiphertextLength { len });
    }
    cbc::Decryptor::<Aes128>::new(&key.into(), &iv.into())
        .decrypt_padded_mut::<NoPadding>(&mut buf)
        .map_err(|_| CryptoError::CiphertextLength { len })?;
    // Ordinary PKCS#7 with a 16-byte block, every pad byte checked.
    let pad = buf.last().copied().unwrap_or(0);
    let pad_len = usize::from(pad);
    if pad_len == 0 || pad_len > 16 || buf[len - pad_len..].iter().any(|&b| b != pad) {
        return Err(CryptoError::Padding { pad });
    }
    let value: serde_json::Value = serde_json::from_slice(&buf[..len - pad_len])
        .map_err(|e| CryptoError::MiniProgramData(e.to_string()))?;
    if let Some(expected) = expected_appid {
        let actual = value
            .get("watermark")
            .and_then(|w| w.get("appid"))
            .and_then(|a| a.as_str());
        if actual != Some(expected) {
            return Err(CryptoError::Watermark {
                expected: expected.to_owned(),
                actual: actual.unwrap_or("<missing>").chars().take(64).collect(),
            });
        }
    }
    Ok(value)
}

/// Encrypts `plaintext` the way WeChat produces `encryptedData` (for the simulator and tests).
pub fn encrypt_data(
    session_key_b64: &str,
    iv_b64: &str,
    plaintext: &str,
) -> Result<String, CryptoError> {
    let (key, iv) = key_and_iv(session_key_b64, iv_b64)?;
    let ciphertext = cbc::Encryptor::<Aes128>::new(&key.into(), &iv.into())
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext.as_bytes());
    Ok(STANDARD.encode(ciphertext))
}

/// `sha1(rawData + session_key)`, with the session key as its base64 text (not decoded), lower-case hex.
pub fn raw_data_signature(raw_data: &str, session_key_b64: &str) -> String {
    hex_to_string(sha1_hex([raw_data, session_key_b64]))
}

/// Checks a `rawData` signature in constant time.
pub fn check_raw_data_signature(
    raw_data: &str,
    session_key_b64: &str,
    signature: &str,
) -> Result<(), CryptoError> {
    ct_eq_hex(&sha1_hex([raw_data, session_key_b64]), signature)
}
