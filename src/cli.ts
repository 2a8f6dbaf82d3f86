/**
 * The `kcpwatch` command: `serve` (an echo server), `demo` (traffic through a lossy link) and
 * `bench` (the side-by-side benchmark of a source checkout).
 */

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo as NetAddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import type { CloseInfo } from './records';
import { runDemo } from './demo';
import { KcpError } from './errors';
import { logFormats, type IpPrivacy, type LogFormat, type LogOutputOptions, type SeverityName } from './log';
import { presets, type Mode, type PresetName } from './options';
import { metricsContentType } from './metrics';
import { createServer, type Server } from './server';

const usage = `usage:
  kcpwatch serve --port N [--host H] [--mode secure|raw] [--preset game] [--idle-timeout MS]
                 [--log-format json|ecs|ocsf|cef|rfc5424|gelf|hec|otlp|none] [--log-file PATH]
                 [--log-level LEVEL] [--stats-interval MS] [--metrics-port N]
                 [--ip-privacy full|truncate|hmac|cryptopan|omit] [--ip-privacy-key-id ID]
                 [--log SINK[,format=F][,level=L]]... [--syslog-ca PEM] [--spool-dir DIR]
      KCP echo server, in secure mode (docs/protocol.md) unless --mode raw asks for plain KCP
      (for kcp-go, ikcp and other KCP clients). Security events go to stdout (or --log-file), one record per line, in
      the chosen format (default json: the canonical NDJSON). hmac and cryptopan read their key
      (hex) from the KCPWATCH_IP_PRIVACY_KEY environment variable, never from the command line.
      --log (repeatable) replaces the single output: SINK is stdout, stderr, file:PATH,
      syslog+udp://IP:PORT, syslog+tcp://IP:PORT, syslog+tls://IP:PORT, hec+https://HOST:PORT
      (token in KCPWATCH_HEC_TOKEN), elastic+http://HOST:PORT or otlp+http://HOST:PORT (CA from
      --syslog-ca for TLS and HTTPS; spool to --spool-dir while the receiver is down); format
      defaults to --log-format (HTTP sinks use the format their collector takes). Prints "listening HOST:PORT" to stderr when ready; readable
      lifecycle lines follow on stderr. --metrics-port N serves Prometheus metrics at
      http://127.0.0.1:N/metrics (loopback only; 0 picks a port; prints "metrics URL" to stderr).
      Stops on SIGINT/SIGTERM.
  kcpwatch demo [--clients N] [--messages N] [--loss P] [--flood N]
      A server and clients through a lossy, reordering UDP relay on loopback; ends by itself.
  kcpwatch bench [--quick] [--only SCENARIOS] [--json FILE] [--chart FILE]
      kcpwatch side by side with kcp-go, node-kcp and plain dgram on this machine (npm run bench);
      needs a source checkout (Go and Rust toolchains), see docs/performance.md.
`;

/** Runs bench/index.mjs of the checkout this build lives in; the npm package does not ship it. */
function bench(args: string[]): number {
  const script = join(__dirname, '..', 'bench', 'index.mjs');
  if (!existsSync(script)) {
    process.stderr.write('kcpwatch bench runs from a source checkout (git clone, npm ci, npm run build): bench/ is not in the npm package\n');
    return 1;
  }
  return spawnSync(process.execPath, [script, ...args], { stdio: 'inherit' }).status ?? 1;
}

function num(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new KcpError(`--${name} must be a number, got ${value}`, 'KCP_ERR_INVALID_OPTION');
  return n;
}

export function describeClose(info: CloseInfo): string {
  return (
    `reason=${info.reason} initiator=${info.initiator} duration_ms=${info.durationMs} ` +
    `datagrams_in=${info.datagramsIn} bytes_in=${info.bytesIn} datagrams_out=${info.datagramsOut} ` +
    `bytes_out=${info.bytesOut} messages_in=${info.messagesIn} messages_out=${info.messagesOut} ` +
    `retransmitted=${info.retransmittedSegments} guard_drops=${info.guardDrops} srtt_ms=${info.srttMs} rto_ms=${info.rtoMs}`
  );
}

