//! InitProducerId on the Kafka listener, for the idempotent producer: the service's
//! producer ids (`service::producer_ids`, shared with the native protocol).
//! Transactional ids are refused (COORDINATOR_NOT_AVAILABLE) until transactions are
//! served.

use crate::service::producer_ids::{self, ProducerIds};
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

pub fn init_producer_id(ids: &ProducerIds, request: &InitProducerIdRequest) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    if request.transactional_id.is_some() {
        response.error_code = ResponseError::CoordinatorNotAvailable.code();
        response.producer_id = ProducerId(-1);
        response.producer_epoch = -1;
        return response;
    }
    // The id and epoch a producer names (KIP-360) do not matter without a
    // transactional id: it gets a fresh id, as from Kafka.
    let (id, epoch) = producer_ids::init_producer_id(ids);
    response.producer_id = ProducerId(id);
    response.producer_epoch = epoch;
    response
}
