//! InitProducerId on the Kafka listener, for the idempotent producer: the service's
//! producer ids (`service::producer_ids`, shared with the native protocol).
//! Transactional ids are refused (COORDINATOR_NOT_AVAILABLE) until transactions are
//! served.

use super::errors::kafka_error;
use crate::service::producer_ids;
use crate::shard::Shard;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;
use std::rc::Rc;

pub async fn init_producer_id(
    shard: &Rc<Shard>,
    ctx: &crate::service::RequestContext,
    request: &InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    if request.transactional_id.is_some() {
        response.error_code = ResponseError::CoordinatorNotAvailable.code();
        return response;
    }
    // The id and epoch a producer names (KIP-360) do not matter without a
    // transactional id: it gets a fresh id, as from Kafka.
    match producer_ids::init_producer_id(shard, ctx).await {
        Ok((id, epoch)) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = epoch;
        }
        Err(error) => response.error_code = kafka_error(&error).code(),
    }
    response
}
