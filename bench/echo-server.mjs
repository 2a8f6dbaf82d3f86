// The kcpwatch echo server of the benchmarks, in its own process so its event loop and threads
// are measured alone. Prints its port as the first stdout line; stdin EOF stops it, and it then
// prints one JSON line: event-loop delay, CPU time, peak RSS and what its endpoint counted
// (connections, datagrams in and out).
//
//   --mode raw|secure     raw (default) for the plain-KCP drivers (kcp-go), secure for the
//                         handshake drivers and the flood scenario
//   --log off | file:PATH | stalled-syslog:PORT
//                         full security logging (canonical NDJSON, every severity, stats every
//                         second) to a file, RFC 5424 to a TCP receiver that never reads, or off
//   --port P --reuse-port another shard on the same port (SO_REUSEPORT); the kernel spreads
//                         clients over the shards by address hash
//   secure mode takes its static key from KCPWATCH_SERVER_KEY (base64 or hex private key),
//                         as `kcpwatch serve` does; without it, a fresh key every run
//   --fec D,P             Reed-Solomon FEC with D data and P parity shards (raw: kcp-go's; secure: FEC_PARITY)
//                         (docs/fec.md), for the FEC latency scenario
//   --flood-limits        keep the Internet-facing handshake limits (the flood scenario);
//                         otherwise they are opened because every load client is 127.0.0.1
//   KCPWATCH_STAGE_TRACE=1 in the environment: the report adds `stages`, each hop of the round
//                         trip through the server with its count and p50/p90/p99/max in µs
//                         (`--only stages`; the hops are described in docs/performance.md)
import { createRequire } from 'node:module';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const { createServer } = require('../index.js');

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const flag = (name) => process.argv.includes(`--${name}`);
const mode = arg('mode', 'raw');
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
// Every load connection comes from 127.0.0.1, so the per-address limits (meant for the
// Internet) are opened up; the flood scenario keeps the global handshake rate limit on
// purpose, since that is what protects legitimate clients.
const open = 1_000_000;
const limits = flag('flood-limits')
  ? { maxConnectionsPerIp: open, maxConnectionsPerPrefix: open }
  : {
      maxConnectionsPerIp: open,
      maxConnectionsPerPrefix: open,
      handshakesPerSecondPerIp: open,
      handshakeBurstPerIp: open,
      handshakesPerSecond: open,
      handshakeBurst: open,
    };
const fecArg = arg('fec');
const fec = fecArg === undefined ? undefined : (([dataShards, parityShards]) => ({ dataShards, parityShards }))(fecArg.split(',').map(Number));
let connections = 0;
const server = createServer(
  {
    mode,
    ...(mode === 'secure' && process.env.KCPWATCH_SERVER_KEY ? { serverKeys: [process.env.KCPWATCH_SERVER_KEY] } : {}),
    preset: 'game',
    log,
    limits,
    maxConnections: 40_000,
    reusePort: flag('reuse-port'),
    ...(fec ? { fec } : {}),
  },
  (conn) => {
    connections += 1;
    conn.on('message', (m) => conn.send(m));
  },
);
const { port } = await server.listen(Number(arg('port', '0')), '127.0.0.1');
process.stdout.write(`${port}\n`);
process.stdin.resume();
process.stdin.on('end', async () => {
  delay.disable();
  const usage = process.resourceUsage();
  const report = {
    eld_p50_ms: delay.percentile(50) / 1e6,
    eld_p99_ms: delay.percentile(99) / 1e6,
    eld_max_ms: delay.max / 1e6,
    cpu_user_ms: usage.userCPUTime / 1000,
    cpu_system_ms: usage.systemCPUTime / 1000,
    max_rss_kib: usage.maxRSS,
    connections,
    // What the listener received and sent: the datagrams/s of `--only floor`.
    datagrams_in: server.stats().datagramsIn,
    datagrams_out: server.stats().datagramsOut,
    ...(process.env.KCPWATCH_STAGE_TRACE === '1' ? { stages: summarizeStages(server._stageTrace()) } : {}),
    ...(fec ? { fec: (({ fecRecovered, fecErrs, fecParityShards, fecShortShards }) => ({ fecRecovered, fecErrs, fecParityShards, fecShortShards }))(server.stats()) } : {}),
  };
  await server.close();
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(0);
});

/** Each hop's count and percentiles in microseconds, in the order of a round trip. */
function summarizeStages(trace) {
  if (!trace) return { error: 'no stage trace: the addon or the transport did not record one' };
  const hops = {};
  for (const [name, nanos] of Object.entries(trace.hops)) {
    const sorted = Float64Array.from(nanos).sort();
    const at = (q) => (sorted.length === 0 ? null : Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] / 100) / 10);
    hops[name] = { count: sorted.length, p50_us: at(0.5), p90_us: at(0.9), p99_us: at(0.99), max_us: at(1) };
  }
  return { hops, overflow: trace.overflow };
}
