//! The config server's secrets, generated on first start and kept in the store: the
//! rendezvous secret and the Ed25519 key that signs every config.

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use rand::RngCore;

use super::subset::Secret;
use crate::error::Result;
use crate::store::{Store, TreeId};

const RENDEZVOUS: &str = "distribution.rendezvous_secret";
const SIGNING: &str = "distribution.signing_key";

#[derive(Clone)]
pub struct Keys {
    pub rendezvous: Secret,
    signing: SigningKey,
}

impl Keys {
    pub async fn load_or_create(store: &Store) -> Result<Keys> {
        let mut created = false;
        let rendezvous: [u8; 16] = match store.get(TreeId::Meta, RENDEZVOUS)? {
            Some(secret) => secret,
            None => {
                let mut secret = [0u8; 16];
                rand::thread_rng().fill_bytes(&mut secret);
                store.put(TreeId::Meta, RENDEZVOUS, &secret)?;
                created = true;
                secret
            }
        };
        let signing: [u8; 32] = match store.get(TreeId::Meta, SIGNING)? {
            Some(key) => key,
            None => {
                let mut key = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut key);
                store.put(TreeId::Meta, SIGNING, &key)?;
                created = true;
                key
            }
        };
        if created {
            store.durable().await?;
        }
        Ok(Keys {
            rendezvous: Secret(rendezvous),
            signing: SigningKey::from_bytes(&signing),
        })
    }

    /// The Ed25519 signature of `body`, base64 (standard alphabet).
    pub fn sign(&self, body: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.signing.sign(body).to_bytes())
    }

    /// The public key, base64 (standard alphabet), 32 bytes raw.
    pub fn public_key(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.signing.verifying_key().to_bytes())
    }
}
