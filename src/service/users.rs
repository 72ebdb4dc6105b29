//! Users and their SCRAM credentials (KIP-554's DescribeUserScramCredentials and
//! AlterUserScramCredentials), kept in the metadata store as Kafka keeps them: salt,
//! StoredKey, ServerKey and iterations per mechanism, never a password. Describing
//! reads any shard's copy of the metadata; altering runs on shard 0 (`admin`), where
//! `plan` turns a request into each user's commands or its refusal.

use super::error::Error;
use super::types::ScramAlteration;
use crate::metadata::{Command, MetadataState, ScramCredential, ScramMechanism};
use std::collections::HashSet;

/// Alterations one request may carry: each is a command written and fdatasynced on
/// shard 0 under the admin lock, so a request cannot hold it for long.
pub const ALTERATIONS_MAX: usize = 1000;

/// A user's credentials as described: mechanism and iterations, never the keys.
pub type Described = Vec<(ScramMechanism, u32)>;

/// Each user asked for and its credentials, or why not.
pub type DescribedUsers = Vec<(String, Result<Described, Error>)>;

/// `describe` for `ctx`'s principal, which must be allowed to describe the cluster.
pub fn describe_for(
    shard: &crate::shard::Shard,
    ctx: &super::RequestContext,
    users: Option<Vec<String>>,
) -> Result<DescribedUsers, Error> {
    super::authorize::check_cluster(shard, ctx, crate::metadata::acl::AclOperation::Describe)?;
    Ok(describe(&shard.metadata(), users))
}

/// `users`' credentials (every user's when `None` or empty), by user in request order.
/// A user named twice is DUPLICATE_RESOURCE, one without credentials
/// RESOURCE_NOT_FOUND, as Kafka answers.
pub fn describe(state: &MetadataState, users: Option<Vec<String>>) -> Vec<(String, Result<Described, Error>)> {
    let credentials_of = |user: &str| -> Option<Described> {
        state.users.get(user).map(|by| by.iter().map(|(mechanism, c)| (*mechanism, c.iterations)).collect())
    };
    let asked = match users {
        Some(users) if !users.is_empty() => users,
        _ => {
            return state
                .users
                .keys()
                .map(|user| (user.clone(), Ok(credentials_of(user).unwrap_or_default())))
                .collect()
        }
    };
    let mut seen = HashSet::new();
    let twice: HashSet<String> = asked.iter().filter(|user| !seen.insert(user.as_str())).cloned().collect();
    let mut answered = HashSet::new();
    asked
        .into_iter()
        .filter(|user| answered.insert(user.clone()))
        .map(|user| {
            let outcome = if twice.contains(&user) {
                Err(Error::DuplicateResource(format!("user {user:?} is named more than once")))
            } else {
                credentials_of(&user)
                    .ok_or_else(|| Error::ResourceNotFound(format!("user {user:?} has no SCRAM credentials")))
            };
            (user, outcome)
        })
        .collect()
}

/// Each user's commands for `alterations` against `state`, or why none of them can be
/// applied, by user in the order users first appear (Kafka's checks: a known
/// mechanism, a user name, 4,096 to 16,384 iterations, a salt and a salted password of
/// the hash's size, a deletion of a credential that exists, and each (user, mechanism)
/// at most once in the request).
pub fn plan(state: &MetadataState, alterations: Vec<ScramAlteration>) -> Vec<(String, Result<Vec<Command>, Error>)> {
    if alterations.len() > ALTERATIONS_MAX {
        let refusal = format!("{} alterations: a request carries at most {ALTERATIONS_MAX}", alterations.len());
        let mut seen = HashSet::new();
        return alterations
            .iter()
            .filter(|alteration| seen.insert(alteration.user().to_string()))
            .map(|alteration| (alteration.user().to_string(), Err(Error::InvalidRequest(refusal.clone()))))
            .collect();
    }
    let mut counts: std::collections::HashMap<(String, i8), usize> = std::collections::HashMap::new();
    for alteration in &alterations {
        *counts.entry((alteration.user().to_string(), alteration.mechanism())).or_default() += 1;
    }
    let mut users: Vec<(String, Result<Vec<Command>, Error>)> = Vec::new();
    // Each user's place in `users`: a request may carry many alterations.
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for alteration in alterations {
        let user = alteration.user().to_string();
        let planned = if counts[&(user.clone(), alteration.mechanism())] > 1 {
            Err(Error::DuplicateResource(format!(
                "user {user:?} has more than one change for mechanism {} in the request",
                alteration.mechanism()
            )))
        } else {
            command(state, alteration)
        };
        match at.get(&user).map(|&i| &mut users[i].1) {
            // The user's first refusal stands; one refusal refuses all of its changes.
            Some(outcome) => match planned {
                Ok(command) => {
                    if let Ok(commands) = outcome {
                        commands.push(command);
                    }
                }
                Err(error) => {
                    if outcome.is_ok() {
                        *outcome = Err(error);
                    }
                }
            },
            None => {
                at.insert(user.clone(), users.len());
                users.push((user, planned.map(|command| vec![command])));
            }
        }
    }
    users
}

