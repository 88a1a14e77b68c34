//! Subjects: where an event is published, and the filters consumers choose events by.
//!
//! A subject is dot-separated tokens, NATS style: `{prefix}.{family}.{action}.{site}.{key}`,
//! e.g. `factorybrain.alerts.opened.plant-a.press-01`. The prefix belongs to the deployment
//! (`bus.subject_prefix`), so that several can share one NATS server; the rest is the event's
//! own [`Envelope::subject`](super::Envelope::subject), relative to the prefix. Filters are
//! written relative to the prefix too: `alerts.>` (every alert event), `*.*.plant-a.>`
//! (everything about site plant-a), `alerts.opened.*.press-01`.
//!
//! Sites and machine ids are free text (a site may hold spaces, dots, any letter), so each
//! becomes one token through [`token`]: ASCII letters, digits, `-` and `_` stay as they are;
//! every other byte of its UTF-8 is written `~XX` (upper-case hex). The encoding is one-to-one,
//! so a subject names exactly one site and machine, and a filter can name them exactly. An
//! event about no site (an alert of a machine deleted before it was published) has the site
//! token [`NO_SITE`] (`~`, which no encoded name can be).

use crate::error::FieldError;

/// The site token of an event that belongs to no known site.
pub const NO_SITE: &str = "~";
/// The key token of an event that is not about one thing of its kind (an order for stock).
pub const NO_KEY: &str = "~";

/// Longest prefix, in bytes.
pub const PREFIX_MAX: usize = 64;

/// One subject token for a free-text name (see the module docs).
pub fn token(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push('~');
            out.push(hex(b >> 4));
            out.push(hex(b & 0x0f));
        }
    }
    out
}

/// The name a [`token`] encodes; `None` for a token that no name encodes to.
pub fn untoken(token: &str) -> Option<String> {
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'~' {
            let hi = unhex(*bytes.get(i + 1)?)?;
            let lo = unhex(*bytes.get(i + 2)?)?;
            let decoded = (hi << 4) | lo;
            // An escaped byte that needed no escape would give a second spelling of a name.
            if decoded.is_ascii_alphanumeric() || decoded == b'-' || decoded == b'_' {
                return None;
            }
            out.push(decoded);
            i += 3;
        } else if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    if out.is_empty() {
        return None;
    }
    String::from_utf8(out).ok()
}

fn hex(n: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(n & 0x0f)])
}

