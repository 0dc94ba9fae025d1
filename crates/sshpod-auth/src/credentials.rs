//! Validated login names and passwords that do not leak into logs.

use std::fmt;

/// A validated login name.
///
/// 1 to [`UserName::MAX_LEN`] bytes of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`. That
/// rules out `/`, NUL, `.` and `..`, so the name is safe to substitute into a file path, and it
/// cannot be mistaken for a command-line option.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(String);

/// Why a string is not a valid [`UserName`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserNameError {
    /// The name is empty.
    #[error("user name is empty")]
    Empty,
    /// The name is longer than [`UserName::MAX_LEN`] bytes.
    #[error("user name is longer than {} bytes", UserName::MAX_LEN)]
    TooLong,
    /// The name starts with `.` or `-`.
    #[error("user name starts with '.' or '-'")]
    BadFirstCharacter,
    /// The name contains a byte outside `A-Z a-z 0-9 . _ -`.
    #[error("user name has a character other than A-Z, a-z, 0-9, '.', '_' or '-' at byte {index}")]
    BadCharacter {
        /// Byte offset of the first offending character.
        index: usize,
    },
}

impl UserName {
    /// Longest accepted name, in bytes.
    pub const MAX_LEN: usize = 64;

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn validate(name: &str) -> Result<(), UserNameError> {
        let bytes = name.as_bytes();
        match bytes.first() {
            None => return Err(UserNameError::Empty),
            Some(b'.' | b'-') => return Err(UserNameError::BadFirstCharacter),
            Some(_) => {}
        }
        if bytes.len() > Self::MAX_LEN {
            return Err(UserNameError::TooLong);
        }
        match bytes
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
        {
            Some(index) => Err(UserNameError::BadCharacter { index }),
            None => Ok(()),
        }
    }
}

impl TryFrom<&str> for UserName {
    type Error = UserNameError;

    fn try_from(name: &str) -> Result<Self, Self::Error> {
        Self::validate(name)?;
        Ok(Self(name.to_owned()))
    }
}

impl TryFrom<String> for UserName {
    type Error = UserNameError;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::validate(&name)?;
        Ok(Self(name))
    }
}

impl AsRef<str> for UserName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password as the client sent it. `Debug` and `Display` print `<secret>`; read it with
/// [`Password::expose`]. It deliberately has no `PartialEq`: compare through a password hash.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The password itself. Keep it out of logs and error messages.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Password {
    fn from(password: String) -> Self {
        Self(password)
    }
}

impl From<&str> for Password {
    fn from(password: &str) -> Self {
        Self(password.to_owned())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in ["alice", "a", "Bob_2", "x.y-z", "a..b", "_svc", "9lives"] {
            let user = UserName::try_from(name).unwrap();
            assert_eq!(user.as_ref(), name);
            assert_eq!(user.to_string(), name);
        }
        let longest = "a".repeat(UserName::MAX_LEN);
        assert!(UserName::try_from(longest.as_str()).is_ok());
        assert!(UserName::try_from(longest).is_ok());
    }

    #[test]
    fn rejects_names_unsafe_in_paths() {
        let cases = [
            ("", UserNameError::Empty),
            (".", UserNameError::BadFirstCharacter),
            ("..", UserNameError::BadFirstCharacter),
            ("../x", UserNameError::BadFirstCharacter),
            (".hidden", UserNameError::BadFirstCharacter),
            ("-rf", UserNameError::BadFirstCharacter),
            ("a/b", UserNameError::BadCharacter { index: 1 }),
            (
                "a/../../etc/passwd",
                UserNameError::BadCharacter { index: 1 },
            ),
            ("a\0b", UserNameError::BadCharacter { index: 1 }),
            ("a\\b", UserNameError::BadCharacter { index: 1 }),
            ("a b", UserNameError::BadCharacter { index: 1 }),
            ("al%u", UserNameError::BadCharacter { index: 2 }),
            ("al\nice", UserNameError::BadCharacter { index: 2 }),
            ("jürgen", UserNameError::BadCharacter { index: 1 }),
        ];
        for (name, expected) in cases {
            assert_eq!(UserName::try_from(name), Err(expected), "{name:?}");
        }
        let too_long = "a".repeat(UserName::MAX_LEN + 1);
        assert_eq!(
            UserName::try_from(too_long.as_str()),
            Err(UserNameError::TooLong)
        );
    }

    #[test]
    fn password_never_prints() {
        let password = Password::from("hunter2");
        assert_eq!(format!("{password:?}"), "<secret>");
        assert_eq!(password.to_string(), "<secret>");
        assert_eq!(password.expose(), "hunter2");
    }
}
