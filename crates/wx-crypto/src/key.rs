//! The callback AES key (EncodingAESKey decoded) and the callback token, both with redacted Debug.

use std::fmt;

use base64::Engine as _;

use crate::CryptoError;
use crate::b64::LENIENT;

/// The 32-byte AES-256 key behind a 43-character EncodingAESKey. `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKey([u8; 32]);

impl AesKey {
    /// `base64_decode(EncodingAESKey + "=")`, which must be exactly 32 bytes.
    ///
    /// The key must be 43 characters (else [`CryptoError::AesKeyLength`]) of the standard base64 alphabet
    /// (else [`CryptoError::AesKeyDecode`]). The unused low bits of the last character are ignored, as the
    /// official samples do: consoles generate 43 random alphanumerics, so those bits are rarely zero.
    pub fn from_encoding_aes_key(k: &str) -> Result<AesKey, CryptoError> {
        let len = k.chars().count();
        if len != 43 {
            return Err(CryptoError::AesKeyLength { len });
        }
        // 43 base64 characters carry 258 bits: 32 bytes plus 2 ignored bits. The scratch buffer has room
        // for the decoder's conservative size estimate; anything but exactly 32 bytes is refused.
        let mut scratch = [0u8; 33];
        match LENIENT.decode_slice(k.as_bytes(), &mut scratch) {
            Ok(32) => {
                let mut out = [0u8; 32];
                out.copy_from_slice(&scratch[..32]);
                Ok(AesKey(out))
            }
            _ => Err(CryptoError::AesKeyDecode),
        }
    }

    /// The raw key bytes, for the cipher only.
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The CBC IV used by the callback scheme: the first 16 key bytes.
    pub(crate) fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.0[..16]);
        iv
    }
}

impl fmt::Debug for AesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AesKey(<redacted>)")
    }
}

/// The callback token shared with WeCom/WeChat. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Token(String);

impl Token {
    pub(crate) fn new(token: &str) -> Token {
        Token(token.to_owned())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}
