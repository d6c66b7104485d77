//! The Redis key schema (docs/REDIS.md), in one place: every key the mirror writes and the
//! edge reads is named here, under a configurable prefix.

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Every key of the mirror matches this pattern (for SCAN).
    pub fn pattern(&self) -> String {
        format!("{}*", glob_escape(&self.prefix))
    }

    /// What edges write for the primary (not a copy of the store): a full copy leaves these
    /// keys alone.
    pub fn edge_written_prefix(&self) -> String {
        format!("{}edge:", self.prefix)
    }

    /// The manual city choices edges counted and the primary has not taken yet: a hash of
    /// `<day number>|<city key>` -> count (`HINCRBY` by each edge).
    pub fn edge_overrides(&self) -> String {
        format!("{}edge:overrides", self.prefix)
    }

    /// A batch of those counts the primary took (`RENAME`) and is folding into its store.
    pub fn edge_overrides_folding(&self, batch: u64) -> String {
        format!("{}edge:overrides:folding:{batch}", self.prefix)
    }

    /// The last change sequence applied to Redis.
    pub fn seq(&self) -> String {
        format!("{}mirror:seq", self.prefix)
    }

    /// Which store the mirrored data came from (a Redis holding another store's is resynced).
    pub fn source(&self) -> String {
        format!("{}mirror:source", self.prefix)
    }

    /// Settings readers need: public key, peers domain, default capacity.
    pub fn settings(&self) -> String {
        format!("{}settings", self.prefix)
    }

    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }

    pub fn proxies(&self) -> String {
        format!("{}proxies", self.prefix)
    }

    pub fn proxy(&self, name: &str) -> String {
        format!("{}proxy:{name}", self.prefix)
    }

    /// The users whose fallback list holds the proxy.
    /// `<p>blocked:<country>`: the proxies blocked in that country.
    pub fn blocked(&self, country: &str) -> String {
        format!("{}blocked:{country}", self.prefix)
    }

    pub fn proxy_users(&self, name: &str) -> String {
        format!("{}proxy:{name}:users", self.prefix)
    }

    /// The users a pro proxy serves, and the token hashes it accepts.
    pub fn proxy_pro_users(&self, name: &str) -> String {
        format!("{}proxy:{name}:pro_users", self.prefix)
    }

    pub fn proxy_tokens(&self, name: &str) -> String {
        format!("{}proxy:{name}:tokens", self.prefix)
    }

    pub fn user(&self, id: u64) -> String {
        format!("{}user:{id}", self.prefix)
    }

    pub fn config(&self, user: u64) -> String {
        format!("{}config:{user}", self.prefix)
    }

    /// A token's SHA-256 (hex) -> the user id it authenticates.
    /// `<p>mirror:replica`: the replica's layout version, set by a full copy (a Redis mirrored
    /// by a version without the replica is copied again).
    pub fn replica_format(&self) -> String {
        format!("{}mirror:replica", self.prefix)
    }

    /// `<p>mirror:data_format`: the store's data format when the replica was copied (a
    /// migration since then rewrote records the stream did not carry: copied again).
    pub fn data_format(&self) -> String {
        format!("{}mirror:data_format", self.prefix)
    }

    /// `<p>mirror:sealed`: the id of the key the replica's secrets are sealed with
    /// (`redis_encrypt_secrets`); absent when they are not sealed.
    pub fn sealed(&self) -> String {
        format!("{}mirror:sealed", self.prefix)
    }

    /// `<p>replica:<tree>`: a store tree byte for byte (field: key, value: value).
    pub fn replica(&self, tree: &str) -> String {
        format!("{}replica:{tree}", self.prefix)
    }

    pub fn token(&self, hash_hex: &str) -> String {
        format!("{}token:{hash_hex}", self.prefix)
    }
}

/// `prefix` with the glob characters of SCAN MATCH escaped.
fn glob_escape(prefix: &str) -> String {
    let mut escaped = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_prefix() {
        let keys = Keys::new("pf:");
        assert_eq!(keys.proxy("a1"), "pf:proxy:a1");
        assert_eq!(keys.user(7), "pf:user:7");
        assert_eq!(keys.config(7), "pf:config:7");
        assert_eq!(keys.seq(), "pf:mirror:seq");
        assert_eq!(Keys::new("a*b:").pattern(), "a\\*b:*");
    }
}
