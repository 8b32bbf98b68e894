// A Node service that talks to msgkit's topics with each broker's usual
// Node client, following docs/interop.md: it produces a message msgkit's
// consumers must read whole, or consumes one msgkit produced and prints
// what it saw. The Go tests in internal/interop run it.
//
//   node interop.js produce <broker> <url> <topic> <message-json>
//   node interop.js consume <broker> <url> <topic> <group>
//
// <message-json>, and what consume prints on one line after "ready":
//   {"id", "type", "correlation", "key", "payload_b64", "city"}
'use strict';

const [mode, broker, url, topic, arg] = process.argv.slice(2);
const deadline = setTimeout(() => { console.error(`interop.js: ${mode} on ${broker} timed out`); process.exit(2); }, 45000);

function done(seen) {
  if (seen) process.stdout.write(JSON.stringify(seen) + '\n');
  clearTimeout(deadline);
}

function text(v) { return v === undefined || v === null ? '' : Buffer.isBuffer(v) ? v.toString('utf8') : String(v); }

// ---- RabbitMQ (amqplib): a fanout exchange per topic, a queue <topic>.<group> per group.
async function rabbitmq() {
  const amqp = require('amqplib');
  const conn = await amqp.connect(url);
  try {
    if (mode === 'produce') {
      const m = JSON.parse(arg);
      const ch = await conn.createConfirmChannel();
      await ch.assertExchange(topic, 'fanout', { durable: true });
      ch.publish(topic, '', Buffer.from(m.payload_b64, 'base64'), {
        messageId: m.id, type: m.type, correlationId: m.correlation, persistent: true,
        headers: { 'ordering-key': m.key, city: m.city },
      });
      await ch.waitForConfirms();
      return done();
    }
    const ch = await conn.createChannel();
    await ch.assertExchange(topic, 'fanout', { durable: true });
    const q = `${topic}.${arg}`;
    await ch.assertQueue(q, { durable: true });
    await ch.bindQueue(q, topic, '');
    console.log('ready');
    await new Promise((resolve) => {
      ch.consume(q, (msg) => {
        const h = msg.properties.headers || {};
        ch.ack(msg);
        done({ id: text(msg.properties.messageId), type: text(msg.properties.type), correlation: text(msg.properties.correlationId),
          key: text(h['ordering-key']), payload_b64: msg.content.toString('base64'), city: text(h.city) });
        resolve();
      });
    });
  } finally {
    await conn.close();
  }
}

// ---- Redis Streams (ioredis): a stream per topic; fields id, payload, h:<key>.
async function redis() {
  const Redis = require('ioredis');
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 3 });
  await r.connect();
  try {
    if (mode === 'produce') {
      const m = JSON.parse(arg);
      await r.xadd(topic, '*', 'id', m.id, 'payload', Buffer.from(m.payload_b64, 'base64'),
        'h:ce-type', m.type, 'h:correlation-id', m.correlation, 'h:ordering-key', m.key, 'h:city', m.city);
      return done();
    }
    try {
      await r.xgroup('CREATE', topic, arg, '$', 'MKSTREAM');
    } catch (e) {
      if (!String(e.message).includes('BUSYGROUP')) throw e;
    }
    console.log('ready');
    for (;;) {
      const res = await r.xreadgroupBuffer('GROUP', arg, 'node-1', 'COUNT', 1, 'BLOCK', 5000, 'STREAMS', topic, '>');
      if (!res) continue;
      const [entryID, fields] = res[0][1][0];
      const f = {};
      for (let i = 0; i < fields.length; i += 2) f[fields[i].toString('utf8')] = fields[i + 1];
      await r.xack(topic, arg, entryID);
      return done({ id: text(f.id), type: text(f['h:ce-type']), correlation: text(f['h:correlation-id']),
        key: text(f['h:ordering-key']), payload_b64: (f.payload || Buffer.alloc(0)).toString('base64'), city: text(f['h:city']) });
    }
  } finally {
    r.disconnect();
  }
}

