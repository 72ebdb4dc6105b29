"""One member of a consumer group (confluent-kafka, librdkafka inside), driven by
tests/kafka_clients.rs: `member.py BOOTSTRAP GROUP TOPIC STRATEGY`, STRATEGY an
assignor of the classic protocol or `consumer-protocol` for KIP-848. Consumes, commits each record synchronously, and reports on
stdout, one JSON object per line: {"assigned": [partitions]} whenever its assignment
changes, {"record": [partition, offset, key, value]} per record, before its commit,
{"error": text} for a refused commit, {"closed": true} once it has left the group."""

import json
import signal
import sys

from confluent_kafka import Consumer, KafkaException, TopicPartition

bootstrap, group, topic, strategy = sys.argv[1:5]
stopping = False


def stop(*_):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)


def say(**what):
    print(json.dumps(what), flush=True)


config = {
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "topic.metadata.refresh.interval.ms": 1000,
}
if strategy == "consumer-protocol":
    # KIP-848: the broker assigns; the session and heartbeat are the broker's.
    config["group.protocol"] = "consumer"
else:
    config.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "partition.assignment.strategy": strategy})
consumer = Consumer(config)


consumer.subscribe([topic])
reported = None
while not stopping:
    message = consumer.poll(0.2)
    if message is not None and message.error():
        say(error=str(message.error()))
        if message.error().fatal():
            break
        continue
    assigned = sorted(tp.partition for tp in consumer.assignment())
    if assigned != reported:
        say(assigned=assigned)
        reported = assigned
    if message is None:
        continue
    if message.error():
        say(error=str(message.error()))
        continue
    # Reported before its commit: a member killed between the two has its record
    # read again by the next owner, never committed unreported.
    say(record=[message.partition(), message.offset(), message.key().decode(), message.value().decode()])
    try:
        consumer.commit(message=message, asynchronous=False)
    except KafkaException as error:
        # A commit refused during a rebalance: the record is read again, here if the
        # partition stays, else by its next owner from the last commit (at least once).
        say(error=str(error))
        try:
            consumer.seek(TopicPartition(message.topic(), message.partition(), message.offset()))
        except KafkaException:
            pass
        continue
consumer.close()
say(closed=True)
