//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554) on the Kafka
//! listener: users' SCRAM credentials in the metadata store (`service::users`), as
//! Kafka's AdminClient manages them. Describing shows each credential's mechanism and
//! iterations, never its keys; altering sends salted passwords, never passwords.

use super::errors::{client_message, kafka_error};
use super::Kafka;
use crate::service::admin::{self, AdminRequest};
use crate::service::types::ScramAlteration;
use crate::service::{users, Error, RequestContext};
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// The error code and message of a refusal.
fn refusal(error: &Error) -> (i16, Option<StrBytes>) {
    (kafka_error(error).code(), client_message(error).map(|m| text(&m)))
}

pub fn describe(
    kafka: &Kafka,
    ctx: &RequestContext,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let asked = request.users.map(|users| users.into_iter().map(|user| user.name.to_string()).collect());
    let mut response = DescribeUserScramCredentialsResponse::default();
    let described = match users::describe_for(&kafka.shard, ctx, asked) {
        Ok(described) => described,
        Err(error) => {
            (response.error_code, response.error_message) = refusal(&error);
            return response;
        }
    };
    response.results = described
        .into_iter()
        .map(|(user, outcome)| {
            let mut result = DescribeUserScramCredentialsResult::default();
            result.user = text(&user);
            match outcome {
                Ok(credentials) => {
                    result.credential_infos = credentials
                        .into_iter()
                        .map(|(mechanism, iterations)| {
                            let mut info = CredentialInfo::default();
                            info.mechanism = mechanism.kafka();
                            info.iterations = iterations as i32;
                            info
                        })
                        .collect();
                }
                Err(error) => (result.error_code, result.error_message) = refusal(&error),
            }
            result
        })
        .collect();
    response
}

pub async fn alter(
    kafka: &Kafka,
    ctx: &RequestContext,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let deletions = request
        .deletions
        .into_iter()
        .map(|deletion| ScramAlteration::Delete { user: deletion.name.to_string(), mechanism: deletion.mechanism });
    let upsertions = request.upsertions.into_iter().map(|upsertion| ScramAlteration::Upsert {
        user: upsertion.name.to_string(),
        mechanism: upsertion.mechanism,
        iterations: upsertion.iterations,
        salt: upsertion.salt,
        salted_password: upsertion.salted_password,
    });
    let alterations: Vec<ScramAlteration> = deletions.chain(upsertions).collect();
    let mut response = AlterUserScramCredentialsResponse::default();
    if alterations.is_empty() {
        return response;
    }
    let outcomes = admin::run(&kafka.shard, ctx, AdminRequest::AlterScramCredentials(alterations)).await;
    response.results = outcomes
        .into_iter()
        .map(|(user, outcome)| {
            let mut result = AlterUserScramCredentialsResult::default();
            result.user = text(&user);
            if let Err(error) = outcome {
                (result.error_code, result.error_message) = refusal(&error);
            }
            result
        })
        .collect();
    response
}
