//! `strand user create|delete|list`: users' SCRAM credentials, through a Kafka
//! listener's AlterUserScramCredentials and DescribeUserScramCredentials (KIP-554), as
//! `kafka-configs.sh --entity-type users` manages them. The new password comes from
//! `STRAND_NEW_PASSWORD` or `--new-password-file`, never from the command line; the
//! broker is sent only the salted password, and keeps only the keys derived from it.

use super::kafka_admin::{mechanism, KafkaAdmin, KafkaArgs};
use anyhow::{bail, Context};
use clap::Subcommand;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::path::PathBuf;
use strand::metadata::ScramMechanism;

/// Where the new user's password is read from, without `--new-password-file`.
pub const NEW_PASSWORD_ENV: &str = "STRAND_NEW_PASSWORD";

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user, or set a new password for one (one SCRAM mechanism).
    Create {
        name: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, default_value = "SCRAM-SHA-512")]
        scram: String,
        /// PBKDF2 iterations, 4096 to 16384.
        #[arg(long, default_value_t = 8192)]
        iterations: u32,
        /// A file whose first line is the new password (else STRAND_NEW_PASSWORD).
        #[arg(long)]
        new_password_file: Option<PathBuf>,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Delete a user's credentials (every mechanism, or the one given).
    Delete {
        name: String,
        #[arg(long)]
        scram: Option<String>,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// List every user and its mechanisms.
    List {
        #[command(flatten)]
        kafka: KafkaArgs,
    },
}

pub fn run(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create { name, scram, iterations, new_password_file, kafka } => {
            let mechanism = mechanism(&scram)?;
            if !ScramMechanism::ITERATIONS.contains(&iterations) {
                bail!("--iterations {iterations}: 4096 to 16384");
            }
            let password = match &new_password_file {
                Some(file) => super::kafka_admin::password(Some(file), "the new password")?,
                None => std::env::var(NEW_PASSWORD_ENV).map_err(|_| {
                    anyhow::anyhow!("the new password: set {NEW_PASSWORD_ENV} or give --new-password-file")
                })?,
            };
            if password.is_empty() {
                bail!("the new password is empty");
            }
            let mut salt = vec![0u8; 16];
            rand::Rng::fill(&mut rand::thread_rng(), &mut salt[..]);
            let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
            let mut upsertion = ScramCredentialUpsertion::default();
            upsertion.name = StrBytes::from_string(name.clone());
            upsertion.mechanism = mechanism.kafka();
            upsertion.iterations = iterations as i32;
            upsertion.salt = salt.into();
            upsertion.salted_password = salted.into();
            let mut request = AlterUserScramCredentialsRequest::default();
            request.upsertions = vec![upsertion];
            alter(&kafka, request, &name)?;
            println!("user {name}: {} credential set ({iterations} iterations)", mechanism.name());
        }
        UserCommand::Delete { name, scram, kafka } => {
            let mechanisms = match scram {
                Some(scram) => vec![mechanism(&scram)?],
                None => described(&kafka, Some(&name))?.into_iter().flat_map(|(_, m)| m).map(|(m, _)| m).collect(),
            };
            if mechanisms.is_empty() {
                bail!("no user {name:?}");
            }
            let mut request = AlterUserScramCredentialsRequest::default();
            request.deletions = mechanisms
                .iter()
                .map(|mechanism| {
                    let mut deletion = ScramCredentialDeletion::default();
                    deletion.name = StrBytes::from_string(name.clone());
                    deletion.mechanism = mechanism.kafka();
                    deletion
                })
                .collect();
            alter(&kafka, request, &name)?;
            println!("user {name}: deleted");
        }
        UserCommand::List { kafka } => {
            for (user, mechanisms) in described(&kafka, None)? {
                let listed: Vec<String> =
                    mechanisms.iter().map(|(m, i)| format!("{} ({i} iterations)", m.name())).collect();
                println!("{user}\t{}", listed.join(", "));
            }
        }
    }
    Ok(())
}

fn alter(kafka: &KafkaArgs, request: AlterUserScramCredentialsRequest, name: &str) -> anyhow::Result<()> {
    let answer: AlterUserScramCredentialsResponse = KafkaAdmin::connect(kafka)?
        .call(ApiKey::AlterUserScramCredentials, 0, &request)
        .context("AlterUserScramCredentials")?;
    for result in answer.results {
        if result.error_code != 0 {
            let message = result.error_message.map(|m| m.to_string()).unwrap_or_default();
            bail!("user {name}: refused (Kafka error {}): {message}", result.error_code);
        }
    }
    Ok(())
}

/// Each user (or `only`) and its mechanisms with their iterations.
/// A user and its mechanisms with their iterations.
type Described = (String, Vec<(ScramMechanism, i32)>);

fn described(kafka: &KafkaArgs, only: Option<&str>) -> anyhow::Result<Vec<Described>> {
    let mut request = DescribeUserScramCredentialsRequest::default();
    request.users = only.map(|name| {
        let mut user = UserName::default();
        user.name = StrBytes::from_string(name.to_string());
        vec![user]
    });
    let answer: DescribeUserScramCredentialsResponse = KafkaAdmin::connect(kafka)?
        .call(ApiKey::DescribeUserScramCredentials, 0, &request)
        .context("DescribeUserScramCredentials")?;
    if answer.error_code != 0 {
        bail!(
            "refused (Kafka error {}): {}",
            answer.error_code,
            answer.error_message.map(|m| m.to_string()).unwrap_or_default()
        );
    }
    Ok(answer
        .results
        .into_iter()
        .filter(|result| result.error_code == 0)
        .map(|result| {
            let mechanisms = result
                .credential_infos
                .into_iter()
                .filter_map(|info| ScramMechanism::from_kafka(info.mechanism).map(|m| (m, info.iterations)))
                .collect();
            (result.user.to_string(), mechanisms)
        })
        .collect())
}
