#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
//! `${VAR}` expansion of a configuration file, and the refusal of secrets written
//! inline.

use crate::error::{Error, Result};
use crate::secret::{is_secret_name, percent_decode, SecretString};

/// Whether a URL's user-info holds a password written literally (`${…}` does not count).
pub(super) fn inline_url_password(raw: &str) -> bool {
    let Some((_, rest)) = raw.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return false;
    };
    match userinfo.split_once(':') {
        Some((_, pw)) => !pw.is_empty() && !pw.contains("${"),
        None => false,
    }
}

/// The (decoded) password of a URL, if it has one.
pub(super) fn url_password(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    parsed.password().map(percent_decode)
}

/// Walks a parsed file, expanding `${VAR}` and `$$` in every string, refusing inline
/// secrets, and collecting every secret value seen (for scrubbing output).
pub(super) struct Expander<'a> {
    /// Looks up an environment variable.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The file, for error messages.
    pub origin: String,
    /// Secret values seen.
    pub secrets: Vec<SecretString>,
}

impl Expander<'_> {
    /// Expands `v` (at `path`, under key `key`) in place.
    pub fn value(&mut self, path: &str, key: &str, v: &mut toml::Value) -> Result<()> {
        match v {
            toml::Value::String(s) => {
                let raw = s.clone();
                let (expanded, secret_vars) = self.expand(path, &raw)?;
                let key_is_secret = is_secret_name(key);
                if key_is_secret && !raw.is_empty() && !raw.contains("${") {
                    return Err(Error::Config(format!(
                        "{}: `{path}` holds a secret written inline: use \"${{VARIABLE}}\" (an environment variable) or a *_file reference instead",
                        self.origin
                    )));
                }
                let url_like = key == "url" || key.ends_with("_url") || key.ends_with("-url");
                if url_like && inline_url_password(&raw) {
                    return Err(Error::Config(format!(
                        "{}: `{path}` contains a password written inline: put it in an environment variable (\"…:${{DB_PASSWORD}}@…\") or in password_file",
                        self.origin
                    )));
                }
                if key_is_secret || secret_vars {
                    self.secrets.push(SecretString::new(expanded.clone()));
                }
                if let Some(pw) = url_password(&expanded) {
                    self.secrets.push(SecretString::new(pw));
                }
                *s = expanded;
            }
            toml::Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.value(&format!("{path}[{i}]"), key, item)?;
                }
            }
            toml::Value::Table(t) => {
                for (k, item) in t.iter_mut() {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    self.value(&p, k, item)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Expands `${VAR}` and `$$`; reports whether a secret-looking variable was used.
    fn expand(&mut self, path: &str, raw: &str) -> Result<(String, bool)> {
        let mut out = String::with_capacity(raw.len());
        let mut secret = false;
        let mut rest = raw;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos.saturating_add(1)..];
            if let Some(stripped) = after.strip_prefix('$') {
                out.push('$');
                rest = stripped;
            } else if let Some(body) = after.strip_prefix('{') {
                let end = body.find('}').ok_or_else(|| {
                    Error::Config(format!(
                        "{}: `{path}`: `${{` without a closing `}}` (write `$$` for a literal `$`)",
                        self.origin
                    ))
                })?;
                let name = &body[..end];
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(Error::Config(format!(
                        "{}: `{path}`: `${{{name}}}` is not an environment variable name",
                        self.origin
                    )));
                }
                let value = (self.env)(name).ok_or_else(|| {
                    Error::Config(format!(
                        "{}: `{path}`: environment variable `{name}` is not set",
                        self.origin
                    ))
                })?;
                if is_secret_variable(name) {
                    secret = true;
                    self.secrets.push(SecretString::new(value.clone()));
                }
                out.push_str(&value);
                rest = &body[end.saturating_add(1)..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        Ok((out, secret))
    }
}

/// Whether an environment variable's value is scrubbed from output: its name contains
/// a word of the one secret-name list ([`crate::secret::SECRET_NAME_PARTS`]), with no
/// exception (an access key id, a secrets directory: scrubbing more is harmless).
fn is_secret_variable(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    is_secret_name(&n)
        || crate::secret::SECRET_NAME_PARTS
            .iter()
            .any(|p| n.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_passwords_are_found() {
        assert!(inline_url_password("postgres://u:hunter2@h/db"));
        assert!(!inline_url_password("postgres://u:${PW}@h/db"));
        assert!(!inline_url_password("postgres://u@h/db"));
        assert!(!inline_url_password("not a url"));
        assert_eq!(
            url_password("redis://:p%40ss@h:1/0").as_deref(),
            Some("p@ss")
        );
    }

    #[test]
    fn secret_variables() {
        for n in [
            "S3_SECRET",
            "APP_DB_PASSWORD",
            "AZ_KEY",
            "REDIS_AUTH",
            "PG_PASS",
        ] {
            assert!(is_secret_variable(n), "{n}");
        }
        for n in ["HOME", "DB_HOST", "STORE_URL"] {
            assert!(!is_secret_variable(n), "{n}");
        }
    }
}
