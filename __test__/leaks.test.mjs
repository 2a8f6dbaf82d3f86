// A closed endpoint gives back its file descriptors and its native memory at close(), whether
// or not its JavaScript object is ever collected. Measured process-wide (/proc/self/fd and
// RSS), so the tests run one at a time.
import test from 'ava';
import { readdirSync } from 'node:fs';
import { kcpwatch, next } from './helpers/util.mjs';

const fds = () => readdirSync('/proc/self/fd').length;
const rssMb = () => process.memoryUsage().rss / 1e6;

// A few descriptors may come and go with Node's own work (timers, the thread pool); a leak
// of one per endpoint is far above this.
const FD_SLACK = 8;

test.serial('200 connect/echo/close rounds leave the fd count flat (logging on)', async (t) => {
  const server = kcpwatch.createServer({
    log: { destination: 'none' },
    limits: { handshakesPerSecondPerIp: 100_000, handshakeBurstPerIp: 100_000 },
  });
  t.teardown(() => server.close());
  server.on('connection', (c) => c.on('message', (m) => c.send(m)));
  const { port } = await server.listen(0, '127.0.0.1');
  const round = async () => {
    const client = kcpwatch.connect({
      host: '127.0.0.1',
      port,
      serverKey: server.publicKey,
      log: { destination: 'none' },
    });
    try {
      const echoed = next(client, 'message');
      client.send('ping');
      await client.ready();
      await echoed;
    } finally {
      const closed = next(client, 'close');
      client.close();
      await closed;
    }
  };
  // Warm up: Node opens some descriptors of its own on first use.
  for (let i = 0; i < 5; i++) await round();
  const before = fds();
  const deadline = Date.now() + 40_000;
  let rounds = 0;
  while (rounds < 200 && Date.now() < deadline) {
    await round();
    rounds++;
  }
  t.is(rounds, 200, 'every round finished in time');
  const after = fds();
  t.log(`fds ${before} -> ${after} over ${rounds} client endpoints`);
  t.true(after - before <= FD_SLACK, `fd count grew from ${before} to ${after}`);
});

test.serial('100 listen/close cycles with logging on leave fds flat and RSS bounded', async (t) => {
  const cycle = async () => {
    const server = kcpwatch.createServer({ log: { destination: 'none' } });
    try {
      await server.listen(0, '127.0.0.1');
    } finally {
      await server.close();
    }
  };
  for (let i = 0; i < 5; i++) await cycle();
  const fdsBefore = fds();
  const rssBefore = rssMb();
  for (let i = 0; i < 100; i++) await cycle();
  const fdsAfter = fds();
  const rssAfter = rssMb();
  t.log(`fds ${fdsBefore} -> ${fdsAfter}, rss ${rssBefore.toFixed(1)} -> ${rssAfter.toFixed(1)} MB over 100 servers`);
  t.true(fdsAfter - fdsBefore <= FD_SLACK, `fd count grew from ${fdsBefore} to ${fdsAfter}`);
  // Each server's log ring alone is several megabytes: 100 kept alive would be hundreds.
  t.true(rssAfter - rssBefore < 50, `RSS grew by ${(rssAfter - rssBefore).toFixed(1)} MB`);
});
