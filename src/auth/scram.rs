//! The server's side of a SCRAM exchange (RFC 5802, RFC 7677), against the credentials
//! Kafka stores (salt, StoredKey, ServerKey, iterations):
//!
//! 1. client-first `n,,n=user,r=cnonce` → server-first `r=cnonce+snonce,s=salt,i=4096`;
//! 2. client-final `c=biws,r=cnonce+snonce,p=proof` → server-final `v=signature`.
//!
//! The proof is checked as the RFC says: ClientKey = proof XOR HMAC(StoredKey,
//! AuthMessage), and H(ClientKey) must be StoredKey. An unknown user gets a made-up
//! credential (salt and iterations derived from the name and a secret of this
//! process), so that the exchange fails at the same step, in the same way, as a wrong
//! password does, and a client cannot tell which users exist. Every message is
//! bounded in size, and anything malformed ends the exchange.

use crate::metadata::{ScramCredential, ScramMechanism};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

/// Largest client message taken: a user name and a nonce, or a proof, fit easily.
pub const MESSAGE_BYTES_MAX: usize = 4096;
/// The server's share of the nonce, in random bytes (base64 in the message).
const NONCE_BYTES: usize = 24;

/// Why an exchange failed. What the client is told is one message whatever the
/// cause (`FAILED`); the cause is for the broker's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("the client asked for channel binding, which is not offered")]
    ChannelBinding,
    #[error("the client's final message carries a nonce other than the exchange's")]
    ForgedNonce,
    #[error("the client's proof does not match the user's credential (a wrong password, or no such user)")]
    BadProof,
    #[error("SCRAM extensions (such as tokenauth, for delegation tokens) are not served")]
    Extension,
}

/// The exchange after the client's first message, waiting for its final one.
pub struct ScramExchange {
    mechanism: ScramMechanism,
    user: String,
    credential: ScramCredential,
    /// Whether the credential is made up (no such user): the proof can never match.
    known: bool,
    nonce: String,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
}