fn unhex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A plain token: what prefixes, families and actions are made of.
fn plain(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A token of a subject or filter: plain or encoded, `~`, or (in filters) a wildcard.
fn subject_token(token: &str) -> bool {
    token == NO_SITE || plain(token) || untoken(token).is_some()
}

/// The deployment's part of every subject: one or more plain tokens (ASCII letters, digits,
/// `-`, `_`) joined by dots, at most 64 bytes, e.g. `factorybrain` or `plant-a.fb`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubjectPrefix(String);

impl SubjectPrefix {
    /// Checks a prefix, reporting a problem under `field`.
    pub fn parse(field: &str, prefix: &str) -> Result<Self, FieldError> {
        if prefix.is_empty() || prefix.len() > PREFIX_MAX {
            return Err(FieldError::new(
                field,
                format!("must be 1 to {PREFIX_MAX} bytes"),
            ));
        }
        if !prefix.split('.').all(plain) {
            return Err(FieldError::new(
                field,
                "must be tokens of ASCII letters, digits, '-' and '_' joined by single dots \
                 (no wildcards, spaces or empty tokens)",
            ));
        }
        Ok(Self(prefix.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The full subject of a relative one.
    pub fn join(&self, relative: &str) -> String {
        format!("{}.{relative}", self.0)
    }

    /// The subject relative to this prefix, if it lies under it.
    pub fn strip<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject
            .strip_prefix(self.0.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
    }

    /// Every subject under the prefix (what a NATS stream of this deployment listens to).
    pub fn all(&self) -> String {
        format!("{}.>", self.0)
    }
}

impl std::fmt::Display for SubjectPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which events a consumer receives: a subject relative to the prefix, in which `*` stands for
/// any one token and a final `>` for one or more tokens (NATS' wildcards).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubjectFilter(String);

impl SubjectFilter {
    /// Every event.
    pub fn all() -> Self {
        Self(">".to_owned())
    }

    /// Checks a filter, reporting a problem under `field`.
    pub fn parse(field: &str, filter: &str) -> Result<Self, FieldError> {
        let tokens: Vec<&str> = filter.split('.').collect();
        let last = tokens.len() - 1;
        for (i, t) in tokens.iter().enumerate() {
            let ok = match *t {
                "*" => true,
                ">" => i == last,
                t => subject_token(t),
            };
            if !ok {
                return Err(FieldError::new(
                    field,
                    format!(
                        "token {} ('{t}') is not a subject token: ASCII letters, digits, '-', \
                         '_' or ~XX escapes, '*' for any one token, '>' last for the rest",
                        i + 1
                    ),
                ));
            }
        }
        Ok(Self(filter.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a relative subject passes the filter.
    pub fn matches(&self, subject: &str) -> bool {
        let mut subject = subject.split('.');
        for want in self.0.split('.') {
            match (want, subject.next()) {
                (">", Some(_)) => return true,
                (_, None) => return false,
                ("*", Some(_)) => {}
                (want, Some(got)) if want == got => {}
                _ => return false,
            }
        }
        subject.next().is_none()
    }
}

impl std::fmt::Display for SubjectFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_plain_names_and_escape_the_rest_one_to_one() {
        assert_eq!(token("press-01"), "press-01");
        assert_eq!(token("CNC-01.a_b"), "CNC-01~2Ea_b");
        assert_eq!(token("Werk Süd"), "Werk~20S~C3~BCd");
        assert_eq!(token("a>b*c~"), "a~3Eb~2Ac~7E");
        for name in ["press-01", "CNC-01.a_b", "Werk Süd", "a>b*c~", "~", "東京"] {
            let t = token(name);
            assert!(subject_token(&t), "{t}");
            assert!(!t.contains(['.', '*', '>', ' ']), "{t}");
            assert_eq!(untoken(&t).as_deref(), Some(name));
        }
        // Another spelling of the same name, or something no name encodes to, is refused.
        for bad in ["~61", "~2e", "~2", "a b", "", "~"] {
            assert_eq!(untoken(bad), None, "{bad}");
        }
    }

    #[test]
    fn prefixes_are_plain_tokens() {
        assert!(SubjectPrefix::parse("p", "factorybrain").is_ok());
        assert!(SubjectPrefix::parse("p", "plant-a.fb_2").is_ok());
        for bad in ["", "a..b", ".a", "a.", "a.*", "a.>", "a b", &"x".repeat(65)] {
            let e = SubjectPrefix::parse("bus.subject_prefix", bad).unwrap_err();
            assert_eq!(e.field, "bus.subject_prefix", "{bad}");
        }
        let p = SubjectPrefix::parse("p", "fb.t1").unwrap();
        assert_eq!(p.join("alerts.opened.a.b"), "fb.t1.alerts.opened.a.b");
        assert_eq!(
            p.strip("fb.t1.alerts.opened.a.b"),
            Some("alerts.opened.a.b")
        );
        assert_eq!(p.strip("fb.t10.alerts"), None);
        assert_eq!(p.all(), "fb.t1.>");
    }

    #[test]
    fn filters_match_like_nats() {
        let f = |s: &str| SubjectFilter::parse("filter", s).unwrap();
        let s = "alerts.opened.plant-a.press-01";
        assert!(f(">").matches(s));
        assert!(f("alerts.>").matches(s));
        assert!(f("*.*.plant-a.>").matches(s));
        assert!(f("alerts.opened.*.press-01").matches(s));
        assert!(f(s).matches(s));
        assert!(!f("alerts.opened.*").matches(s));
        assert!(!f("alerts.opened.plant-a.press-01.x").matches(s));
        assert!(!f("anomalies.>").matches(s));
        assert!(!f("alerts.opened.plant-a.press-01.>").matches(s));
        for bad in ["", "a..b", "a.>.b", "a b", "a.b*", "a.~zz"] {
            assert!(SubjectFilter::parse("filter", bad).is_err(), "{bad}");
        }
    }
}
