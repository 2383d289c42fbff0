//! API keys and roles, shared by HTTP (`Authorization: Bearer <key>`) and the Postgres
//! wire protocol (user = the key's name, password = the key).
//!
//! Keys are random (`op_` + 43 URL-safe base64 characters, 256 bits) and only their
//! SHA-256 is stored in the configuration: a leaked configuration file does not leak a
//! key, and a random 256-bit key needs no slow password hash. `orderpulse auth new-key`
//! makes one and prints the configuration entry.
//!
//! With no keys configured, authentication is off and every caller is an admin: the
//! embedded default for `make run` on localhost, warned about at start.

use std::collections::BTreeMap;

use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::kpi::Scope;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything: every merchant's rows, ingest, administration.
    Admin,
    /// Every merchant's rows, read-only.
    Analyst,
    /// One merchant's rows, read-only.
    Merchant,
}

/// One configured key (`[[auth.keys]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Who holds it; also the Postgres user name.
    pub name: String,
    pub role: Role,
    /// The merchant whose rows a `merchant` key sees (only for that role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant: Option<String>,
    /// Lower-case hex SHA-256 of the key.
    pub sha256: String,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub merchant: Option<String>,
}

impl Principal {
    /// The caller when authentication is off.
    pub fn local_admin() -> Self {
        Principal { name: "local".into(), role: Role::Admin, merchant: None }
    }

    /// The rows this caller may see.
    pub fn scope(&self) -> Scope {
        match (&self.role, &self.merchant) {
            (Role::Merchant, Some(merchant)) => Scope::Merchant(merchant.clone()),
            // A merchant key without a merchant is refused by `Keys::new`; see nothing.
            (Role::Merchant, None) => Scope::Merchant(String::new()),
            (Role::Admin | Role::Analyst, _) => Scope::All,
        }
    }
}

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this request needs an API key (Authorization: Bearer <key>)")]
    Missing,
    #[error("the API key is not valid")]
    Invalid,
    #[error("the role {role:?} may not {action}")]
    Forbidden { role: Role, action: &'static str },
}

/// The configured keys, by hash.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    by_hash: BTreeMap<String, ApiKey>,
}

impl Keys {
    /// Checks the configured keys; the error names the entry and the problem.
    pub fn new(keys: &[ApiKey]) -> Result<Keys, String> {
        let mut by_hash = BTreeMap::new();
        let mut names = std::collections::BTreeSet::new();
        for (i, key) in keys.iter().enumerate() {
            let at = format!("auth.keys[{i}] ({:?})", key.name);
            if key.name.is_empty() || !names.insert(key.name.as_str()) {
                return Err(format!("{at}: every key needs a name of its own"));
            }
            if key.sha256.len() != 64 || !key.sha256.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                return Err(format!("{at}: sha256 must be 64 lower-case hex digits (orderpulse auth new-key prints it)"));
            }
            match (key.role, &key.merchant) {
                (Role::Merchant, None) => return Err(format!("{at}: a merchant key needs `merchant`")),
                (Role::Admin | Role::Analyst, Some(_)) => return Err(format!("{at}: only merchant keys name a merchant")),
                _ => {}
            }
            if by_hash.insert(key.sha256.clone(), key.clone()).is_some() {
                return Err(format!("{at}: the same key is configured twice"));
            }
        }
        Ok(Keys { by_hash })
    }

    /// Whether any key is configured (authentication is on).
    pub fn enabled(&self) -> bool {
        !self.by_hash.is_empty()
    }

    /// Who holds `key`, if anyone. With authentication off, everyone is an admin.
    pub fn authenticate(&self, key: Option<&str>) -> Result<Principal, AuthError> {
        if !self.enabled() {
            return Ok(Principal::local_admin());
        }
        let key = key.ok_or(AuthError::Missing)?;
        let found = self.by_hash.get(&sha256_hex(key)).ok_or(AuthError::Invalid)?;
        Ok(Principal { name: found.name.clone(), role: found.role, merchant: found.merchant.clone() })
    }

    /// A Postgres login: the key's name as user, the key as password.
    pub fn authenticate_user(&self, user: &str, password: &str) -> Result<Principal, AuthError> {
        let principal = self.authenticate(Some(password))?;
        if self.enabled() && principal.name != user {
            return Err(AuthError::Invalid);
        }
        Ok(principal)
    }
}

/// A new random key and the hash to configure for it.
pub fn new_key() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("op_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let hash = sha256_hex(&key);
    (key, hash)
}

pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, role: Role, merchant: Option<&str>, secret: &str) -> ApiKey {
        ApiKey { name: name.into(), role, merchant: merchant.map(str::to_owned), sha256: sha256_hex(secret) }
    }

    #[test]
    fn keys_are_checked_when_configured() {
        let good = key("a", Role::Admin, None, "s1");
        let cases: Vec<(Vec<ApiKey>, Option<&str>)> = vec![
            (vec![good.clone()], None),
            (vec![good.clone(), key("a", Role::Analyst, None, "s2")], Some("a name of its own")),
            (vec![key("m", Role::Merchant, None, "s1")], Some("needs `merchant`")),
            (vec![key("x", Role::Analyst, Some("m1"), "s1")], Some("only merchant keys")),
            (vec![good.clone(), key("b", Role::Admin, None, "s1")], Some("configured twice")),
            (vec![ApiKey { sha256: "ABC".into(), ..good.clone() }], Some("64 lower-case hex")),
        ];
        for (keys, problem) in cases {
            match (Keys::new(&keys), problem) {
                (Ok(_), None) => {}
                (Err(e), Some(p)) => assert!(e.contains(p), "{e} lacks {p}"),
                (got, expected) => panic!("{keys:?}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn a_key_is_its_holder_and_role() {
        let keys = Keys::new(&[key("ops", Role::Admin, None, "k-admin"), key("lotus", Role::Merchant, Some("m_lotus"), "k-lotus")]).unwrap();
        let cases = [
            (Some("k-admin"), Ok(Scope::All)),
            (Some("k-lotus"), Ok(Scope::Merchant("m_lotus".into()))),
            (Some("k-wrong"), Err(AuthError::Invalid)),
            (None, Err(AuthError::Missing)),
        ];
        for (presented, expected) in cases {
            assert_eq!(keys.authenticate(presented).map(|p| p.scope()), expected, "{presented:?}");
        }
        assert_eq!(keys.authenticate_user("lotus", "k-lotus").map(|p| p.role), Ok(Role::Merchant));
        assert_eq!(keys.authenticate_user("ops", "k-lotus"), Err(AuthError::Invalid), "another holder's key");
        assert_eq!(Keys::default().authenticate(None), Ok(Principal::local_admin()), "authentication off");
    }

    #[test]
    fn new_keys_are_random_and_match_their_hash() {
        let (a, hash) = new_key();
        let (b, _) = new_key();
        assert_ne!(a, b);
        assert!(a.starts_with("op_") && a.len() == 46, "{a}");
        assert_eq!(sha256_hex(&a), hash);
    }
}
