//! One targeted test per error variant, each asserting the official code, plus the promises about error
//! text (one line, ends with the code, never carries key or token material) and redacted Debug.

use aes::Aes256;
use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockEncryptMut, KeyIvInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use wx_crypto::{
    AesKey, CallbackCrypto, CallbackMessage, CryptoError, EnvelopeFormat, miniprogram,
};

const TOKEN: &str = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo";
const KEY: &str = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt";
const CORP: &str = "ww1436e0e65a779aee";
const TS: &str = "1476416373";
const NONCE: &str = "47744683";

fn crypto() -> CallbackCrypto {
    CallbackCrypto::new(TOKEN, KEY, CORP).unwrap()
}

/// Encrypts an arbitrary, possibly malformed, FullStr buffer (already a multiple of 16) with the callback
/// key and IV, the way only someone holding the key could: reaches the checks after decryption.
fn raw_encrypt(full: &[u8]) -> String {
    // The vector key has non-zero trailing bits (as real keys do), so decode it leniently.
    let key_bytes = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    )
    .decode(format!("{KEY}="))
    .unwrap();
    let mut buf = full.to_vec();
    let len = buf.len();
    cbc::Encryptor::<Aes256>::new(key_bytes[..32].into(), key_bytes[..16].into())
        .encrypt_padded_mut::<NoPadding>(&mut buf, len)
        .unwrap();
    STANDARD.encode(buf)
}

/// Signs `encrypt` correctly and decrypts it, so the error comes from after the signature check.
fn open(encrypt: &str) -> CryptoError {
    let c = crypto();
    let sig = c.sign(TS, NONCE, encrypt);
    c.decrypt_encrypted(&sig, TS, NONCE, encrypt).unwrap_err()
}

/// `random16 || u32be(declared) || msg || rid`, padded with `pad` bytes of value `pad_byte`.
fn full_str(declared: u32, msg: &[u8], rid: &[u8], pad: usize, pad_byte: u8) -> Vec<u8> {
    let mut v = b"0123456789abcdef".to_vec();
    v.extend_from_slice(&declared.to_be_bytes());
    v.extend_from_slice(msg);
    v.extend_from_slice(rid);
    v.extend(std::iter::repeat_n(pad_byte, pad));
    v
}

fn padded(msg: &[u8], rid: &[u8]) -> Vec<u8> {
    let content = 20 + msg.len() + rid.len();
    let pad = 32 - content % 32;
    full_str(msg.len() as u32, msg, rid, pad, pad as u8)
}

fn assert_code(err: &CryptoError, code: i32) {
    assert_eq!(err.code(), code, "{err:?}");
    let text = err.to_string();
    assert!(text.ends_with(&format!("(code {code})")), "{text}");
    assert!(!text.contains('\n'), "{text}");
    for secret in [TOKEN, KEY] {
        assert!(!text.contains(secret), "secret leaked in {text}");
    }
}

#[test]
fn wrong_signature_is_40001() {
    let c = crypto();
    let enc = c.encrypt(b"hello", [7; 16]).unwrap();
    let err = c
        .decrypt_encrypted("da39a3ee5e6b4b0d3255bfef95601890afd80709", TS, NONCE, &enc)
        .unwrap_err();
    assert_eq!(err, CryptoError::SignatureMismatch);
    assert_code(&err, -40001);
    // Too short, or not hex at all.
    assert_eq!(
        c.decrypt_encrypted("abc", TS, NONCE, &enc).unwrap_err(),
        CryptoError::SignatureMismatch
    );
    // The signature covers the timestamp and nonce too.
    let sig = c.sign(TS, NONCE, &enc);
    assert_eq!(
        c.decrypt_encrypted(&sig, "1476416374", NONCE, &enc)
            .unwrap_err(),
        CryptoError::SignatureMismatch
    );
    assert_eq!(
        c.verify_url(&sig, TS, "1", &enc).unwrap_err(),
        CryptoError::SignatureMismatch
    );
    assert_eq!(
        wx_crypto::verify_signature(
            "AAAAA",
            "1714037059",
            "486452656",
            "899cf89e464efb63f54ddac96b0a0a235f53aa79"
        ),
        Err(CryptoError::SignatureMismatch)
    );
    assert_code(
        &miniprogram::check_raw_data_signature("{}", "HyVFkGl5F5OQWJZZaNzBBg==", "00").unwrap_err(),
        -40001,
    );
}

