// Microsoft's Node.js device SDK (azure-iot-device + azure-iot-device-mqtt,
// unmodified, as pinned by conformance/node/package-lock.json) connecting
// the simulator's devices the way the simulator does: open, handle the
// reboot method, report iothubDM.reboot. The harness (cmd/perf) runs it
// with --expose-gc and reads one JSON line: the process's resident memory
// with one device connected and with all of them, each after a full
// collection. Closing stdin disconnects the devices and ends it.
'use strict';
const fs = require('node:fs');
const { Client } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const strings = fs.readFileSync(process.env.DEVICES_FILE, 'utf8').split('\n').filter((l) => l.trim() !== '');
const count = Number(process.env.COUNT || strings.length);
const concurrency = 64;

async function connect(cs) {
  const client = Client.fromConnectionString(cs, Mqtt);
  client.on('error', () => {});
  await client.open();
  client.onDeviceMethod('reboot', (request, response) => {
    response.send(200, { result: 'Reboot started' }, () => {});
  });
  const twin = await client.getTwin();
  await new Promise((resolve, reject) => {
    const patch = { iothubDM: { reboot: { lastReboot: new Date().toISOString(), status: 'running', requestId: null, reason: null } } };
    twin.properties.reported.update(patch, (err) => (err ? reject(err) : resolve()));
  });
  return client;
}

function rss() {
  for (let i = 0; i < 4; i++) global.gc();
  return process.memoryUsage().rss;
}

async function main() {
  const clients = [await connect(strings[0])];
  const base = rss();
  const start = Date.now();
  let next = 1;
  async function worker() {
    while (next < count) {
      const i = next++;
      clients.push(await connect(strings[i]));
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (Date.now() - start) / 1000;
  const all = rss();
  process.stdout.write(JSON.stringify({ devices: clients.length, rssOne: base, rssAll: all, seconds }) + '\n');
  process.stdin.resume();
  process.stdin.on('end', async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    process.exit(0);
  });
}

main().catch((err) => {
  process.stderr.write(`nodedevices: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
