"""confluent-kafka against a cluster, driven by tests/cluster.rs:
`cluster.py BOOTSTRAP TOPIC GROUP COUNT`. Produces COUNT unique keyed values with
acks=all over every partition (the client finds each partition's leader), then
consumes the topic in GROUP from the start and commits. Prints one JSON object: the
acknowledged records and the consumed ones, each [partition, offset, value], and the
errors the client reported."""

import json
import sys
import time

from confluent_kafka import Consumer, Producer

bootstrap, topic, group, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
errors = []
acked = []


def delivered(error, message):
    if error is not None:
        errors.append(str(error))
    else:
        acked.append([message.partition(), message.offset(), message.value().decode()])


producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                     "error_cb": lambda e: errors.append(str(e))})
for i in range(count):
    producer.produce(topic, key=f"key-{i}".encode(), value=f"value-{i}".encode(), on_delivery=delivered)
    producer.poll(0)
producer.flush(60)

consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False, "error_cb": lambda e: errors.append(str(e))})
consumer.subscribe([topic])
consumed = []
deadline = time.time() + 60
while len(consumed) < len(acked) and time.time() < deadline:
    message = consumer.poll(0.5)
    if message is None:
        continue
    if message.error():
        errors.append(str(message.error()))
        continue
    consumed.append([message.partition(), message.offset(), message.value().decode()])
if consumed:
    consumer.commit(asynchronous=False)
consumer.close()
print(json.dumps({"acked": acked, "consumed": consumed, "errors": errors}))
