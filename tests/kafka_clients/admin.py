"""Topic administration through confluent-kafka's AdminClient, driven by
tests/kafka_clients.rs: `admin.py BOOTSTRAP STEP TOPIC` (STEP `groups`: TOPIC is a group; STEP `users`,
`users-again`, `users-delete`: TOPIC is a user). Prints one JSON object with
what the broker answered; errors are reported, not raised."""

import json
import sys

from confluent_kafka import KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions,
                                   NewTopic, OffsetSpec, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)

bootstrap, step, topic = sys.argv[1:4]
admin = AdminClient({"bootstrap.servers": bootstrap})


def outcome(future):
    try:
        future.result(timeout=30)
        return "ok"
    except KafkaException as error:
        return error.args[0].name()


def configs():
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    described = admin.describe_configs([resource])[resource].result(timeout=30)
    return {name: entry.value for name, entry in described.items()}


result = {}
if step == "create":
    new = NewTopic(topic, num_partitions=3, replication_factor=1, config={"retention.ms": "3600000"})
    result["created"] = outcome(admin.create_topics([new])[topic])
    result["again"] = outcome(admin.create_topics([NewTopic(topic, 3, 1)])[topic])
    bad = NewTopic(topic + "-replicated", num_partitions=1, replication_factor=3)
    result["replicated"] = outcome(admin.create_topics([bad])[bad.topic])
    odd = NewTopic(topic + "-odd", num_partitions=1, replication_factor=1, config={"compression.type": "gzip"})
    result["unknown_config"] = outcome(admin.create_topics([odd])[odd.topic])
    result["configs"] = configs()
    metadata = admin.list_topics(timeout=30)
    result["partitions"] = len(metadata.topics[topic].partitions)
elif step == "alter":
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("max.message.bytes", "2097152", incremental_operation=AlterConfigOpType.SET),
        ],
    )
    result["altered"] = outcome(admin.incremental_alter_configs([resource])[resource])
    result["grown"] = outcome(admin.create_partitions([NewPartitions(topic, 6)])[topic])
    result["shrunk"] = outcome(admin.create_partitions([NewPartitions(topic, 2)])[topic])
    result["configs"] = configs()
    result["partitions"] = len(admin.list_topics(timeout=30).topics[topic].partitions)
elif step == "groups":
    # TOPIC names a group here.
    listed = admin.list_consumer_groups().result(timeout=30)
    result["listed"] = sorted(g.group_id for g in listed.valid)
    described = admin.describe_consumer_groups([topic])[topic].result(timeout=30)
    result["state"] = described.state.name
    result["members"] = sorted(
        sorted(tp.partition for tp in m.assignment.topic_partitions) for m in described.members
    )
    result["hosts"] = sorted(m.host for m in described.members)
    result["client_ids"] = sorted(m.client_id for m in described.members)
elif step == "delete-group":
    # TOPIC names a group here.
    result["deleted"] = outcome(admin.delete_consumer_groups([topic])[topic])
elif step == "records":
    # Ten records at known times on partition 0, then the first four deleted.
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i in range(10):
        producer.produce(topic, value=f"r{i}", partition=0, timestamp=1_000 + (i * 7) % 10)
    producer.flush(30)
    tp = TopicPartition(topic, 0)

    def listed(spec):
        found = admin.list_offsets({tp: spec})[tp].result(timeout=30)
        return [found.offset, found.timestamp]

    result["max_timestamp"] = listed(OffsetSpec.max_timestamp())
    result["at_1008"] = listed(OffsetSpec.for_timestamp(1_008))
    deleted = admin.delete_records([TopicPartition(topic, 0, 4)])
    result["low_watermark"] = list(deleted.values())[0].result(timeout=30).low_watermark
    result["earliest"] = listed(OffsetSpec.earliest())[0]
    result["beyond"] = outcome(list(admin.delete_records([TopicPartition(topic, 0, 100)]).values())[0])
elif step in ("users", "users-again", "users-delete"):
    # TOPIC names a user here.
    user = topic

    def described(users):
        # Every user's: one future for them all; named users: a future each.
        try:
            if users is None:
                found = admin.describe_user_scram_credentials().result(timeout=30)
            else:
                futures = admin.describe_user_scram_credentials(users)
                found = {name: future.result(timeout=30) for name, future in futures.items()}
        except KafkaException as error:
            return error.args[0].name()
        return {name: sorted([c.mechanism.name, c.iterations] for c in d.scram_credential_infos)
                for name, d in found.items()}

    def altered(alterations):
        return {name: outcome(future) for name, future in admin.alter_user_scram_credentials(alterations).items()}

    def each(users):
        futures = admin.describe_user_scram_credentials(users)
        return {name: outcome(future) for name, future in futures.items()}

    if step == "users":
        result["created"] = altered([
            UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"secret-512"),
            UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"secret-256",
                                         b"chosen-salt"),
            UserScramCredentialUpsertion("other", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"x"),
        ])
        result["too_few"] = altered([
            UserScramCredentialUpsertion("weak", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 100), b"x")])
        result["missing"] = altered([UserScramCredentialDeletion("nobody", ScramMechanism.SCRAM_SHA_512)])
        result["unknown"] = each(["nobody"])
    elif step == "users-delete":
        result["deleted"] = altered([UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)])
    result["all"] = described(None)
    result["named"] = described([user])
elif step == "delete":
    result["deleted"] = outcome(admin.delete_topics([topic])[topic])
    result["again"] = outcome(admin.delete_topics([topic])[topic])
    result["listed"] = topic in admin.list_topics(timeout=30).topics
print(json.dumps(result), flush=True)
