// An echo server for the benchmarks, in its own process so its event loop and threads are
// measured alone. `--log file:PATH` writes full security logging (canonical NDJSON, every
// severity, stats every second) through the log thread; `--log off` turns logging off.
import { createRequire } from 'node:module';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const { createServer } = require('../index.js');

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
// `--log off`, `--log file:PATH`, or `--log stalled-syslog:PORT`: RFC 5424 to a TCP receiver
// that never reads (the slow sink of the event-loop delay scenario).
const logArg = arg('log', 'off');
const log =
  logArg === 'off'
    ? false
    : logArg.startsWith('stalled-syslog:')
      ? {
          outputs: [
            {
              destination: { syslog: `tcp://127.0.0.1:${logArg.split(':')[1]}`, queueRecords: 1000 },
              format: 'rfc5424',
            },
          ],
          level: 'debug',
          statsInterval: 1000,
        }
      : { destination: { file: logArg.replace(/^file:/, '') }, level: 'debug', statsInterval: 1000 };
const delay = monitorEventLoopDelay({ resolution: 1 });
delay.enable();
// Raw mode: the load comes from the kcp-go driver, which speaks plain KCP. Every connection
// comes from 127.0.0.1 at once, so the per-address limits and handshake rates (meant for the
// Internet) are opened up.
const open = 1_000_000;
const limits = {
  maxConnectionsPerIp: open,
  maxConnectionsPerPrefix: open,
  handshakesPerSecondPerIp: open,
  handshakeBurstPerIp: open,
  handshakesPerSecond: open,
  handshakeBurst: open,
};
const server = createServer({ mode: 'raw', preset: 'game', log, limits, maxConnections: 20000 }, (conn) => {
  conn.on('message', (m) => conn.send(m));
});
const { port } = await server.listen(0, '127.0.0.1');
process.stdout.write(`${port}\n`);
process.stdin.resume();
process.stdin.on('end', async () => {
  delay.disable();
  const eld = { eld_p50_ms: delay.percentile(50) / 1e6, eld_p99_ms: delay.percentile(99) / 1e6, eld_max_ms: delay.max / 1e6 };
  await server.close();
  process.stdout.write(`${JSON.stringify(eld)}\n`);
  process.exit(0);
});
