// Drives the local IoT Hub with Microsoft's Node.js SDKs, unmodified: the
// service SDK (azure-iothub) over HTTPS, which cannot take a port, so the hub
// serves :443, and devices (azure-iot-device + azure-iot-device-mqtt) over
// MQTT/TLS on :8883. Run by the Go test in ../node_test.go (part of
// `make test`); needs OWNER_CONNECTION_STRING and NODE_EXTRA_CA_CERTS.
//
// The heart of it is the seed's device-management flow, the reboot sample
// pair of Microsoft's docs (articles/iot-hub/device-management-node.md,
// device/samples/javascript/dmpatterns_reboot_device.js and the service
// sample dmpatterns_reboot_service.js): the service invokes `reboot` with
// `payload: null`, the device answers 200 'Reboot started' and reports
// iothubDM.reboot.lastReboot, the service polls getTwin until it shows, and
// a twin query reports every device's lastReboot page by page.
//
// Every check runs even when an earlier one failed (unless it needs what
// that one made), so one run shows every difference from Azure. Exit code 1
// when any check failed.
'use strict';
const assert = require('node:assert/strict');
const { Registry, Client, JobClient } = require('azure-iothub');
const { Client: DeviceClient } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const owner = process.env.OWNER_CONNECTION_STRING;
assert.ok(owner, 'OWNER_CONNECTION_STRING is not set');
const hostName = /HostName=([^;]+)/.exec(owner)[1];
const registry = Registry.fromConnectionString(owner);
const service = Client.fromConnectionString(owner);
const jobClient = JobClient.fromConnectionString(owner);

const failures = [];

// check runs one named check and records its outcome.
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
    return true;
  } catch (err) {
    failures.push(name);
    console.log(`FAIL ${name}\n${String(err && err.stack ? err.stack : err).replace(/^/gm, '     ')}`);
    return false;
  }
}

