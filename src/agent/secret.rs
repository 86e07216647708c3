//! API keys: fetched through [`SecretSource`] at request time only and held in a
//! zeroizing wrapper that never prints its value.

use std::fmt;

use async_trait::async_trait;
use zeroize::Zeroizing;

/// A secret value (API key, AWS secret key). Zeroized on drop; `Debug` and
/// `Display` print a placeholder, never the value.
#[derive(Clone)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(value: String) -> Self {
        SecretString(Zeroizing::new(value))
    }

    /// The value, for putting into a request header. Do not log it.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        SecretString::new(value)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where provider credentials come from (the lead wires it to the vault).
/// Called once per HTTP attempt; the value is dropped (and zeroized) after use.
#[async_trait]
pub trait SecretSource: Send + Sync + fmt::Debug {
    /// The secret named `name`, or `None` when it does not exist.
    async fn get(&self, name: &str) -> Option<SecretString>;
}

/// A fixed in-memory secret table, for tests and development.
#[derive(Default)]
pub struct StaticSecrets {
    entries: Vec<(String, SecretString)>,
}

impl StaticSecrets {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.entries
            .push((name.to_string(), SecretString::new(value.to_string())));
        self
    }
}

impl fmt::Debug for StaticSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("StaticSecrets")
            .field("names", &names)
            .finish()
    }
}

#[async_trait]
impl SecretSource for StaticSecrets {
    async fn get(&self, name: &str) -> Option<SecretString> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_value() {
        let s = SecretString::new("sk-very-secret".into());
        assert!(!format!("{s:?}").contains("very-secret"));
        assert!(!format!("{s}").contains("very-secret"));
        let t = StaticSecrets::new().with("k", "sk-very-secret");
        assert!(!format!("{t:?}").contains("very-secret"));
    }
}
