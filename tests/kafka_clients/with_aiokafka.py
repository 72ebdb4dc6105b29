"""aiokafka, unchanged, driven by tests/kafka_matrix.rs: `with_aiokafka.py MODE ...`, the
modes of with_kafka_python.py (member, idempotent, admin, cross) with what aiokafka's
API has (its admin client has no OffsetDelete, DescribeProducers or newest-timestamp
lookup)."""

import asyncio
import json
import signal
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.admin.records_to_delete import RecordsToDelete
from aiokafka.errors import KafkaError


def say(**what):
    print(json.dumps(what), flush=True)


async def member(bootstrap, group, topic, strategy):
    from aiokafka.coordinator.assignors.range import RangePartitionAssignor
    from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    assignor = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}[strategy]
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                                enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=500,
                                partition_assignment_strategy=(assignor,), metadata_max_age_ms=1000)
    await consumer.start()
    reported = None
    while not stopping.is_set():
        batches = await consumer.getmany(timeout_ms=200, max_records=50)
        assigned = sorted(tp.partition for tp in consumer.assignment())
        if assigned != reported:
            say(assigned=assigned)
            reported = assigned
        for tp, messages in batches.items():
            for m in messages:
                say(record=[m.partition, m.offset, m.key.decode(), m.value.decode()])
                try:
                    await consumer.commit({tp: m.offset + 1})
                except KafkaError as error:
                    say(error=str(error))
                    if tp in consumer.assignment():
                        consumer.seek(tp, m.offset)
                    break
    await consumer.stop()
    say(closed=True)


async def idempotent(bootstrap, topic, count):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=5,
                                request_timeout_ms=120000, retry_backoff_ms=200)
    await producer.start()
    pending, delivered, errors = [], 0, []
    for i in range(count):
        pending.append(await producer.send(topic, value=f"value-{i}".encode(), partition=0))
        if i % 50 == 49:
            await asyncio.sleep(0.02)
    for future in pending:
        try:
            await future
            delivered += 1
        except KafkaError as error:
            errors.append(str(error))
    await producer.stop()
    say(delivered=delivered, errors=errors[:10])


def error_codes(response):
    """The error code of each topic in a CreateTopics, DeleteTopics or CreatePartitions
    response."""
    topics = getattr(response, "topic_errors", None) or getattr(response, "topic_error_codes", None) or []
    return [topic[1] for topic in topics]


async def code(call):
    try:
        response = await call
    except KafkaError as error:
        return error.errno
    codes = error_codes(response)
    return codes[0] if codes else 0


async def admin(bootstrap, topic, group):
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await client.start()
    out = {}

    async def configs():
        described = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        return {entry[0]: entry[1] for resource in described for r in resource.resources for entry in r[4]}

    out["created"] = await code(client.create_topics([NewTopic(topic, 3, 1, topic_configs={"retention.ms": "3600000"})]))
    out["again"] = await code(client.create_topics([NewTopic(topic, 3, 1)]))
    out["replicated"] = await code(client.create_topics([NewTopic(topic + "-replicated", 1, 3)]))
    out["created_configs"] = await configs()
    altered = await client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": "7200000"})])
    out["altered"] = altered[0].resources[0][0]
    out["grown"] = await code(client.create_partitions({topic: NewPartitions(6)}))
    out["shrunk"] = await code(client.create_partitions({topic: NewPartitions(2)}))
    out["configs"] = await configs()
    described = await client.describe_topics([topic])
    out["partitions"] = len(described[0]["partitions"])

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    for i in range(10):
        await producer.send_and_wait(topic, value=f"r{i}".encode(), partition=0, timestamp_ms=1_000 + (i * 7) % 10)
    await producer.stop()
    tp = TopicPartition(topic, 0)
    deleted = await client.delete_records({tp: RecordsToDelete(before_offset=4)})
    out["low_watermark"] = deleted[tp]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    out["earliest"] = (await consumer.beginning_offsets([tp]))[tp]
    found = (await consumer.offsets_for_times({tp: 1_008}))[tp]
    out["at_1008"] = [found.offset, found.timestamp]
    await consumer.stop()

    out["deleted"] = await code(client.delete_topics([topic]))
    out["deleted_again"] = await code(client.delete_topics([topic]))
    out["listed"] = topic in await client.list_topics()
    await client.close()
    say(**out)


async def cross(bootstrap, source, target, count):
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    tp = TopicPartition(source, 0)
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    read = []
    while len(read) < count:
        batches = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
        for messages in batches.values():
            read.extend(messages)
    await consumer.stop()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    for m in read:
        await producer.send_and_wait(target, key=m.key, value=m.value, partition=0, timestamp_ms=m.timestamp,
                                     headers=list(m.headers))
    await producer.stop()
    hexed = lambda b: None if b is None else b.hex()
    say(read=[[hexed(m.key), hexed(m.value), [[k, hexed(v)] for k, v in m.headers], m.timestamp] for m in read])


mode, args = sys.argv[1], sys.argv[2:]
if mode == "member":
    asyncio.run(member(*args))
elif mode == "idempotent":
    asyncio.run(idempotent(args[0], args[1], int(args[2])))
elif mode == "admin":
    asyncio.run(admin(*args))
elif mode == "cross":
    asyncio.run(cross(args[0], args[1], args[2], int(args[3])))
else:
    sys.exit(f"unknown mode {mode}")
