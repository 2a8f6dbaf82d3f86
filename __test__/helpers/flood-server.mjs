// A secure-mode echo server in its own process, so the flood test measures the server's memory
// alone. Talks to the test over IPC: sends its port, answers 'stats' with its RSS, counters and
// the addresses of its connections, exits on 'close'.
import { kcpwatch } from './util.mjs';

let records = 0;
const connections = [];
const server = kcpwatch.createServer(
  { log: { destination: 'none', statsInterval: 0, onEvent: () => records++ } },
  (conn) => {
    connections.push(`${conn.remoteAddress}:${conn.remotePort}`);
    conn.on('message', (m) => conn.send(m));
  },
);
const { port } = await server.listen(0, '127.0.0.1');
process.on('message', async (msg) => {
  if (msg === 'stats') {
    globalThis.gc?.();
    const m = process.memoryUsage();
    process.send({ rss: m.rss, heap: m.heapTotal, external: m.external, stats: server.stats(), connections, records });
  } else if (msg === 'close') {
    await server.close();
    process.disconnect();
  }
});
process.send({ port, key: server.publicKey });
