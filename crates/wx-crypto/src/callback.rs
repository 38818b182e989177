//! Callback crypto (WXBizMsgCrypt): URL verification, envelope parsing, AES-256-CBC decryption and
//! encryption of pushes and passive replies, for WeCom and WeChat alike.

use std::borrow::Cow;
use std::fmt;
use std::ops::ControlFlow;

use aes::Aes256;
use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit};
use base64::Engine as _;

use crate::b64::{LENIENT, STANDARD};
use crate::key::{AesKey, Token};
use crate::signature::{ct_eq_hex, sorted_sha1_hex};
use crate::xml::{XmlError, for_each_field, looks_like_xml};
use crate::{CryptoError, msg_signature};

/// The callback scheme pads to a multiple of 32 bytes (not the AES block size of 16).
const PAD_BLOCK: usize = 32;
/// 16 random bytes then the big-endian u32 message length precede the message.
const HEADER_LEN: usize = 20;
/// Receive ids quoted in errors are cut to this many characters so garbage cannot flood a log line.
const MAX_QUOTED_ID: usize = 64;

/// The shape of a callback envelope (request body) and of the encrypted reply built for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnvelopeFormat {
    /// `<xml><ToUserName/><Encrypt/>…</xml>`; reply `<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>`.
    Xml,
    /// WeCom JSON (`WXBizJsonMsgCrypt`): lower-case `tousername`/`encrypt`/`agentid`; reply
    /// `{"encrypt","msgsignature","timestamp","nonce"}` with all values strings.
    Json,
    /// WeChat (official account / mini program) JSON: capitalised `ToUserName`/`Encrypt`; reply
    /// `{"Encrypt","MsgSignature","TimeStamp":<number>,"Nonce"}`.
    MpJson,
}

/// Callback crypto for one receiver: token + AES key + receive id (WeCom corpid or suite id, WeChat appid,
/// open-platform component appid). Cheap to share; holds the expanded AES key schedule. `Debug` shows only
/// the receive id.
#[derive(Clone)]
pub struct CallbackCrypto {
    token: Token,
    cipher: Aes256,
    iv: [u8; 16],
    receive_id: String,
}

impl fmt::Debug for CallbackCrypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackCrypto")
            .field("token", &"<redacted>")
            .field("aes_key", &"<redacted>")
            .field("receive_id", &self.receive_id)
            .finish()
    }
}

/// A callback message whose signature was checked and whose ciphertext decrypted for the expected receive
/// id. It can only be obtained from [`CallbackCrypto`], so holding one proves the check happened.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedMessage {
    /// `msg || receive_id`, both validated; `msg_len` splits them. One buffer, reused from decryption.
    text: String,
    msg_len: usize,
    format: EnvelopeFormat,
}

impl fmt::Debug for VerifiedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The plaintext is business data rather than a secret, but it can hold personal data: show its size.
        f.debug_struct("VerifiedMessage")
            .field("receive_id", &self.receive_id())
            .field("format", &self.format)
            .field("plaintext_len", &self.msg_len)
            .finish()
    }
}

impl VerifiedMessage {
    /// The decrypted message exactly as sent (not trimmed).
    pub fn plaintext(&self) -> &str {
        self.text.get(..self.msg_len).unwrap_or_default()
    }

    /// The receive id found in the plaintext (equal to the expected one).
    pub fn receive_id(&self) -> &str {
        self.text.get(self.msg_len..).unwrap_or_default()
    }

    /// The envelope format of the request, to answer in the same format. For [`CallbackCrypto::decrypt_encrypted`]
    /// (no envelope) it is inferred from the plaintext: `Json` when it starts with `{`, else `Xml`.
    pub fn format(&self) -> EnvelopeFormat {
        self.format
    }

    /// The plaintext, without copying.
    pub fn into_plaintext(mut self) -> String {
        self.text.truncate(self.msg_len);
        self.text
    }

    /// Parse the plaintext into a [`crate::message::CallbackMessage`] (copies the plaintext).
    pub fn parse_message(&self) -> Result<crate::message::CallbackMessage, CryptoError> {
        crate::message::CallbackMessage::parse(self.plaintext())
    }

    /// Parse the plaintext into a [`crate::message::CallbackMessage`] that keeps this buffer (no copy).
    pub fn into_message(self) -> Result<crate::message::CallbackMessage, CryptoError> {
        crate::message::CallbackMessage::parse_owned(self.into_plaintext())
    }
}

