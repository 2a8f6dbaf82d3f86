// An echo server for the benchmarks, in its own process so its event loop and threads are
// measured alone. `--log file:PATH` writes full security logging (canonical NDJSON, every
// severity, stats every second) through the log thread; `--log off` turns logging off.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { createServer } = require('../index.js');

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const logArg = arg('log', 'off');
const log =
  logArg === 'off'
    ? false
    : { destination: { file: logArg.replace(/^file:/, '') }, level: 'debug', statsInterval: 1000 };
const server = createServer({ preset: 'game', log, maxConnections: 20000 }, (conn) => {
  conn.on('message', (m) => conn.send(m));
});
const { port } = await server.listen(0, '127.0.0.1');
process.stdout.write(`${port}\n`);
process.stdin.resume();
process.stdin.on('end', async () => {
  await server.close();
  process.exit(0);
});
