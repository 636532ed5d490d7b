//! A real SMTP server (PyPI `aiosmtpd`) on a loopback port, with a
//! certificate made by `openssl` for STARTTLS, recording each message it
//! accepts (envelope, headers, decoded plain-text body, whether it came
//! over TLS and who authenticated).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use serde::Deserialize;
use tempfile::TempDir;

use crate::http::free_port;
use crate::poll::wait_until;
use crate::tools::require_tool;

/// The command that installs the SMTP server the tests start.
pub const AIOSMTPD_INSTALL: &str = "python3 -m pip install -q aiosmtpd";

/// How the server protects its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpTls {
    /// Offers STARTTLS and refuses mail until a client has started it.
    #[default]
    RequireStarttls,
    /// Offers no STARTTLS at all (a client that requires it must give up).
    None,
}

/// Options for [`SmtpServer::start`].
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    /// STARTTLS required, or not offered.
    pub tls: SmtpTls,
    /// `(user, password)`: AUTH required (PLAIN or LOGIN), after STARTTLS
    /// when it is offered.
    pub auth: Option<(String, String)>,
}

/// One message the server accepted.
#[derive(Debug, Clone, Deserialize)]
pub struct Mail {
    /// `MAIL FROM`.
    pub mail_from: String,
    /// `RCPT TO`s.
    pub rcpt_tos: Vec<String>,
    /// The `Subject` header, decoded.
    pub subject: String,
    /// The `From` header.
    pub from: String,
    /// The `To` header.
    pub to: String,
    /// Every header, `(name, decoded value)`, in order.
    pub headers: Vec<(String, String)>,
    /// The `text/plain` body, decoded (quoted-printable or base64 undone),
    /// its lines ended by `\n` (SMTP carries `\r\n`).
    pub body: String,
    /// The message came over TLS (after STARTTLS).
    pub tls: bool,
    /// The user that authenticated, if any.
    pub auth_user: Option<String>,
}

impl Mail {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running `aiosmtpd` (through a small Python script) on
/// `127.0.0.1:<free port>`, with a certificate for `127.0.0.1` and
/// `localhost` signed by a test CA ([`SmtpServer::ca_file`]). Killed when
/// dropped, or when the test process dies (it exits when its stdin
/// closes).
pub struct SmtpServer {
    port: u16,
    child: Child,
    _stdin: ChildStdin,
    dir: TempDir,
}

const SERVER: &str = r#"
import email, json, ssl, sys, threading
from email import policy
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

out, port, cert, key, mode, user, password = sys.argv[1:8]

class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        body = msg.get_body(preferencelist=("plain",))
        rec = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "subject": str(msg.get("subject", "")),
            "from": str(msg.get("from", "")),
            "to": str(msg.get("to", "")),
            "headers": [[k, str(v)] for k, v in msg.items()],
            "body": body.get_content().replace("\r\n", "\n") if body is not None else "",
            "tls": session.ssl is not None,
            "auth_user": session.auth_data if session.authenticated else None,
        }
        with open(out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        return "250 2.0.0 OK queued"

def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login.decode() == user and auth_data.password.decode() == password)
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None)

kwargs = {}
if mode == "starttls":
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    kwargs.update(tls_context=ctx, require_starttls=True)
if user:
    kwargs.update(authenticator=authenticate, auth_required=True,
                  auth_require_tls=(mode == "starttls"))
controller = Controller(Handler(), hostname="127.0.0.1", port=int(port), **kwargs)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"#;

/// Makes a CA and a server certificate for `127.0.0.1` and `localhost`
/// signed by it (P-256), with `openssl`, in `dir`: `ca.pem`, `server.pem`,
/// `server.key`.
fn make_certificates(dir: &Path) {
    let openssl = require_tool("openssl", "apt-get install openssl");
    let run = |args: &[&str]| {
        let out = Command::new(&openssl)
            .args(args)
            .current_dir(dir)
            .output()
            .expect("running openssl failed");
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend_from_slice(&ec);
    ca.extend_from_slice(&[
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=freshen test SMTP CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&ca);
    let mut csr = vec!["req"];
    csr.extend_from_slice(&ec);
    csr.extend_from_slice(&[
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("writing the certificate extensions failed");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}

impl SmtpServer {
    /// Starts the server; panics with the install command when Python's
    /// `aiosmtpd` is missing.
    pub fn start(opts: SmtpOptions) -> SmtpServer {
        let python = require_tool("python3", "apt-get install python3");
        let probe = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .output()
            .expect("running python3 failed");
        assert!(
            probe.status.success(),
            "freshen-testkit: Python's aiosmtpd is not installed; install it with `{AIOSMTPD_INSTALL}`"
        );
        let dir = tempfile::Builder::new()
            .prefix("freshen-smtp-")
            .tempdir()
            .expect("creating the SMTP server's temp dir failed");
        make_certificates(dir.path());
        std::fs::write(dir.path().join("server.py"), SERVER).expect("writing server.py failed");
        let (user, password) = opts.auth.clone().unwrap_or_default();
        let mut last = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let mut child = Command::new(&python)
                .arg(dir.path().join("server.py"))
                .arg(dir.path().join("mail.jsonl"))
                .arg(port.to_string())
                .arg(dir.path().join("server.pem"))
                .arg(dir.path().join("server.key"))
                .arg(match opts.tls {
                    SmtpTls::RequireStarttls => "starttls",
                    SmtpTls::None => "plain",
                })
                .arg(&user)
                .arg(&password)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::from(
                    std::fs::File::create(dir.path().join("server.log"))
                        .expect("creating the SMTP server's log failed"),
                ))
                .spawn()
                .expect("starting the SMTP server failed");
            let stdin = child.stdin.take().expect("piped stdin");
            let mut line = String::new();
            let stdout = child.stdout.take().expect("piped stdout");
            let _ = BufReader::new(stdout).read_line(&mut line);
            if line.trim() == "ready" {
                return SmtpServer {
                    port,
                    child,
                    _stdin: stdin,
                    dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        }
        panic!("the SMTP server did not start: {last}");
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA certificate (PEM file) that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server's own log (Python's stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Every message accepted so far, in order.
    pub fn messages(&self) -> Vec<Mail> {
        std::fs::read_to_string(self.dir.path().join("mail.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("the server writes JSON lines"))
            .collect()
    }

    /// Waits until at least `n` messages arrived (panics after `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Mail> {
        wait_until(
            timeout,
            || {
                format!(
                    "{n} message(s); got {}: {}",
                    self.messages().len(),
                    self.log()
                )
            },
            || {
                let m = self.messages();
                (m.len() >= n).then_some(m)
            },
        )
        .await
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