impl ScramExchange {
    /// Reads the client's first message; `lookup` finds the user's credential. The
    /// answer is the server-first message to send.
    pub fn start(
        mechanism: ScramMechanism,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
        secret: &[u8],
    ) -> Result<(ScramExchange, Vec<u8>), ScramError> {
        let text = text(message)?;
        let (gs2_header, bare) = split_gs2(text)?;
        let mut fields = bare.split(',');
        let user = match fields.next() {
            Some(field) if field.starts_with("m=") => return Err(ScramError::Extension),
            Some(field) => decode_name(field.strip_prefix("n=").ok_or(ScramError::Malformed("no user name"))?)?,
            None => return Err(ScramError::Malformed("empty message")),
        };
        let client_nonce = fields.next().and_then(|f| f.strip_prefix("r=")).ok_or(ScramError::Malformed("no nonce"))?;
        if client_nonce.is_empty() || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',') {
            return Err(ScramError::Malformed("a nonce is printable characters other than ','"));
        }
        if fields.next().is_some() {
            return Err(ScramError::Extension);
        }
        if let Some(authzid) = gs2_header.split(',').nth(1).filter(|a| !a.is_empty()) {
            // Kafka's rule: an authorization id, when given, is the user itself.
            if decode_name(authzid.strip_prefix("a=").ok_or(ScramError::Malformed("bad authorization id"))?)? != user {
                return Err(ScramError::Malformed("the authorization id is not the user name"));
            }
        }
        let (credential, known) = match lookup(&user) {
            Some(credential) => (credential, true),
            None => (made_up(mechanism, &user, secret), false),
        };
        let mut server_nonce = [0u8; NONCE_BYTES];
        rand::Rng::fill(&mut rand::thread_rng(), &mut server_nonce[..]);
        let nonce = format!("{client_nonce}{}", BASE64.encode(server_nonce));
        let server_first = format!("r={nonce},s={},i={}", BASE64.encode(&credential.salt), credential.iterations);
        let exchange = ScramExchange {
            mechanism,
            user,
            credential,
            known,
            nonce,
            gs2_header: gs2_header.to_string(),
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
        };
        Ok((exchange, server_first.into_bytes()))
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// The user the exchange is for.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Reads the client's final message: the server-final message (its signature) if
    /// the proof holds.
    pub fn finish(self, message: &[u8]) -> Result<(String, Vec<u8>), ScramError> {
        let text = text(message)?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or(ScramError::Malformed("no proof"))?;
        let mut fields = without_proof.split(',');
        let binding =
            fields.next().and_then(|f| f.strip_prefix("c=")).ok_or(ScramError::Malformed("no channel binding"))?;
        let binding = BASE64.decode(binding).map_err(|_| ScramError::Malformed("channel binding is not base64"))?;
        if binding != self.gs2_header.as_bytes() {
            return Err(ScramError::Malformed("the channel binding is not the first message's header"));
        }
        let nonce = fields.next().and_then(|f| f.strip_prefix("r=")).ok_or(ScramError::Malformed("no nonce"))?;
        // Kafka's check, which librdkafka 2.0 (Debian's kcat) relies on: it sends its nonce
        // again in front of the server's. The final message, nonce and all, is part of
        // the AuthMessage the proof signs, so nothing is gained by a prefix.
        if !nonce.ends_with(&self.nonce) {
            return Err(ScramError::ForgedNonce);
        }
        if fields.next().is_some() {
            return Err(ScramError::Extension);
        }
        let proof = BASE64.decode(proof).map_err(|_| ScramError::Malformed("the proof is not base64"))?;
        let auth_message = format!("{},{},{without_proof}", self.client_first_bare, self.server_first);
        let mechanism = self.mechanism;
        let client_signature = mechanism.hmac(&self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(ScramError::BadProof);
        }
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
        let matches = constant_time_eq(&mechanism.hash(&client_key), &self.credential.stored_key);
        if !matches || !self.known {
            return Err(ScramError::BadProof);
        }
        let signature = mechanism.hmac(&self.credential.server_key, auth_message.as_bytes());
        Ok((self.user, format!("v={}", BASE64.encode(signature)).into_bytes()))
    }
}

fn text(message: &[u8]) -> Result<&str, ScramError> {
    if message.len() > MESSAGE_BYTES_MAX {
        return Err(ScramError::Malformed("message too long"));
    }
    std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))
}

/// Splits `n,,rest` (or `y,,rest`, or with an authorization id) into the GS2 header
/// (`n,,`) and the bare message.
fn split_gs2(text: &str) -> Result<(&str, &str), ScramError> {
    let flag = text.get(..2).ok_or(ScramError::Malformed("no GS2 header"))?;
    match flag {
        "n," | "y," => {}
        _ if text.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed("bad GS2 header")),
    }
    let end = text[2..].find(',').ok_or(ScramError::Malformed("bad GS2 header"))? + 3;
    Ok((&text[..end], &text[end..]))
}