#[test]
fn wrong_receive_id_names_both_ids_and_is_40005() {
    let sender = crypto();
    let enc = sender.encrypt(b"<xml/>", [1; 16]).unwrap();
    let receiver = CallbackCrypto::new(TOKEN, KEY, "ww_other_corp").unwrap();
    let sig = receiver.sign(TS, NONCE, &enc);
    let err = receiver
        .decrypt_encrypted(&sig, TS, NONCE, &enc)
        .unwrap_err();
    assert_eq!(
        err,
        CryptoError::ReceiveIdMismatch {
            expected: "ww_other_corp".into(),
            actual: CORP.into()
        }
    );
    assert_code(&err, -40005);
    let text = err.to_string();
    assert!(
        text.contains("ww_other_corp") && text.contains(CORP),
        "{text}"
    );
}

#[test]
fn key_of_42_or_44_characters_is_40004() {
    let err = AesKey::from_encoding_aes_key(&KEY[..42]).unwrap_err();
    assert_eq!(err, CryptoError::AesKeyLength { len: 42 });
    assert_code(&err, -40004);
    let err = CallbackCrypto::new(TOKEN, &format!("{KEY}A"), CORP).unwrap_err();
    assert_eq!(err, CryptoError::AesKeyLength { len: 44 });
    assert_eq!(
        AesKey::from_encoding_aes_key("").unwrap_err(),
        CryptoError::AesKeyLength { len: 0 }
    );
}

#[test]
fn key_of_43_characters_that_is_not_32_bytes_of_base64_is_40004() {
    // Padding inside the key: a lenient decoder would yield 30 bytes; we refuse it.
    let short = format!("{}==", &KEY[..41]);
    assert_eq!(short.len(), 43);
    let err = AesKey::from_encoding_aes_key(&short).unwrap_err();
    assert_eq!(err, CryptoError::AesKeyDecode);
    assert_code(&err, -40004);
    // URL-safe or foreign characters.
    let bad = format!("{}-*", &KEY[..41]);
    assert_eq!(
        AesKey::from_encoding_aes_key(&bad).unwrap_err(),
        CryptoError::AesKeyDecode
    );
    // 43 characters but multi-byte: not base64.
    let wide = "é".repeat(43);
    assert_eq!(
        AesKey::from_encoding_aes_key(&wide).unwrap_err(),
        CryptoError::AesKeyDecode
    );
    // The documented all-'A' key is 32 zero bytes and valid.
    AesKey::from_encoding_aes_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
}

#[test]
fn bad_base64_is_40010() {
    let err = open("not*base64!");
    assert_eq!(err, CryptoError::Base64 { field: "Encrypt" });
    assert_code(&err, -40010);
    let c = crypto();
    let sig = c.sign(TS, NONCE, "%%%%");
    assert_eq!(
        c.verify_url(&sig, TS, NONCE, "%%%%").unwrap_err(),
        CryptoError::Base64 { field: "echostr" }
    );
}

#[test]
fn ciphertext_not_a_multiple_of_16_is_40007() {
    let err = open(&STANDARD.encode([0u8; 20]));
    assert_eq!(err, CryptoError::CiphertextLength { len: 20 });
    assert_code(&err, -40007);
    assert_eq!(open(""), CryptoError::CiphertextLength { len: 0 });
}

#[test]
fn pad_byte_zero_or_over_32_is_40008() {
    let mut full = padded(b"hi", CORP.as_bytes());
    let last = full.len() - 1;
    full[last] = 0;
    let err = open(&raw_encrypt(&full));
    assert_eq!(err, CryptoError::Padding { pad: 0 });
    assert_code(&err, -40008);
    full[last] = 33;
    assert_eq!(open(&raw_encrypt(&full)), CryptoError::Padding { pad: 33 });
    // 32 is the largest valid pad: content already a multiple of 32 gets a whole block of padding.
    let msg = b"abcdefghijklmnopqrstuvwxyz";
    let whole_block = full_str(26, msg, CORP.as_bytes(), 32, 32);
    assert_eq!(whole_block.len(), 96);
    let enc = raw_encrypt(&whole_block);
    let c = crypto();
    let m = c
        .decrypt_encrypted(&c.sign(TS, NONCE, &enc), TS, NONCE, &enc)
        .unwrap();
    assert_eq!(m.plaintext(), "abcdefghijklmnopqrstuvwxyz");
}

#[test]
fn pad_covering_the_header_is_40008() {
    // 32 bytes, all padding: nothing left for random16 and the length field.
    let err = open(&raw_encrypt(&[32u8; 32]));
    assert_eq!(err, CryptoError::BufferTooShort { len: 0 });
    assert_code(&err, -40008);
}

