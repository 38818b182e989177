//! Pure WeCom / WeChat crypto: callback verification, decryption and encryption (WXBizMsgCrypt), SHA-1
//! signatures (callback, plain, JS-SDK), mini-program data decryption (WXBizDataCrypt) and parsing of
//! decrypted callback messages.
//!
//! Architecture invariant: this crate does no I/O, reads no clock and draws no randomness; timestamps,
//! nonces and the 16 random bytes of each ciphertext are passed in. No input makes it panic.

mod b64;
mod callback;
mod error;
mod key;
pub mod message;
pub mod miniprogram;
mod signature;
mod xml;

pub use callback::{CallbackCrypto, EnvelopeFormat, VerifiedMessage};
pub use error::CryptoError;
pub use key::AesKey;
pub use message::{CallbackMessage, ChangeType, ContactChange, PayloadFormat, XmlBuilder};
pub use signature::{
    jssdk_signature, jssdk_signature_for_page, msg_signature, signature, strip_url_fragment,
    verify_msg_signature, verify_signature,
};
