// A round trip with kafkajs, driven by tests/kafka_clients.rs:
// `node kafkajs.js BOOTSTRAP TOPIC GROUP`. Produces 2,000 keyed records uncompressed
// and 2,000 with gzip (the codecs kafkajs has without plugins), then consumes them in a
// group and commits. Prints one JSON object: records produced and records consumed as
// [partition, offset, key, value].

const { Kafka, CompressionTypes, logLevel } = require('kafkajs')

const [bootstrap, topic, group] = process.argv.slice(2)
const PER_CODEC = 2000
const CODECS = [CompressionTypes.None, CompressionTypes.GZIP]
const TOTAL = PER_CODEC * CODECS.length

async function main () {
  const kafka = new Kafka({ clientId: 'strand-test', brokers: [bootstrap], logLevel: logLevel.ERROR })
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  let produced = 0
  for (const [c, compression] of CODECS.entries()) {
    for (let start = c * PER_CODEC; start < (c + 1) * PER_CODEC; start += 200) {
      const messages = []
      for (let i = start; i < start + 200; i++) messages.push({ key: `key-${i % 97}`, value: `value-${i}` })
      const sent = await producer.send({ topic, messages, compression, acks: -1 })
      produced += messages.length
      if (sent.some((part) => part.errorCode !== 0)) throw new Error(JSON.stringify(sent))
    }
  }
  await producer.disconnect()

  const consumer = kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 1000 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const consumed = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${consumed.length} records within 60 s`)), 60000)
    consumer.run({
      autoCommit: true,
      eachMessage: async ({ partition, message }) => {
        consumed.push([partition, Number(message.offset), message.key.toString(), message.value.toString()])
        if (consumed.length === TOTAL) {
          clearTimeout(timer)
          resolve()
        }
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  console.log(JSON.stringify({ produced, consumed }))
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
