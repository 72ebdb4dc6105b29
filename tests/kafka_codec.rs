//! Hostile request frames for every Kafka api key and version the codec knows
//! (`strand::kafka::codec` over the patched `vendor/kafka-protocol`): huge counts and
//! lengths, truncated bodies, absurd tagged fields and random bytes. None may panic,
//! and none may make the decoder hold more than a small multiple of the frame's size
//! (measured by a counting allocator on this test's own thread).

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Message};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Bytes a decoded request may hold per byte of its frame, plus a fixed allowance
/// (the decoder's first small vectors). Measured worst case: see the test's output.
const BYTES_PER_FRAME_BYTE_MAX: usize = 48;
const FIXED_BYTES_MAX: usize = 16 * 1024;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: forwards to the system allocator; the counters are thread-local cells
// with const initializers, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|live| {
            live.set(live.get() + layout.size());
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
        });
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(layout.size())));
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak bytes allocated, above what was live before, while `work` ran.
fn peak_during(work: impl FnOnce()) -> usize {
    let before = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(before));
    work();
    PEAK.with(Cell::get) - before
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Random(u64);
impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Bodies built to hurt: counts and lengths at their maximum, counts that each
/// promise one more element than the bytes hold, long runs of one-byte elements
/// (the most elements a frame can carry), tagged-field floods, and random bytes.
fn hostile_bodies(random: &mut Random) -> Vec<Vec<u8>> {
    let mut bodies = vec![Vec::new(), vec![0xff; 64], vec![0x7f; 4096], vec![0xff; 4096], vec![0x00; 4096]];
    for byte in [0x01u8, 0x02, 0x03, 0x80] {
        bodies.push(vec![byte; 4096]);
    }
    // A count of 2^31 - 1 at every offset of a small prefix.
    for at in 0..24 {
        let mut body = vec![0u8; 64];
        body[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        bodies.push(body);
    }
    // Compact counts and varint lengths of 2^32 - 1 (five-byte varints).
    for at in 0..16 {
        let mut body = vec![0u8; 64];
        body[at..at + 5].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        bodies.push(body);
    }
    // Tagged fields: a huge count of zero-length tags.
    let mut tags = vec![0xff, 0xff, 0xff, 0xff, 0x0f];
    for tag in 0..2000u32 {
        tags.extend_from_slice(&[(tag % 100) as u8 + 10, 0]);
    }
    bodies.push(tags);
    for _ in 0..64 {
        let len = (random.next() % 4096) as usize;
        bodies.push((0..len).map(|_| random.next() as u8).collect());
    }
    bodies
}

fn check<R: Decodable + Message>(name: &str, bodies: &[Vec<u8>], worst: &mut (f64, String)) {
    for version in R::VERSIONS.min..=R::VERSIONS.max {
        for body in bodies {
            let frame = Bytes::copy_from_slice(body);
            let peak = peak_during(|| {
                let mut buf = frame.clone();
                let decoded = R::decode(&mut buf, version);
                drop(decoded);
            });
            let bound = BYTES_PER_FRAME_BYTE_MAX * body.len() + FIXED_BYTES_MAX;
            assert!(
                peak <= bound,
                "{name} v{version}: a {}-byte body made the decoder hold {peak} bytes (bound {bound})",
                body.len()
            );
            let ratio = peak as f64 / body.len().max(1) as f64;
            if body.len() >= 1024 && ratio > worst.0 {
                *worst = (ratio, format!("{name} v{version}, {} bytes", body.len()));
            }
        }
    }
}

macro_rules! check_all {
    ($bodies:expr, $worst:expr, $($request:ident),* $(,)?) => {
        $( check::<$request>(stringify!($request), $bodies, $worst); )*
    };
}

#[test]
fn hostile_frames_for_every_api_key_neither_panic_nor_allocate_beyond_a_small_multiple() {
    let mut random = Random(0x5eed_cafe_f00d_d00d);
    let bodies = hostile_bodies(&mut random);
    let mut worst = (0.0, String::new());
    check_all!(
        &bodies,
        &mut worst,
        ProduceRequest,
        FetchRequest,
        ListOffsetsRequest,
        MetadataRequest,
        OffsetCommitRequest,
        OffsetFetchRequest,
        FindCoordinatorRequest,
        JoinGroupRequest,
        HeartbeatRequest,
        LeaveGroupRequest,
        SyncGroupRequest,
        DescribeGroupsRequest,
        ListGroupsRequest,
        SaslHandshakeRequest,
        ApiVersionsRequest,
        CreateTopicsRequest,
        DeleteTopicsRequest,
        DeleteRecordsRequest,
        InitProducerIdRequest,
        OffsetForLeaderEpochRequest,
        AddPartitionsToTxnRequest,
        AddOffsetsToTxnRequest,
        EndTxnRequest,
        WriteTxnMarkersRequest,
        TxnOffsetCommitRequest,
        DescribeAclsRequest,
        CreateAclsRequest,
        DeleteAclsRequest,
        DescribeConfigsRequest,
        AlterConfigsRequest,
        AlterReplicaLogDirsRequest,
        DescribeLogDirsRequest,
        SaslAuthenticateRequest,
        CreatePartitionsRequest,
        CreateDelegationTokenRequest,
        RenewDelegationTokenRequest,
        ExpireDelegationTokenRequest,
        DescribeDelegationTokenRequest,
        DeleteGroupsRequest,
        ElectLeadersRequest,
        IncrementalAlterConfigsRequest,
        AlterPartitionReassignmentsRequest,
        ListPartitionReassignmentsRequest,
        OffsetDeleteRequest,
        DescribeClientQuotasRequest,
        AlterClientQuotasRequest,
        DescribeUserScramCredentialsRequest,
        AlterUserScramCredentialsRequest,
        VoteRequest,
        BeginQuorumEpochRequest,
        EndQuorumEpochRequest,
        DescribeQuorumRequest,
        AlterPartitionRequest,
        UpdateFeaturesRequest,
        EnvelopeRequest,
        FetchSnapshotRequest,
        DescribeClusterRequest,
        DescribeProducersRequest,
        BrokerRegistrationRequest,
        BrokerHeartbeatRequest,
        UnregisterBrokerRequest,
        DescribeTransactionsRequest,
        ListTransactionsRequest,
        AllocateProducerIdsRequest,
        ConsumerGroupHeartbeatRequest,
        ConsumerGroupDescribeRequest,
        ControllerRegistrationRequest,
        GetTelemetrySubscriptionsRequest,
        PushTelemetryRequest,
        AssignReplicasToDirsRequest,
        ListConfigResourcesRequest,
        DescribeTopicPartitionsRequest,
        ShareGroupHeartbeatRequest,
        ShareGroupDescribeRequest,
        ShareFetchRequest,
        ShareAcknowledgeRequest,
        AddRaftVoterRequest,
        RemoveRaftVoterRequest,
        UpdateRaftVoterRequest,
        InitializeShareGroupStateRequest,
        ReadShareGroupStateRequest,
        WriteShareGroupStateRequest,
        DeleteShareGroupStateRequest,
        ReadShareGroupStateSummaryRequest,
        DescribeShareGroupOffsetsRequest,
        AlterShareGroupOffsetsRequest,
        DeleteShareGroupOffsetsRequest,
    );
    println!("worst case over bodies of 1 KiB or more: {:.1} bytes held per frame byte ({})", worst.0, worst.1);
}
