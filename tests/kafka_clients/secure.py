"""Kafka clients over TLS and SASL, driven by tests/security.rs:
`secure.py STEP BOOTSTRAP SETTINGS_JSON [ARGS...]`. SETTINGS_JSON holds the client's
security settings as librdkafka names them (security.protocol, sasl.mechanism,
sasl.username, sasl.password, ssl.ca.location, ssl.certificate.location,
ssl.key.location); each client maps them to its own names.

Steps (each prints one JSON object):
- `user NAME PASSWORD MECHANISM`: creates or replaces a SCRAM credential through
  confluent-kafka's AdminClient (KIP-554), 4,096 iterations.
- `roundtrip CLIENT TOPIC GROUP COUNT`: CLIENT `confluent-kafka` or `kafka-python`
  produces COUNT keyed records, then consumes them in GROUP and commits.
- `produce-fails TOPIC`: a confluent-kafka producer's first record; the error it ends in.
- `acls-create JSON`: creates the ACL bindings in JSON, a list of [resource type, name,
  pattern, principal, host, operation, permission] as confluent-kafka names them.
- `acls-describe`: every ACL, as such lists (or the error).
- `produce TOPIC`: one record; the delivery error's name, or null.
- `consume TOPIC GROUP`: reads in GROUP from the start for a few seconds; the
  consumer error's name, or null, and the values read.
- `topics`: the topics Metadata lists.
- `consume-rate TOPIC GROUP SECONDS`: reads from the start for SECONDS after the first
  record; the value bytes read in each second.
- `rate TOPIC SECONDS`: produces 10 KiB values as fast as the broker takes them for
  SECONDS; the value bytes delivered in each second, and the throttle times the
  broker reported.
"""

import json
import sys

step, bootstrap, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
args = sys.argv[4:]


def confluent(extra=None):
    config = {"bootstrap.servers": bootstrap}
    config.update(settings)
    config.update(extra or {})
    return config


def kafka_python_settings():
    names = {
        "security.protocol": "security_protocol",
        "sasl.mechanism": "sasl_mechanism",
        "sasl.username": "sasl_plain_username",
        "sasl.password": "sasl_plain_password",
        "ssl.ca.location": "ssl_cafile",
        "ssl.certificate.location": "ssl_certfile",
        "ssl.key.location": "ssl_keyfile",
    }
    out = {names[key]: value for key, value in settings.items()}
    if "ssl_cafile" in out:
        out["ssl_check_hostname"] = True
    return out


def user(name, password, mechanism):
    from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialUpsertion)

    admin = AdminClient(confluent())
    info = ScramCredentialInfo(getattr(ScramMechanism, mechanism.replace("-", "_")), 4096)
    futures = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(name, info, password.encode())])
    futures[name].result(30)
    return {"user": name, "ok": True}


def roundtrip_confluent(topic, group, count):
    from confluent_kafka import Consumer, Producer

    producer = Producer(confluent({"acks": "all", "linger.ms": 5}))
    delivered = []

    def report(error, message):
        if error is None:
            delivered.append(message.offset())
        else:
            raise RuntimeError(str(error))

    for i in range(count):
        producer.produce(topic, key=f"key-{i % 7}", value=f"value-{i}", on_delivery=report)
        producer.poll(0)
    producer.flush(60)
    consumer = Consumer(confluent({"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}))
    consumer.subscribe([topic])
    values = []
    import time
    deadline = time.time() + 60
    while len(values) < count and time.time() < deadline:
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            raise RuntimeError(str(message.error()))
        values.append(message.value().decode())
    consumer.commit(asynchronous=False)
    consumer.close()
    return {"produced": len(delivered), "consumed": values}


def roundtrip_kafka_python(topic, group, count):
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **kafka_python_settings())
    futures = [producer.send(topic, key=f"key-{i % 7}".encode(), value=f"value-{i}".encode()) for i in range(count)]
    producer.flush(60)
    produced = sum(1 for f in futures if f.get(timeout=60))
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=20000, **kafka_python_settings())
    values = []
    for message in consumer:
        values.append(message.value.decode())
        if len(values) == count:
            break
    consumer.commit()
    consumer.close()
    return {"produced": produced, "consumed": values}


def produce_fails(topic):
    from confluent_kafka import KafkaException, Producer

    errors = []
    producer = Producer(confluent({"message.timeout.ms": 10000, "error_cb": lambda e: errors.append(e)}))
    outcome = {}

    def report(error, message):
        outcome["delivery"] = None if error is None else error.name()

    producer.produce(topic, value=b"x", on_delivery=report)
    producer.flush(15)
    return {
        "delivered": outcome.get("delivery", "none") is None,
        "delivery": outcome.get("delivery"),
        "errors": sorted({e.name() for e in errors}),
        "messages": sorted({e.str() for e in errors})[:5],
    }


def acl_binding(fields):
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, ResourcePatternType,
                                       ResourceType)

    kind, name, pattern, principal, host, operation, permission = fields
    return AclBinding(ResourceType[kind], name, ResourcePatternType[pattern], principal, host,
                      AclOperation[operation], AclPermissionType[permission])


