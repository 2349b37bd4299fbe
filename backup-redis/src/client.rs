#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! A minimal RESP2 connection over TCP or TLS.
//!
//! The replication handshake needs the raw byte stream after `PSYNC` (no client library
//! exposes it), and the restore path writes pipelined `RESTORE` commands straight from
//! the RDB parser, so this crate speaks RESP itself. [`RedisConnection`] is public so the
//! CLI, the Python bindings and tests can run plain commands with the same connection
//! settings (`AUTH`, TLS, timeouts) without a second client library.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf,
    WriteHalf,
};
use tokio::net::TcpStream;

use crate::config::RedisConfig;
use crate::error::RedisError;

/// A byte stream to a server (plain TCP or TLS).
pub(crate) trait IoStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> IoStream for T {}

/// The reading half of a connection.
pub(crate) type ConnReader = BufReader<ReadHalf<Box<dyn IoStream>>>;
/// The writing half of a connection.
pub(crate) type ConnWriter = WriteHalf<Box<dyn IoStream>>;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Status(String),
    /// `-ERR ...`.
    Error(String),
    /// `:42`.
    Int(i64),
    /// `$n` bulk string; `None` is the nil reply.
    Bulk(Option<Vec<u8>>),
    /// `*n` array; `None` is the nil array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as bytes (bulk or status), if it is one.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Bulk(Some(b)) => Some(b),
            Reply::Status(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// The reply as text (lossy), if it is a bulk or status reply.
    pub fn as_text(&self) -> Option<String> {
        self.as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// The reply as an integer (an integer reply, or a bulk/status holding one).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            other => other.as_text().and_then(|t| t.trim().parse().ok()),
        }
    }

    /// The elements of an array reply.
    pub fn into_array(self) -> Option<Vec<Reply>> {
        match self {
            Reply::Array(Some(v)) => Some(v),
            _ => None,
        }
    }
}

/// Appends one command in RESP to `buf`.
pub(crate) fn encode_command<A: AsRef<[u8]>>(buf: &mut Vec<u8>, args: &[A]) {
    buf.push(b'*');
    push_decimal(buf, args.len() as u64);
    buf.extend_from_slice(b"\r\n");
    for a in args {
        let a = a.as_ref();
        buf.push(b'$');
        push_decimal(buf, a.len() as u64);
        buf.extend_from_slice(b"\r\n");
        buf.extend_from_slice(a);
        buf.extend_from_slice(b"\r\n");
    }
}

/// Appends the decimal form of `n`.
pub(crate) fn push_decimal(buf: &mut Vec<u8>, mut n: u64) {
    // u64::MAX has 20 digits; the digits are produced last first.
    let mut tmp = [0u8; 20];
    let mut used = 0usize;
    for slot in tmp.iter_mut().rev() {
        *slot = b'0'.saturating_add((n % 10) as u8);
        n /= 10;
        used = used.saturating_add(1);
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(
        tmp.get(tmp.len().saturating_sub(used)..)
            .unwrap_or_default(),
    );
}

/// Maps an error reply to the error a user can act on.
pub(crate) fn server_error(command: &str, message: &str) -> RedisError {
    let upper = message.to_ascii_uppercase();
    if upper.starts_with("NOPERM") {
        RedisError::Refused {
            operation: command.to_string(),
            message: format!("{message} (grant the ACL user this command)"),
        }
    } else if upper.starts_with("NOAUTH") {
        RedisError::Auth {
            message: format!("{message} (give a password in the URL or REDIS_URL)"),
        }
    } else if upper.starts_with("WRONGPASS") || upper.contains("INVALID PASSWORD") {
        RedisError::Auth {
            message: message.to_string(),
        }
    } else {
        RedisError::Command {
            command: command.to_string(),
            message: message.to_string(),
        }
    }
}

/// An open, authenticated connection to one server.
pub struct RedisConnection {
    reader: ConnReader,
    writer: ConnWriter,
    addr: String,
    timeout: Duration,
    wbuf: Vec<u8>,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection")
            .field("addr", &self.addr)
            .finish()
    }
}

