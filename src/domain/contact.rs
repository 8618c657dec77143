//! Names and e-mail addresses of programs and partners.

/// A display name: 1 to 200 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Name(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("must be 1 to 200 characters without control characters")]
    BadName,
    #[error("must be an e-mail address such as partner@example.com")]
    BadEmail,
}

impl Name {
    pub fn parse(s: &str) -> Result<Self, ContactError> {
        let s = s.trim();
        let ok = !s.is_empty() && s.chars().count() <= 200 && !s.chars().any(char::is_control);
        ok.then(|| Self(s.to_owned())).ok_or(ContactError::BadName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An e-mail address, checked for shape only (one `@`, a dotted domain, no
/// spaces): whether it receives mail is not ours to know.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, ContactError> {
        let s = s.trim();
        let valid = s.len() <= 254
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && match s.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && local.len() <= 64
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !domain.contains("..")
                }
                None => false,
            };
        valid
            .then(|| Self(s.to_owned()))
            .ok_or(ContactError::BadEmail)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            Name::parse("  Ayu's Deals ").unwrap().as_str(),
            "Ayu's Deals"
        );
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse(&"x".repeat(201)).is_err());
        assert!(Name::parse("a\u{0}b").is_err());
    }

    #[test]
    fn emails_need_a_plausible_shape() {
        assert!(Email::parse("ayu@example.co.id").is_ok());
        for bad in [
            "",
            "ayu",
            "@example.com",
            "ayu@",
            "ayu@example",
            "a b@example.com",
            "a@b@example.com",
            "ayu@.example.com",
            "ayu@example..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
