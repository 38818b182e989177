//! Callback hot path benchmarks: raw POST body -> verified -> decrypted -> parsed message for a ~1.4 KB
//! WeCom contact event (target: at least 100k msgs/s on one core), plus URL verification and JS-SDK signing.

// A benchmark is test code: a broken fixture should stop it loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wx_crypto::{CallbackCrypto, CallbackMessage, EnvelopeFormat, XmlBuilder, jssdk_signature};

const TOKEN: &str = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo";
const KEY: &str = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt";
const CORP: &str = "ww1436e0e65a779aee";
const TS: &str = "1476422779";
const NONCE: &str = "1597212914";

/// A create_user change_contact event with every documented member field, about 1.4 KB of XML.
fn create_user_event() -> String {
    let mut b = XmlBuilder::new();
    b.cdata("ToUserName", CORP)
        .cdata("FromUserName", "sys")
        .text("CreateTime", "1403610513")
        .cdata("MsgType", "event")
        .cdata("Event", "change_contact")
        .cdata("ChangeType", "create_user")
        .cdata("UserID", "zhangsan")
        .cdata("Name", "张三")
        .cdata("Department", "1,2,3")
        .text("MainDepartment", "1")
        .cdata("IsLeaderInDept", "1,0,0")
        .cdata("DirectLeader", "lisi,wangwu")
        .cdata("Position", "产品经理")
        .text("Mobile", "13800000000")
        .text("Gender", "1")
        .cdata("Email", "zhangsan@gzdev.com")
        .cdata("BizMail", "zhangsan@qyycs2.wecom.work")
        .text("Status", "1")
        .cdata(
            "Avatar",
            "http://wx.qlogo.cn/mmopen/ajNVdqHZLLA3WJ6DSZUfiakYe37PKnQhBIeOQBO4czqrnZDS79FH5Wm5m4X69TBicnHFlhiafvDwklOpZeXYQQ2icg/0",
        )
        .cdata("Alias", "jackzhang")
        .cdata("Telephone", "020-3456788")
        .cdata("Address", "广州市海珠区新港中路")
        .nested("ExtAttr", |b| {
            for (name, value) in [("爱好", "旅游"), ("工号", "A-000123")] {
                b.nested("Item", |b| {
                    b.cdata("Name", name).text("Type", "0").nested("Text", |b| {
                        b.cdata("Value", value);
                    });
                });
            }
            b.nested("Item", |b| {
                b.cdata("Name", "主页").text("Type", "1").nested("Web", |b| {
                    b.cdata("Title", "企业微信").cdata("Url", "https://work.weixin.qq.com");
                });
            });
        });
    b.finish()
}

fn bench_callback(c: &mut Criterion) {
    let crypto = CallbackCrypto::new(TOKEN, KEY, CORP).expect("valid vector key");
    let event = create_user_event();
    let reply = crypto
        .encrypt_envelope(&event, TS, NONCE, *b"0123456789abcdef", EnvelopeFormat::Xml)
        .expect("encrypt");
    // A real push body: ToUserName, AgentID and Encrypt; the signature travels in the query string.
    let encrypt = reply
        .split("<Encrypt><![CDATA[")
        .nth(1)
        .and_then(|r| r.split("]]>").next())
        .expect("Encrypt in envelope")
        .to_owned();
    let sig = crypto.sign(TS, NONCE, &encrypt);
    let body = format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><AgentID><![CDATA[1000002]]></AgentID><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    );
    eprintln!(
        "plaintext {} bytes, POST body {} bytes",
        event.len(),
        body.len()
    );

    let mut g = c.benchmark_group("callback");
    g.throughput(Throughput::Elements(1));
    g.bench_function("full_path_1_4kb_xml", |b| {
        b.iter(|| {
            let verified = crypto
                .decrypt_body(black_box(&sig), TS, NONCE, black_box(body.as_bytes()))
                .expect("valid");
            let msg = verified.into_message().expect("parses");
            black_box(msg.dedup_key())
        })
    });
    g.bench_function("decrypt_body_only", |b| {
        b.iter(|| {
            crypto
                .decrypt_body(black_box(&sig), TS, NONCE, black_box(body.as_bytes()))
                .expect("valid")
        })
    });
    g.bench_function("parse_only", |b| {
        b.iter(|| CallbackMessage::parse(black_box(&event)).expect("parses"))
    });

    let echostr = crypto
        .encrypt(b"1288432023552776189", *b"fedcba9876543210")
        .expect("encrypt");
    let echo_sig = crypto.sign(TS, NONCE, &echostr);
    g.bench_function("verify_url", |b| {
        b.iter(|| {
            crypto
                .verify_url(black_box(&echo_sig), TS, NONCE, black_box(&echostr))
                .expect("valid")
        })
    });
    g.bench_function("jssdk_signature", |b| {
        b.iter(|| {
            jssdk_signature(
                black_box("sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"),
                black_box("Wm3WZYTPz0wzccnW"),
                black_box("1414587457"),
                black_box("http://mp.weixin.qq.com?params=value"),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench_callback);
criterion_main!(benches);