#[test]
fn length_field_larger_than_the_buffer_is_40008() {
    let mut full = full_str(1000, b"short", CORP.as_bytes(), 0, 0);
    let pad = 32 - full.len() % 32;
    full.extend(std::iter::repeat_n(pad as u8, pad));
    let err = open(&raw_encrypt(&full));
    assert_eq!(
        err,
        CryptoError::LengthOutOfRange {
            declared: 1000,
            available: 5 + CORP.len()
        }
    );
    assert_code(&err, -40008);
    // u32::MAX must not overflow anything.
    let mut full = full_str(u32::MAX, b"x", b"", 0, 0);
    let pad = 32 - full.len() % 32;
    full.extend(std::iter::repeat_n(pad as u8, pad));
    assert!(matches!(
        open(&raw_encrypt(&full)),
        CryptoError::LengthOutOfRange { .. }
    ));
}

#[test]
fn non_utf8_message_is_40008_but_decrypt_bytes_returns_it() {
    let full = padded(&[0xff, 0xfe, b'a'], CORP.as_bytes());
    let enc = raw_encrypt(&full);
    let err = open(&enc);
    assert_eq!(err, CryptoError::InvalidUtf8);
    assert_code(&err, -40008);
    let c = crypto();
    let sig = c.sign(TS, NONCE, &enc);
    assert_eq!(
        c.decrypt_bytes(&sig, TS, NONCE, &enc).unwrap(),
        vec![0xff, 0xfe, b'a']
    );
}