function privacyFromCli(mode: string, keyId: string): IpPrivacy {
  const key = process.env.KCPWATCH_IP_PRIVACY_KEY;
  switch (mode) {
    case 'full':
    case 'omit':
    case 'truncate':
      return { mode };
    case 'hmac':
    case 'cryptopan':
      if (!key) {
        throw new KcpError(`--ip-privacy ${mode} needs its key (hex) in KCPWATCH_IP_PRIVACY_KEY`, 'KCP_ERR_INVALID_OPTION');
      }
      return mode === 'hmac' ? { mode, keyId, key } : { mode, key };
    default:
      throw new KcpError(`--ip-privacy must be full, truncate, hmac, cryptopan or omit, got ${mode}`, 'KCP_ERR_INVALID_OPTION');
  }
}

/**
 * One `--log SINK[,format=F][,level=L]`: `stdout`, `stderr`, `file:PATH`, `syslog+udp://IP:PORT`,
 * `syslog+tcp://IP:PORT` or `syslog+tls://IP:PORT` (with `--syslog-ca`).
 */
function outputFromCli(spec: string, defaultFormat: LogFormat, ca: string | undefined, spool: string | undefined): LogOutputOptions {
  const [target, ...params] = spec.split(',');
  const opts = Object.fromEntries(params.map((p) => p.split('=', 2) as [string, string]));
  for (const key of Object.keys(opts)) {
    if (key !== 'format' && key !== 'level') throw new KcpError(`--log ${spec}: unknown parameter ${key}`, 'KCP_ERR_INVALID_OPTION');
  }
  const format = (opts.format ?? defaultFormat) as LogFormat;
  const level = opts.level as SeverityName | undefined;
  let destination: LogOutputOptions['destination'];
  if (target === 'stdout' || target === 'stderr') destination = target;
  else if (target?.startsWith('file:')) destination = { file: target.slice(5) };
  else if (target && /^syslog\+(udp|tcp|tls):\/\//.test(target)) {
    const url = target.slice('syslog+'.length);
    // One spool directory per sink: a spool belongs to one sink at a time.
    const spoolDir = spool && !url.startsWith('udp') ? join(spool, url.replace(/[^A-Za-z0-9]+/g, '_')) : undefined;
    destination = { syslog: url, caFile: ca, spoolDir };
  } else if (target && /^(hec|elastic|otlp)\+https?:\/\//.test(target)) {
    const kind = target.slice(0, target.indexOf('+')) as 'hec' | 'elastic' | 'otlp';
    const url = new URL(target.slice(kind.length + 1));
    // The usual endpoint of each collector when the URL names none.
    if (url.pathname === '/') url.pathname = { hec: '/services/collector/event', elastic: '/_bulk', otlp: '/v1/logs' }[kind];
    const token = process.env.KCPWATCH_HEC_TOKEN;
    if (kind === 'hec' && !token) {
      throw new KcpError(`--log ${spec}: the HEC token goes in KCPWATCH_HEC_TOKEN`, 'KCP_ERR_INVALID_OPTION');
    }
    const spoolDir = spool ? join(spool, target.replace(/[^A-Za-z0-9]+/g, '_')) : undefined;
    destination = { http: url.toString(), kind, token, caFile: ca, spoolDir };
  } else {
    throw new KcpError(
      `--log ${spec}: the sink must be stdout, stderr, file:PATH, syslog+udp|tcp|tls://IP:PORT or hec|elastic|otlp+http(s)://HOST:PORT[/path]`,
      'KCP_ERR_INVALID_OPTION',
    );
  }
  return { destination, format, ...(level ? { level } : {}) };
}