/// A space can only appear in base64 if a framework form-decoded the query and turned `+` into ` `.
/// WeCom's own text warns about this; undoing it is unambiguous because standard base64 has no spaces, and
/// the signature is then checked over the repaired value, i.e. the value WeCom signed.
fn repair_plus(b64: &str) -> Cow<'_, str> {
    if b64.contains(' ') {
        Cow::Owned(b64.replace(' ', "+"))
    } else {
        Cow::Borrowed(b64)
    }
}

/// The `Encrypt` value of a body and the envelope format it came in.
fn extract_encrypt(body: &str) -> Result<(Cow<'_, str>, EnvelopeFormat), CryptoError> {
    if looks_like_xml(body) {
        let mut found = None;
        for_each_field(body, |name, field| {
            if name == "Encrypt" && !field.nested {
                found = Some(field.value);
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .map_err(|e| match e {
            XmlError::Hostile => CryptoError::HostileXml,
            XmlError::Syntax(s) => CryptoError::ParseEnvelope(s),
        })?;
        found
            .map(|v| (v, EnvelopeFormat::Xml))
            .ok_or(CryptoError::MissingEncrypt)
    } else {
        #[derive(serde::Deserialize)]
        struct JsonEnvelope<'a> {
            #[serde(borrow, default)]
            encrypt: Option<Cow<'a, str>>,
            #[serde(borrow, default, rename = "Encrypt")]
            encrypt_mp: Option<Cow<'a, str>>,
        }
        let env: JsonEnvelope<'_> = serde_json::from_str(body.trim_start_matches('\u{feff}'))
            .map_err(|e| {
                CryptoError::ParseEnvelope(format!("neither XML nor a JSON envelope: {e}"))
            })?;
        match (env.encrypt, env.encrypt_mp) {
            (Some(e), _) => Ok((e, EnvelopeFormat::Json)),
            (None, Some(e)) => Ok((e, EnvelopeFormat::MpJson)),
            (None, None) => Err(CryptoError::MissingEncrypt),
        }
    }
}

fn quote_id(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(MAX_QUOTED_ID)
        .collect()
}

fn infer_format(plaintext: &str) -> EnvelopeFormat {
    if plaintext.trim_start().starts_with('{') {
        EnvelopeFormat::Json
    } else {
        EnvelopeFormat::Xml
    }
}

impl CallbackCrypto {
    /// Build from the console values: token, 43-character EncodingAESKey, receive id.
    pub fn new(token: &str, encoding_aes_key: &str, receive_id: &str) -> Result<Self, CryptoError> {
        Ok(Self::with_key(
            token,
            &AesKey::from_encoding_aes_key(encoding_aes_key)?,
            receive_id,
        ))
    }

    /// Build from an already decoded key.
    pub fn with_key(token: &str, key: &AesKey, receive_id: &str) -> Self {
        CallbackCrypto {
            token: Token::new(token),
            cipher: Aes256::new(key.bytes().into()),
            iv: key.iv(),
            receive_id: receive_id.to_owned(),
        }
    }

    /// The expected receive id (corpid / suite id / appid).
    pub fn receive_id(&self) -> &str {
        &self.receive_id
    }

    /// The 4-field `msg_signature` with this receiver's token.
    pub fn sign(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        msg_signature(self.token.expose(), timestamp, nonce, encrypt)
    }

    fn check_signature(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<(), CryptoError> {
        let expected = sorted_sha1_hex([self.token.expose(), timestamp, nonce, encrypt]);
        ct_eq_hex(&expected, msg_signature)
    }

    /// WeCom GET URL verification: check the 4-field `msg_signature` over `echostr`, decrypt it, check the
    /// receive id and return the bare plaintext to answer (no newline, no quotes).
    ///
    /// `echostr` must be URL-decoded; if a framework turned `+` into spaces they are turned back first.
    pub fn verify_url(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        echostr: &str,
    ) -> Result<String, CryptoError> {
        let echostr = repair_plus(echostr);
        self.check_signature(msg_signature, timestamp, nonce, &echostr)?;
        let (mut text, msg_len) = self.open(&echostr, "echostr")?;
        text.truncate(msg_len);
        Ok(text)
    }

    /// POST: parse the raw body (XML or JSON envelope, auto-detected; WeCom lower-case and WeChat
    /// capitalised JSON keys; compatible-mode bodies with plaintext fields beside `Encrypt`), verify
    /// `msg_signature`, decrypt and check the receive id.
    ///
    /// XML: the first top-level `Encrypt` element is used and reading stops there, so the rest of the body is
    /// not checked for well-formedness (it carries nothing that is used; the signature covers `Encrypt`). A
    /// DOCTYPE anywhere before it is refused. JSON: the top-level `encrypt` (WeCom) or `Encrypt` (WeChat) key.
    pub fn decrypt_body(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        body: &[u8],
    ) -> Result<VerifiedMessage, CryptoError> {
        let body = std::str::from_utf8(body)
            .map_err(|_| CryptoError::ParseEnvelope("body is not UTF-8".to_owned()))?;
        let (encrypt, format) = extract_encrypt(body)?;
        let encrypt = repair_plus(&encrypt);
        self.check_signature(msg_signature, timestamp, nonce, &encrypt)?;
        let (text, msg_len) = self.open(&encrypt, "Encrypt")?;
        Ok(VerifiedMessage {
            text,
            msg_len,
            format,
        })
    }

    /// Like [`Self::decrypt_body`], given the `Encrypt` value directly.
    pub fn decrypt_encrypted(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<VerifiedMessage, CryptoError> {
        let encrypt = repair_plus(encrypt);
        self.check_signature(msg_signature, timestamp, nonce, &encrypt)?;
        let (text, msg_len) = self.open(&encrypt, "Encrypt")?;
        let format = infer_format(text.get(..msg_len).unwrap_or_default());
        Ok(VerifiedMessage {
            text,
            msg_len,
            format,
        })
    }

    /// Like [`Self::decrypt_encrypted`] for a payload that need not be UTF-8: the verified message bytes.
    pub fn decrypt_bytes(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        let encrypt = repair_plus(encrypt);
        self.check_signature(msg_signature, timestamp, nonce, &encrypt)?;
        let (mut buf, msg_len) = self.open_bytes(&encrypt, "Encrypt")?;
        buf.truncate(msg_len);
        Ok(buf)
    }

    /// [`Self::open_bytes`], then UTF-8 validation: returns `msg || receive_id` as one string and the
    /// length of `msg`.
    fn open(&self, b64: &str, field: &'static str) -> Result<(String, usize), CryptoError> {
        let (buf, msg_len) = self.open_bytes(b64, field)?;
        // The receive id equals a valid &str, so the whole is UTF-8 exactly when msg is.
        let text = String::from_utf8(buf).map_err(|_| CryptoError::InvalidUtf8)?;
        if !text.is_char_boundary(msg_len) {
            return Err(CryptoError::InvalidUtf8);
        }
        Ok((text, msg_len))
    }

    /// Base64-decode, decrypt, unpad and split `random16 || len || msg || receive_id`, checking the
    /// receive id. Returns the decode buffer reused to hold `msg || receive_id`, and the length of `msg`.
    fn open_bytes(&self, b64: &str, field: &'static str) -> Result<(Vec<u8>, usize), CryptoError> {
        let mut buf = LENIENT
            .decode(b64.as_bytes())
            .map_err(|_| CryptoError::Base64 { field })?;
        let len = buf.len();
        if len == 0 || len % 16 != 0 {
            return Err(CryptoError::CiphertextLength { len });
        }
        let decryptor =
            cbc::Decryptor::<Aes256>::inner_iv_init(self.cipher.clone(), &self.iv.into());
        decryptor
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| CryptoError::CiphertextLength { len })?;

        // Official samples read only the last byte as the pad length and accept 1..=32; tampering is
        // caught earlier by the signature over the ciphertext.
        let pad = buf.last().copied().unwrap_or(0);
        if pad == 0 || usize::from(pad) > PAD_BLOCK || usize::from(pad) > len {
            return Err(CryptoError::Padding { pad });
        }
        let content_len = len - usize::from(pad);
        if content_len < HEADER_LEN {
            return Err(CryptoError::BufferTooShort { len: content_len });
        }
        let declared = u32::from_be_bytes([buf[16], buf[17], buf[18], buf[19]]) as usize;
        let available = content_len - HEADER_LEN;
        if declared > available {
            return Err(CryptoError::LengthOutOfRange {
                declared,
                available,
            });
        }
        let actual_id = &buf[HEADER_LEN + declared..content_len];
        if actual_id != self.receive_id.as_bytes() {
            return Err(CryptoError::ReceiveIdMismatch {
                expected: self.receive_id.clone(),
                actual: quote_id(actual_id),
            });
        }
        // Shift `msg || receive_id` to the front so the allocation can become the result.
        buf.copy_within(HEADER_LEN..content_len, 0);
        buf.truncate(available);
        Ok((buf, declared))
    }

    /// Encrypt `plaintext` with the caller's 16 random bytes (wx-crypto draws no randomness) into the
    /// base64 `Encrypt` value: AES-256-CBC over `random16 || u32be(len) || plaintext || receive_id`,
    /// PKCS#7-padded to a multiple of 32.
    pub fn encrypt(&self, plaintext: &[u8], random16: [u8; 16]) -> Result<String, CryptoError> {
        let msg_len = u32::try_from(plaintext.len()).map_err(|_| CryptoError::MessageTooLarge {
            len: plaintext.len(),
        })?;
        let content_len = HEADER_LEN + plaintext.len() + self.receive_id.len();
        let pad = PAD_BLOCK - content_len % PAD_BLOCK;
        let total = content_len + pad;
        let mut buf = Vec::with_capacity(total);
        buf.extend_from_slice(&random16);
        buf.extend_from_slice(&msg_len.to_be_bytes());
        buf.extend_from_slice(plaintext);
        buf.extend_from_slice(self.receive_id.as_bytes());
        // pad is in 1..=32, so the cast is exact.
        buf.resize(total, pad as u8);
        let encryptor =
            cbc::Encryptor::<Aes256>::inner_iv_init(self.cipher.clone(), &self.iv.into());
        encryptor
            .encrypt_padded_mut::<NoPadding>(&mut buf, total)
            .map_err(|_| CryptoError::MessageTooLarge {
                len: plaintext.len(),
            })?;
        Ok(STANDARD.encode(&buf))
    }

    /// A complete encrypted reply (or simulated push) envelope: `Encrypt`, `MsgSignature` over the given
    /// timestamp and nonce, `TimeStamp`, `Nonce`, in `format`.
    pub fn encrypt_envelope(
        &self,
        plaintext: &str,
        timestamp: &str,
        nonce: &str,
        random16: [u8; 16],
        format: EnvelopeFormat,
    ) -> Result<String, CryptoError> {
        let encrypt = self.encrypt(plaintext.as_bytes(), random16)?;
        let signature = self.sign(timestamp, nonce, &encrypt);
        build_reply(&encrypt, &signature, timestamp, nonce, format)
    }
}

/// Writes the reply envelope; values are escaped for the format.
pub(crate) fn build_reply(
    encrypt: &str,
    signature: &str,
    timestamp: &str,
    nonce: &str,
    format: EnvelopeFormat,
) -> Result<String, CryptoError> {
    match format {
        EnvelopeFormat::Xml => {
            let mut b = crate::message::XmlBuilder::new();
            b.cdata("Encrypt", encrypt)
                .cdata("MsgSignature", signature)
                .text("TimeStamp", timestamp)
                .cdata("Nonce", nonce);
            Ok(b.finish())
        }
        EnvelopeFormat::Json => {
            // Field order as in the official WXBizJsonMsgCrypt reply template; all values are strings.
            #[derive(serde::Serialize)]
            struct Reply<'a> {
                encrypt: &'a str,
                msgsignature: &'a str,
                timestamp: &'a str,
                nonce: &'a str,
            }
            let reply = Reply {
                encrypt,
                msgsignature: signature,
                timestamp,
                nonce,
            };
            serde_json::to_string(&reply).map_err(|e| CryptoError::BuildReply(e.to_string()))
        }
        EnvelopeFormat::MpJson => {
            // WeChat's documented reply has TimeStamp as a JSON number and Nonce as a string.
            #[derive(serde::Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct Reply<'a> {
                encrypt: &'a str,
                msg_signature: &'a str,
                time_stamp: u64,
                nonce: &'a str,
            }
            let time_stamp = timestamp.parse().map_err(|_| {
                CryptoError::BuildReply("TimeStamp must be a decimal number".to_owned())
            })?;
            let reply = Reply {
                encrypt,
                msg_signature: signature,
                time_stamp,
                nonce,
            };
            serde_json::to_string(&reply).map_err(|e| CryptoError::BuildReply(e.to_string()))
        }
    }
}
