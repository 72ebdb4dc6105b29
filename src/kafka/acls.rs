//! CreateAcls, DescribeAcls and DeleteAcls: Kafka's numbers for resource types,
//! pattern types, operations and permissions turned into `metadata::acl`'s types and
//! back, around `service::acls`. A number with no meaning here (UNKNOWN, a delegation
//! token or user resource) is INVALID_REQUEST for that entry or filter.

use super::errors::{client_message, kafka_error};
use super::Kafka;
use crate::metadata::acl::{AclBinding, AclFilter, AclOperation, PatternType, Permission, ResourceType};
use crate::service::{acls, Error, RequestContext};
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest,
    DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

/// Kafka's ANY, in every one of the four enumerations.
const ANY: i8 = 1;
/// Kafka's MATCH pattern type (filters only).
const MATCH: i8 = 2;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn refusal(error: &Error) -> (i16, Option<StrBytes>) {
    (kafka_error(error).code(), client_message(error).map(|m| text(&m)))
}

fn invalid(what: &str, code: i8) -> Error {
    Error::InvalidRequest(format!("{what} {code} is not served"))
}

fn pattern_of(code: i8) -> Result<PatternType, Error> {
    match code {
        3 => Ok(PatternType::Literal),
        4 => Ok(PatternType::Prefixed),
        other => Err(invalid("pattern type", other)),
    }
}

pub async fn create(kafka: &Kafka, ctx: &RequestContext, request: CreateAclsRequest) -> CreateAclsResponse {
    let parsed: Vec<Result<AclBinding, Error>> = request
        .creations
        .into_iter()
        .map(|c| {
            Ok(AclBinding {
                resource_type: ResourceType::from_kafka(c.resource_type)
                    .ok_or(invalid("resource type", c.resource_type))?,
                pattern_type: pattern_of(c.resource_pattern_type)?,
                resource_name: c.resource_name.to_string(),
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: AclOperation::from_kafka(c.operation).ok_or(invalid("operation", c.operation))?,
                permission: Permission::from_kafka(c.permission_type)
                    .ok_or(invalid("permission", c.permission_type))?,
            })
        })
        .collect();
    let valid: Vec<AclBinding> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let mut created = acls::create(&kafka.shard, ctx, valid).await.into_iter();
    let mut response = CreateAclsResponse::default();
    response.results = parsed
        .into_iter()
        .map(|parsed| {
            let outcome = parsed.and_then(|_| created.next().unwrap_or(Err(Error::ShuttingDown)));
            let mut result = AclCreationResult::default();
            if let Err(error) = outcome {
                (result.error_code, result.error_message) = refusal(&error);
            }
            result
        })
        .collect();
    response
}

/// A filter from Kafka's fields.
#[allow(clippy::too_many_arguments)]
fn filter(
    resource_type: i8,
    name: Option<StrBytes>,
    pattern: i8,
    principal: Option<StrBytes>,
    host: Option<StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, Error> {
    Ok(AclFilter {
        resource_type: match resource_type {
            ANY => None,
            code => Some(ResourceType::from_kafka(code).ok_or(invalid("resource type", code))?),
        },
        pattern_type: match pattern {
            ANY | MATCH => None,
            code => Some(pattern_of(code)?),
        },
        matching: pattern == MATCH,
        resource_name: name.map(|n| n.to_string()),
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation: match operation {
            ANY => None,
            code => Some(AclOperation::from_kafka(code).ok_or(invalid("operation", code))?),
        },
        permission: match permission {
            ANY => None,
            code => Some(Permission::from_kafka(code).ok_or(invalid("permission", code))?),
        },
    })
}

pub fn describe(kafka: &Kafka, ctx: &RequestContext, request: DescribeAclsRequest) -> DescribeAclsResponse {
    let mut response = DescribeAclsResponse::default();
    let found = filter(
        request.resource_type_filter,
        request.resource_name_filter,
        request.pattern_type_filter,
        request.principal_filter,
        request.host_filter,
        request.operation,
        request.permission_type,
    )
    .and_then(|filter| acls::describe(&kafka.shard, ctx, &filter));
    let entries = match found {
        Ok(entries) => entries,
        Err(error) => {
            (response.error_code, response.error_message) = refusal(&error);
            return response;
        }
    };
    // Entries come sorted by resource: one DescribeAclsResource per resource pattern.
    for acl in entries {
        let same = response.resources.last().is_some_and(|r: &DescribeAclsResource| {
            r.resource_type == acl.resource_type.kafka()
                && r.pattern_type == acl.pattern_type.kafka()
                && r.resource_name.as_str() == acl.resource_name
        });
        if !same {
            let mut resource = DescribeAclsResource::default();
            resource.resource_type = acl.resource_type.kafka();
            resource.pattern_type = acl.pattern_type.kafka();
            resource.resource_name = text(&acl.resource_name);
            response.resources.push(resource);
        }
        let mut description = AclDescription::default();
        description.principal = text(&acl.principal);
        description.host = text(&acl.host);
        description.operation = acl.operation.kafka();
        description.permission_type = acl.permission.kafka();
        response.resources.last_mut().expect("pushed above").acls.push(description);
    }
    response
}

pub async fn delete(kafka: &Kafka, ctx: &RequestContext, request: DeleteAclsRequest) -> DeleteAclsResponse {
    let parsed: Vec<Result<AclFilter, Error>> = request
        .filters
        .into_iter()
        .map(|f| {
            filter(
                f.resource_type_filter,
                f.resource_name_filter,
                f.pattern_type_filter,
                f.principal_filter,
                f.host_filter,
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let mut deleted = acls::delete(&kafka.shard, ctx, valid).await.into_iter();
    let mut response = DeleteAclsResponse::default();
    response.filter_results = parsed
        .into_iter()
        .map(|parsed| {
            let mut result = DeleteAclsFilterResult::default();
            match parsed.and_then(|_| deleted.next().unwrap_or(Err(Error::ShuttingDown))) {
                Err(error) => (result.error_code, result.error_message) = refusal(&error),
                Ok(matches) => {
                    result.matching_acls = matches
                        .into_iter()
                        .map(|(acl, outcome)| {
                            let mut matching = DeleteAclsMatchingAcl::default();
                            if let Err(error) = outcome {
                                (matching.error_code, matching.error_message) = refusal(&error);
                            }
                            matching.resource_type = acl.resource_type.kafka();
                            matching.resource_name = text(&acl.resource_name);
                            matching.pattern_type = acl.pattern_type.kafka();
                            matching.principal = text(&acl.principal);
                            matching.host = text(&acl.host);
                            matching.operation = acl.operation.kafka();
                            matching.permission_type = acl.permission.kafka();
                            matching
                        })
                        .collect();
                }
            }
            result
        })
        .collect();
    response
}