// ---- Kafka (kafkajs): a topic per topic; value, key, headers (watermill-kafka's format).
async function kafka() {
  const { Kafka, logLevel } = require('kafkajs');
  const k = new Kafka({ clientId: 'interop', brokers: [url.replace(/^kafka:\/\//, '')], logLevel: logLevel.NOTHING });
  if (mode === 'produce') {
    const m = JSON.parse(arg);
    const p = k.producer();
    await p.connect();
    await p.send({ topic, acks: -1, messages: [{ key: m.key, value: Buffer.from(m.payload_b64, 'base64'),
      headers: { _watermill_message_uuid: m.id, 'ce-type': m.type, 'correlation-id': m.correlation, city: m.city } }] });
    await p.disconnect();
    return done();
  }
  const c = k.consumer({ groupId: arg, sessionTimeout: 10000, heartbeatInterval: 1000 });
  await c.connect();
  await c.subscribe({ topic, fromBeginning: true });
  let seen;
  await new Promise((resolve, reject) => {
    c.on(c.events.GROUP_JOIN, () => console.log('ready'));
    c.run({ eachMessage: async ({ message }) => {
      const h = message.headers || {};
      seen = { id: text(h._watermill_message_uuid), type: text(h['ce-type']), correlation: text(h['correlation-id']),
        key: text(message.key), payload_b64: (message.value || Buffer.alloc(0)).toString('base64'), city: text(h.city) };
      resolve();
    } }).catch(reject);
  });
  await c.disconnect();
  done(seen);
}

// ---- SQS and SNS (AWS SDK v3): attributes msgkit-id, msgkit-body, String attributes per metadata entry.
function aws(Client) {
  return new Client({ endpoint: url, region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
}

function sqsAttributes(m) {
  const s = (v) => ({ DataType: 'String', StringValue: v });
  return { 'msgkit-id': s(m.id), 'msgkit-body': s('base64'), 'ce-type': s(m.type), 'correlation-id': s(m.correlation),
    'ordering-key': s(m.key), city: s(m.city) };
}

// receive reads one message from queue url q and prints it as msgkit wrote it.
async function receive(sqs, q) {
  const { ReceiveMessageCommand, DeleteMessageCommand } = require('@aws-sdk/client-sqs');
  for (;;) {
    const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: q, WaitTimeSeconds: 5, MessageAttributeNames: ['All'], MaxNumberOfMessages: 1 }));
    if (!out.Messages || out.Messages.length === 0) continue;
    const msg = out.Messages[0];
    const a = {};
    for (const [k, v] of Object.entries(msg.MessageAttributes || {})) a[k] = v.StringValue;
    const md = Object.assign({}, a, a['msgkit-metadata'] ? JSON.parse(a['msgkit-metadata']) : {});
    const body = msg.Body || '';
    const payload = a['msgkit-body'] === 'base64' ? Buffer.from(body, 'base64') : a['msgkit-body'] === 'empty' ? Buffer.alloc(0) : Buffer.from(body, 'utf8');
    await sqs.send(new DeleteMessageCommand({ QueueUrl: q, ReceiptHandle: msg.ReceiptHandle }));
    return done({ id: text(a['msgkit-id']), type: text(md['ce-type']), correlation: text(md['correlation-id']),
      key: text(md['ordering-key']), payload_b64: payload.toString('base64'), city: text(md.city) });
  }
}

// For sqs, topic is the queue's name.
async function sqs() {
  const { SQSClient, GetQueueUrlCommand, SendMessageCommand } = require('@aws-sdk/client-sqs');
  const c = aws(SQSClient);
  const { QueueUrl } = await c.send(new GetQueueUrlCommand({ QueueName: topic }));
  if (mode === 'produce') {
    const m = JSON.parse(arg);
    await c.send(new SendMessageCommand({ QueueUrl, MessageBody: m.payload_b64, MessageAttributes: sqsAttributes(m) }));
    return done();
  }
  console.log('ready');
  await receive(c, QueueUrl);
}

// For sns, topic is the SNS topic's name; consume subscribes a queue named
// <topic>-<group> with raw message delivery.
async function sns() {
  const { SNSClient, CreateTopicCommand, PublishCommand, SubscribeCommand } = require('@aws-sdk/client-sns');
  const { SQSClient, CreateQueueCommand, GetQueueAttributesCommand } = require('@aws-sdk/client-sqs');
  const n = aws(SNSClient);
  const { TopicArn } = await n.send(new CreateTopicCommand({ Name: topic }));
  if (mode === 'produce') {
    const m = JSON.parse(arg);
    await n.send(new PublishCommand({ TopicArn, Message: m.payload_b64, MessageAttributes: sqsAttributes(m) }));
    return done();
  }
  const s = aws(SQSClient);
  const { QueueUrl } = await s.send(new CreateQueueCommand({ QueueName: `${topic}-${arg}` }));
  const attrs = await s.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }));
  await n.send(new SubscribeCommand({ TopicArn, Protocol: 'sqs', Endpoint: attrs.Attributes.QueueArn, Attributes: { RawMessageDelivery: 'true' } }));
  console.log('ready');
  await receive(s, QueueUrl);
}

({ rabbitmq, redis, kafka, sqs, sns })[broker]().then(() => process.exit(0), (e) => {
  console.error(`interop.js: ${mode} on ${broker}: ${e && e.stack || e}`);
  process.exit(1);
});
