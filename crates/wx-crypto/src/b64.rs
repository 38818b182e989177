//! Base64 engines shared by the crate: strict standard alphabet on output, lenient trailing bits on input.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Decoder for keys, Encrypt, echostr, iv and encryptedData.
///
/// Trailing bits are allowed because real EncodingAESKeys are 43 random alphanumerics: the last character
/// carries 2 unused bits that are usually non-zero (the official samples decode with lenient decoders), and
/// padding is accepted present or absent. The alphabet stays the standard one (`+/`).
pub(crate) const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encoder: standard alphabet with `=` padding, as every official SDK produces.
pub(crate) use base64::engine::general_purpose::STANDARD;
