//! `wxbridge crypto|jssdk|miniprogram`: callback crypto, JS-SDK and mini-program helpers by hand, for
//! operators debugging a callback URL or a signature. Thin wrappers over wx-crypto; randomness (for
//! `crypto encrypt` without `--random`) is drawn here, never in wx-crypto.
//!
//! Output contract (scripts rely on it): on success the result alone on stdout and exit 0; `verify-url` and
//! `decrypt` print the plaintext exactly, with no trailing newline (WeCom wants the bare echo); every other
//! command prints one value followed by a newline. On failure exit 1 and one line on stderr naming the
//! failure and its official code; usage errors exit 2.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use rand::Rng as _;
use secrecy::{ExposeSecret, SecretString};
use wx_crypto::{CallbackCrypto, EnvelopeFormat, miniprogram};

use super::{CmdError, CmdResult};

fn secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s))
}

fn sixteen_bytes(s: &str) -> Result<[u8; 16], String> {
    s.as_bytes()
        .try_into()
        .map_err(|_| format!("must be exactly 16 bytes, got {}", s.len()))
}

/// The three values configured for a callback receiver.
#[derive(Debug, Args)]
pub struct CallbackKeys {
    /// Callback Token from the WeCom/WeChat console.
    #[arg(long, value_parser = secret)]
    token: SecretString,
    /// EncodingAESKey (43 characters).
    #[arg(long = "aes-key", value_parser = secret)]
    aes_key: SecretString,
    /// Receive id: corpid (self-built app), suite id (third-party suite) or appid (WeChat).
    #[arg(long = "receive-id")]
    receive_id: String,
}

impl CallbackKeys {
    fn crypto(&self) -> Result<CallbackCrypto, CmdError> {
        CallbackCrypto::new(
            self.token.expose_secret(),
            self.aes_key.expose_secret(),
            &self.receive_id,
        )
        .map_err(CmdError::new)
    }
}

/// Callback crypto commands.
#[derive(Debug, Subcommand)]
pub enum CryptoCmd {
    /// Verify a WeCom callback URL check (GET) and print the decrypted echostr with no trailing newline.
    VerifyUrl(VerifyUrlArgs),
    /// Verify and decrypt a callback; print the decrypted message exactly, with no trailing newline.
    Decrypt(DecryptArgs),
    /// Encrypt a message into a reply/push envelope (Encrypt, MsgSignature, TimeStamp, Nonce).
    Encrypt(EncryptArgs),
    /// Print the SHA-1 signature: 3-field (token, timestamp, nonce) or 4-field with --encrypt.
    Signature(SignatureArgs),
}

#[derive(Debug, Args)]
pub struct VerifyUrlArgs {
    #[command(flatten)]
    keys: CallbackKeys,
    /// msg_signature query parameter.
    #[arg(long = "msg-signature")]
    msg_signature: String,
    /// timestamp query parameter.
    #[arg(long)]
    timestamp: String,
    /// nonce query parameter.
    #[arg(long)]
    nonce: String,
    /// echostr query parameter, URL-decoded (spaces that replaced '+' are repaired).
    #[arg(long)]
    echostr: String,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("input").required(true).args(["encrypt", "body"])))]
pub struct DecryptArgs {
    #[command(flatten)]
    keys: CallbackKeys,
    /// msg_signature query parameter.
    #[arg(long = "msg-signature")]
    msg_signature: String,
    /// timestamp query parameter.
    #[arg(long)]
    timestamp: String,
    /// nonce query parameter.
    #[arg(long)]
    nonce: String,
    /// The Encrypt value (base64).
    #[arg(long)]
    encrypt: Option<String>,
    /// A raw POST body, XML or JSON envelope; '-' reads stdin.
    #[arg(long, value_name = "FILE|-")]
    body: Option<PathBuf>,
}

/// Envelope format of `crypto encrypt`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// `<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>`.
    Xml,
    /// WeCom JSON: {"encrypt","msgsignature","timestamp","nonce"}.
    Json,
    /// WeChat JSON: {"Encrypt","MsgSignature","TimeStamp":number,"Nonce"}.
    MpJson,
}

