//! Secrets that never print.
//!
//! [`SecretString`] holds a password, passphrase, identity or DSN with credentials. It
//! has no `Display`, and its `Debug` prints `**REDACTED**`; the value is reachable only
//! through [`SecretString::expose`], which is greppable. [`redact_url`] removes the
//! password from a URL before it goes into a manifest, a log line or an error.

use zeroize::Zeroizing;

/// A string that is a secret: redacted in `Debug`, zeroed on drop.
#[derive(Clone, Default)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(Zeroizing::new(value.into()))
    }

    /// The secret itself. Only for handing it to the component that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a secret from a file, dropping one trailing newline.
    pub fn from_file(path: &std::path::Path) -> std::io::Result<Self> {
        let mut s = std::fs::read_to_string(path)?;
        if s.ends_with('\n') {
            s.pop();
            if s.ends_with('\r') {
                s.pop();
            }
        }
        Ok(SecretString::new(s))
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("**REDACTED**")
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        SecretString::new(s)
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        SecretString::new(s)
    }
}

/// What a secret is replaced with in output.
pub const REDACTED: &str = "**REDACTED**";

/// Words that make an option, setting or query-parameter name a secret (compared
/// case-insensitively, as substrings). The one list dbseal uses: `Debug` output,
/// `config check`, error messages, the Python `repr`s and [`redact_url`].
pub const SECRET_NAME_PARTS: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "secret",
    "token",
    "passphrase",
    "credential",
    "private",
    "key",
    "auth",
];

/// Whether a setting or option named `name` holds a secret (`aws_secret_access_key`,
/// `azure_storage_account_key`, `sslpassword`, `PGPASSWORD`…). Names of files that
/// hold a secret (`password_file`, `passfile`) and of public keys are not secrets
/// themselves.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    if n.ends_with("_file") || n.ends_with("-file") || n == "passfile" || n.ends_with("_path") {
        return false;
    }
    // Public or non-secret names that merely contain a secret word.
    const PUBLIC: &[&str] = &[
        "public_key",
        "access_key_id",
        "key_id",
        "keepalive",
        "key_match",
        "skip_signature",
        "passive",
        "key_expir",
    ];
    if PUBLIC.iter().any(|p| n.replace('-', "_").contains(p)) {
        return false;
    }
    SECRET_NAME_PARTS.iter().any(|s| n.contains(s))
}

/// Decodes `%XX` escapes (as in a URL's user-info); invalid escapes are kept as written.
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Encodes a string for a URL's user-info (user name or password).
pub fn percent_encode_userinfo(s: &str) -> String {
    const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, USERINFO).to_string()
}

/// `url` with `user` and `password` put into its user-info (percent-encoded), so they
/// travel with the URL in memory and never in a process's arguments. The error says
/// what is wrong and never repeats the URL (it may hold a password already).
pub fn url_with_credentials(
    url: &str,
    user: Option<&str>,
    password: Option<&str>,
) -> std::result::Result<String, &'static str> {
    let mut parsed = url::Url::parse(url)
        .map_err(|_| "a user or password needs a URL such as scheme://host:port/…")?;
    if let Some(u) = user {
        parsed
            .set_username(&percent_encode_userinfo(u))
            .map_err(|_| "this URL cannot hold a user name")?;
    }
    if let Some(p) = password {
        parsed
            .set_password(Some(&percent_encode_userinfo(p)))
            .map_err(|_| "this URL cannot hold a password")?;
    }
    Ok(parsed.to_string())
}

/// The secret values one call was given (passwords, passphrases, URLs' passwords,
/// values of secret-named options), scrubbed from every message it shows.
#[derive(Default, Clone)]
pub struct Secrets(Vec<SecretString>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} redacted)", self.0.len())
    }
}

impl Secrets {
    /// Adds a secret value (empty values are ignored).
    pub fn add(&mut self, secret: &str) {
        if !secret.is_empty() && !self.0.iter().any(|s| s.expose() == secret) {
            self.0.push(SecretString::new(secret));
        }
    }

    /// Adds the password of a URL, raw and percent-decoded, and the values of query
    /// parameters whose name is a secret; for a string that does not parse, whatever
    /// stands between `://` and `@` (it may be a password).
    pub fn add_url(&mut self, url: &str) {
        let Ok(u) = url::Url::parse(url) else {
            if let Some(info) = url.split_once("://").and_then(|(_, r)| r.rsplit_once('@')) {
                self.add(info.0.split_once(':').map_or(info.0, |(_, p)| p));
            }
            return;
        };
        if let Some(p) = u.password() {
            self.add(p);
            self.add(&percent_decode(p));
        }
        for (k, v) in u.query_pairs() {
            if is_secret_name(&k) {
                self.add(&v);
            }
        }
    }

    /// Adds `value` when `name` names a secret (options, environment variables), and
    /// the password of any URL it is.
    pub fn add_named(&mut self, name: &str, value: &str) {
        if is_secret_name(name) {
            self.add(value);
            self.add_url(value);
        } else if value.contains("://") {
            self.add_url(value);
        }
    }

    /// `text` with every secret replaced by `**REDACTED**`.
    pub fn scrub(&self, text: &str) -> String {
        scrub(text, &self.0)
    }
}

/// `text` with each of `secrets` replaced by `**REDACTED**`, longest first (so a secret
/// containing another is replaced whole).
pub fn scrub(text: &str, secrets: &[SecretString]) -> String {
    let mut secrets: Vec<&str> = secrets
        .iter()
        .map(SecretString::expose)
        .filter(|s| !s.is_empty())
        .collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
        .into_iter()
        .fold(text.to_string(), |out, s| out.replace(s, REDACTED))
}