def acls_create(entries):
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(confluent())
    futures = admin.create_acls([acl_binding(entry) for entry in json.loads(entries)])
    for future in futures.values():
        future.result(30)
    return {"created": len(futures)}


def acls_describe():
    from confluent_kafka.admin import (AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                       ResourcePatternType, ResourceType)
    from confluent_kafka import KafkaException

    admin = AdminClient(confluent())
    query = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                             AclPermissionType.ANY)
    try:
        found = admin.describe_acls(query).result(30)
    except KafkaException as e:
        return {"error": e.args[0].name()}
    return {"acls": sorted([[b.restype.name, b.name, b.resource_pattern_type.name, b.principal, b.host,
                             b.operation.name, b.permission_type.name] for b in found])}


def produce_one(topic):
    from confluent_kafka import Producer

    producer = Producer(confluent({"message.timeout.ms": 10000}))
    outcome = {}
    producer.produce(topic, value=b"x", on_delivery=lambda error, m: outcome.update(error=error))
    producer.flush(15)
    error = outcome.get("error", "none")
    return {"error": None if error is None else (error if isinstance(error, str) else error.name())}


def consume_group(topic, group):
    import time
    from confluent_kafka import Consumer

    consumer = Consumer(confluent({"group.id": group, "auto.offset.reset": "earliest"}))
    consumer.subscribe([topic])
    values, error = [], None
    deadline = time.time() + 8
    while time.time() < deadline and error is None:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            error = message.error().name()
        else:
            values.append(message.value().decode())
    consumer.close()
    return {"error": error, "values": values}


def topics():
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(confluent())
    return {"topics": sorted(t for t in admin.list_topics(timeout=15).topics if not t.startswith("__"))}


def rate(topic, seconds):
    import time
    from confluent_kafka import Producer

    throttles = []
    # A small queue: the producer blocks on the broker rather than buffering seconds.
    producer = Producer(confluent({"linger.ms": 5, "batch.size": 65536, "acks": 1,
                                   "queue.buffering.max.kbytes": 1024,
                                   "throttle_cb": lambda event: throttles.append(event.throttle_time)}))
    value = b"v" * 10240
    start = time.time()
    per_second = [0] * int(seconds)

    def report(error, message):
        if error is None:
            at = int(time.time() - start)
            if at < len(per_second):
                per_second[at] += len(message.value())

    while time.time() - start < seconds:
        try:
            producer.produce(topic, value=value, on_delivery=report)
        except BufferError:
            producer.poll(0.01)
            continue
        producer.poll(0)
    producer.purge()
    producer.flush(10)
    return {"per_second": per_second, "throttles": len(throttles), "throttle_max_s": max(throttles or [0])}


def consume_rate(topic, group, seconds):
    import time
    from confluent_kafka import Consumer

    consumer = Consumer(confluent({"group.id": group, "auto.offset.reset": "earliest",
                                   "max.partition.fetch.bytes": 262144, "fetch.max.bytes": 262144,
                                   "message.max.bytes": 262144}))
    consumer.subscribe([topic])
    per_second = [0] * int(seconds)
    start = None
    while start is None or time.time() - start < seconds:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        if start is None:
            start = time.time()
        at = int(time.time() - start)
        if at < len(per_second):
            per_second[at] += len(message.value())
    consumer.close()
    return {"per_second": per_second}


if step == "user":
    result = user(*args)
elif step == "roundtrip":
    client, topic, group, count = args
    run = roundtrip_confluent if client == "confluent-kafka" else roundtrip_kafka_python
    result = run(topic, group, int(count))
elif step == "produce-fails":
    result = produce_fails(*args)
elif step == "acls-create":
    result = acls_create(*args)
elif step == "acls-describe":
    result = acls_describe()
elif step == "produce":
    result = produce_one(*args)
elif step == "consume":
    result = consume_group(*args)
elif step == "topics":
    result = topics()
elif step == "consume-rate":
    result = consume_rate(args[0], args[1], float(args[2]))
elif step == "rate":
    result = rate(args[0], float(args[1]))
else:
    raise SystemExit(f"unknown step {step}")
print(json.dumps(result))