impl From<FormatArg> for EnvelopeFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Xml => EnvelopeFormat::Xml,
            FormatArg::Json => EnvelopeFormat::Json,
            FormatArg::MpJson => EnvelopeFormat::MpJson,
        }
    }
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("msg").required(true).args(["message", "message_file"])))]
pub struct EncryptArgs {
    #[command(flatten)]
    keys: CallbackKeys,
    /// TimeStamp of the envelope (signed).
    #[arg(long)]
    timestamp: String,
    /// Nonce of the envelope (signed).
    #[arg(long)]
    nonce: String,
    /// The 16 random bytes that start the plaintext buffer (exactly 16 characters); default: 16 random
    /// alphanumerics from the OS. Give it to get reproducible output.
    #[arg(long, value_name = "SIXTEEN_CHARS", value_parser = sixteen_bytes)]
    random: Option<[u8; 16]>,
    /// The message to encrypt.
    #[arg(long)]
    message: Option<String>,
    /// A file holding the message to encrypt ('-' reads stdin).
    #[arg(long = "message-file", value_name = "FILE|-")]
    message_file: Option<PathBuf>,
    /// Envelope format.
    #[arg(long, value_enum, default_value = "xml")]
    format: FormatArg,
}

#[derive(Debug, Args)]
pub struct SignatureArgs {
    /// Callback Token.
    #[arg(long, value_parser = secret)]
    token: SecretString,
    #[arg(long)]
    timestamp: String,
    #[arg(long)]
    nonce: String,
    /// The Encrypt value: gives the 4-field msg_signature instead of the 3-field signature.
    #[arg(long)]
    encrypt: Option<String>,
}

/// JS-SDK commands.
#[derive(Debug, Subcommand)]
pub enum JssdkCmd {
    /// Print the wx.config / wx.agentConfig signature. A '#fragment' in --url is removed before signing.
    Sign(JssdkSignArgs),
}

#[derive(Debug, Args)]
pub struct JssdkSignArgs {
    /// jsapi_ticket (company or app ticket).
    #[arg(long, value_parser = secret)]
    ticket: SecretString,
    /// nonceStr passed to wx.config.
    #[arg(long)]
    noncestr: String,
    /// timestamp passed to wx.config.
    #[arg(long)]
    timestamp: String,
    /// The page URL exactly as the page sees it.
    #[arg(long)]
    url: String,
}

/// Mini-program commands.
#[derive(Debug, Subcommand)]
pub enum MiniprogramCmd {
    /// Decrypt encryptedData (AES-128-CBC) and print the JSON on one line.
    Decrypt(MpDecryptArgs),
    /// Check a rawData signature (sha1(rawData + session_key)); prints "ok".
    CheckSignature(MpCheckArgs),
}

#[derive(Debug, Args)]
pub struct MpDecryptArgs {
    /// session_key from jscode2session (base64).
    #[arg(long = "session-key", value_parser = secret)]
    session_key: SecretString,
    /// iv sent with the data (base64).
    #[arg(long)]
    iv: String,
    /// encryptedData (base64).
    #[arg(long)]
    data: String,
    /// Expected watermark.appid (the mini-program appid).
    #[arg(long)]
    appid: Option<String>,
}

#[derive(Debug, Args)]
pub struct MpCheckArgs {
    /// session_key from jscode2session (base64).
    #[arg(long = "session-key", value_parser = secret)]
    session_key: SecretString,
    /// rawData exactly as sent by the mini program.
    #[arg(long = "raw-data")]
    raw_data: String,
    /// signature sent with it.
    #[arg(long)]
    signature: String,
}

/// Reads a file, or stdin for `-`.
fn read_input(path: &PathBuf) -> Result<Vec<u8>, CmdError> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| CmdError::new(format!("cannot read stdin: {e}")))?;
        Ok(buf)
    } else {
        std::fs::read(path)
            .map_err(|e| CmdError::new(format!("cannot read {}: {e}", path.display())))
    }
}

fn print_exact(s: &str) -> CmdResult {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| CmdError::new(format!("cannot write to stdout: {e}")))
}

fn print_line(s: &str) -> CmdResult {
    print_exact(&format!("{s}\n"))
}

fn random_alphanumerics() -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut rng = rand::rng();
    for b in &mut out {
        *b = rng.sample(rand::distr::Alphanumeric);
    }
    out
}

