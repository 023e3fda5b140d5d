// Reads the local IoT Hub's built-in endpoint with Microsoft's JS Event Hubs
// client (@azure/event-hubs, on rhea), unmodified: the twin-change event a
// device's reported-property update produced, once over AMQP with TLS
// (trusting the hub's CA through NODE_EXTRA_CA_CERTS) and once over the
// plain listener with a UseDevelopmentEmulator=true connection string; then
// a batch sent by its producer and read back. Run by the Go test in
// ../eventhubs_test.go (part of `make test`), which sets:
//
//   TLS_CONNECTION_STRING, EMULATOR_CONNECTION_STRING  the "service" policy's built-in endpoint strings
//   OWNER_CONNECTION_STRING    iothubowner's TLS string (it may send locally)
//   CONSUMER_GROUP, PARTITION_ID, PARTITION_COUNT, HUB_NAME
//   DEVICE_ID, REPORTED_VERSION, LAST_REBOOT           what the device reported
//
// Output and exit code as check.js: an "ok"/"FAIL" line per check.
'use strict';
const assert = require('node:assert/strict');
const { EventHubConsumerClient, EventHubProducerClient, earliestEventPosition } = require('@azure/event-hubs');

const env = (name) => {
  const v = process.env[name];
  assert.ok(v, `${name} is not set`);
  return v;
};
const group = env('CONSUMER_GROUP');
const partitionId = env('PARTITION_ID');
const hubName = env('HUB_NAME');
const deviceId = env('DEVICE_ID');

const failures = [];

async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (err) {
    failures.push(name);
    console.log(`FAIL ${name}\n${String(err && err.stack ? err.stack : err).replace(/^/gm, '     ')}`);
  }
}

// readEvents subscribes to one partition from its start and resolves with
// the first n events, or rejects on the client's first error.
function readEvents(client, n, startPosition = earliestEventPosition) {
  return new Promise((resolve, reject) => {
    const got = [];
    const timer = setTimeout(() => done(new Error(`timed out with ${got.length} of ${n} events`)), 20000);
    let subscription;
    const done = (err) => {
      clearTimeout(timer);
      subscription.close().then(() => (err ? reject(err) : resolve(got.slice(0, n))), reject);
    };
    subscription = client.subscribe(partitionId, {
      processEvents: async (events) => {
        got.push(...events);
        if (got.length >= n) done();
      },
      processError: async (err) => done(err),
    }, { startPosition, maxBatchSize: n, maxWaitTimeInSeconds: 1 });
  });
}

// twinChange checks the event as IoT Hub delivers it (Microsoft's captures
// in iot-hub-non-telemetry-event-schema), with the types rhea decodes.
function twinChange(e) {
  assert.equal(e.sequenceNumber, 0);
  assert.equal(e.offset, '0', 'x-opt-offset is a string');
  assert.ok(e.enqueuedTimeUtc instanceof Date && !Number.isNaN(e.enqueuedTimeUtc.getTime()));
  assert.equal(e.partitionKey, undefined, 'IoT Hub sets no partition key');
  assert.equal(e.contentType, 'application/json');
  assert.match(String(e.correlationId), /^[0-9a-f-]{36}$/);
  assert.equal(e.messageId, undefined);

  assert.equal(e.systemProperties['iothub-connection-device-id'], deviceId);
  assert.equal(e.systemProperties['iothub-message-source'], 'twinChangeEvents');
  assert.equal(typeof e.systemProperties['iothub-enqueuedtime'], 'number', 'a timestamp, which the client turns into ms');
  assert.equal(e.systemProperties.contentEncoding, 'utf-8');
  // user-id is binary; the client copies the Buffer's bytes into an object.
  assert.equal(Buffer.from(Object.values(e.systemProperties.userId)).toString(), hubName, 'user-id is the hub name');

  const raw = e.getRawAmqpMessage();
  for (const k of ['iothub-enqueuedtime', 'x-opt-enqueued-time']) {
    assert.ok(raw.messageAnnotations[k] instanceof Date, `${k} is an AMQP timestamp`);
  }
  assert.equal(typeof raw.messageAnnotations['x-opt-sequence-number'], 'number');

  assert.deepEqual({ ...e.properties, operationTimestamp: undefined }, {
    hubName, deviceId, opType: 'updateTwin', 'iothub-message-schema': 'twinChangeNotification', operationTimestamp: undefined,
  });
  assert.match(e.properties.operationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$/);

  // The client parses a JSON body.
  assert.equal(e.body.version > 0, true);
  assert.deepEqual(e.body.properties.reported.iothubDM, { reboot: { lastReboot: env('LAST_REBOOT') } });
  assert.equal(e.body.properties.reported.$version, Number(env('REPORTED_VERSION')));
}

async function readTwinChange(label, connectionString) {
  const client = new EventHubConsumerClient(group, connectionString);
  try {
    await check(`${label}: getEventHubProperties`, async () => {
      const props = await client.getEventHubProperties();
      assert.equal(props.name, hubName);
      assert.deepEqual(props.partitionIds, [...Array(Number(env('PARTITION_COUNT'))).keys()].map(String));
      assert.ok(props.createdOn instanceof Date);
    });
    await check(`${label}: getPartitionProperties`, async () => {
      const p = await client.getPartitionProperties(partitionId);
      assert.equal(p.partitionId, partitionId);
      assert.equal(p.isEmpty, false);
      assert.ok(p.lastEnqueuedSequenceNumber >= 0);
      assert.equal(typeof p.lastEnqueuedOffset, 'string');
    });
    await check(`${label}: the twin-change event of the device's reported update`, async () => {
      const [e] = await readEvents(client, 1);
      twinChange(e);
    });
  } finally {
    await client.close();
  }
}

async function sendAndRead() {
  const producer = new EventHubProducerClient(env('OWNER_CONNECTION_STRING'));
  const consumer = new EventHubConsumerClient(group, env('OWNER_CONNECTION_STRING'));
  try {
    await check('producer: a batch of 2 events to a partition, read back', async () => {
      const before = await consumer.getPartitionProperties(partitionId);
      const batch = await producer.createBatch({ partitionId });
      assert.ok(batch.tryAdd({ body: { n: 1 }, properties: { kind: 'js' } }));
      assert.ok(batch.tryAdd({ body: 'two', contentType: 'text/plain', messageId: 'm-2' }));
      await producer.sendBatch(batch);
      const events = await readEvents(consumer, 2, { sequenceNumber: before.lastEnqueuedSequenceNumber });
      assert.deepEqual(events.map((e) => e.body), [{ n: 1 }, 'two']);
      assert.deepEqual(events[0].properties, { kind: 'js' });
      assert.equal(events[1].contentType, 'text/plain');
      assert.equal(events[1].messageId, 'm-2');
      assert.equal(events[1].sequenceNumber, before.lastEnqueuedSequenceNumber + 2);
    });
  } finally {
    await producer.close();
    await consumer.close();
  }
}

(async () => {
  await readTwinChange('TLS', env('TLS_CONNECTION_STRING'));
  await readTwinChange('plain, UseDevelopmentEmulator=true', env('EMULATOR_CONNECTION_STRING'));
  await sendAndRead();
  if (failures.length > 0) {
    console.log(`${failures.length} check(s) failed: ${failures.join('; ')}`);
    process.exit(1);
  }
})().catch((err) => {
  console.log(`FAIL eventhubs.js\n${String(err && err.stack ? err.stack : err).replace(/^/gm, '     ')}`);
  process.exit(1);
});
