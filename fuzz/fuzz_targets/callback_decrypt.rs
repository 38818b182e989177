//! Fuzz target: arbitrary bytes into every callback entry point of wx-crypto (raw POST bodies, correctly
//! signed arbitrary Encrypt/echostr values, encrypt->decrypt round trips, message parsing, mini-program
//! decryption). The only failure is a panic or a round trip that does not return its input.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wx_crypto::{CallbackCrypto, CallbackMessage, miniprogram};

static CRYPTO: LazyLock<Option<CallbackCrypto>> = LazyLock::new(|| {
    CallbackCrypto::new(
        "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
        "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
        "ww1436e0e65a779aee",
    )
    .ok()
});

fuzz_target!(|data: &[u8]| {
    let Some(crypto) = CRYPTO.as_ref() else {
        return;
    };
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match mode % 5 {
        // A raw POST body with a signature that will rarely match: envelope parsing (XML, JSON, hostile XML).
        0 => {
            let _ = crypto.decrypt_body("0c3914025cb4b4d68103f6bfc8db550f79dcf48e", "1", "2", rest);
        }
        // A correctly signed Encrypt / echostr: base64, AES, padding, length and receive-id checks.
        1 => {
            let sig = crypto.sign("1476416373", "47744683", &text);
            let _ = crypto.decrypt_encrypted(&sig, "1476416373", "47744683", &text);
            let _ = crypto.verify_url(&sig, "1476416373", "47744683", &text);
            let _ = crypto.decrypt_bytes(&sig, "1476416373", "47744683", &text);
        }
        // Round trip: whatever we encrypt must come back unchanged.
        2 => {
            let mut random = [0u8; 16];
            for (dst, src) in random.iter_mut().zip(rest) {
                *dst = *src;
            }
            if let Ok(enc) = crypto.encrypt(rest, random) {
                let sig = crypto.sign("1", "2", &enc);
                let back = crypto.decrypt_bytes(&sig, "1", "2", &enc);
                assert_eq!(back.as_deref(), Ok(rest), "round trip changed the message");
            }
        }
        // Message parsing and every typed accessor.
        3 => {
            if let Ok(msg) = CallbackMessage::parse(&text) {
                let _ = msg.dedup_key();
                let _ = (
                    msg.create_time(),
                    msg.event(),
                    msg.msg_id(),
                    msg.fields().count(),
                );
                if let Some(c) = msg.change_contact() {
                    let _ = (
                        c.change_type(),
                        c.departments(),
                        c.party_id(),
                        c.parent_id(),
                        c.order(),
                    );
                    let _ = (
                        c.tag_id(),
                        c.add_party_items(),
                        c.del_party_items(),
                        c.is_leader_in_dept(),
                    );
                }
            }
        }
        // Mini-program data: split the input into session key, iv and data at the first two NULs.
        _ => {
            let mut parts = text.splitn(3, '\0');
            let (key, iv, data) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            let _ = miniprogram::decrypt_data(key, iv, data, Some("wx4f4bc4dec97d474b"));
            let _ = miniprogram::decrypt_data(
                "tiihtNczf5v6AKRyjwEUhQ==",
                "r7BXXKkLb8qrSNn05n0qiA==",
                &text,
                None,
            );
        }
    }
});
