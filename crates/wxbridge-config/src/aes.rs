//! The decoded EncodingAESKey. Until `wx_crypto::AesKey` lands this crate decodes the key itself, with the
//! same rule the platforms use: base64(key + "=") must give exactly 32 bytes.

use std::fmt;

use base64::Engine;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};

/// Real console keys are 43 characters whose last one often carries non-zero trailing bits (the official
/// samples decode with lenient base64), so trailing bits must be allowed.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// A 32-byte AES-256 key decoded from a 43-character EncodingAESKey. Debug never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKey([u8; 32]);

impl AesKey {
    /// Decode an EncodingAESKey; the error says what is wrong without echoing the key.
    pub fn from_encoding_aes_key(s: &str) -> Result<Self, String> {
        let n = s.chars().count();
        if n != 43 {
            return Err(format!(
                "an EncodingAESKey is exactly 43 characters, this one has {n}"
            ));
        }
        let bytes = LENIENT.decode(format!("{s}=")).map_err(|_| {
            "the EncodingAESKey is not valid base64 (only A-Z, a-z, 0-9, + and / are allowed)"
                .to_owned()
        })?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "the EncodingAESKey does not decode to 32 bytes".to_owned())?;
        Ok(AesKey(key))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for AesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AesKey([redacted])")
    }
}
