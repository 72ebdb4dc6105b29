"""An idempotent producer (confluent-kafka, enable.idempotence) sending COUNT records
to partition 0 at about 2,500 a second, so a test can restart the broker in the
middle: `idempotent.py BOOTSTRAP TOPIC COUNT`. Prints one JSON object once every
record is delivered or has failed: how many were delivered and the errors."""

import sys
import time

from confluent_kafka import Producer
from delivery import Deliveries

bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
producer = Producer(
    {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 120000,
        "reconnect.backoff.max.ms": 500,
    }
)
deliveries = Deliveries()

for i in range(count):
    while True:
        try:
            producer.produce(topic, value=f"value-{i}", partition=0, on_delivery=deliveries.done)
            break
        except BufferError:
            producer.poll(0.1)
    producer.poll(0)
    if i % 50 == 49:
        time.sleep(0.02)
deliveries.report(producer, 120)
