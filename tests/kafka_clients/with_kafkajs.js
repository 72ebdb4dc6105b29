// kafkajs, unchanged, driven by tests/kafka_matrix.rs: `node with_kafkajs.js MODE ...`,
// the modes of with_kafka_python.py:
// - `member BOOTSTRAP GROUP TOPIC`: a group member (kafkajs's round-robin assignor)
//   printing member.py's events, committing each record before the next;
// - `idempotent BOOTSTRAP TOPIC COUNT`: an idempotent producer sending COUNT records to
//   partition 0, 50 at a time; prints {"delivered": n, "errors": [...]};
// - `admin BOOTSTRAP TOPIC GROUP`: the admin API over a topic's life;
// - `cross BOOTSTRAP IN OUT COUNT`: reads COUNT records of IN partition 0 and writes
//   them again to OUT partition 0; prints the records read, bytes in hex.

const { Kafka, ConfigResourceTypes, logLevel } = require('kafkajs')

const [mode, bootstrap, ...args] = process.argv.slice(2)
const kafka = new Kafka({
  clientId: 'strand-test',
  brokers: [bootstrap],
  logLevel: logLevel.NOTHING,
  retry: { retries: 30, initialRetryTime: 200, maxRetryTime: 2000 }
})
const say = (what) => console.log(JSON.stringify(what))

async function member (group, topic) {
  const consumer = kafka.consumer({ groupId: group, sessionTimeout: 6000, heartbeatInterval: 500, metadataMaxAge: 1000 })
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    say({ assigned: (payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b) })
  })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  process.on('SIGTERM', async () => {
    await consumer.disconnect()
    say({ closed: true })
    process.exit(0)
  })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      say({ record: [partition, Number(message.offset), message.key.toString(), message.value.toString()] })
      try {
        await consumer.commitOffsets([{ topic, partition, offset: (Number(message.offset) + 1).toString() }])
      } catch (error) {
        // A commit refused in a rebalance: the record is read again by the next owner.
        say({ error: String(error) })
        throw error
      }
    }
  })
}

async function idempotent (topic, count) {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  let delivered = 0
  const errors = []
  for (let start = 0; start < count; start += 50) {
    const messages = []
    for (let i = start; i < Math.min(start + 50, count); i++) messages.push({ value: `value-${i}`, partition: 0 })
    try {
      await producer.send({ topic, messages, acks: -1 })
      delivered += messages.length
    } catch (error) {
      errors.push(String(error))
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  await producer.disconnect()
  say({ delivered, errors: errors.slice(0, 10) })
}

// The Kafka error code a call ends with (0 on success).
async function code (call) {
  try {
    await call()
    return 0
  } catch (error) {
    // kafkajs retries what Kafka calls retriable, then wraps the last error.
    const inner = (error.errors && error.errors[0]) || error.cause || error
    return inner.code !== undefined ? inner.code : -1
  }
}

async function admin (topic, group) {
  const client = kafka.admin()
  await client.connect()
  const out = {}
  const configs = async () => {
    const described = await client.describeConfigs({ resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }], includeSynonyms: false })
    return Object.fromEntries(described.resources[0].configEntries.map((e) => [e.configName, e.configValue]))
  }
  const create = (name, partitions, replicas, configEntries = []) => () => client.createTopics({
    topics: [{ topic: name, numPartitions: partitions, replicationFactor: replicas, configEntries }],
    waitForLeaders: false
  }).then((created) => { if (!created) throw Object.assign(new Error('exists'), { code: 36 }) })
  out.created = await code(create(topic, 3, 1, [{ name: 'retention.ms', value: '3600000' }]))
  out.again = await code(create(topic, 3, 1))
  out.replicated = await code(create(`${topic}-replicated`, 1, 3))
  out.created_configs = await configs()
  out.altered = await code(() => client.alterConfigs({
    validateOnly: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: '7200000' }] }]
  }))
  out.grown = await code(() => client.createPartitions({ topicPartitions: [{ topic, count: 6 }] }))
  out.shrunk = await code(() => client.createPartitions({ topicPartitions: [{ topic, count: 2 }] }))
  out.configs = await configs()
  out.partitions = (await client.fetchTopicMetadata({ topics: [topic] })).topics[0].partitions.length

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const messages = []
  for (let i = 0; i < 10; i++) messages.push({ value: `r${i}`, partition: 0, timestamp: String(1000 + (i * 7) % 10) })
  await producer.send({ topic, messages, acks: -1 })
  await producer.disconnect()
  await client.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '4' }] })
  const offsets = await client.fetchTopicOffsets(topic)
  out.earliest = Number(offsets.find((p) => p.partition === 0).low)
  const byTime = await client.fetchTopicOffsetsByTimestamp(topic, 1008)
  out.at_1008 = Number(byTime.find((p) => p.partition === 0).offset)

  await client.setOffsets({ groupId: group, topic, partitions: [{ partition: 0, offset: '6' }] })
  const fetched = await client.fetchOffsets({ groupId: group, topics: [topic] })
  out.committed = Number(fetched[0].partitions.find((p) => p.partition === 0).offset)
  out.group_deleted = await code(() => client.deleteGroups([group]))

  out.deleted = await code(() => client.deleteTopics({ topics: [topic] }))
  const impatient = new Kafka({ clientId: 'strand-test', brokers: [bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 1 } }).admin()
  await impatient.connect()
  out.deleted_again = await code(() => impatient.deleteTopics({ topics: [topic] }))
  await impatient.disconnect()
  out.listed = (await client.listTopics()).includes(topic)
  await client.disconnect()
  say(out)
}

async function cross (source, target, count) {
  const consumer = kafka.consumer({ groupId: `cross-${source}` })
  await consumer.connect()
  await consumer.subscribe({ topic: source, fromBeginning: true })
  const read = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${read.length} records within 30 s`)), 30000)
    consumer.run({
      eachMessage: async ({ message }) => {
        read.push(message)
        if (read.length === count) {
          clearTimeout(timer)
          resolve()
        }
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  const producer = kafka.producer()
  await producer.connect()
  await producer.send({
    topic: target,
    acks: -1,
    messages: read.map((m) => ({ key: m.key, value: m.value, headers: m.headers, timestamp: m.timestamp, partition: 0 }))
  })
  await producer.disconnect()
  const hexed = (b) => (b === null || b === undefined ? null : Buffer.from(b).toString('hex'))
  say({
    read: read.map((m) => [
      hexed(m.key),
      hexed(m.value),
      Object.entries(m.headers || {}).map(([k, v]) => [k, hexed(v)]),
      Number(m.timestamp)
    ])
  })
}

const modes = {
  member: () => member(args[0], args[1]),
  idempotent: () => idempotent(args[0], Number(args[1])),
  admin: () => admin(args[0], args[1]),
  cross: () => cross(args[0], args[1], Number(args[2]))
}
modes[mode]().catch((error) => {
  console.error(error)
  process.exit(1)
})