/// A `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` is malformed.
fn decode_name(name: &str) -> Result<String, ScramError> {
    if name.is_empty() {
        return Err(ScramError::Malformed("empty user name"));
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in the user name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The credential an unknown user gets: stable for a name within this process, so
/// asking twice shows the same salt, as a real user's would.
fn made_up(mechanism: ScramMechanism, user: &str, secret: &[u8]) -> ScramCredential {
    let salt = mechanism.hmac(secret, format!("salt:{user}").as_bytes());
    let key = mechanism.hmac(secret, format!("key:{user}").as_bytes());
    ScramCredential { salt: salt[..16].to_vec(), stored_key: key.clone(), server_key: key, iterations: 4096 }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The client's side, for `strand-client`, the CLI and the tests: what a client sends
/// for `user` with `password`, checked against the server's answers.
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    client_first_bare: String,
    nonce: String,
}

impl ScramClient {
    /// The client-first message.
    pub fn start(mechanism: ScramMechanism, user: &str, password: &str) -> (ScramClient, Vec<u8>) {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::Rng::fill(&mut rand::thread_rng(), &mut nonce[..]);
        let nonce = BASE64.encode(nonce);
        let name = user.replace('=', "=3D").replace(',', "=2C");
        let client_first_bare = format!("n={name},r={nonce}");
        let message = format!("n,,{client_first_bare}").into_bytes();
        (ScramClient { mechanism, password: password.to_string(), client_first_bare, nonce }, message)
    }

    /// The client-final message for the server-first one, and the server signature
    /// the server-final message must carry.
    pub fn respond(&self, server_first: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ScramError> {
        self.respond_salted(server_first, None)
    }

    /// `respond` with the salted password already known (a client that keeps it
    /// between connections; the benchmarks, to time the server alone).
    pub fn respond_with_salted(&self, server_first: &[u8], salted: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ScramError> {
        self.respond_salted(server_first, Some(salted))
    }

    fn respond_salted(&self, server_first: &[u8], known: Option<&[u8]>) -> Result<(Vec<u8>, Vec<u8>), ScramError> {
        let server_first = text(server_first)?;
        let mut fields = server_first.split(',');
        let nonce = fields.next().and_then(|f| f.strip_prefix("r=")).ok_or(ScramError::Malformed("no nonce"))?;
        if !nonce.starts_with(&self.nonce) {
            return Err(ScramError::ForgedNonce);
        }
        let salt = fields.next().and_then(|f| f.strip_prefix("s=")).ok_or(ScramError::Malformed("no salt"))?;
        let salt = BASE64.decode(salt).map_err(|_| ScramError::Malformed("the salt is not base64"))?;
        let iterations: u32 = fields
            .next()
            .and_then(|f| f.strip_prefix("i="))
            .and_then(|i| i.parse().ok())
            .filter(|i| ScramMechanism::ITERATIONS.contains(i))
            .ok_or(ScramError::Malformed("bad iteration count"))?;
        let salted = match known {
            Some(salted) => salted.to_vec(),
            None => self.mechanism.salted_password(self.password.as_bytes(), &salt, iterations),
        };
        let credential = ScramCredential::derive(self.mechanism, &salted, &salt, iterations);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_key = self.mechanism.hmac(&salted, b"Client Key");
        let signature = self.mechanism.hmac(&credential.stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        let server_signature = self.mechanism.hmac(&credential.server_key, auth_message.as_bytes());
        Ok((format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes(), server_signature))
    }

    /// Checks the server-final message against the signature `respond` expected.
    pub fn verify(server_final: &[u8], expected: &[u8]) -> Result<(), ScramError> {
        let server_final = text(server_final)?;
        let signature = server_final.strip_prefix("v=").ok_or(ScramError::BadProof)?;
        let signature = BASE64.decode(signature).map_err(|_| ScramError::Malformed("the signature is not base64"))?;
        if constant_time_eq(&signature, expected) {
            Ok(())
        } else {
            Err(ScramError::BadProof)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test secret";

    fn credential(mechanism: ScramMechanism, password: &str) -> ScramCredential {
        let salt = b"0123456789abcdef";
        ScramCredential::derive(mechanism, &mechanism.salted_password(password.as_bytes(), salt, 4096), salt, 4096)
    }

    fn exchange(mechanism: ScramMechanism, stored: &str, typed: &str, user: &str) -> Result<String, ScramError> {
        let stored = credential(mechanism, stored);
        let (client, first) = ScramClient::start(mechanism, user, typed);
        let lookup = |name: &str| (name == "alice").then(|| stored.clone());
        let (server, server_first) = ScramExchange::start(mechanism, &first, lookup, SECRET)?;
        let (client_final, expected) = client.respond(&server_first)?;
        let (user, server_final) = server.finish(&client_final)?;
        ScramClient::verify(&server_final, &expected)?;
        Ok(user)
    }

    #[test]
    fn the_right_password_authenticates_with_either_hash() {
        for mechanism in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            assert_eq!(exchange(mechanism, "pencil", "pencil", "alice").as_deref(), Ok("alice"));
        }
    }

    /// A wrong password and an unknown user fail alike, at the proof.
    #[test]
    fn a_wrong_password_and_an_unknown_user_fail_alike() {
        let mechanism = ScramMechanism::Sha512;
        assert_eq!(exchange(mechanism, "pencil", "crayon", "alice"), Err(ScramError::BadProof));
        assert_eq!(exchange(mechanism, "pencil", "pencil", "mallory"), Err(ScramError::BadProof));
        let first = |user: &str| {
            let (_, message) = ScramClient::start(mechanism, user, "x");
            let (_, server_first) = ScramExchange::start(mechanism, &message, |_| None, SECRET).unwrap();
            String::from_utf8(server_first).unwrap().split(',').skip(1).collect::<Vec<_>>().join(",")
        };
        assert_eq!(first("mallory"), first("mallory"), "an unknown user's salt is stable, as a real one's");
    }

    /// The client nonce twice, then the server's (what librdkafka 2.0 sends): the
    /// nonce passes, as in Kafka, and the proof decides.
    #[test]
    fn a_nonce_with_the_client_part_repeated_passes_as_in_kafka() {
        let mechanism = ScramMechanism::Sha256;
        let stored = credential(mechanism, "pencil");
        let (client, first) = ScramClient::start(mechanism, "alice", "pencil");
        let (server, server_first) = ScramExchange::start(mechanism, &first, |_| Some(stored.clone()), SECRET).unwrap();
        let (client_final, _) = client.respond(&server_first).unwrap();
        let doubled = String::from_utf8(client_final).unwrap().replacen(",r=", &format!(",r={}", client.nonce), 1);
        assert_eq!(
            server.finish(doubled.as_bytes()).err(),
            Some(ScramError::BadProof),
            "the proof signs what was sent"
        );
    }

    #[test]
    fn a_final_message_with_another_nonce_is_refused() {
        let mechanism = ScramMechanism::Sha256;
        let stored = credential(mechanism, "pencil");
        let (client, first) = ScramClient::start(mechanism, "alice", "pencil");
        let (server, server_first) = ScramExchange::start(mechanism, &first, |_| Some(stored.clone()), SECRET).unwrap();
        let (client_final, _) = client.respond(&server_first).unwrap();
        let forged = String::from_utf8(client_final).unwrap().replacen(",p=", "X,p=", 1);
        assert_eq!(server.finish(forged.as_bytes()).err(), Some(ScramError::ForgedNonce));
    }

    #[test]
    fn malformed_first_messages_are_refused() {
        let mechanism = ScramMechanism::Sha256;
        let cases: [&[u8]; 10] = [
            b"",
            b"n,,",
            b"x,,n=a,r=b",
            b"p=tls-unique,,n=a,r=b",
            b"n,,n=,r=b",
            b"n,,n=a=2X,r=b",
            b"n,,n=a",
            b"n,,n=a,r=b,ext=1",
            b"n,a=b,n=a,r=b",
            &[0xff, 0xfe],
        ];
        for case in cases {
            assert!(ScramExchange::start(mechanism, case, |_| None, SECRET).is_err(), "{case:?}");
        }
        let long = format!("n,,n=a,r={}", "x".repeat(MESSAGE_BYTES_MAX));
        assert!(ScramExchange::start(mechanism, long.as_bytes(), |_| None, SECRET).is_err());
        let (_, answer) = ScramExchange::start(mechanism, b"n,a=a=2Cb,n=a=2Cb,r=abc", |_| None, SECRET).unwrap();
        assert!(answer.starts_with(b"r=abc"), "an escaped name and its matching authorization id");
    }
}
