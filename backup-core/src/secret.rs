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

/// Returns `url` with its password (and any `password=`/`secret` query parameters)
/// replaced by `**REDACTED**`. Strings that are not URLs are returned unchanged.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_string();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("**REDACTED**"));
    }
    let secret_params = ["password", "pass", "secret", "token", "key", "sslpassword"];
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let lower = k.to_ascii_lowercase();
                if secret_params.iter().any(|s| lower.contains(s)) {
                    (k.into_owned(), "**REDACTED**".to_string())
                } else {
                    (k.into_owned(), v.into_owned())
                }
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
