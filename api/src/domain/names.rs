//! Validated identifiers: resource names, project IDs and host names.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a name-like value was refused; the caller names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error("may only contain {0}")]
    BadChar(&'static str),
}

/// The JSON Schema pattern of a string of "printable characters": none of
/// Unicode's control characters (category Cc, what `char::is_control`
/// tests). Written with two-digit escapes, which ECMA-262, Python and Go
/// regular expressions all read the same way.
const PRINTABLE_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F]*$";
/// ASCII letters, digits, '-', '_' and '.'.
const SLUG_PATTERN: &str = r"^[A-Za-z0-9._-]*$";

/// The schema of a validated string: the same bounds and character set the
/// parser enforces, so the OpenAPI document and the server cannot disagree.
fn string_schema(
    min: usize,
    max: usize,
    pattern: &str,
    example: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length((min > 0).then_some(min))
        .max_length(Some(max))
        .pattern(Some(pattern))
        .examples([serde_json::Value::from(example)])
        .into()
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, max = $max:expr, allowed = $allowed:expr, chars = $desc:expr,
     pattern = $pattern:expr, example = $example:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, NameError> {
                if s.is_empty() {
                    return Err(NameError::Empty);
                }
                if s.chars().count() > $max {
                    return Err(NameError::TooLong($max));
                }
                let allowed: fn(char) -> bool = $allowed;
                if !s.chars().all(allowed) {
                    return Err(NameError::BadChar($desc));
                }
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                string_schema(1, $max, $pattern, $example)
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

name_type!(
    /// A human name for a network or instance: printable, no control characters.
    Name, max = 255, allowed = |c| !c.is_control(), chars = "printable characters",
    pattern = PRINTABLE_PATTERN, example = "prod-link-1"
);

name_type!(
    /// A project (tenant) identifier as issued by the operator's identity
    /// service, e.g. a Keystone project ID.
    ProjectId,
    max = 64,
    allowed = |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'),
    chars = "ASCII letters, digits, '-', '_' and '.'",
    pattern = SLUG_PATTERN, example = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
);

name_type!(
    /// A compute host's name as its agent knows it (a DNS label or FQDN).
    HostName,
    max = 253,
    allowed = |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'),
    chars = "ASCII letters, digits, '-', '_' and '.'",
    pattern = SLUG_PATTERN, example = "compute-1"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_names_are_rejected() {
        assert_eq!(Name::parse(""), Err(NameError::Empty));
    }

    #[test]
    fn names_longer_than_255_chars_are_rejected() {
        assert_eq!(Name::parse(&"a".repeat(256)), Err(NameError::TooLong(255)));
        assert!(Name::parse(&"ä".repeat(255)).is_ok());
    }

    #[test]
    fn names_with_control_characters_are_rejected() {
        assert!(Name::parse("a\nb").is_err());
    }

    #[test]
    fn project_ids_allow_keystone_style_hex_and_slugs() {
        assert!(ProjectId::parse("0f1e2d3c4b5a69788796a5b4c3d2e1f0").is_ok());
        assert!(ProjectId::parse("team-a.prod_1").is_ok());
    }

    #[test]
    fn project_ids_reject_spaces_and_slashes() {
        assert!(ProjectId::parse("team a").is_err());
        assert!(ProjectId::parse("a/b").is_err());
    }

    #[test]
    fn host_names_accept_fqdns() {
        assert!(HostName::parse("compute-1.rack2.example").is_ok());
        assert!(HostName::parse("compute 1").is_err());
    }
}

/// Free text attached to an object: may be empty, at most 1024 characters,
/// no control characters other than newline and tab (PostgreSQL refuses NUL
/// in text, so it must never reach the store).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Description(String);

impl Description {
    pub const MAX: usize = 1024;

    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.chars().count() > Self::MAX {
            return Err(NameError::TooLong(Self::MAX));
        }
        if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return Err(NameError::BadChar(
                "printable characters, newlines and tabs",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Description {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Self::parse(&s)
    }
}

impl From<Description> for String {
    fn from(d: Description) -> String {
        d.0
    }
}

/// Printable characters, newlines and tabs.
const DESCRIPTION_PATTERN: &str = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*$";

impl utoipa::PartialSchema for Description {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_schema(0, Self::MAX, DESCRIPTION_PATTERN, "uplink for rack 2")
    }
}

impl utoipa::ToSchema for Description {}

#[cfg(test)]
mod description_tests {
    use super::*;

    #[test]
    fn descriptions_may_be_empty_or_multiline() {
        assert!(Description::parse("").is_ok());
        assert!(Description::parse("line 1\nline 2\tx").is_ok());
    }

    /// The document's patterns say exactly what the parsers accept, for
    /// every character up to U+2FFF and a few beyond.
    #[test]
    fn the_schema_patterns_match_the_parsers() {
        fn agree(pattern: &str, min: usize, parse: impl Fn(&str) -> bool) {
            let re = regex::Regex::new(pattern).unwrap();
            let chars = (0u32..0x3000).chain([0xFEFF, 0x1F600, 0x10FFFF]);
            for c in chars.filter_map(char::from_u32) {
                let s = format!("a{c}b");
                assert_eq!(
                    re.is_match(&s),
                    parse(&s),
                    "{pattern} on U+{:04X}",
                    c as u32
                );
            }
            assert_eq!(re.is_match("") && min == 0, parse(""), "{pattern} on \"\"");
        }
        agree(PRINTABLE_PATTERN, 1, |s| Name::parse(s).is_ok());
        agree(SLUG_PATTERN, 1, |s| ProjectId::parse(s).is_ok());
        agree(SLUG_PATTERN, 1, |s| HostName::parse(s).is_ok());
        agree(DESCRIPTION_PATTERN, 0, |s| Description::parse(s).is_ok());
    }

    #[test]
    fn descriptions_reject_nul_and_overlong_text() {
        assert!(Description::parse("a\0b").is_err());
        assert!(Description::parse(&"x".repeat(1025)).is_err());
    }
}