async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: 'string' },
      host: { type: 'string', default: '0.0.0.0' },
      mode: { type: 'string', default: 'secure' },
      preset: { type: 'string', default: 'game' },
      'idle-timeout': { type: 'string' },
      'log-format': { type: 'string', default: 'json' },
      log: { type: 'string', multiple: true },
      'syslog-ca': { type: 'string' },
      'spool-dir': { type: 'string' },
      'log-file': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      'stats-interval': { type: 'string' },
      'ip-privacy': { type: 'string', default: 'full' },
      'ip-privacy-key-id': { type: 'string', default: 'k1' },
      'metrics-port': { type: 'string' },
    },
    strict: true,
  });
  const metricsPort = num(values['metrics-port'], 'metrics-port');
  if (metricsPort !== undefined && !(Number.isInteger(metricsPort) && metricsPort >= 0 && metricsPort <= 65535)) {
    throw new KcpError(
      `--metrics-port must be a port number (0 picks one), got ${values['metrics-port']}`, 'KCP_ERR_INVALID_OPTION');
  }
  const format = values['log-format']!;
  if (format !== 'none' && !logFormats.includes(format as LogFormat)) {
    throw new KcpError(`--log-format must be one of ${logFormats.join(', ')} or none, got ${format}`, 'KCP_ERR_INVALID_OPTION');
  }
  const ipPrivacy = privacyFromCli(values['ip-privacy']!, values['ip-privacy-key-id']!);
  const logFile = values['log-file'];
  const outputs = values.log?.map((spec) =>
    outputFromCli(spec, format === 'none' ? 'json' : (format as LogFormat), values['syslog-ca'], values['spool-dir']),
  );
  if (!(values.preset! in presets)) {
    throw new KcpError(`--preset must be one of ${Object.keys(presets).join(', ')}`, 'KCP_ERR_INVALID_OPTION');
  }
  const server = createServer({
    mode: values.mode as Mode,
    preset: values.preset as PresetName,
    idleTimeout: num(values['idle-timeout'], 'idle-timeout'),
    log:
      format === 'none' && !outputs
        ? false
        : {
            ...(outputs ? { outputs } : { destination: logFile ? { file: logFile } : 'stdout', format: format as LogFormat }),
            level: values['log-level'] as SeverityName,
            statsInterval: num(values['stats-interval'], 'stats-interval'),
            service: 'kcpwatch-serve',
            ipPrivacy,
          },
  });
  const log = (line: string) => process.stderr.write(`${line}\n`);
  server.on('connection', (conn) => {
    log(`connection ${conn.id} from ${conn.remoteAddress}:${conn.remotePort} to ${conn.localAddress}:${conn.localPort} conv=${conn.conv}`);
    conn.on('message', (data) => {
      try {
        conn.send(data);
      } catch (err) {
        log(`send failed on ${conn.id}: ${(err as Error).message}`);
      }
    });
    conn.on('close', (_reason, info) => log(`close ${conn.id} ${describeClose(info)}`));
  });
  // Signal handlers go in before anything is announced: once "listening" is out, a supervisor
  // may signal at any moment, and the I/O threads keep running while this thread waits.
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
    process.on('SIGINT', () => resolve('SIGINT'));
    process.on('SIGTERM', () => resolve('SIGTERM'));
  });
  const address = await server.listen(num(values.port, 'port') ?? 0, values.host);
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  log(`listening ${shown}:${address.port}`);
  let metrics: HttpServer | undefined;
  try {
    metrics = metricsPort === undefined ? undefined : await serveMetrics(server, metricsPort);
  } catch (err) {
    await server.close();
    throw new KcpError(
      `--metrics-port ${metricsPort}: ${(err as Error).message}`,
      (err as NodeJS.ErrnoException).code === 'EADDRINUSE' ? 'KCP_ERR_ADDR_IN_USE' : 'KCP_ERR_GENERIC',
      { cause: err },
    );
  }
  if (metrics) log(`metrics http://127.0.0.1:${(metrics.address() as NetAddressInfo).port}/metrics`);
  const signal = await stopSignal;
  log(`stopping (${signal})`);
  if (metrics) {
    metrics.closeAllConnections();
    await new Promise<void>((resolve) => metrics.close(() => resolve()));
  }
  await server.close();
  log('closed');
  return 0;
}

/** An HTTP server on 127.0.0.1 only: `GET /metrics` answers with `server.metrics()`. */
async function serveMetrics(server: Server, port: number): Promise<HttpServer> {
  const http = createHttpServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    let body: string;
    try {
      body = server.metrics();
    } catch (err) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`);
      return;
    }
    res.writeHead(200, { 'content-type': metricsContentType, 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, '127.0.0.1', () => {
      http.off('error', reject);
      resolve();
    });
  });
  return http;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'demo': {
      const { values } = parseArgs({
        args: rest,
        options: {
          clients: { type: 'string', default: '3' },
          messages: { type: 'string', default: '200' },
          loss: { type: 'string', default: '0.1' },
          flood: { type: 'string', default: '5000' },
        },
        strict: true,
      });
      return runDemo({
        clients: num(values.clients, 'clients')!,
        messages: num(values.messages, 'messages')!,
        loss: num(values.loss, 'loss')!,
        flood: num(values.flood, 'flood')!,
        out: (line) => process.stdout.write(`${line}\n`),
      });
    }
    case 'bench':
      return bench(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(usage);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`unknown command ${command}\n${usage}`);
      return 1;
  }
}