/// Computes what a crypto command prints (kept apart from printing so it can be unit-tested).
fn crypto_output(c: CryptoCmd) -> Result<String, CmdError> {
    match c {
        CryptoCmd::VerifyUrl(a) => a
            .keys
            .crypto()?
            .verify_url(&a.msg_signature, &a.timestamp, &a.nonce, &a.echostr)
            .map_err(CmdError::new),
        CryptoCmd::Decrypt(a) => {
            let crypto = a.keys.crypto()?;
            let verified = match (&a.encrypt, &a.body) {
                (Some(encrypt), _) => {
                    crypto.decrypt_encrypted(&a.msg_signature, &a.timestamp, &a.nonce, encrypt)
                }
                (None, Some(path)) => {
                    let body = read_input(path)?;
                    crypto.decrypt_body(&a.msg_signature, &a.timestamp, &a.nonce, &body)
                }
                // clap's required group makes this unreachable; say so rather than panic.
                (None, None) => return Err(CmdError::new("give --encrypt or --body")),
            };
            Ok(verified.map_err(CmdError::new)?.into_plaintext())
        }
        CryptoCmd::Encrypt(a) => {
            let message = match (a.message, &a.message_file) {
                (Some(m), _) => m,
                (None, Some(path)) => String::from_utf8(read_input(path)?)
                    .map_err(|_| CmdError::new("the message file is not UTF-8"))?,
                (None, None) => return Err(CmdError::new("give --message or --message-file")),
            };
            let random = a.random.unwrap_or_else(random_alphanumerics);
            a.keys
                .crypto()?
                .encrypt_envelope(&message, &a.timestamp, &a.nonce, random, a.format.into())
                .map_err(CmdError::new)
        }
        CryptoCmd::Signature(a) => Ok(match &a.encrypt {
            Some(encrypt) => {
                wx_crypto::msg_signature(a.token.expose_secret(), &a.timestamp, &a.nonce, encrypt)
            }
            None => wx_crypto::signature(a.token.expose_secret(), &a.timestamp, &a.nonce),
        }),
    }
}

pub fn run_crypto(c: CryptoCmd) -> CmdResult {
    let exact = matches!(c, CryptoCmd::VerifyUrl(_) | CryptoCmd::Decrypt(_));
    let out = crypto_output(c)?;
    if exact {
        print_exact(&out)
    } else {
        print_line(&out)
    }
}

fn jssdk_output(c: JssdkCmd) -> String {
    match c {
        JssdkCmd::Sign(a) => wx_crypto::jssdk_signature_for_page(
            a.ticket.expose_secret(),
            &a.noncestr,
            &a.timestamp,
            &a.url,
        ),
    }
}

pub fn run_jssdk(c: JssdkCmd) -> CmdResult {
    print_line(&jssdk_output(c))
}

fn miniprogram_output(c: MiniprogramCmd) -> Result<String, CmdError> {
    match c {
        MiniprogramCmd::Decrypt(a) => {
            let value = miniprogram::decrypt_data(
                a.session_key.expose_secret(),
                &a.iv,
                &a.data,
                a.appid.as_deref(),
            )
            .map_err(CmdError::new)?;
            Ok(value.to_string())
        }
        MiniprogramCmd::CheckSignature(a) => {
            miniprogram::check_raw_data_signature(
                &a.raw_data,
                a.session_key.expose_secret(),
                &a.signature,
            )
            .map_err(CmdError::new)?;
            Ok("ok".to_owned())
        }
    }
}

pub fn run_miniprogram(c: MiniprogramCmd) -> CmdResult {
    print_line(&miniprogram_output(c)?)
}

#[cfg(test)]
mod tests {
    //! The command logic without the process around it (the real binary is tested in tests/it/cli_crypto.rs).

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Crypto {
        #[command(subcommand)]
        c: CryptoCmd,
    }

    #[derive(Debug, Parser)]
    struct Mp {
        #[command(subcommand)]
        c: MiniprogramCmd,
    }

    #[derive(Debug, Parser)]
    struct Js {
        #[command(subcommand)]
        c: JssdkCmd,
    }

    const KEYS: [&str; 6] = [
        "--token",
        "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
        "--aes-key",
        "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
        "--receive-id",
        "ww1436e0e65a779aee",
    ];

    fn crypto(args: &[&str]) -> Result<String, CmdError> {
        let mut argv = vec!["x", args[0]];
        argv.extend_from_slice(&args[1..]);
        crypto_output(Crypto::try_parse_from(argv).unwrap().c)
    }

