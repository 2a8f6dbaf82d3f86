// The user-space impairment relay (src/relay.ts) in its own process, so the latency scenario's
// relay neither competes with nor is starved by the orchestrator. Prints its port as the first
// stdout line; stdin EOF stops it and prints its counters as one JSON line.
//   node bench/relay-process.mjs --target-port P [--loss 0.1] [--delay-ms 40] [--seed N]
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { createRelay } = require('../index.js');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const relay = await createRelay({
  target: { host: '127.0.0.1', port: Number(arg('target-port')) },
  loss: Number(arg('loss', '0')),
  delayMs: Number(arg('delay-ms', '0')),
  seed: Number(arg('seed', '7')),
  maxClients: 20_000,
  maxQueued: 1_000_000,
});
process.stdout.write(`${relay.port}\n`);
process.stdin.resume();
process.stdin.on('end', async () => {
  const stats = relay.stats();
  await relay.close();
  process.stdout.write(`${JSON.stringify(stats)}\n`);
  process.exit(0);
});
