//! Property tests: round trips for any payload and envelope format, no panic on any input across every
//! entry point the fuzz target covers, and tampering always detected.

use aes::Aes256;
use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockEncryptMut, KeyIvInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use wx_crypto::{CallbackCrypto, CallbackMessage, EnvelopeFormat, XmlBuilder, miniprogram};

const TOKEN: &str = "QDG6eK";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const RID: &str = "wx5823bf96d3bd56c7";

fn crypto() -> CallbackCrypto {
    CallbackCrypto::new(TOKEN, KEY, RID).unwrap()
}

fn key_bytes() -> Vec<u8> {
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    )
    .decode(format!("{KEY}="))
    .unwrap()
}

fn signature_of(body: &str) -> String {
    if let Some(rest) = body.split("<MsgSignature><![CDATA[").nth(1) {
        return rest[..40].to_owned();
    }
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v.get("msgsignature")
        .or_else(|| v.get("MsgSignature"))
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

fn format_strategy() -> impl Strategy<Value = EnvelopeFormat> {
    prop_oneof![
        Just(EnvelopeFormat::Xml),
        Just(EnvelopeFormat::Json),
        Just(EnvelopeFormat::MpJson)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_round_trip(msg in prop::collection::vec(any::<u8>(), 0..4096), random in any::<[u8; 16]>(),
                            ts in "[0-9]{1,10}", nonce in "[a-zA-Z0-9]{0,16}") {
        let c = crypto();
        let enc = c.encrypt(&msg, random).unwrap();
        let sig = c.sign(&ts, &nonce, &enc);
        prop_assert_eq!(c.decrypt_bytes(&sig, &ts, &nonce, &enc).unwrap(), msg.clone());
        // Ciphertext is padded to 32, never 16.
        prop_assert_eq!(STANDARD.decode(&enc).unwrap().len() % 32, 0);
        if let Ok(text) = std::str::from_utf8(&msg) {
            let m = c.decrypt_encrypted(&sig, &ts, &nonce, &enc).unwrap();
            prop_assert_eq!(m.plaintext(), text);
        }
    }

    #[test]
    fn any_text_round_trips_through_every_envelope(msg in "\\PC{0,3000}", random in any::<[u8; 16]>(),
                                                    ts in "[0-9]{1,10}", nonce in "[^\\x00]{0,12}",
                                                    format in format_strategy()) {
        let c = crypto();
        let body = c.encrypt_envelope(&msg, &ts, &nonce, random, format).unwrap();
        let sig = signature_of(&body);
        let m = c.decrypt_body(&sig, &ts, &nonce, body.as_bytes()).unwrap();
        prop_assert_eq!(m.plaintext(), msg.as_str());
        prop_assert_eq!(m.receive_id(), RID);
        prop_assert_eq!(m.format(), format);
    }

    #[test]
    fn a_changed_character_in_encrypt_is_always_refused(msg in "\\PC{0,600}", random in any::<[u8; 16]>(),
                                                         pos in any::<prop::sample::Index>(), with in any::<u8>()) {
        let c = crypto();
        let enc = c.encrypt(msg.as_bytes(), random).unwrap();
        let sig = c.sign("1", "n", &enc);
        let mut bytes = enc.clone().into_bytes();
        let i = pos.index(bytes.len());
        prop_assume!(bytes[i] != with && with != b' ' && !(with == b'+' && bytes[i] == b' '));
        bytes[i] = with;
        let tampered = String::from_utf8_lossy(&bytes).into_owned();
        prop_assert!(c.decrypt_encrypted(&sig, "1", "n", &tampered).is_err());
        prop_assert!(c.decrypt_bytes(&sig, "1", "n", &tampered).is_err());
        prop_assert!(c.verify_url(&sig, "1", "n", &tampered).is_err());
    }

    #[test]
    fn decrypt_body_never_panics(body in prop::collection::vec(any::<u8>(), 0..2048), sig in "[0-9a-f]{0,40}") {
        let _ = crypto().decrypt_body(&sig, "1", "2", &body);
    }

    #[test]
    fn decrypt_body_never_panics_on_envelope_like_input(
        body in "(<\\?xml[^>]{0,20}\\?>)?<xml>(<[A-Za-z]{1,8}>(<!\\[CDATA\\[)?[^<]{0,40}(\\]\\]>)?</[A-Za-z]{1,8}>){0,4}(<Encrypt>[A-Za-z0-9+/= &;#]{0,200}</Encrypt>)?(</xml>)?|\\{(\"(encrypt|Encrypt|x)\":(\"[A-Za-z0-9+/=\\\\]{0,100}\"|[0-9]{1,3}|null),?){0,3}\\}"
    ) {
        let _ = crypto().decrypt_body("0", "1", "2", body.as_bytes());
        let _ = CallbackMessage::parse(&body);
    }

    #[test]
    fn verify_url_never_panics(sig in "\\PC{0,50}", ts in "\\PC{0,12}", nonce in "\\PC{0,12}", echostr in "\\PC{0,200}") {
        let _ = crypto().verify_url(&sig, &ts, &nonce, &echostr);
    }

    /// Correctly signed but arbitrary ciphertext: exercises every check after the signature.
    #[test]
    fn signed_garbage_never_panics(cipher in prop::collection::vec(any::<u8>(), 0..512)) {
        let c = crypto();
        let enc = STANDARD.encode(&cipher);
        let sig = c.sign("1", "2", &enc);
        let _ = c.decrypt_encrypted(&sig, "1", "2", &enc);
        let _ = c.verify_url(&sig, "1", "2", &enc);
    }

    /// Properly encrypted but arbitrary plaintext buffers (bad pad, length, id, UTF-8): never a panic, and a
    /// success only when the buffer really was well formed.
    #[test]
    fn encrypted_garbage_never_panics(blocks in 1usize..8, fill in prop::collection::vec(any::<u8>(), 256)) {
        let key = key_bytes();
        let mut buf = fill[..blocks * 32].to_vec();
        let len = buf.len();
        cbc::Encryptor::<Aes256>::new(key[..32].into(), key[..16].into())
            .encrypt_padded_mut::<NoPadding>(&mut buf, len)
            .unwrap();
        let enc = STANDARD.encode(&buf);
        let c = crypto();
        let sig = c.sign("1", "2", &enc);
        if let Ok(m) = c.decrypt_encrypted(&sig, "1", "2", &enc) {
            prop_assert_eq!(m.receive_id(), RID);
        }
    }

    #[test]
    fn message_parse_never_panics(text in "\\PC{0,500}") {
        let _ = CallbackMessage::parse(&text);
        let _ = CallbackMessage::parse(&format!("<xml>{text}</xml>"));
        if let Ok(m) = CallbackMessage::parse(&format!("<xml><Event>change_contact</Event>{text}</xml>")) {
            let _ = m.dedup_key();
            if let Some(c) = m.change_contact() {
                let _ = (c.departments(), c.party_id(), c.add_party_items(), c.is_leader_in_dept(), c.order());
            }
        }
    }

    #[test]
    fn builder_values_survive_parsing(values in prop::collection::vec("[^\\x00]{0,60}", 1..6)) {
        let mut b = XmlBuilder::new();
        for (i, v) in values.iter().enumerate() {
            if i % 2 == 0 { b.cdata(&format!("F{i}"), v); } else { b.text(&format!("F{i}"), v); }
        }
        let m = CallbackMessage::parse(&b.finish()).unwrap();
        for (i, v) in values.iter().enumerate() {
            prop_assert_eq!(m.get(&format!("F{i}")), Some(v.as_str()));
        }
    }

    #[test]
    fn miniprogram_decrypt_never_panics(key in "\\PC{0,30}", iv in "\\PC{0,30}", data in "\\PC{0,300}",
                                        raw in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = miniprogram::decrypt_data(&key, &iv, &data, Some("wx1"));
        let _ = miniprogram::decrypt_data("tiihtNczf5v6AKRyjwEUhQ==", "r7BXXKkLb8qrSNn05n0qiA==", &STANDARD.encode(&raw), Some("wx1"));
    }

    #[test]
    fn miniprogram_round_trip(text in "\\PC{0,200}") {
        let json = serde_json::json!({"v": text, "watermark": {"appid": "wx1", "timestamp": 1}}).to_string();
        let data = miniprogram::encrypt_data("tiihtNczf5v6AKRyjwEUhQ==", "r7BXXKkLb8qrSNn05n0qiA==", &json).unwrap();
        let v = miniprogram::decrypt_data("tiihtNczf5v6AKRyjwEUhQ==", "r7BXXKkLb8qrSNn05n0qiA==", &data, Some("wx1")).unwrap();
        prop_assert_eq!(v["v"].as_str(), Some(text.as_str()));
    }
}

#[test]
fn empty_plaintext_round_trips_in_every_format() {
    let c = crypto();
    for format in [
        EnvelopeFormat::Xml,
        EnvelopeFormat::Json,
        EnvelopeFormat::MpJson,
    ] {
        let body = c
            .encrypt_envelope("", "1700000000", "n", [0; 16], format)
            .unwrap();
        let m = c
            .decrypt_body(&signature_of(&body), "1700000000", "n", body.as_bytes())
            .unwrap();
        assert_eq!(m.plaintext(), "");
        assert_eq!(m.receive_id(), RID);
    }
}

#[test]
fn bodies_with_a_bom_or_leading_whitespace_are_accepted() {
    let c = crypto();
    let enc = c.encrypt(b"<xml/>", [5; 16]).unwrap();
    let sig = c.sign("1", "2", &enc);
    for body in [
        format!("\u{feff}<xml><Encrypt><![CDATA[{enc}]]></Encrypt></xml>"),
        format!(
            "\r\n  <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xml>\n <Encrypt>{enc}</Encrypt>\n</xml>"
        ),
        format!("\u{feff} {{\"encrypt\":\"{enc}\"}}"),
        format!("{{\"Encrypt\":\"{}\"}}", enc.replace('/', "\\/")),
    ] {
        let m = c
            .decrypt_body(&sig, "1", "2", body.as_bytes())
            .unwrap_or_else(|e| panic!("{body}: {e}"));
        assert_eq!(m.plaintext(), "<xml/>");
    }
}
