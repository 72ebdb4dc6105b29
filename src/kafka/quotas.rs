//! DescribeClientQuotas and AlterClientQuotas (KIP-546): entities of `user` and
//! `client-id` components (a null name is the default), keys `producer_byte_rate`,
//! `consumer_byte_rate` and `request_percentage`, around `service::quotas`.

use super::errors::{client_message, kafka_error};
use super::Kafka;
use crate::metadata::quota::{EntityName, QuotaEntity, QuotaKey, QuotaValue};
use crate::service::quotas::{self, ComponentMatch, QuotaChanges};
use crate::service::{Error, RequestContext};
use kafka_protocol::messages::{
    alter_client_quotas_response, describe_client_quotas_response, AlterClientQuotasRequest, AlterClientQuotasResponse,
    DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;

const USER: &str = "user";
const CLIENT_ID: &str = "client-id";

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn refusal(error: &Error) -> (i16, Option<StrBytes>) {
    (kafka_error(error).code(), client_message(error).map(|m| text(&m)))
}

/// An entity from its components: at most one user and one client id.
fn entity_of(components: Vec<(String, Option<String>)>) -> Result<QuotaEntity, Error> {
    let mut entity = QuotaEntity { user: None, client_id: None };
    for (kind, name) in components {
        let name = name.map_or(EntityName::Default, EntityName::Named);
        let slot = match kind.as_str() {
            USER => &mut entity.user,
            CLIENT_ID => &mut entity.client_id,
            other => return Err(Error::InvalidRequest(format!("entity type {other:?}: only user and client-id"))),
        };
        if slot.replace(name).is_some() {
            return Err(Error::InvalidRequest(format!("entity type {kind:?} given twice")));
        }
    }
    Ok(entity)
}

/// One entry's changes.
fn changes_of(ops: Vec<(String, f64, bool)>) -> Result<QuotaChanges, Error> {
    ops.into_iter()
        .map(|(key, value, remove)| {
            let parsed =
                QuotaKey::parse(&key).ok_or_else(|| Error::InvalidRequest(format!("unknown quota key {key:?}")))?;
            if remove {
                return Ok((parsed, None));
            }
            QuotaValue::checked(parsed, value).map(|v| (parsed, Some(v))).map_err(Error::InvalidRequest)
        })
        .collect()
}

fn components_of(entity: &QuotaEntity) -> Vec<(&'static str, Option<String>)> {
    let name = |component: &EntityName| match component {
        EntityName::Default => None,
        EntityName::Named(name) => Some(name.clone()),
    };
    let mut out = Vec::new();
    if let Some(user) = &entity.user {
        out.push((USER, name(user)));
    }
    if let Some(client_id) = &entity.client_id {
        out.push((CLIENT_ID, name(client_id)));
    }
    out
}

pub async fn alter(
    kafka: &Kafka,
    ctx: &RequestContext,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let asked: Vec<_> = request.entries.iter().map(|e| e.entity.clone()).collect();
    let parsed: Vec<Result<(QuotaEntity, QuotaChanges), Error>> = request
        .entries
        .into_iter()
        .map(|entry| {
            let entity = entity_of(
                entry
                    .entity
                    .into_iter()
                    .map(|c| (c.entity_type.to_string(), c.entity_name.map(|n| n.to_string())))
                    .collect(),
            )?;
            let changes =
                changes_of(entry.ops.into_iter().map(|op| (op.key.to_string(), op.value, op.remove)).collect())?;
            Ok((entity, changes))
        })
        .collect();
    let valid: Vec<(QuotaEntity, QuotaChanges)> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let mut outcomes = quotas::alter(&kafka.shard, ctx, valid, request.validate_only).await.into_iter();
    let mut response = AlterClientQuotasResponse::default();
    response.entries = parsed
        .into_iter()
        .zip(asked)
        .map(|(parsed, asked)| {
            let mut entry = alter_client_quotas_response::EntryData::default();
            entry.entity = asked
                .into_iter()
                .map(|c| {
                    let mut entity = alter_client_quotas_response::EntityData::default();
                    (entity.entity_type, entity.entity_name) = (c.entity_type, c.entity_name);
                    entity
                })
                .collect();
            if let Err(error) = parsed.and_then(|_| outcomes.next().unwrap_or(Err(Error::ShuttingDown))) {
                (entry.error_code, entry.error_message) = refusal(&error);
            }
            entry
        })
        .collect();
    response
}

pub fn describe(
    kafka: &Kafka,
    ctx: &RequestContext,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let mut response = DescribeClientQuotasResponse::default();
    let components: Result<Vec<(bool, ComponentMatch)>, Error> = request
        .components
        .into_iter()
        .map(|c| {
            let user = match c.entity_type.as_str() {
                USER => true,
                CLIENT_ID => false,
                other => return Err(Error::InvalidRequest(format!("entity type {other:?}: only user and client-id"))),
            };
            let wanted = match (c.match_type, c._match) {
                (0, Some(name)) => ComponentMatch::Exact(name.to_string()),
                (1, _) => ComponentMatch::Default,
                (2, _) => ComponentMatch::Any,
                _ => return Err(Error::InvalidRequest("a match type is 0 (exact, with a name), 1 or 2".into())),
            };
            Ok((user, wanted))
        })
        .collect();
    match components.and_then(|components| quotas::describe(&kafka.shard, ctx, &components, request.strict)) {
        Err(error) => (response.error_code, response.error_message) = refusal(&error),
        Ok(found) => {
            response.entries = Some(
                found
                    .into_iter()
                    .map(|(entity, values)| {
                        let mut entry = describe_client_quotas_response::EntryData::default();
                        entry.entity = components_of(&entity)
                            .into_iter()
                            .map(|(kind, name)| {
                                let mut data = describe_client_quotas_response::EntityData::default();
                                (data.entity_type, data.entity_name) = (text(kind), name.map(|n| text(&n)));
                                data
                            })
                            .collect();
                        entry.values = values
                            .into_iter()
                            .map(|(key, value)| {
                                let mut data = describe_client_quotas_response::ValueData::default();
                                (data.key, data.value) = (text(key.name()), value);
                                data
                            })
                            .collect();
                        entry
                    })
                    .collect(),
            );
        }
    }
    response
}