/// Removes quoted values from a (serde) error message, which may quote a value that was
/// a secret: `invalid type: string "hunter2", expected u16` becomes
/// `invalid type: string "…", expected u16`. Field names in backquotes stay.
pub fn scrub_serde_error(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_quote = false;
    for c in message.chars() {
        if c == '"' {
            if in_quote {
                out.push('…');
            }
            in_quote = !in_quote;
            out.push(c);
        } else if !in_quote {
            out.push(c);
        }
    }
    out
}

/// Returns `url` with its password (and any query parameter whose name is a secret, see
/// [`is_secret_name`]) replaced by `**REDACTED**`. A string that does not parse as a URL
/// but looks like one (`scheme://user:pass@…`) loses everything between `://` and `@`;
/// other strings are returned unchanged.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return redact_unparsed(url);
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(REDACTED));
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                if is_secret_name(&k) {
                    (k.into_owned(), REDACTED.to_string())
                } else {
                    (k.into_owned(), v.into_owned())
                }
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// Redaction of a URL-like string that `url` cannot parse: the user-info goes.
fn redact_unparsed(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return s.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{REDACTED}@{}", &rest[at + 1..]),
        None => s.to_string(),
    }
}

/// Variables every child process may inherit: where programs are, who and where it
/// runs, locale and time zone.
const CHILD_BASE_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
];

/// Builds a database tool's environment from an allow-list: the basics
/// ([`CHILD_BASE_ENV`], `LC_*`) and the variables starting with one of `prefixes`
/// (`PG` for libpq's) whose names do not say they hold a secret. Nothing else of
/// dbseal's environment (store credentials, `DBSEAL_*`, other services' passwords)
/// reaches it; the caller then sets the secrets the tool needs explicitly.
pub fn restrict_env(cmd: &mut tokio::process::Command, prefixes: &[&str]) {
    cmd.env_clear();
    for (k, v) in std::env::vars_os() {
        let Some(name) = k.to_str() else { continue };
        let allowed = CHILD_BASE_ENV.contains(&name)
            || name.starts_with("LC_")
            || (prefixes.iter().any(|p| name.starts_with(p)) && !is_secret_name(name));
        if allowed {
            cmd.env(&k, &v);
        }
    }
}

/// For a user's own command (`backup command`): its environment minus dbseal's own
/// settings and the stores' credentials (`DBSEAL_*`, `AWS_*`, `GOOGLE_*`, `AZURE_*`).
pub fn without_own_env(cmd: &mut tokio::process::Command) {
    for (k, _) in std::env::vars_os() {
        let Some(name) = k.to_str() else { continue };
        if ["DBSEAL_", "AWS_", "GOOGLE_", "AZURE_"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            cmd.env_remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_into_the_url_percent_encoded() {
        let u = url_with_credentials("postgres://db:5432/app", Some("al ice"), Some("p@ss:w/rd"));
        assert_eq!(
            u.as_deref(),
            Ok("postgres://al%20ice:p%40ss%3Aw%2Frd@db:5432/app")
        );
        assert!(url_with_credentials("not a url", None, Some("x")).is_err());
        assert!(url_with_credentials("unix:/tmp/sock", Some("u"), None).is_err());
    }

    #[test]
    fn secrets_scrub_passwords_decoded_query_values_and_longest_first() {
        let mut s = Secrets::default();
        s.add_url("postgres://u:p%40ss@h/db?sslpassword=k3y&application_name=app");
        s.add_named("PGPASSWORD", "pw");
        s.add_named("host", "h1");
        s.add("pwlong");
        let out = s.scrub("p%40ss p@ss k3y pwlong pw app h1");
        assert_eq!(
            out,
            "**REDACTED** **REDACTED** **REDACTED** **REDACTED** **REDACTED** app h1"
        );
        assert_eq!(format!("{s:?}"), "Secrets(5 redacted)");
        let mut unparsed = Secrets::default();
        unparsed.add_url("redis://:hunter2@[bad");
        assert!(!unparsed.scrub("x hunter2").contains("hunter2"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = SecretString::new("hunter2");
        assert_eq!(format!("{s:?}"), "**REDACTED**");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn urls_lose_their_password() {
        let r = redact_url("postgres://alice:hunter2@db:5432/app?sslmode=require&password=x1");
        assert!(!r.contains("hunter2"), "{r}");
        assert!(!r.contains("x1"), "{r}");
        assert!(
            r.contains("alice@") || r.contains("alice:**REDACTED**@"),
            "{r}"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
    }

    #[test]
    fn unparseable_urls_lose_their_userinfo() {
        let r = redact_url("postgres://al ice:hun ter2@db:99999/app");
        assert!(!r.contains("hun ter2"), "{r}");
        assert!(r.contains("db:99999/app"), "{r}");
    }

    #[test]
    fn one_list_of_secret_names() {
        for n in [
            "aws_secret_access_key",
            "azure_storage_account_key",
            "sslpassword",
            "PGPASSWORD",
            "token",
            "google_service_account_key",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in [
            "password_file",
            "passfile",
            "aws_access_key_id",
            "url",
            "pg-bin-dir",
            "aws_endpoint",
        ] {
            assert!(!is_secret_name(n), "{n}");
        }
    }

    #[test]
    fn serde_errors_lose_quoted_values() {
        assert_eq!(
            scrub_serde_error("invalid type: string \"hunter2\", expected u16 at `port`"),
            "invalid type: string \"…\", expected u16 at `port`"
        );
    }
}
