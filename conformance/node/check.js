// Drives the local IoT Hub with Microsoft's Node.js SDKs, unmodified: the
// service SDK over HTTPS (it cannot take a port, so the hub serves :443) and
// a device over MQTT/TLS. Run by `make conformance-node`; needs
// OWNER_CONNECTION_STRING and NODE_EXTRA_CA_CERTS. Exits non-zero on the
// first behaviour that differs from what the SDKs get from Azure IoT Hub.
'use strict';
const assert = require('node:assert/strict');
const { Registry, Client } = require('azure-iothub');
const { Client: DeviceClient } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const owner = process.env.OWNER_CONNECTION_STRING;
const hostName = /HostName=([^;]+)/.exec(owner)[1];
const registry = Registry.fromConnectionString(owner);
const service = Client.fromConnectionString(owner);
const step = (name) => console.log('ok', name);

async function expectError(promise, name) {
  await assert.rejects(promise, (err) => err.constructor.name === name || err.name === name,
    `expected ${name}`);
}

async function main() {
  const id = `node-${Date.now()}`;
  const created = await registry.create({ deviceId: id });
  assert.equal(created.httpResponse.statusCode, 200);
  const key = created.responseBody.authentication.symmetricKey.primaryKey;
  assert.ok(key, 'the hub generates keys');
  step('Registry.create returns 200 with generated keys');
  await expectError(registry.create({ deviceId: id }), 'DeviceAlreadyExistsError');
  step('a duplicate create is DeviceAlreadyExistsError');
  await expectError(registry.get(`${id}-missing`), 'DeviceNotFoundError');
  step('an unknown device is DeviceNotFoundError');

  const device = DeviceClient.fromConnectionString(`HostName=${hostName};DeviceId=${id};SharedAccessKey=${key}`, Mqtt);
  await device.open();
  step('the device connects over MQTT/TLS (clean session off)');
  const calls = [];
  device.onDeviceMethod('reboot', (req, res) => { calls.push(req.payload); res.send(200, 'Reboot started', () => {}); });
  const twin = await device.getTwin();
  const desired = new Promise((resolve) => twin.on('properties.desired', (d) => { if (d.interval) resolve(d); }));
  const lastReboot = new Date().toISOString();
  await new Promise((resolve, reject) => twin.properties.reported.update(
    { iothubDM: { reboot: { lastReboot } } }, (err) => (err ? reject(err) : resolve())));
  step('the device reports iothubDM.reboot.lastReboot');

  const method = await service.invokeDeviceMethod(id, { methodName: 'reboot', payload: { requestId: 'r-1' }, responseTimeoutInSeconds: 30 });
  assert.deepEqual(method.result, { status: 200, payload: 'Reboot started' });
  assert.deepEqual(calls, [{ requestId: 'r-1' }]);
  step('invokeDeviceMethod reaches the device and returns its answer');

  const got = await registry.getTwin(id);
  assert.equal(got.responseBody.properties.reported.iothubDM.reboot.lastReboot, lastReboot);
  step('getTwin shows the reported lastReboot');
  await registry.updateTwin(id, { properties: { desired: { interval: 5 } } }, got.responseBody.etag);
  assert.equal((await desired).interval, 5);
  step('updateTwin with the etag reaches the device as a desired-property event');

  for (const extra of ['a', 'b', 'c']) await registry.create({ deviceId: `${id}-${extra}` });
  const query = registry.createQuery(`SELECT * FROM devices WHERE STARTSWITH(deviceId, '${id}')`, 2);
  let twins = 0, pages = 0;
  while (query.hasMoreResults) { twins += (await query.nextAsTwin()).result.length; pages++; }
  assert.deepEqual([twins, pages], [4, 2]);
  step('createQuery pages with x-ms-continuation and stops');

  await assert.rejects(service.invokeDeviceMethod(`${id}-a`, { methodName: 'reboot', payload: {}, responseTimeoutInSeconds: 5 }),
    (err) => JSON.parse(JSON.parse(err.responseBody).Message).errorCode === 404103);
  step('a device that is not connected gives 404103 DeviceNotOnline');

  await device.close();
  for (const extra of ['', '-a', '-b', '-c']) await registry.delete(`${id}${extra}`);
  step('Registry.delete');
}

main().then(() => process.exit(0), (err) => { console.error('FAILED', err); process.exit(1); });
