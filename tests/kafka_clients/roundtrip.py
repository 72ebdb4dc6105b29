"""A round trip with a pure-Python Kafka client, driven by tests/kafka_clients.rs:
`roundtrip.py CLIENT BOOTSTRAP TOPIC GROUP` with CLIENT `kafka-python` or `aiokafka`.
Produces 2,000 keyed records with each codec the client has (none, gzip, snappy,
lz4, zstd; kafka-python's producer is idempotent by default), then consumes them in
a group and commits. Prints one JSON object: records produced, records consumed as
[partition, offset, key, value], and the committed offsets."""

import asyncio
import json
import sys

client, bootstrap, topic, group = sys.argv[1:5]
CODECS = [None, "gzip", "snappy", "lz4", "zstd"]
PER_CODEC = 2000
TOTAL = PER_CODEC * len(CODECS)


def records():
    for c, codec in enumerate(CODECS):
        for i in range(c * PER_CODEC, (c + 1) * PER_CODEC):
            yield codec, f"key-{i % 97}".encode(), f"value-{i}".encode()


def kafka_python():
    from kafka import KafkaConsumer, KafkaProducer

    produced = 0
    for codec in CODECS:
        producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, acks="all", linger_ms=5)
        futures = [producer.send(topic, key=k, value=v) for c, k, v in records() if c == codec]
        producer.flush(60)
        produced += sum(1 for f in futures if f.get(timeout=60))
        producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=20000)
    consumed = []
    for message in consumer:
        consumed.append([message.partition, message.offset, message.key.decode(), message.value.decode()])
        if len(consumed) == TOTAL:
            break
    consumer.commit()
    committed = {tp.partition: consumer.committed(tp) for tp in consumer.assignment()}
    consumer.close()
    return produced, consumed, committed


async def aiokafka():
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    produced = 0
    for codec in CODECS:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, acks="all", linger_ms=5)
        await producer.start()
        try:
            sent = [await producer.send(topic, key=k, value=v) for c, k, v in records() if c == codec]
            produced += len([await s for s in sent])
        finally:
            await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    consumed = []
    try:
        while len(consumed) < TOTAL:
            batches = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
            for messages in batches.values():
                for m in messages:
                    consumed.append([m.partition, m.offset, m.key.decode(), m.value.decode()])
        await consumer.commit()
        committed = {tp.partition: await consumer.committed(tp) for tp in consumer.assignment()}
    finally:
        await consumer.stop()
    return produced, consumed, committed


if client == "kafka-python":
    produced, consumed, committed = kafka_python()
else:
    produced, consumed, committed = asyncio.run(aiokafka())
print(json.dumps({"produced": produced, "consumed": consumed, "committed": committed}), flush=True)
