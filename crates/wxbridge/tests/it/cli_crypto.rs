//! `wxbridge crypto|jssdk|miniprogram` run as a real process against the published vectors: exact stdout,
//! exit codes (0 ok, 1 failure with one stderr line carrying the official code, 2 usage).

use std::io::Write;
use std::process::{Command, Output, Stdio};

const TOKEN: &str = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo";
const KEY: &str = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt";
const CORP: &str = "ww1436e0e65a779aee";

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wxbridge"));
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn wxbridge");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}, stderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn keys<'a>(token: &'a str, key: &'a str, rid: &'a str) -> Vec<&'a str> {
    vec!["--token", token, "--aes-key", key, "--receive-id", rid]
}

fn with(mut head: Vec<&'static str>, rest: &[&'static str]) -> Vec<&'static str> {
    head.extend_from_slice(rest);
    head
}

#[test]
fn verify_url_prints_the_bare_echo() {
    let mut args = vec!["crypto", "verify-url"];
    args.extend(keys(TOKEN, KEY, CORP));
    args.extend([
        "--msg-signature",
        "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
        "--timestamp",
        "1476416373",
        "--nonce",
        "47744683",
        "--echostr",
        "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
    ]);
    // Exactly the bytes: no newline, no quotes.
    assert_eq!(stdout(&run(&args, None)), "1288432023552776189");
}

#[test]
fn wrong_signature_exits_1_with_one_line_naming_40001() {
    let mut args = vec!["crypto", "verify-url"];
    args.extend(keys(TOKEN, KEY, CORP));
    args.extend([
        "--msg-signature",
        "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebec",
        "--timestamp",
        "1476416373",
        "--nonce",
        "47744683",
        "--echostr",
        "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
    ]);
    let o = run(&args, None);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("-40001"), "{err}");
    assert!(!err.contains(TOKEN) && !err.contains(KEY), "{err}");
}

#[test]
fn missing_required_flag_exits_2() {
    // No --echostr.
    let mut args = vec!["crypto", "verify-url"];
    args.extend(keys(TOKEN, KEY, CORP));
    args.extend(["--msg-signature", "x", "--timestamp", "1", "--nonce", "n"]);
    assert_eq!(run(&args, None).status.code(), Some(2));
    // decrypt needs exactly one of --encrypt / --body.
    let mut args = vec!["crypto", "decrypt"];
    args.extend(keys(TOKEN, KEY, CORP));
    args.extend(["--msg-signature", "x", "--timestamp", "1", "--nonce", "n"]);
    assert_eq!(run(&args, None).status.code(), Some(2));
    // encrypt needs --message or --message-file.
    let mut args = vec!["crypto", "encrypt"];
    args.extend(keys(TOKEN, KEY, CORP));
    args.extend(["--timestamp", "1", "--nonce", "n"]);
    assert_eq!(run(&args, None).status.code(), Some(2));
}

struct BodyVector {
    token: &'static str,
    key: &'static str,
    rid: &'static str,
    sig: &'static str,
    ts: &'static str,
    nonce: &'static str,
    body: &'static str,
    plaintext: &'static str,
}

