"""kafka-python, unchanged, driven by tests/kafka_matrix.rs: `with_kafka_python.py MODE ...`.

- `member BOOTSTRAP GROUP TOPIC STRATEGY`: one group member (STRATEGY range,
  roundrobin or sticky) printing member.py's events: {"assigned": [...]},
  {"record": [partition, offset, key, value]} before each synchronous commit,
  {"error": text}, {"closed": true}.
- `idempotent BOOTSTRAP TOPIC COUNT`: an idempotent producer sending COUNT records to
  partition 0 at about 2,500 a second; prints {"delivered": n, "errors": [...]}.
- `admin BOOTSTRAP TOPIC GROUP`: the admin API over a topic's life; prints what the
  broker answered, errors as Kafka's codes.
- `cross BOOTSTRAP IN OUT COUNT`: reads COUNT records of IN partition 0 and writes them
  again to OUT partition 0; prints the records read, bytes in hex.
"""

import json
import signal
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic, OffsetSpec
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata


def say(**what):
    print(json.dumps(what), flush=True)


def member(bootstrap, group, topic, strategy):
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

    assignor = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor,
                "sticky": StickyPartitionAssignor}[strategy]
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=500,
                             partition_assignment_strategy=[assignor], metadata_max_age_ms=1000)
    consumer.subscribe([topic])
    reported = None
    while not stopping:
        batches = consumer.poll(timeout_ms=200, max_records=50)
        assigned = sorted(tp.partition for tp in consumer.assignment())
        if assigned != reported:
            say(assigned=assigned)
            reported = assigned
        for tp, messages in batches.items():
            for m in messages:
                say(record=[m.partition, m.offset, m.key.decode(), m.value.decode()])
                try:
                    consumer.commit({tp: OffsetAndMetadata(m.offset + 1, "", -1)})
                except KafkaError as error:
                    # Read again from here, or by the partition's next owner.
                    say(error=str(error))
                    if tp in consumer.assignment():
                        consumer.seek(tp, m.offset)
                    break
    consumer.close()
    say(closed=True)


def idempotent(bootstrap, topic, count):
    producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=5,
                             delivery_timeout_ms=120000, reconnect_backoff_max_ms=500)
    delivered, errors = [0], []

    def done(_):
        delivered[0] += 1

    for i in range(count):
        future = producer.send(topic, value=f"value-{i}".encode(), partition=0)
        future.add_callback(done)
        future.add_errback(lambda error: errors.append(str(error)))
        if i % 50 == 49:
            time.sleep(0.02)
    producer.flush(120)
    producer.close()
    say(delivered=delivered[0], errors=errors[:10])


def code(call):
    """The Kafka error code a call ends with (0 on success)."""
    try:
        call()
        return 0
    except KafkaError as error:
        return error.errno


def admin(bootstrap, topic, group):
    client = KafkaAdminClient(bootstrap_servers=bootstrap)
    out = {}

    def configs():
        described = client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
        return {name: entry["value"] for name, entry in described["topic"][topic].items()}

    out["created"] = code(lambda: client.create_topics([NewTopic(topic, 3, 1, topic_configs={"retention.ms": "3600000"})]))
    out["again"] = code(lambda: client.create_topics([NewTopic(topic, 3, 1)]))
    out["replicated"] = code(lambda: client.create_topics([NewTopic(topic + "-replicated", 1, 3)]))
    out["created_configs"] = configs()
    out["altered"] = code(lambda: client.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "7200000"})], incremental=True))
    out["grown"] = code(lambda: client.create_partitions({topic: NewPartitions(6)}))
    out["shrunk"] = code(lambda: client.create_partitions({topic: NewPartitions(2)}))
    out["configs"] = configs()
    out["partitions"] = len(client.describe_topics([topic])[0]["partitions"])

    # Records: ten at known times, by an idempotent producer, then the first four deleted.
    producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    for i in range(10):
        producer.send(topic, value=f"r{i}".encode(), partition=0, timestamp_ms=1_000 + (i * 7) % 10)
    producer.flush(30)
    producer.close()
    tp = TopicPartition(topic, 0)
    newest = client.list_partition_offsets({tp: OffsetSpec.MAX_TIMESTAMP})[tp]
    out["max_timestamp"] = [newest.offset, newest.timestamp]
    states = client.describe_producers([tp])[tp].active_producers
    out["producers"] = [[p.producer_epoch, p.last_sequence] for p in states]
    out["low_watermark"] = client.delete_records({tp: 4})[tp]["low_watermark"]
    out["earliest"] = client.list_partition_offsets({tp: OffsetSpec.EARLIEST})[tp].offset

    # A group's offsets on two topics, one of them then deleted (OffsetDelete).
    other = TopicPartition(topic, 1)
    client.alter_group_offsets(group, {tp: OffsetAndMetadata(6, "", -1), other: OffsetAndMetadata(0, "", -1)})
    out["offset_deleted"] = code(lambda: client.delete_group_offsets(group, [tp]))
    left = client.list_group_offsets([group])[group]
    out["offsets_left"] = {str(p.partition): o.offset for p, o in left.items()}

    out["deleted"] = code(lambda: client.delete_topics([topic]))
    out["deleted_again"] = code(lambda: client.delete_topics([topic]))
    out["listed"] = topic in client.list_topics()
    client.close()
    say(**out)


def cross(bootstrap, source, target, count):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=20000)
    tp = TopicPartition(source, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    read = []
    for m in consumer:
        read.append(m)
        if len(read) == count:
            break
    consumer.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for m in read:
        producer.send(target, key=m.key, value=m.value, partition=0, timestamp_ms=m.timestamp,
                      headers=[(k, v) for k, v in m.headers])
    producer.flush(30)
    producer.close()
    hexed = lambda b: None if b is None else b.hex()
    say(read=[[hexed(m.key), hexed(m.value), [[k, hexed(v)] for k, v in m.headers], m.timestamp] for m in read])


mode, args = sys.argv[1], sys.argv[2:]
if mode == "member":
    member(*args)
elif mode == "idempotent":
    idempotent(args[0], args[1], int(args[2]))
elif mode == "admin":
    admin(*args)
elif mode == "cross":
    cross(args[0], args[1], args[2], int(args[3]))
else:
    sys.exit(f"unknown mode {mode}")
