// The peers a scenario can put side by side: how to start each one's echo server and how to
// drive load at it. Every server prints its port and stops on stdin EOF; every driver prints
// one JSON line with the same fields (msgs_per_sec, p50_us, p99_us, max_us, ...).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { startServer, runDriver } from './process.mjs';

export const root = fileURLToPath(new URL('../..', import.meta.url));
const node = process.execPath;
const goBin = join(root, 'interop/kcp-go/bin/kcpgo');
const nodeKcpDir = join(root, 'bench/peers/node-kcp');
const udpEchoDir = join(root, 'bench/peers/udp-echo');
const udpEchoBin = join(udpEchoDir, 'target/release/udp-echo');

// One static key for every secure-mode server of a benchmark run (shards on one port must share
// it); the private key reaches the server through its environment, never its command line.
const benchKey = createRequire(import.meta.url)('../../index.js').generateKeyPair();
const benchServerEnv = { KCPWATCH_SERVER_KEY: benchKey.privateKey.toString('base64') };
export const benchServerKey = benchKey.publicKey.toString('base64');

/**
 * Builds the kcp-go peer (cached by go) and the plain Rust UDP echo (cached by cargo) and, once,
 * tries to install node-kcp.
 */
export function preparePeers() {
  execFileSync('bash', [join(root, 'interop/kcp-go/build.sh')], { stdio: 'inherit' });
  const nodeKcp = { available: false, reason: '' };
  if (!existsSync(join(nodeKcpDir, 'package.json'))) {
    nodeKcp.reason = 'bench/peers/node-kcp is missing';
  } else {
    try {
      if (!existsSync(join(nodeKcpDir, 'node_modules'))) {
        // A native build against the local Node headers; the product never depends on it.
        execFileSync('npm', ['ci', '--prefix', nodeKcpDir, '--no-audit', '--no-fund'], {
          stdio: ['ignore', 'ignore', 'pipe'],
          env: { ...process.env, npm_config_nodedir: process.env.npm_config_nodedir ?? '/usr' },
          timeout: 300_000,
        });
      }
      nodeKcp.available = true;
    } catch (err) {
      nodeKcp.reason = `did not build: ${String(err.stderr ?? err.message).trim().split('\n').slice(-3).join(' ')}`.slice(0, 300);
    }
  }
  // The loopback floor of `--only floor`: a standalone crate, outside the root workspace.
  const udpEcho = { available: false, reason: '' };
  try {
    execFileSync('cargo', ['build', '--release', '--quiet', '--manifest-path', join(udpEchoDir, 'Cargo.toml')], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
    udpEcho.available = true;
  } catch (err) {
    udpEcho.reason = `did not build: ${String(err.stderr ?? err.message).trim().split('\n').slice(-3).join(' ')}`.slice(0, 300);
  }
  return { nodeKcp, udpEcho };
}

const loadArgs = ({ port, conns, size, durationMs, window, rate, drainMs = 3000 }) => {
  const args = ['--addr', `127.0.0.1:${port}`, '--conns', String(conns), '--size', String(size), '--duration-ms', String(durationMs), '--window', String(window), '--drain-ms', String(drainMs)];
  if (rate) args.push('--rate', String(rate));
  return args;
};

const countArgs = ({ count, warmup, timeoutMs }) => [
  ...(count ? ['--count', String(count)] : []),
  ...(warmup !== undefined ? ['--warmup', String(warmup)] : []),
  ...(timeoutMs ? ['--timeout-ms', String(timeoutMs)] : []),
];

// kcp-go's optional layers, the same flags on its server and its driver.
const kcpGoLayers = ({ crypt, fec } = {}) => [
  ...(crypt ? ['--crypt', crypt, '--key', 'kcpwatch-bench'] : []),
  ...(fec ? ['--fec-data', String(fec.dataShards), '--fec-parity', String(fec.parityShards)] : []),
];

/** Servers by name. `options.mode` is 'raw' or 'secure' for kcpwatch; the others are raw KCP. */
export const servers = {
  kcpwatch: (options = {}) => {
    const args = [join(root, 'bench/echo-server.mjs'), '--mode', options.mode ?? 'raw', '--log', options.log ?? 'off'];
    if (options.port) args.push('--port', String(options.port));
    if (options.reusePort) args.push('--reuse-port');
    if (options.floodLimits) args.push('--flood-limits');
    if (options.fec) args.push('--fec', `${options.fec.dataShards},${options.fec.parityShards}`);
    const env = { ...(options.mode === 'secure' ? benchServerEnv : {}), ...(options.stageTrace ? { KCPWATCH_STAGE_TRACE: '1' } : {}) };
    const spawnOptions = Object.keys(env).length > 0 ? { env } : {};
    // `cpus`: pinned to those CPUs (taskset execs the server, so the pid is the server's).
    return options.cpus ? startServer('taskset', ['-c', options.cpus, node, ...args], spawnOptions) : startServer(node, args, spawnOptions);
  },
  // `crypt: 'aes'`: kcp-go's own AES block cipher (kcp.NewAESBlockCrypt); `fec`: its FEC.
  'kcp-go': (options = {}) => startServer(goBin, ['server', '--host', '127.0.0.1', '--port', '0', '--exit-on-stdin-eof', ...kcpGoLayers(options)], { portFrom: 'stderr' }),
  'node-kcp': () => startServer(node, [join(nodeKcpDir, 'server.mjs')]),
  dgram: () => startServer(node, [join(root, 'bench/peers/udp/server.mjs')]),
  // Plain UDP, recvmmsg/sendmmsg on one thread: the floor (bench/peers/udp-echo).
  'udp-echo': () => startServer(udpEchoBin, ['server']),
};

/**
 * Load drivers by name; `shape` = { port, conns, size, durationMs, window, rate, mode, token,
 * fec, crypt } (`fec` for node and go, `crypt` for go: kcp-go's own layers).
 */
export const drivers = {
  node: (shape, extra = {}) => {
    const args = [join(root, 'bench/node-load.mjs'), ...loadArgs(shape), '--mode', shape.mode ?? 'raw'];
    if (shape.mode === 'secure') args.push('--server-key', benchServerKey);
    if (shape.token) args.push('--token', shape.token);
    if (shape.fec) args.push('--fec', `${shape.fec.dataShards},${shape.fec.parityShards}`);
    if (shape.clients) args.push('--clients', String(shape.clients));
    return runDriver(node, args, extra);
  },
  go: (shape, extra = {}) => {
    // Holding sends nothing after its one warm-up echo per session: no load flags.
    const args = shape.hold
      ? ['bench-client', '--addr', `127.0.0.1:${shape.port}`, '--conns', String(shape.conns), '--size', String(shape.size), '--idle', '--hold-until-stdin-eof']
      : ['bench-client', ...loadArgs(shape)];
    if (shape.mode === 'secure') args.push('--secure', '--server-key', benchServerKey);
    if (shape.dialRate) args.push('--dial-rate', String(shape.dialRate));
    args.push(...kcpGoLayers(shape));
    // Spread over several loopback addresses, as players are (the per-address limits stay on).
    if (shape.sourceIps) args.push('--bind-ip', shape.bindIp ?? '127.0.200.1', '--source-ips', String(shape.sourceIps));
    // `cpus`: pinned to those CPUs (taskset), so the servers' share of the machine is known.
    return shape.cpus ? runDriver('taskset', ['-c', shape.cpus, goBin, ...args], extra) : runDriver(goBin, args, extra);
  },
  'node-kcp': (shape, extra = {}) => runDriver(node, [join(nodeKcpDir, 'load.mjs'), ...loadArgs(shape)], extra),
  dgram: (shape, extra = {}) => runDriver(node, [join(root, 'bench/peers/udp/load.mjs'), ...loadArgs(shape)], extra),
  // The plain Rust client of bench/peers/udp-echo: a blocking ping-pong with conns 1 and window
  // 1 (`count` round trips after `warmup`, `durationMs` the bound), otherwise a poll/recvmmsg
  // load for `durationMs`; `timeoutMs`: how long one echo may take.
  'udp-echo': (shape, extra = {}) => runDriver(udpEchoBin, ['client', ...loadArgs(shape), ...countArgs(shape)], extra),
  // One message in flight over one connection, a fixed count after a warm-up (`durationMs` is
  // the bound), on Node's dgram or kcpwatch's own client: `shape.stack` = 'dgram' | 'kcpwatch'.
  pingpong: (shape, extra = {}) =>
    runDriver(node, [join(udpEchoDir, 'pingpong.mjs'), '--stack', shape.stack, '--addr', `127.0.0.1:${shape.port}`, '--size', String(shape.size), '--duration-ms', String(shape.durationMs), ...countArgs(shape)], extra),
  flood: ({ port, count, rate, sources = 256, sourceIps = 1, kind = 'hello', maxMs }, extra = {}) =>
    runDriver(
      goBin,
      ['flood', '--addr', `127.0.0.1:${port}`, '--count', String(count), '--rate', String(rate), '--sources', String(sources), '--source-ips', String(sourceIps), '--kind', kind, '--max-ms', String(maxMs)],
      extra,
    ),
};

/**
 * The echo pairs of scenario 1: each peer's own server driven by its own client stack, plus
 * kcpwatch's server under the Go driver (the server alone, with the load generator that costs
 * the least CPU).
 */
export const echoPeers = [
  { name: 'kcpwatch', server: 'kcpwatch', driver: 'node', mode: 'raw' },
  { name: 'kcpwatch secure', server: 'kcpwatch', driver: 'node', mode: 'secure', extra: true },
  { name: 'kcpwatch (Go load)', server: 'kcpwatch', driver: 'go', mode: 'raw', extra: true },
  { name: 'kcp-go', server: 'kcp-go', driver: 'go' },
  { name: 'node-kcp', server: 'node-kcp', driver: 'node-kcp', needs: 'nodeKcp' },
  { name: 'dgram (no KCP)', server: 'dgram', driver: 'dgram' },
];