fn body_vectors() -> Vec<BodyVector> {
    vec![
        BodyVector {
            token: TOKEN,
            key: KEY,
            rid: CORP,
            sig: "0c3914025cb4b4d68103f6bfc8db550f79dcf48e",
            ts: "1476422779",
            nonce: "1597212914",
            body: "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n<Encrypt><![CDATA[Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+]]></Encrypt>\n<AgentID><![CDATA[1000002]]></AgentID>\n</xml>",
            plaintext: "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName><CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>",
        },
        BodyVector {
            token: TOKEN,
            key: KEY,
            rid: CORP,
            sig: "e3647471e395139e2308c1fa963f2d648a00b90e",
            ts: "1409659813",
            nonce: "1372623149",
            body: r#"{ "tousername": "wx5823bf96d3bd56c7", "encrypt": "cjhLUX7UU4yCSelv1vz7T0zT8huF51bAMVWriNvO1FMegHrQZNrtvRxbwf0fUPsFvwqR0U0fgiJNEA5Y30F2MoI2S7vv3EjVQ68C0cjw9frBoUE2Hj0BvFp9h3u6Vbsg4lc1C8AtHdaN8orKuNKkLRLuYEL52R1J3v8olJGZRLnRdVKIivixmX/eQpzgeExtp20jI1HxRP1AAZ6xZoILdqDPO549LO4WeG+685JRUTdiwcY5fjZlqeMxuT4PpMn1X9OWsS7NRj06Wa5E3Tvg4twjWp39KPfOdRte6P1T4JU=", "agentid": 218 }"#,
            plaintext: r#"{ "ToUserName": "wx5823bf96d3bd56c7", "FromUserName": :mycreate", "CreateTime": 1409659813, "MsgType": "text", "Content": "hello", "MsgId": 4561255354251345929, "AgentID": 218}"#,
        },
        BodyVector {
            token: "spamtest",
            key: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            rid: "wx2c2769f8efd9abc2",
            sig: "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
            ts: "1409735669",
            nonce: "1320562132",
            body: "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName><CreateTime>1409735668</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[abcdteT]]></Content><MsgId>6054768590064713728</MsgId><Encrypt><![CDATA[hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=]]></Encrypt></xml>",
            plaintext: "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n<CreateTime>1409735668</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[abcdteT]]></Content>\n<MsgId>6054768590064713728</MsgId>\n</xml>",
        },
        BodyVector {
            token: "spamtest",
            key: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            rid: "wx2c2769f8efd9abc2",
            sig: "003fee52ecc56afb46c00b5c7721be87860ce785",
            ts: "1410349438",
            nonce: "298025754",
            body: "<xml><ToUserName><![CDATA[toUser]]></ToUserName><Encrypt><![CDATA[mfBCs65c67CeJw22u4VT2TD73q5H06+ocrAIxswCaeZ/d/Lw0msSZFHY0teqgSYiI1zR2gD2DKrB3TIrmX/liNSDrGqS8jSI/WPeKB5VPr7Ezr7gomZAyGCwJSgT1TRFWPfONGJMxuj2nk4faTuspAuVIFQ6SHwZuJBZC7mcJp7Cgr9cUhATQWDbOPaE7ukZBTV2YqyzH+UI2AK+J1S47cE79k1RX8t0hcTz/O0hlK8DGXKnvYv88qKQcI7z4iaajqHfRVZKBNyOODabs+It+ZfM3dWTeFcPgDbGtIEnpt/EDtuuA/zMvtkaKdHdswPnVZQ+xdwbYr3ldGvfT8HlEYEgkgKaThxTFobVlwzu2ZkXCjicbP3xdr15Iq48ObgzPpqYuZ3IEoyggZDKClquk0u0orMck4GTF/XyE8yGzc4=]]></Encrypt></xml>",
            plaintext: "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n<CreateTime>1410349438</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[abcdteT]]></Content>\n<MsgId>6057404712141979648</MsgId>\n</xml>",
        },
        BodyVector {
            token: "AAAAA",
            key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            rid: "wxba5fad812f8e6fb9",
            sig: "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3",
            ts: "1714112445",
            nonce: "415670741",
            body: r#"{"ToUserName": "gh_97417a04a28d", "Encrypt": "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="}"#,
            plaintext: r#"{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714112445,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}"#,
        },
    ]
}

#[test]
fn decrypt_each_vector_body_from_a_file_and_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    for (n, v) in body_vectors().into_iter().enumerate() {
        let path = dir.path().join(format!("body{n}"));
        std::fs::write(&path, v.body).unwrap();
        let path = path.to_str().unwrap().to_owned();
        let mut args = vec!["crypto", "decrypt"];
        args.extend(keys(v.token, v.key, v.rid));
        args.extend([
            "--msg-signature",
            v.sig,
            "--timestamp",
            v.ts,
            "--nonce",
            v.nonce,
            "--body",
        ]);
        let mut from_file = args.clone();
        from_file.push(&path);
        assert_eq!(
            stdout(&run(&from_file, None)),
            v.plaintext,
            "vector {n} from a file"
        );
        args.push("-");
        assert_eq!(
            stdout(&run(&args, Some(v.body.as_bytes()))),
            v.plaintext,
            "vector {n} from stdin"
        );
    }
}

#[test]
fn wrong_receive_id_exits_1_with_40005() {
    let v = &body_vectors()[0];
    let mut args = vec!["crypto", "decrypt"];
    args.extend(keys(v.token, v.key, "ww_someone_else"));
    args.extend([
        "--msg-signature",
        v.sig,
        "--timestamp",
        v.ts,
        "--nonce",
        v.nonce,
        "--body",
        "-",
    ]);
    let o = run(&args, Some(v.body.as_bytes()));
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("-40005") && err.contains("ww_someone_else") && err.contains(CORP),
        "{err}"
    );
}