/// The command for one alteration, checked.
fn command(state: &MetadataState, alteration: ScramAlteration) -> Result<Command, Error> {
    let mechanism = ScramMechanism::from_kafka(alteration.mechanism()).ok_or_else(|| {
        Error::UnsupportedSaslMechanism(format!("unknown SCRAM mechanism {}", alteration.mechanism()))
    })?;
    if alteration.user().is_empty() {
        return Err(Error::UnacceptableCredential("a user name is not empty".into()));
    }
    match alteration {
        ScramAlteration::Upsert { user, iterations, salt, salted_password, .. } => {
            let iterations = u32::try_from(iterations).unwrap_or(0);
            if !ScramMechanism::ITERATIONS.contains(&iterations) {
                return Err(Error::UnacceptableCredential(format!(
                    "{iterations} iterations: {} takes 4096 to 16384",
                    mechanism.name()
                )));
            }
            if salt.is_empty() || salted_password.len() != mechanism.digest_bytes() {
                return Err(Error::UnacceptableCredential(format!(
                    "a {} credential needs a salt and a salted password of {} bytes",
                    mechanism.name(),
                    mechanism.digest_bytes()
                )));
            }
            let credential = ScramCredential::derive(mechanism, &salted_password, &salt, iterations);
            Ok(Command::UpsertScramCredential { user, mechanism, credential })
        }
        ScramAlteration::Delete { user, .. } => {
            if !state.users.get(&user).is_some_and(|by| by.contains_key(&mechanism)) {
                return Err(Error::ResourceNotFound(format!("user {user:?} has no {} credential", mechanism.name())));
            }
            Ok(Command::DeleteScramCredential { user, mechanism })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn upsert(user: &str, mechanism: i8, iterations: i32) -> ScramAlteration {
        let bytes = if mechanism == 2 { 64 } else { 32 };
        ScramAlteration::Upsert {
            user: user.into(),
            mechanism,
            iterations,
            salt: Bytes::from_static(b"salt"),
            salted_password: Bytes::from(vec![7; bytes]),
        }
    }

    fn codes(planned: &[(String, Result<Vec<Command>, Error>)]) -> Vec<(&str, Result<usize, String>)> {
        planned
            .iter()
            .map(|(user, outcome)| (user.as_str(), outcome.as_ref().map(Vec::len).map_err(|e| format!("{e:?}"))))
            .collect()
    }

    #[test]
    fn each_user_is_planned_whole_or_refused_with_kafkas_reason() {
        let mut state = MetadataState::default();
        let planned = plan(
            &state,
            vec![
                upsert("alice", 1, 4096),
                upsert("alice", 2, 8192),
                upsert("bob", 1, 100),
                upsert("carol", 3, 4096),
                upsert("dave", 1, 4096),
                ScramAlteration::Delete { user: "dave".into(), mechanism: 1 },
                ScramAlteration::Delete { user: "erin".into(), mechanism: 2 },
            ],
        );
        let outcomes = codes(&planned);
        assert_eq!(outcomes[0], ("alice", Ok(2)));
        assert!(outcomes[1].0 == "bob" && outcomes[1].1.as_ref().unwrap_err().starts_with("UnacceptableCredential"));
        assert!(outcomes[2].1.as_ref().unwrap_err().starts_with("UnsupportedSaslMechanism"), "{outcomes:?}");
        assert!(outcomes[3].1.as_ref().unwrap_err().starts_with("DuplicateResource"), "{outcomes:?}");
        assert!(outcomes[4].1.as_ref().unwrap_err().starts_with("ResourceNotFound"), "{outcomes:?}");
        for (_, outcome) in planned {
            for command in outcome.unwrap_or_default() {
                state.apply(&command);
            }
        }
        let described = describe(&state, None);
        assert_eq!(described.len(), 1);
        assert_eq!(
            described[0].1.as_ref().unwrap(),
            &vec![(ScramMechanism::Sha256, 4096), (ScramMechanism::Sha512, 8192)]
        );
        let many: Vec<ScramAlteration> =
            (0..=ALTERATIONS_MAX).map(|i| upsert(&format!("u{}", i % 3), 1, 4096)).collect();
        let refused = plan(&state, many);
        assert_eq!(refused.len(), 3);
        assert!(refused.iter().all(|(_, outcome)| matches!(outcome, Err(Error::InvalidRequest(_)))));
        let asked = describe(&state, Some(vec!["alice".into(), "zed".into(), "alice".into()]));
        assert!(matches!(asked[0].1, Err(Error::DuplicateResource(_))), "{asked:?}");
        assert!(matches!(asked[1].1, Err(Error::ResourceNotFound(_))), "{asked:?}");
        assert_eq!(asked.len(), 2);
    }
}