fn tls_config(cfg: &RedisConfig) -> Result<rustls::ClientConfig, RedisError> {
    let addr = cfg.addr();
    let tls_err = |message: String| RedisError::Tls {
        addr: addr.clone(),
        message,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?;
    if cfg.tls_insecure {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = &cfg.tls_ca_file {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| tls_err(format!("cannot read CA file {}: {e}", path.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| tls_err(format!("bad CA file {}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| tls_err(format!("bad CA certificate in {}: {e}", path.display())))?;
        }
    }
    if roots.is_empty() {
        return Err(tls_err(
            "no trusted CA certificates (give tls_ca_file or install system roots)".into(),
        ));
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Certificate verifier for `#insecure`: checks signatures, trusts any certificate.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl RedisConnection {
    /// Connects (TCP, then TLS for `rediss://`) and authenticates. Does not `SELECT`.
    pub async fn connect(cfg: &RedisConfig) -> Result<Self, RedisError> {
        cfg.validate()?;
        let addr = cfg.addr();
        let timeout = cfg.timeout();
        let tcp = tokio::time::timeout(timeout, TcpStream::connect((cfg.host.as_str(), cfg.port)))
            .await
            .map_err(|_| RedisError::Connect {
                addr: addr.clone(),
                source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
            })?
            .map_err(|source| RedisError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn IoStream> = if cfg.tls {
            let config = tls_config(cfg)?;
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let name = rustls_pki_types::ServerName::try_from(cfg.host.clone()).map_err(|e| {
                RedisError::Tls {
                    addr: addr.clone(),
                    message: format!("invalid server name: {e}"),
                }
            })?;
            let tls = tokio::time::timeout(timeout, connector.connect(name, tcp))
                .await
                .map_err(|_| RedisError::Tls {
                    addr: addr.clone(),
                    message: "handshake timed out".into(),
                })?
                .map_err(|e| RedisError::Tls {
                    addr: addr.clone(),
                    message: format!("handshake failed: {e}"),
                })?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let (r, w) = tokio::io::split(stream);
        let mut conn = RedisConnection {
            reader: BufReader::with_capacity(256 * 1024, r),
            writer: w,
            addr,
            timeout,
            wbuf: Vec::new(),
        };
        if let Some(pw) = &cfg.password {
            let reply = match &cfg.username {
                Some(user) => {
                    conn.command(&[b"AUTH".as_slice(), user.as_bytes(), pw.expose().as_bytes()])
                        .await?
                }
                None => {
                    conn.command(&[b"AUTH".as_slice(), pw.expose().as_bytes()])
                        .await?
                }
            };
            if let Reply::Error(e) = reply {
                return Err(RedisError::Auth {
                    message: format!("{e} (check the user and password)"),
                });
            }
        }
        Ok(conn)
    }

    /// `host:port` of the server.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one command and reads its reply; an error reply is returned as
    /// [`Reply::Error`].
    pub async fn command<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Reply, RedisError> {
        let name = command_name(args);
        self.wbuf.clear();
        encode_command(&mut self.wbuf, args);
        let op = name;
        write_all(&mut self.writer, &self.wbuf, self.timeout, &op).await?;
        read_reply(&mut self.reader, self.timeout, &op).await
    }

    /// Sends one command; an error reply becomes an `Err` naming the command.
    pub async fn query<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Reply, RedisError> {
        let name = command_name(args);
        match self.command(args).await? {
            Reply::Error(e) => Err(server_error(&name, &e)),
            other => Ok(other),
        }
    }

    /// Sends many commands at once and reads their replies in order (error replies
    /// stay [`Reply::Error`]).
    pub async fn pipeline<C: AsRef<[A]>, A: AsRef<[u8]>>(
        &mut self,
        commands: &[C],
    ) -> Result<Vec<Reply>, RedisError> {
        self.wbuf.clear();
        for c in commands {
            encode_command(&mut self.wbuf, c.as_ref());
        }
        let buf = std::mem::take(&mut self.wbuf);
        let written = async {
            write_all(&mut self.writer, &buf, self.timeout, "pipeline").await?;
            let mut out = Vec::with_capacity(commands.len());
            for _ in commands {
                out.push(read_reply(&mut self.reader, self.timeout, "pipeline").await?);
            }
            Ok::<_, RedisError>(out)
        };
        let result = written.await;
        self.wbuf = buf;
        result
    }

    /// `INFO <section>` as `name → value` pairs.
    pub async fn info(
        &mut self,
        section: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, RedisError> {
        let text = self
            .query(&[b"INFO".as_slice(), section.as_bytes()])
            .await?
            .as_text()
            .unwrap_or_default();
        Ok(parse_info(&text))
    }

    /// Sends raw bytes (already RESP encoded).
    pub(crate) async fn send_raw(&mut self, bytes: &[u8], op: &str) -> Result<(), RedisError> {
        write_all(&mut self.writer, bytes, self.timeout, op).await
    }

    /// Reads one line without its `\r\n`, with the inactivity timeout.
    pub(crate) async fn read_line(&mut self, op: &str) -> Result<Vec<u8>, RedisError> {
        read_line(&mut self.reader, self.timeout, op).await
    }

    /// The buffered reader (for the snapshot that follows `PSYNC`).
    pub(crate) fn reader(&mut self) -> &mut ConnReader {
        &mut self.reader
    }

    /// The inactivity timeout.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Splits into the reading and the writing half (for pipelining).
    pub(crate) fn into_parts(self) -> (ConnReader, ConnWriter, String, Duration) {
        (self.reader, self.writer, self.addr, self.timeout)
    }
}

/// Parses `INFO` text into `name → value`.
pub(crate) fn parse_info(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn command_name<A: AsRef<[u8]>>(args: &[A]) -> String {
    let mut name = args
        .first()
        .map(|a| String::from_utf8_lossy(a.as_ref()).to_ascii_uppercase())
        .unwrap_or_default();
    // Two-word commands (CONFIG GET, FUNCTION RESTORE) read better with their sub-command.
    if matches!(
        name.as_str(),
        "CONFIG" | "FUNCTION" | "CLIENT" | "REPLCONF" | "ACL" | "MODULE"
    ) {
        if let Some(sub) = args.get(1) {
            name.push(' ');
            name.push_str(&String::from_utf8_lossy(sub.as_ref()).to_ascii_uppercase());
        }
    }
    name
}

pub(crate) async fn write_all(
    w: &mut ConnWriter,
    bytes: &[u8],
    timeout: Duration,
    op: &str,
) -> Result<(), RedisError> {
    let lost = |message: String| RedisError::ConnectionLost {
        operation: op.to_string(),
        message,
    };
    tokio::time::timeout(timeout, async {
        w.write_all(bytes).await?;
        w.flush().await
    })
    .await
    .map_err(|_| lost(format!("no progress writing for {}s", timeout.as_secs())))?
    .map_err(|e| lost(e.to_string()))
}

pub(crate) async fn read_line(
    r: &mut ConnReader,
    timeout: Duration,
    op: &str,
) -> Result<Vec<u8>, RedisError> {
    let lost = |message: String| RedisError::ConnectionLost {
        operation: op.to_string(),
        message,
    };
    let mut line = Vec::new();
    // A line longer than MAX_LINE is not a reply header: stop reading at the cap.
    let mut limited = (&mut *r).take((MAX_LINE as u64).saturating_add(1));
    let n = tokio::time::timeout(timeout, limited.read_until(b'\n', &mut line))
        .await
        .map_err(|_| {
            lost(format!(
                "the server sent nothing for {}s",
                timeout.as_secs()
            ))
        })?
        .map_err(|e| lost(e.to_string()))?;
    if line.len() > MAX_LINE && line.last() != Some(&b'\n') {
        return Err(RedisError::Protocol {
            operation: op.to_string(),
            message: format!("a reply line is longer than {MAX_LINE} bytes (limit)"),
        });
    }
    if n == 0 || line.last() != Some(&b'\n') {
        return Err(lost("the server closed the connection".into()));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

/// Reads replies from `bytes` as if a server had sent them, until the end or the first
/// error; returns how many were read. For the fuzz target and its corpus replay
/// (`fuzz/targets.rs`), which feed it arbitrary bytes.
#[doc(hidden)]
pub async fn parse_replies(bytes: Vec<u8>) -> usize {
    let stream: Box<dyn IoStream> = Box::new(std::io::Cursor::new(bytes));
    let (read, _write) = tokio::io::split(stream);
    let mut reader: ConnReader = BufReader::new(read);
    let mut n = 0usize;
    while read_reply(&mut reader, Duration::from_secs(5), "fuzz")
        .await
        .is_ok()
    {
        n = n.saturating_add(1);
    }
    n
}

/// The longest reply line (a status, an error, a length header) accepted: 64 KiB.
pub(crate) const MAX_LINE: usize = 64 * 1024;
/// The largest bulk string accepted: 512 MiB, Redis's own `proto-max-bulk-len` default.
pub(crate) const MAX_BULK: usize = 512 * 1024 * 1024;
/// The most elements an array reply may claim (dbseal reads INFO, SCAN pages of at most
/// thousands of keys, pipelined replies).
pub(crate) const MAX_ARRAY: usize = 1 << 24;
/// How deep arrays may nest.
pub(crate) const MAX_DEPTH: usize = 32;
/// What is allocated up front for a reply, whatever length it claims.
const PREALLOCATE: usize = 64 * 1024;

/// Reads one reply (arrays nest). Lengths from the server are checked against
/// [`MAX_BULK`], [`MAX_ARRAY`] and [`MAX_DEPTH`] before anything is allocated; a reply
/// over a limit is a protocol error naming the limit.
pub(crate) async fn read_reply(
    r: &mut ConnReader,
    timeout: Duration,
    op: &str,
) -> Result<Reply, RedisError> {
    // Iterative: a stack of (remaining, items) for open arrays.
    let mut stack: Vec<(usize, Vec<Reply>)> = Vec::new();
    loop {
        let line = read_line(r, timeout, op).await?;
        let proto = |m: &str| RedisError::Protocol {
            operation: op.to_string(),
            message: m.to_string(),
        };
        let (tag, rest) = line
            .split_first()
            .ok_or_else(|| proto("empty reply line"))?;
        let text = String::from_utf8_lossy(rest).into_owned();
        let mut reply = match tag {
            b'+' => Reply::Status(text),
            b'-' => Reply::Error(text),
            b':' => Reply::Int(
                text.parse()
                    .map_err(|_| proto(&format!("bad integer reply `{text}`")))?,
            ),
            b'$' => {
                let n: i64 = text
                    .parse()
                    .map_err(|_| proto(&format!("bad bulk length `{text}`")))?;
                if n < 0 {
                    Reply::Bulk(None)
                } else {
                    let len = usize::try_from(n)
                        .ok()
                        .filter(|&len| len <= MAX_BULK)
                        .ok_or_else(|| {
                            proto(&format!(
                                "bulk length {n} is over the {MAX_BULK}-byte limit (Redis's proto-max-bulk-len)"
                            ))
                        })?;
                    // Grown as the bytes arrive, never allocated up front from the
                    // length the server claims.
                    let mut buf = Vec::with_capacity(len.min(PREALLOCATE));
                    let want = (len as u64).saturating_add(2);
                    let read =
                        tokio::time::timeout(timeout, (&mut *r).take(want).read_to_end(&mut buf))
                            .await
                            .map_err(|_| RedisError::ConnectionLost {
                                operation: op.to_string(),
                                message: format!(
                                    "the server sent nothing for {}s",
                                    timeout.as_secs()
                                ),
                            })?
                            .map_err(|e| RedisError::ConnectionLost {
                                operation: op.to_string(),
                                message: e.to_string(),
                            })?;
                    if read as u64 != want {
                        return Err(RedisError::ConnectionLost {
                            operation: op.to_string(),
                            message: format!(
                                "the server closed the connection after {read} of {want} bytes"
                            ),
                        });
                    }
                    buf.truncate(len);
                    Reply::Bulk(Some(buf))
                }
            }
            b'*' => {
                let n: i64 = text
                    .parse()
                    .map_err(|_| proto(&format!("bad array length `{text}`")))?;
                if n < 0 {
                    Reply::Array(None)
                } else if n == 0 {
                    Reply::Array(Some(Vec::new()))
                } else {
                    let count = usize::try_from(n)
                        .ok()
                        .filter(|&c| c <= MAX_ARRAY)
                        .ok_or_else(|| {
                            proto(&format!(
                                "array length {n} is over the {MAX_ARRAY}-element limit"
                            ))
                        })?;
                    if stack.len() >= MAX_DEPTH {
                        return Err(proto(&format!(
                            "arrays nested deeper than {MAX_DEPTH} levels (limit)"
                        )));
                    }
                    stack.push((count, Vec::with_capacity(count.min(PREALLOCATE / 64))));
                    continue;
                }
            }
            other => return Err(proto(&format!("unexpected reply type byte 0x{other:02x}"))),
        };
        // Attach to open arrays, closing those that are complete.
        loop {
            match stack.last_mut() {
                None => return Ok(reply),
                Some((remaining, items)) => {
                    items.push(reply);
                    *remaining = remaining.saturating_sub(1);
                    if *remaining > 0 {
                        break;
                    }
                    // `last_mut` just returned this entry.
                    let Some((_, items)) = stack.pop() else {
                        return Err(RedisError::Protocol {
                            operation: op.to_string(),
                            message: "internal: array nesting lost".into(),
                        });
                    };
                    reply = Reply::Array(Some(items));
                }
            }
        }
    }
}
