"""confluent-kafka through a leader's death, driven by tests/cluster.rs:
`failover.py BOOTSTRAP TOPIC GROUP SECONDS`. An idempotent producer with acks=all
sends unique values for SECONDS (the test kills a leader meanwhile), then a group
consumer reads the topic from the start. Prints one JSON object: the acknowledged
records [partition, offset, value], the consumed ones, the values whose delivery
failed, and every error the client reported, with whether it called it retriable."""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer

bootstrap, topic, group, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
acked, failed, errors = [], [], []


def report(error):
    errors.append({"error": str(error), "retriable": error.retriable(), "fatal": error.fatal()})


def delivered(error, message):
    if error is not None:
        failed.append(message.value().decode())
        report(error)
    else:
        acked.append([message.partition(), message.offset(), message.value().decode()])


producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 2,
                     "message.timeout.ms": 60000, "error_cb": report})
start = time.time()
i = 0
while time.time() - start < seconds:
    while True:
        try:
            producer.produce(topic, key=f"key-{i}".encode(), value=f"value-{i}".encode(), on_delivery=delivered)
            break
        except BufferError:
            # The client's queue is full while a leader is away: wait for room.
            producer.poll(0.1)
    producer.poll(0)
    i += 1
    if i % 50 == 0:
        time.sleep(0.01)
producer.flush(90)

consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False, "error_cb": report})
consumer.subscribe([topic])
consumed = []
deadline = time.time() + 60
while len(consumed) < len(acked) and time.time() < deadline:
    message = consumer.poll(0.5)
    if message is None:
        continue
    if message.error():
        if message.error().code() != KafkaError._PARTITION_EOF:
            report(message.error())
        continue
    consumed.append([message.partition(), message.offset(), message.value().decode()])
consumer.close()
print(json.dumps({"sent": i, "acked": acked, "consumed": consumed, "failed": failed, "errors": errors}))
