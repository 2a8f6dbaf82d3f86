// Reception on the event loop (docs/architecture.md, "Threads and the JavaScript boundary"):
// while the I/O thread sleeps, the event loop's thread reads the socket itself. Messages still
// arrive once and in order, and a handler that blocks the event loop does not stop the
// acknowledgements: the I/O thread takes reading back.
import test from 'ava';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { kcpwatch, next } from './helpers/util.mjs';

const handsOver = process.platform !== 'win32';

test('a ping-pong is read on the event loop, every message once and in order', async (t) => {
  const server = kcpwatch.createServer({ mode: 'raw', log: false }, (conn) => conn.on('message', (m) => conn.send(m)));
  t.teardown(() => server.close());
  await server.listen(0, '127.0.0.1');
  const client = kcpwatch.connect({ host: '127.0.0.1', port: server.address().port, mode: 'raw' });
  t.teardown(() => client.close());
  await client.ready();
  const echoes = [];
  client.on('message', (m) => echoes.push(String(m)));
  for (let i = 0; i < 300; i++) {
    const echoed = next(client, 'message');
    client.send(`m${i}`);
    await echoed;
  }
  t.deepEqual(echoes, Array.from({ length: 300 }, (_, i) => `m${i}`));
  const stats = server.stats();
  t.log(`receivesOnLoop ${stats.receivesOnLoop}, receptionsHanded ${stats.receptionsHanded}, loopReceiveStalls ${stats.loopReceiveStalls}`);
  if (handsOver) {
    t.true(stats.receptionsHanded >= 1, 'the I/O thread handed reception over');
    t.true(stats.receivesOnLoop >= 1, 'the event loop read datagrams');
  } else {
    t.is(stats.receivesOnLoop, 0);
  }
});

// The client runs in a worker, whose event loop stays free while the server's is blocked.
const client = `
const { parentPort, workerData } = require('node:worker_threads');
const kcpwatch = require(workerData.index);
const client = kcpwatch.connect({ host: '127.0.0.1', port: workerData.port, mode: 'raw' });
const acked = [];
let sent = 0;
client.ready().then(() => {
  const timer = setInterval(() => {
    if (sent === 120) {
      clearInterval(timer);
      client.close();
      parentPort.postMessage({ acked });
      return;
    }
    client.send('tick ' + sent++);
  }, 5);
  const watch = setInterval(() => {
    if (client.queuedBytes === 0 && sent > 0) acked.push(Date.now());
    if (sent === 120) clearInterval(watch);
  }, 1);
});
`;

test('a handler that blocks the event loop does not stop the acknowledgements', async (t) => {
  let blocked;
  const server = kcpwatch.createServer({ mode: 'raw', log: false }, (conn) => {
    conn.on('message', (m) => {
      if (blocked || !String(m).startsWith('tick 20')) return;
      // A handler doing 300 ms of synchronous work: nothing else runs on this thread meanwhile.
      const from = Date.now();
      while (Date.now() - from < 300);
      blocked = { from, to: Date.now() };
    });
  });
  t.teardown(() => server.close());
  await server.listen(0, '127.0.0.1');
  const index = fileURLToPath(new URL('../index.js', import.meta.url));
  const worker = new Worker(client, { eval: true, workerData: { index, port: server.address().port } });
  t.teardown(() => worker.terminate());
  const [report] = await next(worker, 'message', 20_000);
  t.truthy(blocked, 'the handler ran');
  // Acknowledged while the handler still blocked, well after it started.
  const during = report.acked.filter((at) => at > blocked.from + 30 && at < blocked.to - 10);
  t.log(`acknowledged ${during.length} times during the 300 ms block; loopReceiveStalls ${server.stats().loopReceiveStalls}`);
  t.true(during.length > 0, 'the client saw acknowledgements while the server blocked');
  if (handsOver) t.true(server.stats().loopReceiveStalls >= 1);
});
