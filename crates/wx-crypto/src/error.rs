//! The one error type of wx-crypto, with the official WXBizMsgCrypt / WXBizDataCrypt error codes.

/// Everything that can go wrong while verifying, decrypting, encrypting or parsing.
///
/// `Display` is one line that names the problem and ends with `(code -400xx)`. No variant ever carries key,
/// token or session-key material; the values shown (receive ids, app ids, lengths) are public identifiers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The 4-field `msg_signature` (or 3-field `signature`, or rawData signature) did not match.
    #[error(
        "signature mismatch: the signature does not match the token, timestamp, nonce and payload (code -40001)"
    )]
    SignatureMismatch,
    /// The POST body is neither a parseable XML nor a JSON envelope.
    #[error("cannot parse the callback envelope: {0} (code -40002)")]
    ParseEnvelope(String),
    /// The envelope parsed but has no `Encrypt` / `encrypt` field.
    #[error("the callback envelope has no Encrypt field (code -40002)")]
    MissingEncrypt,
    /// The XML contains a DOCTYPE / entity declaration; refused to avoid entity-expansion attacks.
    #[error("refused hostile XML: DOCTYPE or entity declarations are not allowed (code -40002)")]
    HostileXml,
    /// A decrypted callback plaintext (XML or JSON) could not be parsed into a message.
    #[error("cannot parse the callback message: {0} (code -40002)")]
    ParseMessage(String),
    /// The EncodingAESKey is not 43 characters long.
    #[error("EncodingAESKey must be 43 characters, got {len} (code -40004)")]
    AesKeyLength { len: usize },
    /// The EncodingAESKey has 43 characters but is not base64 that decodes to 32 bytes.
    #[error("EncodingAESKey is not valid base64 decoding to 32 bytes (code -40004)")]
    AesKeyDecode,
    /// The receive id (corpid / suite id / appid) at the end of the plaintext is not the expected one.
    #[error(
        "receive id mismatch: expected {expected:?}, the message is for {actual:?} (code -40005)"
    )]
    ReceiveIdMismatch { expected: String, actual: String },
    /// The message to encrypt is larger than the 32-bit length field allows.
    #[error("message of {len} bytes is too large to encrypt (code -40006)")]
    MessageTooLarge { len: usize },
    /// The ciphertext is empty or not a multiple of the 16-byte AES block.
    #[error("ciphertext length {len} is not a non-zero multiple of 16 (code -40007)")]
    CiphertextLength { len: usize },
    /// The last decrypted byte is not a valid PKCS#7 pad length (1..=32 for callbacks, 1..=16 elsewhere).
    #[error("bad padding after decryption: pad byte {pad} (code -40008)")]
    Padding { pad: u8 },
    /// The decrypted buffer is shorter than the 16 random bytes plus the 4-byte length field.
    #[error(
        "decrypted buffer of {len} bytes is too short for the random prefix and length field (code -40008)"
    )]
    BufferTooShort { len: usize },
    /// The 4-byte message length is larger than what was decrypted.
    #[error(
        "message length field {declared} exceeds the {available} bytes available (code -40008)"
    )]
    LengthOutOfRange { declared: usize, available: usize },
    /// The decrypted message is not UTF-8.
    #[error("decrypted message is not valid UTF-8 (code -40008)")]
    InvalidUtf8,
    /// A value that must be base64 (Encrypt, echostr, encryptedData, iv, session key) is not.
    #[error("{field} is not valid base64 (code -40010)")]
    Base64 { field: &'static str },
    /// A reply envelope could not be built (for `MpJson` the timestamp must be a decimal number).
    #[error("cannot build the reply envelope: {0} (code -40011)")]
    BuildReply(String),
    /// The mini-program session_key is not base64 of 16 bytes.
    #[error("mini-program session_key must decode to 16 bytes, got {len} (code -41001)")]
    MiniProgramKey { len: usize },
    /// The mini-program iv is not base64 of 16 bytes.
    #[error("mini-program iv must decode to 16 bytes, got {len} (code -41002)")]
    MiniProgramIv { len: usize },
    /// The decrypted mini-program data is not a JSON object.
    #[error("decrypted mini-program data is not JSON: {0} (code -41003)")]
    MiniProgramData(String),
    /// `watermark.appid` in decrypted mini-program data is not the expected appid.
    #[error(
        "mini-program watermark appid mismatch: expected {expected:?}, got {actual:?} (code -41003)"
    )]
    Watermark { expected: String, actual: String },
}

impl CryptoError {
    /// The official error code: WXBizMsgCrypt `-40001..=-40011` for callbacks (ierror.py in every official
    /// sample), WXBizDataCrypt `-41001..=-41003` for mini-program data (errorCode in the official demo).
    pub fn code(&self) -> i32 {
        match self {
            CryptoError::SignatureMismatch => -40001,
            CryptoError::ParseEnvelope(_)
            | CryptoError::MissingEncrypt
            | CryptoError::HostileXml
            | CryptoError::ParseMessage(_) => -40002,
            CryptoError::AesKeyLength { .. } | CryptoError::AesKeyDecode => -40004,
            CryptoError::ReceiveIdMismatch { .. } => -40005,
            CryptoError::MessageTooLarge { .. } => -40006,
            CryptoError::CiphertextLength { .. } => -40007,
            CryptoError::Padding { .. }
            | CryptoError::BufferTooShort { .. }
            | CryptoError::LengthOutOfRange { .. }
            | CryptoError::InvalidUtf8 => -40008,
            CryptoError::Base64 { .. } => -40010,
            CryptoError::BuildReply(_) => -40011,
            CryptoError::MiniProgramKey { .. } => -41001,
            CryptoError::MiniProgramIv { .. } => -41002,
            CryptoError::MiniProgramData(_) | CryptoError::Watermark { .. } => -41003,
        }
    }
}
