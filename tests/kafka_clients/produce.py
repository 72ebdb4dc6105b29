"""Produces keyed records with confluent-kafka (librdkafka inside), driven by
tests/kafka_clients.rs: `produce.py BOOTSTRAP TOPIC FIRST COUNT CODEC`, records
key-(i % 97) = value-i for i in FIRST..FIRST+COUNT, with Kafka's partitioner
(murmur2). Prints one JSON object: how many were delivered and the errors."""

import sys

from confluent_kafka import Producer
from delivery import Deliveries

bootstrap, topic, first, count, codec = sys.argv[1:6]
first, count = int(first), int(count)
producer = Producer(
    {
        "bootstrap.servers": bootstrap,
        "partitioner": "murmur2_random",
        "compression.type": codec,
        "linger.ms": 5,
        "acks": "all",
    }
)
deliveries = Deliveries()

for i in range(first, first + count):
    while True:
        try:
            producer.produce(topic, key=f"key-{i % 97}", value=f"value-{i}", on_delivery=deliveries.done)
            break
        except BufferError:
            producer.poll(0.1)
    producer.poll(0)
deliveries.report(producer, 60)
