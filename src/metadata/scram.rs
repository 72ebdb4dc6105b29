//! SCRAM credentials (RFC 5802, RFC 7677) as Kafka stores them: per user and mechanism
//! the salt, StoredKey, ServerKey and iteration count, never the password. A client
//! sends the salted password (KIP-554's AlterUserScramCredentials); the broker derives
//! the two keys from it and keeps only them.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

/// The SCRAM mechanisms, with Kafka's numbers for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    /// Kafka's number for the mechanism (`ScramMechanism.type()`): 1 and 2.
    pub fn from_kafka(number: i8) -> Option<ScramMechanism> {
        match number {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    pub fn kafka(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The iteration counts Kafka accepts for a credential (4,096 to 16,384).
    pub const ITERATIONS: std::ops::RangeInclusive<u32> = 4096..=16384;

    /// The hash's output size, which a salted password has.
    pub fn digest_bytes(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    pub fn hmac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any size");
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes a key of any size");
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    /// SCRAM's SaltedPassword, `Hi(password, salt, iterations)`: PBKDF2 with this
    /// mechanism's HMAC. Costs `iterations` HMACs: milliseconds, so off the shard's
    /// event loop where a broker computes it.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.digest_bytes()];
        let derived = match self {
            ScramMechanism::Sha256 => pbkdf2::pbkdf2::<Hmac<Sha256>>(password, salt, iterations, &mut out),
            ScramMechanism::Sha512 => pbkdf2::pbkdf2::<Hmac<Sha512>>(password, salt, iterations, &mut out),
        };
        derived.expect("HMAC takes a key of any size");
        out
    }

    pub fn hash(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(bytes).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(bytes).to_vec(),
        }
    }
}

/// One user's credential for one mechanism.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

impl ScramCredential {
    /// The credential of `salted_password` (`Hi(password, salt, iterations)`):
    /// StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey =
    /// HMAC(SaltedPassword, "Server Key").
    pub fn derive(mechanism: ScramMechanism, salted_password: &[u8], salt: &[u8], iterations: u32) -> ScramCredential {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 exchange: user "user", password "pencil", its salt and
    /// 4,096 iterations. The ServerKey derived here signs the exchange's AuthMessage
    /// into the ServerSignature the RFC gives, and the client proof checks against the
    /// StoredKey (the client key recovered from the proof hashes to it).
    #[test]
    fn the_keys_derived_sign_rfc_7677s_exchange() {
        let salt = [0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e, 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81]; // "W22ZaJ0SNY7soEsUEjb6gQ=="
        let salted = ScramMechanism::Sha256.salted_password(b"pencil", &salt, 4096);
        let credential = ScramCredential::derive(ScramMechanism::Sha256, &salted, &salt, 4096);
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let signature = ScramMechanism::Sha256.hmac(&credential.server_key, auth_message.as_bytes());
        // "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        let expected = [
            0xea, 0xba, 0xe2, 0x4d, 0x10, 0x62, 0xdb, 0x75, 0xa9, 0x45, 0x1f, 0xf0, 0xb6, 0xea, 0x7e, 0x98, 0xc8, 0x54,
            0x65, 0x49, 0xff, 0x74, 0x1e, 0x67, 0x2d, 0x32, 0x51, 0xb2, 0x39, 0x7d, 0xe4, 0x6e,
        ];
        assert_eq!(signature, expected);
        // "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=": the client's proof.
        let proof = [
            0x74, 0x7c, 0xdb, 0x65, 0xaa, 0x56, 0x22, 0x4e, 0x23, 0x52, 0x13, 0x7e, 0x52, 0xd7, 0xbd, 0xca, 0xd6, 0xa0,
            0xf7, 0x38, 0xdf, 0x30, 0x78, 0x2c, 0xaa, 0x69, 0xa2, 0xcf, 0xb0, 0x27, 0x75, 0x54,
        ];
        let client_signature = ScramMechanism::Sha256.hmac(&credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
        assert_eq!(ScramMechanism::Sha256.hash(&client_key), credential.stored_key);
    }
}