// poll calls fn every interval until it returns a value other than
// undefined, or fails after timeout. The docs' service sample polls getTwin
// every 2 s; a tenth of that keeps the run short.
async function poll(what, fn, { interval = 200, timeout = 20000 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

async function expectError(promise, name) {
  await assert.rejects(promise, (err) => err.constructor.name === name || err.name === name, `expected ${name}`);
}

// rebootSampleDevice is the device half of the sample pair, as the docs
// write it: answer 200 'Reboot started' at once, then get the twin and
// report the reboot time "before the physical restart".
async function rebootSampleDevice(deviceId, key) {
  const client = DeviceClient.fromConnectionString(`HostName=${hostName};DeviceId=${deviceId};SharedAccessKey=${key}`, Mqtt);
  const device = { id: deviceId, client, requests: [], reported: [], errors: [] };
  client.onDeviceMethod('reboot', (request, response) => {
    device.requests.push(request.payload);
    response.send(200, 'Reboot started', (err) => { if (err) device.errors.push(err); });
    const lastReboot = new Date().toISOString();
    client.getTwin((err, twin) => {
      if (err) { device.errors.push(err); return; }
      twin.properties.reported.update({ iothubDM: { reboot: { lastReboot } } }, (err) => {
        if (err) device.errors.push(err); else device.reported.push(lastReboot);
      });
    });
  });
  await client.open();
  return device;
}

async function createDevice(deviceId) {
  const created = await registry.create({ deviceId });
  assert.equal(created.httpResponse.statusCode, 200);
  const key = created.responseBody.authentication.symmetricKey.primaryKey;
  assert.ok(key, 'the hub generates keys');
  return key;
}

// rebootAndPoll is the service half: invoke reboot, check the device's
// answer, then poll getTwin until the device's report shows. It returns
// the lastReboot the twin shows.
async function rebootAndPoll(device, payload) {
  const params = { methodName: 'reboot', payload, timeoutInSeconds: 30 };
  const method = await service.invokeDeviceMethod(device.id, params);
  assert.deepEqual(method.result, { status: 200, payload: 'Reboot started' }, "the device's own answer comes back");
  assert.equal(device.requests.length, 1, 'the device handler ran once');
  const lastReboot = await poll(`${device.id}'s reported lastReboot`, async () => {
    const twin = (await registry.getTwin(device.id)).responseBody;
    const reboot = twin.properties.reported.iothubDM && twin.properties.reported.iothubDM.reboot;
    // The twin can show the report before the device's own update
    // callback has run (the hub commits, then acknowledges): wait for both.
    return reboot && reboot.lastReboot && device.reported.length > 0 ? reboot.lastReboot : undefined;
  });
  assert.deepEqual(device.errors, []);
  assert.deepEqual([lastReboot], device.reported, 'getTwin shows what the device reported');
  return lastReboot;
}

async function main() {
  const run = `node-${Date.now()}`;
  const devices = [];
  const rebooted = new Map(); // deviceId -> lastReboot, confirmed by getTwin

  await check('Registry.create returns 200 with generated keys, DeviceAlreadyExistsError on a duplicate', async () => {
    await createDevice(`${run}-registry`);
    await expectError(registry.create({ deviceId: `${run}-registry` }), 'DeviceAlreadyExistsError');
  });
  await check('an unknown device is DeviceNotFoundError', () => expectError(registry.get(`${run}-missing`), 'DeviceNotFoundError'));

  const connected = await check('four sample devices connect over MQTT/TLS', async () => {
    for (const name of ['null', 'a', 'b', 'c']) {
      const id = `${run}-${name}`;
      devices.push(await rebootSampleDevice(id, await createDevice(id)));
    }
  });
  if (connected) {
    const [seed, ...others] = devices;
    await check("the seed's reboot pair: invokeDeviceMethod('reboot', payload: null) -> 200 'Reboot started', lastReboot via getTwin polling", async () => {
      rebooted.set(seed.id, await rebootAndPoll(seed, null));
    });
    await check("the function app's form: payload {requestId} reaches the device as sent, same flow", async () => {
      for (const [i, device] of others.entries()) {
        const payload = { requestId: `r-${i}` };
        rebooted.set(device.id, await rebootAndPoll(device, payload));
        assert.deepEqual(device.requests, [payload]);
      }
    });
    await check('the report: createQuery on lastReboot pages with x-ms-continuation (page size 2) and stops', async () => {
      assert.ok(rebooted.size >= 2, 'needs at least two rebooted devices');
      const query = registry.createQuery('SELECT * FROM devices WHERE IS_DEFINED(properties.reported.iothubDM.reboot.lastReboot)', 2);
      const seen = new Map();
      let pages = 0;
      while (query.hasMoreResults) {
        const page = (await query.nextAsTwin()).result;
        assert.ok(page.length <= 2, `a page of ${page.length} twins`);
        for (const twin of page) seen.set(twin.deviceId, twin.properties.reported.iothubDM.reboot.lastReboot);
        pages++;
      }
      assert.deepEqual(new Map([...seen].sort()), new Map([...rebooted].sort()));
      assert.equal(pages, Math.ceil(rebooted.size / 2));
    });
    // Jobs as Microsoft's schedule-jobs how-to runs them
    // (articles/iot-hub/iot-hub-node-node-schedule-jobs.md: start now,
    // 300 s, payload null), watched with getJob as its monitorJob does,
    // outcomes read from devices.jobs. The start time is given: without it
    // the SDK's promise form sends "startTime": null, which the service
    // refuses ("the service requires actual values", azure-iot-sdk-node
    // #847 and its fix, which covered the callback forms only).
    await check('JobClient.scheduleDeviceMethod reboots two devices: queued, getJob polls to completed, devices.jobs holds each answer', async () => {
      const targets = devices.slice(1, 3);
      const before = targets.map((d) => d.requests.length);
      const jobId = `${run}-reboot-job`;
      const condition = `deviceId IN [${targets.map((d) => `'${d.id}'`).join(',')}]`;
      const methodParams = { methodName: 'reboot', payload: null, responseTimeoutInSeconds: 10 };
      const created = (await jobClient.scheduleDeviceMethod(jobId, condition, methodParams, new Date(), 300)).jobStatus;
      assert.deepEqual(created, { jobId, type: 'scheduleDeviceMethod', status: 'queued' });
      const job = await poll(`job ${jobId} to end`, async () => {
        const j = (await jobClient.getJob(jobId)).jobStatus;
        return ['completed', 'failed', 'cancelled'].includes(j.status) ? j : undefined;
      });
      assert.equal(job.status, 'completed');
      assert.deepEqual(job.deviceJobStatistics, { deviceCount: 2, failedCount: 0, succeededCount: 2, runningCount: 0, pendingCount: 0 });
      targets.forEach((d, i) => {
        assert.equal(d.requests.length, before[i] + 1, `${d.id} got the method once`);
        assert.equal(d.requests.at(-1), null);
      });
      const items = (await registry.createQuery(`SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '${jobId}'`).next()).result;
      assert.deepEqual(items.map((it) => it.deviceId).sort(), targets.map((d) => d.id).sort());
      for (const it of items) {
        assert.equal(it.status, 'completed');
        assert.deepEqual(it.outcome.deviceMethodResponse, { status: 200, payload: 'Reboot started' });
      }
      const listed = [];
      const jobs = jobClient.createQuery('scheduleDeviceMethod', 'completed', 1);
      while (jobs.hasMoreResults) for (const j of (await jobs.next()).result) listed.push(j.jobId);
      assert.ok(listed.includes(jobId), `createQuery lists ${jobId}`);
    });
    await check('JobClient.scheduleTwinUpdate an hour ahead is queued then scheduled; cancelJob cancels it', async () => {
      const jobId = `${run}-tag-job`;
      const patch = { etag: '*', tags: { rollout: 'later' }, properties: { desired: {}, reported: {} } };
      const created = (await jobClient.scheduleTwinUpdate(jobId, `deviceId = '${devices[0].id}'`, patch, new Date(Date.now() + 3600000), 120)).jobStatus;
      assert.equal(created.status, 'queued');
      await poll(`job ${jobId} to be scheduled`, async () => ((await jobClient.getJob(jobId)).jobStatus.status === 'scheduled' ? true : undefined));
      const cancelled = (await jobClient.cancelJob(jobId)).jobStatus;
      assert.equal(cancelled.status, 'cancelled');
      const twin = (await registry.getTwin(devices[0].id)).responseBody;
      assert.ok(!twin.tags || twin.tags.rollout === undefined, 'a cancelled job changed nothing');
    });
    await check('updateTwin with the etag reaches the device as a desired-property event; a stale etag is InvalidEtagError', async () => {
      const device = devices[1];
      const twin = await device.client.getTwin();
      const desired = new Promise((resolve) => twin.on('properties.desired', (d) => { if (d.interval) resolve(d); }));
      const got = (await registry.getTwin(device.id)).responseBody;
      await registry.updateTwin(device.id, { properties: { desired: { interval: 5 } } }, got.etag);
      assert.equal((await desired).interval, 5);
      await expectError(registry.updateTwin(device.id, { properties: { desired: { interval: 6 } } }, got.etag), 'InvalidEtagError');
    });
  }
  await check('a device that is not connected gives 404103 DeviceNotOnline', () => assert.rejects(
    service.invokeDeviceMethod(`${run}-registry`, { methodName: 'reboot', payload: {}, responseTimeoutInSeconds: 5 }),
    (err) => JSON.parse(JSON.parse(err.responseBody).Message).errorCode === 404103));

  for (const device of devices) await device.client.close();
  await check('Registry.delete', async () => {
    for (const id of [`${run}-registry`, ...devices.map((d) => d.id)]) await registry.delete(id);
    await expectError(registry.get(`${run}-registry`), 'DeviceNotFoundError');
  });

  if (failures.length > 0) {
    console.log(`${failures.length} check(s) failed:\n${failures.map((f) => `  - ${f}`).join('\n')}`);
    return 1;
  }
  return 0;
}

main().then((code) => process.exit(code), (err) => { console.error('FAILED', err); process.exit(1); });