#[test]
fn envelope_without_encrypt_or_unparseable_is_40002() {
    let c = crypto();
    let sig = "0000000000000000000000000000000000000000";
    for body in [
        &b"<xml><ToUserName>x</ToUserName></xml>"[..],
        br#"{"tousername":"x","agentid":1}"#,
        b"<xml/>",
    ] {
        let err = c.decrypt_body(sig, TS, NONCE, body).unwrap_err();
        assert_eq!(
            err,
            CryptoError::MissingEncrypt,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_code(&err, -40002);
    }
    // A nested Encrypt is not the envelope's Encrypt.
    let err = c
        .decrypt_body(sig, TS, NONCE, b"<xml><A><Encrypt>abc</Encrypt></A></xml>")
        .unwrap_err();
    assert_eq!(err, CryptoError::MissingEncrypt);
    for body in [
        &b"hello"[..],
        b"<xml><Encrypt>abc",
        b"<xml><Encrypt>a</Other></xml>",
        b"{\"encrypt\":",
        b"\xff\xfe",
        b"",
        b"<xml><Encrypt>&bogus;</Encrypt></xml>",
    ] {
        let err = c.decrypt_body(sig, TS, NONCE, body).unwrap_err();
        assert!(
            matches!(err, CryptoError::ParseEnvelope(_)),
            "{err:?} for {}",
            String::from_utf8_lossy(body)
        );
        assert_code(&err, -40002);
    }
}

const BILLION_LAUGHS: &str = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<xml><Encrypt>&lol3;</Encrypt></xml>"#;

const EXTERNAL_ENTITY: &str = r#"<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>&xxe;</ToUserName><MsgType>text</MsgType></xml>"#;

#[test]
fn hostile_xml_is_refused_in_envelopes_and_messages() {
    let c = crypto();
    let sig = "0000000000000000000000000000000000000000";
    for doc in [BILLION_LAUGHS, EXTERNAL_ENTITY] {
        let err = c.decrypt_body(sig, TS, NONCE, doc.as_bytes()).unwrap_err();
        assert_eq!(err, CryptoError::HostileXml);
        assert_code(&err, -40002);
        assert_eq!(
            CallbackMessage::parse(doc).unwrap_err(),
            CryptoError::HostileXml
        );
    }
    // Also when the hostile document arrives inside a correctly encrypted and signed message.
    let enc = c.encrypt(EXTERNAL_ENTITY.as_bytes(), [3; 16]).unwrap();
    let m = c
        .decrypt_encrypted(&c.sign(TS, NONCE, &enc), TS, NONCE, &enc)
        .unwrap();
    assert_eq!(m.parse_message().unwrap_err(), CryptoError::HostileXml);
}

#[test]
fn message_that_is_neither_xml_nor_json_is_40002() {
    let err = CallbackMessage::parse("just words").unwrap_err();
    assert!(matches!(err, CryptoError::ParseMessage(_)));
    assert_code(&err, -40002);
    assert!(matches!(
        CallbackMessage::parse("[1,2]").unwrap_err(),
        CryptoError::ParseMessage(_)
    ));
}

#[test]
fn mp_json_reply_needs_a_numeric_timestamp_else_40011() {
    let err = crypto()
        .encrypt_envelope("x", "soon", NONCE, [0; 16], EnvelopeFormat::MpJson)
        .unwrap_err();
    assert!(matches!(err, CryptoError::BuildReply(_)));
    assert_code(&err, -40011);
    // The other formats carry the timestamp as a string.
    crypto()
        .encrypt_envelope("x", "soon", NONCE, [0; 16], EnvelopeFormat::Json)
        .unwrap();
}

const SK: &str = "tiihtNczf5v6AKRyjwEUhQ==";
const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";

#[test]
fn mini_program_key_and_iv_must_be_16_bytes() {
    let err = miniprogram::decrypt_data("AAAAAAAAAAAAAAAAAAAA", IV, "AAAA", None).unwrap_err();
    assert_eq!(err, CryptoError::MiniProgramKey { len: 15 });
    assert_code(&err, -41001);
    assert!(matches!(
        miniprogram::decrypt_data("!!", IV, "AAAA", None).unwrap_err(),
        CryptoError::MiniProgramKey { .. }
    ));
    let err = miniprogram::decrypt_data(SK, "AAAAAAAAAAAAAAAAAAAAAAAA", "AAAA", None).unwrap_err();
    assert!(
        matches!(err, CryptoError::MiniProgramIv { len: 18 }),
        "{err:?}"
    );
    assert_code(&err, -41002);
    assert_code(
        &miniprogram::encrypt_data(SK, "", "{}").unwrap_err(),
        -41002,
    );
}

#[test]
fn mini_program_bad_data_errors() {
    assert_code(
        &miniprogram::decrypt_data(SK, IV, "***", None).unwrap_err(),
        -40010,
    );
    assert_code(
        &miniprogram::decrypt_data(SK, IV, &STANDARD.encode([0u8; 17]), None).unwrap_err(),
        -40007,
    );
    let not_json = miniprogram::encrypt_data(SK, IV, "not json").unwrap();
    let err = miniprogram::decrypt_data(SK, IV, &not_json, None).unwrap_err();
    assert!(matches!(err, CryptoError::MiniProgramData(_)));
    assert_code(&err, -41003);
    // Decrypting with another session key garbles the padding (or, rarely, the JSON).
    let err =
        miniprogram::decrypt_data("HyVFkGl5F5OQWJZZaNzBBg==", IV, &not_json, None).unwrap_err();
    assert!(
        matches!(
            err,
            CryptoError::Padding { .. } | CryptoError::MiniProgramData(_)
        ),
        "{err:?}"
    );
}

#[test]
fn mini_program_watermark_mismatch_names_both_appids() {
    let data =
        miniprogram::encrypt_data(SK, IV, r#"{"watermark":{"appid":"wx_real","timestamp":1}}"#)
            .unwrap();
    let err = miniprogram::decrypt_data(SK, IV, &data, Some("wx_mine")).unwrap_err();
    assert_eq!(
        err,
        CryptoError::Watermark {
            expected: "wx_mine".into(),
            actual: "wx_real".into()
        }
    );
    assert_code(&err, -41003);
    let data = miniprogram::encrypt_data(SK, IV, r#"{"openId":"o1"}"#).unwrap();
    let err = miniprogram::decrypt_data(SK, IV, &data, Some("wx_mine")).unwrap_err();
    assert_eq!(
        err,
        CryptoError::Watermark {
            expected: "wx_mine".into(),
            actual: "<missing>".into()
        }
    );
    // Without an expected appid the watermark is not checked.
    assert_eq!(
        miniprogram::decrypt_data(SK, IV, &data, None).unwrap()["openId"],
        "o1"
    );
}

#[test]
fn debug_output_never_shows_key_or_token() {
    let c = crypto();
    let key = AesKey::from_encoding_aes_key(KEY).unwrap();
    let enc = c.encrypt(b"secret business data", [9; 16]).unwrap();
    let m = c
        .decrypt_encrypted(&c.sign(TS, NONCE, &enc), TS, NONCE, &enc)
        .unwrap();
    for dbg in [format!("{c:?}"), format!("{key:?}"), format!("{m:?}")] {
        for secret in [TOKEN, KEY, "secret business data"] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
        assert!(
            dbg.contains("redacted") || dbg.contains("plaintext_len"),
            "{dbg}"
        );
    }
    assert!(format!("{c:?}").contains(CORP));
}
