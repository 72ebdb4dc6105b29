//! Criterion micro-benchmarks of what one SASL authentication costs the broker, on one
//! core: SCRAM's server side (parse the client's first message, make the server-first
//! answer, check the proof, sign the final answer: four HMACs and a hash), the client's
//! side of the same exchange (its PBKDF2 of 4,096 iterations dominates: the client pays
//! for SCRAM, not the broker), and PLAIN's check (the broker's PBKDF2, on a blocking
//! thread in the broker). The bound is the CPU: hashing.

use criterion::{criterion_group, criterion_main, Criterion};
use strand::auth::scram::{ScramClient, ScramExchange};
use strand::metadata::{ScramCredential, ScramMechanism};

const ITERATIONS: u32 = 4096;

fn credential(mechanism: ScramMechanism) -> ScramCredential {
    let salt = b"0123456789abcdef";
    ScramCredential::derive(mechanism, &mechanism.salted_password(b"pencil", salt, ITERATIONS), salt, ITERATIONS)
}

fn scram(c: &mut Criterion) {
    let mut group = c.benchmark_group("sasl");
    for mechanism in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
        let stored = credential(mechanism);
        // One exchange's client messages, made once: the server's work is measured alone.
        let (client, first) = ScramClient::start(mechanism, "alice", "pencil");
        group.bench_function(format!("{}/server", mechanism.name()), |b| {
            b.iter(|| {
                let (server, server_first) =
                    ScramExchange::start(mechanism, &first, |_| Some(stored.clone()), b"secret").unwrap();
                // The final message depends on the server's nonce: the client's HMACs
                // over the salted password (computed once, below) are cheap.
                let (last, _) = respond_fast(&client, mechanism, &server_first);
                server.finish(&last).unwrap()
            });
        });
        group.bench_function(format!("{}/client", mechanism.name()), |b| {
            b.iter(|| {
                let (client, first) = ScramClient::start(mechanism, "alice", "pencil");
                let (server, server_first) =
                    ScramExchange::start(mechanism, &first, |_| Some(stored.clone()), b"secret").unwrap();
                let (last, _) = client.respond(&server_first).unwrap();
                server.finish(&last).unwrap()
            });
        });
    }
    let stored = credential(ScramMechanism::Sha512);
    group.bench_function("PLAIN/server", |b| {
        b.iter(|| {
            let salted = ScramMechanism::Sha512.salted_password(b"pencil", &stored.salt, ITERATIONS);
            let derived = ScramCredential::derive(ScramMechanism::Sha512, &salted, &stored.salt, ITERATIONS);
            assert_eq!(derived.stored_key, stored.stored_key);
        });
    });
    group.finish();
}

/// The client-final message for `server_first`, from the salted password computed
/// once per mechanism (what a client caching it, as Kafka's Java client does not,
/// would send): so the server's side is timed without the client's PBKDF2.
fn respond_fast(client: &ScramClient, mechanism: ScramMechanism, server_first: &[u8]) -> (Vec<u8>, Vec<u8>) {
    thread_local! {
        static SALTED: std::cell::RefCell<std::collections::HashMap<&'static str, Vec<u8>>> = Default::default();
    }
    let salted = SALTED.with(|cache| {
        cache
            .borrow_mut()
            .entry(mechanism.name())
            .or_insert_with(|| mechanism.salted_password(b"pencil", b"0123456789abcdef", ITERATIONS))
            .clone()
    });
    client.respond_with_salted(server_first, &salted).unwrap()
}

criterion_group!(benches, scram);
criterion_main!(benches);
