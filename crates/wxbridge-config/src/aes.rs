//! The decoded EncodingAESKey is `wx_crypto::AesKey` (one decoding rule for the whole bridge); this module
//! only turns its error into a configuration message that never echoes the key.

pub use wx_crypto::AesKey;
use wx_crypto::CryptoError;

/// Decode an EncodingAESKey for validation.
pub fn decode(s: &str) -> Result<AesKey, String> {
    AesKey::from_encoding_aes_key(s).map_err(|e| match e {
        CryptoError::AesKeyLength { len } => {
            format!("an EncodingAESKey is exactly 43 characters, this one has {len}")
        }
        _ => "the EncodingAESKey is not valid base64 decoding to 32 bytes (only A-Z, a-z, 0-9, + and / are allowed)"
            .to_owned(),
    })
}