#[test]
fn encrypt_then_decrypt_round_trips_through_the_cli() {
    let message = "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName><Content><![CDATA[往返 ]]]]><![CDATA[> test]]></Content></xml>";
    for format in ["xml", "json", "mp-json"] {
        let mut args = vec!["crypto", "encrypt"];
        args.extend(keys(TOKEN, KEY, CORP));
        args.extend([
            "--timestamp",
            "1700000000",
            "--nonce",
            "abc123",
            "--message",
            message,
            "--format",
            format,
        ]);
        let envelope = stdout(&run(&args, None));
        assert!(envelope.ends_with('\n'));
        // The signature to pass on the "query string" comes from the envelope itself.
        let sig = if format == "xml" {
            envelope.split("<MsgSignature><![CDATA[").nth(1).unwrap()[..40].to_owned()
        } else {
            let v: serde_json::Value = serde_json::from_str(&envelope).unwrap();
            v.get("msgsignature")
                .or(v.get("MsgSignature"))
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        };
        let sig_from_cli = {
            let enc: String = if format == "xml" {
                let rest = envelope.split("<Encrypt><![CDATA[").nth(1).unwrap();
                rest[..rest.find("]]>").unwrap()].to_owned()
            } else {
                let v: serde_json::Value = serde_json::from_str(&envelope).unwrap();
                v.get("encrypt")
                    .or(v.get("Encrypt"))
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            };
            let o = run(
                &[
                    "crypto",
                    "signature",
                    "--token",
                    TOKEN,
                    "--timestamp",
                    "1700000000",
                    "--nonce",
                    "abc123",
                    "--encrypt",
                    &enc,
                ],
                None,
            );
            stdout(&o).trim_end().to_owned()
        };
        assert_eq!(sig, sig_from_cli);
        let mut dec = vec!["crypto", "decrypt"];
        dec.extend(keys(TOKEN, KEY, CORP));
        dec.extend([
            "--msg-signature",
            &sig,
            "--timestamp",
            "1700000000",
            "--nonce",
            "abc123",
            "--body",
            "-",
        ]);
        assert_eq!(
            stdout(&run(&dec, Some(envelope.as_bytes()))),
            message,
            "{format}"
        );
    }
}

#[test]
fn encrypt_with_fixed_random_reproduces_the_published_mp_reply() {
    let mut args = vec!["crypto", "encrypt"];
    args.extend(keys(
        "AAAAA",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "wxba5fad812f8e6fb9",
    ));
    args.extend([
        "--timestamp",
        "1713424427",
        "--nonce",
        "415670741",
        "--random",
        "707722b803182950",
        "--message",
        r#"{"demo_resp":"good luck"}"#,
        "--format",
        "mp-json",
    ]);
    let got: serde_json::Value = serde_json::from_str(&stdout(&run(&args, None))).unwrap();
    assert_eq!(
        got,
        serde_json::json!({
            "Encrypt": "ELGduP2YcVatjqIS+eZbp80MNLoAUWvzzyJxgGzxZO/5sAvd070Bs6qrLARC9nVHm48Y4hyRbtzve1L32tmxSQ==",
            "MsgSignature": "1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1",
            "TimeStamp": 1713424427,
            "Nonce": "415670741"
        })
    );
}

#[test]
fn signature_jssdk_and_miniprogram_commands() {
    let plain = run(
        &[
            "crypto",
            "signature",
            "--token",
            "AAAAA",
            "--timestamp",
            "1714037059",
            "--nonce",
            "486452656",
        ],
        None,
    );
    assert_eq!(stdout(&plain), "899cf89e464efb63f54ddac96b0a0a235f53aa78\n");
    let js = run(
        &with(
            vec!["jssdk", "sign"],
            &[
                "--ticket",
                "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
                "--noncestr",
                "Wm3WZYTPz0wzccnW",
                "--timestamp",
                "1414587457",
                "--url",
                "http://mp.weixin.qq.com?params=value#/fragment",
            ],
        ),
        None,
    );
    assert_eq!(stdout(&js), "0f9de62fce790f9a083d5c99e95740ceb90c27ed\n");
    let data = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";
    let base = [
        "miniprogram",
        "decrypt",
        "--session-key",
        "tiihtNczf5v6AKRyjwEUhQ==",
        "--iv",
        "r7BXXKkLb8qrSNn05n0qiA==",
        "--data",
        data,
        "--appid",
    ];
    let out = stdout(&run(&with(base.to_vec(), &["wx4f4bc4dec97d474b"]), None));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["openId"], "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
    assert_eq!(v["watermark"]["appid"], "wx4f4bc4dec97d474b");
    assert_eq!(out.lines().count(), 1);
    let wrong = run(&with(base.to_vec(), &["wx0000000000000000"]), None);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("-41003"));
    let raw = r#"{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}"#;
    let ok = run(
        &[
            "miniprogram",
            "check-signature",
            "--session-key",
            "HyVFkGl5F5OQWJZZaNzBBg==",
            "--raw-data",
            raw,
            "--signature",
            "75e81ceda165f4ffa64f4068af58c64b8f54b88c",
        ],
        None,
    );
    assert_eq!(stdout(&ok), "ok\n");
    let bad = run(
        &[
            "miniprogram",
            "check-signature",
            "--session-key",
            "HyVFkGl5F5OQWJZZaNzBBg==",
            "--raw-data",
            raw,
            "--signature",
            "75e81ceda165f4ffa64f4068af58c64b8f54b88d",
        ],
        None,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("-40001"));
}
