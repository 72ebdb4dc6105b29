"""confluent-kafka's own producer and consumer against a broker, as a user runs them:
`confluent_kafka_perf.py BOOTSTRAP TOPIC RECORDS RECORD_BYTES`. Produces RECORDS
records of RECORD_BYTES (acks=1, lz4 off, librdkafka's batching: linger 5 ms,
batch.size 1 MiB), then consumes them back from the start with a group. Prints one
JSON object: records per second and MB per second each way. The records go through
Python's calls into librdkafka, so the figures bound what a Python service sees, not
what the broker can take (`strand-bench run --protocol kafka` measures that)."""

import json
import sys
import time

from confluent_kafka import Consumer, Producer

bootstrap, topic, records, record_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
value = b"x" * record_bytes
producer = Producer(
    {
        "bootstrap.servers": bootstrap,
        "acks": 1,
        "linger.ms": 5,
        "batch.size": 1 << 20,
        "queue.buffering.max.kbytes": 1 << 20,
        "queue.buffering.max.messages": 1_000_000,
    }
)
failed = []
started = time.perf_counter()
for i in range(records):
    while True:
        try:
            producer.produce(topic, value, partition=0, on_delivery=lambda e, m: e and failed.append(str(e)))
            break
        except BufferError:
            producer.poll(0.01)
    if i % 10_000 == 0:
        producer.poll(0)
producer.flush(120)
produce_s = time.perf_counter() - started
assert not failed, failed[:3]

consumer = Consumer(
    {
        "bootstrap.servers": bootstrap,
        "group.id": f"perf-{time.time_ns()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "fetch.max.bytes": 52_428_800,
    }
)
consumer.subscribe([topic])
consumed = 0
started = None
deadline = time.time() + 300
while consumed < records and time.time() < deadline:
    batch = consumer.consume(num_messages=10_000, timeout=1.0)
    if batch and started is None:
        started = time.perf_counter()
    consumed += sum(1 for m in batch if m.error() is None)
consume_s = time.perf_counter() - started
consumer.close()
mb = records * record_bytes / 1e6
print(json.dumps({
    "records": records, "record_bytes": record_bytes,
    "produce_records_per_s": round(records / produce_s), "produce_mb_per_s": round(mb / produce_s, 1),
    "consumed": consumed,
    "consume_records_per_s": round(consumed / consume_s), "consume_mb_per_s": round(consumed * record_bytes / 1e6 / consume_s, 1),
}))