    #[test]
    fn verify_url_prints_the_vector_echo() {
        let mut args = vec!["verify-url"];
        args.extend(KEYS);
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
        assert_eq!(crypto(&args).unwrap(), "1288432023552776189");
        args[8] = "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebea";
        let err = crypto(&args).unwrap_err().to_string();
        assert!(err.contains("-40001") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn encrypt_then_decrypt_round_trips_in_every_format() {
        for format in ["xml", "json", "mp-json"] {
            let mut args = vec!["encrypt"];
            args.extend(KEYS);
            args.extend([
                "--timestamp",
                "1700000000",
                "--nonce",
                "n1",
                "--message",
                "<xml><Content>你好</Content></xml>",
                "--format",
                format,
            ]);
            let envelope = crypto(&args).unwrap();
            let v: serde_json::Value = if format == "xml" {
                let enc = envelope.split("<Encrypt><![CDATA[").nth(1).unwrap();
                let sig = envelope.split("<MsgSignature><![CDATA[").nth(1).unwrap();
                serde_json::json!({"e": &enc[..enc.find("]]>").unwrap()], "s": &sig[..40]})
            } else {
                let v: serde_json::Value = serde_json::from_str(&envelope).unwrap();
                let e = v.get("encrypt").or(v.get("Encrypt")).unwrap().clone();
                let s = v
                    .get("msgsignature")
                    .or(v.get("MsgSignature"))
                    .unwrap()
                    .clone();
                serde_json::json!({"e": e, "s": s})
            };
            let mut args = vec!["decrypt"];
            args.extend(KEYS);
            let (e, s) = (v["e"].as_str().unwrap(), v["s"].as_str().unwrap());
            args.extend([
                "--msg-signature",
                s,
                "--timestamp",
                "1700000000",
                "--nonce",
                "n1",
                "--encrypt",
                e,
            ]);
            assert_eq!(crypto(&args).unwrap(), "<xml><Content>你好</Content></xml>");
        }
    }

    #[test]
    fn encrypt_with_random_is_reproducible_and_without_it_is_not() {
        let mut args = vec!["encrypt"];
        args.extend(KEYS);
        args.extend(["--timestamp", "1", "--nonce", "n", "--message", "m"]);
        let a = crypto(&args).unwrap();
        let b = crypto(&args).unwrap();
        assert_ne!(a, b, "16 fresh random bytes per call");
        args.extend(["--random", "0123456789abcdef"]);
        assert_eq!(crypto(&args).unwrap(), crypto(&args).unwrap());
    }

    #[test]
    fn usage_errors_come_from_clap() {
        let mut args = vec!["x", "decrypt"];
        args.extend(KEYS);
        args.extend(["--msg-signature", "s", "--timestamp", "1", "--nonce", "n"]);
        // Neither --encrypt nor --body.
        assert!(Crypto::try_parse_from(args.clone()).is_err());
        args.extend(["--encrypt", "e", "--body", "-"]);
        assert!(
            Crypto::try_parse_from(args).is_err(),
            "both is also an error"
        );
        let mut enc = vec!["x", "encrypt"];
        enc.extend(KEYS);
        enc.extend([
            "--timestamp",
            "1",
            "--nonce",
            "n",
            "--message",
            "m",
            "--random",
            "short",
        ]);
        assert!(Crypto::try_parse_from(enc).is_err());
    }

    #[test]
    fn signatures_jssdk_and_miniprogram() {
        assert_eq!(
            crypto(&[
                "signature",
                "--token",
                "AAAAA",
                "--timestamp",
                "1714037059",
                "--nonce",
                "486452656"
            ])
            .unwrap(),
            "899cf89e464efb63f54ddac96b0a0a235f53aa78"
        );
        let js = Js::try_parse_from([
            "x",
            "sign",
            "--ticket",
            "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
            "--noncestr",
            "Wm3WZYTPz0wzccnW",
            "--timestamp",
            "1414587457",
            "--url",
            "http://mp.weixin.qq.com?params=value#top",
        ])
        .unwrap();
        assert_eq!(
            jssdk_output(js.c),
            "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
        );
        let mp = Mp::try_parse_from([
            "x",
            "check-signature",
            "--session-key",
            "HyVFkGl5F5OQWJZZaNzBBg==",
            "--raw-data",
            "{}",
            "--signature",
            "0000",
        ])
        .unwrap();
        assert!(
            miniprogram_output(mp.c)
                .unwrap_err()
                .to_string()
                .contains("-40001")
        );
    }

    #[test]
    fn debug_of_parsed_arguments_hides_secrets() {
        let mut argv = vec!["x", "verify-url"];
        argv.extend(KEYS);
        argv.extend([
            "--msg-signature",
            "s",
            "--timestamp",
            "1",
            "--nonce",
            "n",
            "--echostr",
            "e",
        ]);
        let dbg = format!("{:?}", Crypto::try_parse_from(argv).unwrap());
        assert!(!dbg.contains(KEYS[1]) && !dbg.contains(KEYS[3]), "{dbg}");
    }
}
