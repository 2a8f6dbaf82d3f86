/**
 * The `kcpwatch` command: `serve` (an echo server), `demo` (traffic through a lossy link) and
 * `bench` (the side-by-side benchmark of a source checkout).
 */

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { isIP, type AddressInfo as NetAddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { runDemo } from './demo';
import { describeClose } from './describe-close';
import { KcpAddressInUseError, KcpError, KcpInvalidOptionError } from './errors';
import { logFormats, severities, type IpPrivacy, type LogFormat, type LogOutputOptions, type SeverityName } from './log';
import { KCP_MIN_MTU, messageSizeLimit, minimumMtu, presets, type PresetName } from './options';
import { defaultPresetName } from './generated/kcp-options';
import { metricsContentType } from './metrics';
import { checkLogFilePath } from './log-files';
import { createServer, type Server } from './server';
import { generateKeyPair, keyIdOf, parseKey, readKeyFile, writeKeyFiles } from './keys';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const version: string = (require('../package.json') as { version: string }).version;

type FlagValue = string | boolean | string[] | undefined;

/** One flag of a command: how it parses, what it is for, and its default (shown in the usage). */
interface Flag {
  type: 'string' | 'boolean';
  /** The value's placeholder in the usage (`N`, `PATH`, ...). */
  value?: string;
  short?: string;
  multiple?: boolean;
  default?: string;
  help: string;
}

interface Command {
  synopsis: string;
  description: string;
  flags: Record<string, Flag>;
}

const help: Flag = { type: 'boolean', short: 'h', help: 'show this help' };

const commands: Record<'serve' | 'demo' | 'keygen', Command> = {
  serve: {
    synopsis: 'kcpwatch serve [flags]',
    description: `A KCP echo server, in secure mode (docs/protocol.md) unless --mode raw asks for plain KCP
(for kcp-go, ikcp and other KCP clients). It echoes messages and, in secure mode, datagrams (on their channel). Security events go to stdout (or --log-file), one record
per line, in the chosen format (json: the canonical NDJSON). hmac and cryptopan read their key (hex)
from KCPWATCH_IP_PRIVACY_KEY, never from the command line. --log (repeatable) replaces the single
output: SINK is stdout, stderr, file:PATH, syslog+udp://IP:PORT, syslog+tcp://IP:PORT,
syslog+tls://IP:PORT, hec+https://HOST:PORT (token in KCPWATCH_HEC_TOKEN), elastic+http://HOST:PORT
or otlp+http://HOST:PORT (CA from --syslog-ca for TLS and HTTPS, client certificate from --log-cert
and --log-key; spool to --spool-dir while the receiver is down); format defaults to --log-format (HTTP sinks use their collector's format).
Prints "listening HOST:PORT" to stderr when ready; readable lifecycle lines follow on stderr.
--metrics-port N serves Prometheus metrics at http://127.0.0.1:N/metrics (loopback only; 0 picks a
port; prints "metrics URL" to stderr). --stream, --rcv-wnd, --snd-wnd and --mtu match a peer's
settings for interop tests. Stops on SIGINT/SIGTERM.
Secure mode's static key comes from --key-file (as kcpwatch keygen writes it; give it twice during a
key rotation, the current key first) or from KCPWATCH_SERVER_KEY (the private key in base64 or hex;
two separated by a comma during a rotation), never from the command line. Without either, the server
makes an ephemeral key for this run. Its public key follows the listening line on stderr
("public-key BASE64 id HEX"): clients pin it as serverKey.`,
    flags: {
      port: { type: 'string', value: 'N', default: '0', help: 'UDP port (0: any free port)' },
      host: { type: 'string', value: 'H', default: '0.0.0.0', help: "address to bind ('::' is dual-stack)" },
      mode: { type: 'string', value: 'secure|raw', default: 'secure', help: 'secure handshake, or plain KCP' },
      preset: { type: 'string', value: 'NAME', default: defaultPresetName, help: `KCP preset: ${Object.keys(presets).join(', ')}` },
      'idle-timeout': { type: 'string', value: 'MS', default: '30000', help: 'close a connection after this long without a datagram' },
      stream: { type: 'boolean', help: 'stream mode (no message boundaries)' },
      'rcv-wnd': { type: 'string', value: 'N', help: "receive window in segments (default: the preset's)" },
      'snd-wnd': { type: 'string', value: 'N', help: "send window in segments (default: the preset's)" },
      mtu: { type: 'string', value: 'N', help: "largest datagram (default: the preset's)" },
      'log-format': { type: 'string', value: `${logFormats.join('|')}|none`, default: 'json', help: 'format of the records' },
      'log-file': { type: 'string', value: 'PATH', help: 'write the records to PATH instead of stdout' },
      'log-level': { type: 'string', value: 'LEVEL', default: 'info', help: `least severe record produced: ${severities.join(', ')}` },
      log: { type: 'string', value: 'SINK[,format=F][,level=L]', multiple: true, help: 'an output; replaces the single one' },
      'syslog-ca': { type: 'string', value: 'PEM', help: 'CA certificates for TLS and HTTPS sinks' },
      'spool-dir': { type: 'string', value: 'DIR', help: 'spool records here while a network sink is down' },
      'log-cert': { type: 'string', value: 'PEM', help: 'client certificate chain for syslog+tls and https sinks (mutual TLS)' },
      'log-key': { type: 'string', value: 'PEM', help: 'private key of --log-cert' },
      'stats-interval': { type: 'string', value: 'MS', default: '60000', help: 'kcp:stats record interval (0: none)' },
      'metrics-port': { type: 'string', value: 'N', help: 'serve Prometheus metrics on 127.0.0.1:N (0 picks a port)' },
      'ip-privacy': { type: 'string', value: 'full|truncate|hmac|cryptopan|omit', default: 'full', help: 'how addresses appear in the records' },
      'ip-privacy-key-id': { type: 'string', value: 'ID', default: 'k1', help: 'key id recorded with hmac pseudonyms' },
      'key-file': { type: 'string', value: 'FILE', multiple: true, help: 'secure mode: the private key file (kcpwatch keygen); twice while rotating, current first' },
      help,
    },
  },
  keygen: {
    synopsis: 'kcpwatch keygen [flags]',
    description: `Makes a secure-mode server key pair. With --out FILE: the private key (base64) goes to FILE
(mode 0600) and the public key to FILE.pub; neither is ever overwritten. Without --out, both are
printed. Prints the public key (base64 and hex) and its key id: clients pin the public key as
serverKey; the server reads FILE with kcpwatch serve --key-file FILE.`,
    flags: {
      out: { type: 'string', value: 'FILE', help: 'write the private key to FILE (0600) and the public key to FILE.pub' },
      help,
    },
  },
  demo: {
    synopsis: 'kcpwatch demo [flags]',
    description: `A server and clients through a lossy, reordering UDP relay on loopback, with a wrong token and a
flood of spoofed-looking datagrams; ends by itself (exit 0 when every echo verified).`,
    flags: {
      clients: { type: 'string', value: 'N', default: '3', help: 'players, 1..100' },
      messages: { type: 'string', value: 'N', default: '200', help: 'echoes per player, 1..100000' },
      loss: { type: 'string', value: 'P', default: '0.1', help: 'probability a datagram is dropped, each way, 0..0.5' },
      flood: { type: 'string', value: 'N', default: '5000', help: 'spoofed-looking datagrams (0: none), 0..1000000' },
      help,
    },
  },
};

function flagUsage(flags: Record<string, Flag>): string {
  return Object.entries(flags)
    .map(([name, f]) => {
      const left = `  ${f.short ? `-${f.short}, ` : ''}--${name}${f.value ? ` ${f.value}` : ''}`;
      const right = `${f.help}${f.default !== undefined ? ` (default ${f.default})` : ''}${f.multiple ? ' [repeatable]' : ''}`;
      return left.length < 34 ? `${left.padEnd(34)}${right}` : `${left}\n${' '.repeat(34)}${right}`;
    })
    .join('\n');
}

function commandUsage(name: keyof typeof commands): string {
  const c = commands[name];
  return `usage: ${c.synopsis}\n\n${c.description}\n\nflags:\n${flagUsage(c.flags)}\n`;
}

const usage = `usage: kcpwatch <command> [flags]

commands:
  serve    a KCP echo server that writes its security records (kcpwatch serve --help)
  demo     a server and clients through a lossy relay, with an intruder and a flood (kcpwatch demo --help)
  keygen   a secure-mode server key pair (kcpwatch keygen --help)
  bench    kcpwatch side by side with kcp-go, node-kcp and dgram; needs a source checkout (kcpwatch bench --help)

  -h, --help       show this help
  -v, --version    print the version
`;

/** A refused flag value: the message names the flag, as the user typed it. */
function flagError(message: string, cause?: unknown): KcpInvalidOptionError {
  return new KcpInvalidOptionError(message, cause === undefined ? undefined : { cause });
}

/**
 * Parses a command's flags; unknown flags and missing values name the flag and the help. A
 * negative number after a flag that takes a value is that value (`--port -1` reaches the range
 * check rather than the parser's "ambiguous"), and a flag that takes one value given twice is
 * refused (the last one would win unseen).
 */
function parseFlags(name: keyof typeof commands, args: string[]): Record<string, FlagValue> {
  const flags = commands[name].flags;
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean; default?: string }> = {};
  for (const [flag, f] of Object.entries(flags)) {
    options[flag] = { type: f.type, ...(f.short ? { short: f.short } : {}), ...(f.multiple ? { multiple: true } : {}), ...(f.default !== undefined ? { default: f.default } : {}) };
  }
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const flag = arg.startsWith('--') && !arg.includes('=') ? flags[arg.slice(2)] : undefined;
    const value = args[i + 1];
    if (flag?.type === 'string' && value !== undefined && /^-\.?\d/.test(value)) {
      joined.push(`${arg}=${value}`);
      i += 1;
    } else {
      joined.push(arg);
    }
  }
  let parsed;
  try {
    parsed = parseArgs({ args: joined, options, strict: true, allowPositionals: false, tokens: true });
  } catch (err) {
    throw flagError(`${(err as Error).message.replace(/\. To specify a positional argument.*$/s, '')} (see kcpwatch ${name} --help)`);
  }
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== 'option' || flags[token.name]?.multiple) continue;
    if (seen.has(token.name)) throw flagError(`--${token.name} is given twice; it takes one value (see kcpwatch ${name} --help)`);
    seen.add(token.name);
  }
  return parsed.values as Record<string, FlagValue>;
}

/** An integer flag within bounds, or undefined when absent. */
function intFlag(values: Record<string, FlagValue>, flag: string, min: number, max: number): number | undefined {
  const raw = values[flag];
  if (raw === undefined) return undefined;
  const text = String(raw);
  if (!/^-?\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw flagError(`--${flag} must be an integer in ${min}..${max}, got ${text}`);
  }
  return Number(text);
}

function choiceFlag<T extends string>(values: Record<string, FlagValue>, flag: string, choices: readonly T[]): T {
  const v = String(values[flag]);
  if (!choices.includes(v as T)) throw flagError(`--${flag} must be one of ${choices.join(', ')}, got ${v}`);
  return v as T;
}

/** Runs bench/index.mjs of the checkout this build lives in; the npm package does not ship it. */
function bench(args: string[]): number {
  const script = join(__dirname, '..', 'bench', 'index.mjs');
  if (!existsSync(script)) {
    process.stderr.write('kcpwatch bench runs from a source checkout (git clone, npm install, npm run build): bench/ is not in the npm package\n');
    return 1;
  }
  return spawnSync(process.execPath, [script, ...args], { stdio: 'inherit' }).status ?? 1;
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
        throw flagError(`--ip-privacy ${mode} needs its key (hex) in KCPWATCH_IP_PRIVACY_KEY`);
      }
      return mode === 'hmac' ? { mode, keyId, key } : { mode, key };
    default:
      throw flagError(`--ip-privacy must be full, truncate, hmac, cryptopan or omit, got ${mode}`);
  }
}

/**
 * One `--log SINK[,format=F][,level=L]`: `stdout`, `stderr`, `file:PATH`, `syslog+udp://IP:PORT`,
 * `syslog+tcp://IP:PORT` or `syslog+tls://IP:PORT` (with `--syslog-ca`).
 */
function outputFromCli(
  spec: string,
  defaultFormat: LogFormat,
  ca: string | undefined,
  spool: string | undefined,
  client: { certFile?: string; keyFile?: string } = {},
): LogOutputOptions {
  const [target, ...params] = spec.split(',');
  const opts = Object.fromEntries(params.map((p) => p.split('=', 2) as [string, string | undefined]));
  for (const [key, value] of Object.entries(opts)) {
    if (key !== 'format' && key !== 'level') throw flagError(`--log ${spec}: unknown parameter ${key}`);
    // `,format` alone would silently mean the default.
    if (!value) throw flagError(`--log ${spec}: ${key} needs a value (${key}=${key === 'format' ? 'F' : 'L'})`);
  }
  const format = (opts.format ?? defaultFormat) as LogFormat;
  if (!logFormats.includes(format)) throw flagError(`--log ${spec}: format must be one of ${logFormats.join(', ')}, got ${format}`);
  const level = opts.level as SeverityName | undefined;
  if (level !== undefined && !severities.includes(level)) throw flagError(`--log ${spec}: level must be one of ${severities.join(', ')}, got ${level}`);
  let destination: LogOutputOptions['destination'];
  if (target === 'stdout' || target === 'stderr') destination = target;
  else if (target?.startsWith('file:')) {
    if (target.length === 5) throw flagError(`--log ${spec} needs a path (file:PATH)`);
    destination = { file: target.slice(5) };
  } else if (target && /^syslog\+(udp|tcp|tls):\/\//.test(target)) {
    const url = target.slice('syslog+'.length);
    const address = /^\w+:\/\/(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(url);
    if (!address || !isIP(address[1]!.replace(/^\[|\]$/g, '')) || Number(address[2]) < 1 || Number(address[2]) > 65535) {
      throw flagError(`--log ${spec}: the receiver must be IP:PORT (an IP address, not a host name; a port in 1..65535)`);
    }
    if (url.startsWith('tls') && ca === undefined) {
      throw flagError(`--log ${spec}: syslog+tls needs --syslog-ca (the CA certificates the receiver's certificate is checked against)`);
    }
    // One spool directory per sink: a spool belongs to one sink at a time.
    const spoolDir = spool && !url.startsWith('udp') ? join(spool, url.replace(/[^A-Za-z0-9]+/g, '_')) : undefined;
    destination = { syslog: url, caFile: ca, spoolDir, ...(url.startsWith('tls') ? client : {}) };
  } else if (target && /^(hec|elastic|otlp)\+https?:\/\//.test(target)) {
    const kind = target.slice(0, target.indexOf('+')) as 'hec' | 'elastic' | 'otlp';
    let url: URL;
    try {
      url = new URL(target.slice(kind.length + 1));
    } catch {
      throw flagError(`--log ${spec}: not a URL; the sink is ${kind}+http(s)://HOST:PORT[/path]`);
    }
    if (!url.port) throw flagError(`--log ${spec}: the URL needs its port (${kind}+http(s)://HOST:PORT[/path])`);
    if (url.protocol === 'https:' && ca === undefined) {
      throw flagError(`--log ${spec}: https needs --syslog-ca (the CA certificates the collector's certificate is checked against)`);
    }
    // The usual endpoint of each collector when the URL names none.
    if (url.pathname === '/') url.pathname = { hec: '/services/collector/event', elastic: '/_bulk', otlp: '/v1/logs' }[kind];
    const token = process.env.KCPWATCH_HEC_TOKEN;
    if (kind === 'hec' && !token) {
      throw flagError(`--log ${spec}: the HEC token goes in KCPWATCH_HEC_TOKEN`);
    }
    const spoolDir = spool ? join(spool, target.replace(/[^A-Za-z0-9]+/g, '_')) : undefined;
    destination = { http: url.toString(), kind, token, caFile: ca, spoolDir, ...(url.protocol === 'https:' ? client : {}) };
  } else {
    throw flagError(
      `--log ${spec}: the sink must be stdout, stderr, file:PATH, syslog+udp|tcp|tls://IP:PORT or hec|elastic|otlp+http(s)://HOST:PORT[/path]`,
    );
  }
  return { destination, format, ...(level ? { level } : {}) };
}

/** The flag that sets each file of a log output, for errors about it. */
const fileFlags: Record<string, string> = { caFile: '--syslog-ca', certFile: '--log-cert', keyFile: '--log-key', file: '--log-file' };

/**
 * Runs `make` (createServer), saying an option error in the words of the flags the user typed:
 * `log.outputs[0]...` is the `--log` given first, `log.outputs[0].destination.caFile` is
 * `--syslog-ca`. The flags are checked before; this catches what only the API checks.
 */
function inFlagWords<T>(specs: readonly string[] | undefined, make: () => T): T {
  try {
    return make();
  } catch (err) {
    if (!(err instanceof KcpInvalidOptionError)) throw err;
    const file = /^log\.(?:outputs\[\d+\]\.destination|destination)\.(caFile|certFile|keyFile|file)\b/.exec(err.message);
    const output = /^log\.outputs\[(\d+)\](?:\.destination)?[.:]? ?/.exec(err.message);
    let message: string | undefined;
    if (file) message = `${fileFlags[file[1]!]!}${err.message.slice(file[0].length)}`;
    else if (output && specs?.[Number(output[1])] !== undefined) message = `--log ${specs[Number(output[1])]!}: ${err.message.slice(output[0].length)}`;
    throw message === undefined ? err : flagError(message, err);
  }
}

async function serve(args: string[]): Promise<number> {
  const values = parseFlags('serve', args);
  if (values.help) {
    process.stdout.write(commandUsage('serve'));
    return 0;
  }
  const metricsPort = intFlag(values, 'metrics-port', 0, 65535);
  const port = intFlag(values, 'port', 0, 65535)!;
  const format = choiceFlag(values, 'log-format', [...logFormats, 'none'] as const);
  const mode = choiceFlag(values, 'mode', ['secure', 'raw'] as const);
  const preset = choiceFlag(values, 'preset', Object.keys(presets) as PresetName[]);
  const level = choiceFlag(values, 'log-level', severities);
  const host = String(values.host);
  if (host.length === 0) throw flagError('--host must be an IP address or a host name');
  const knobs = {
    mode,
    preset,
    idleTimeout: intFlag(values, 'idle-timeout', 1, 2 ** 31 - 1),
    stream: values.stream === true,
    rcvWnd: intFlag(values, 'rcv-wnd', 1, 65535),
    sndWnd: intFlag(values, 'snd-wnd', 1, 65535),
    mtu: intFlag(values, 'mtu', 50, 65507),
  };
  const minimum = minimumMtu(mode);
  if (knobs.mtu !== undefined && knobs.mtu < minimum) {
    throw flagError(
      `--mtu must be at least ${minimum} in ${mode} mode (KCP's smallest MTU, ${KCP_MIN_MTU}${mode === 'secure' ? ', plus the session header and tag' : ''}), got ${knobs.mtu}`,
    );
  }
  // An echo server takes what its windows and MTU can carry: small ones for interop tests
  // lower the message ceiling rather than refusing to start.
  const limit = messageSizeLimit({ mtu: knobs.mtu ?? presets[preset].mtu, rcvWnd: knobs.rcvWnd ?? presets[preset].rcvWnd }, mode);
  const ipPrivacy = privacyFromCli(choiceFlag(values, 'ip-privacy', ['full', 'truncate', 'hmac', 'cryptopan', 'omit'] as const), String(values['ip-privacy-key-id']));
  const logFile = values['log-file'] as string | undefined;
  if (logFile === '') throw flagError('--log-file needs a path');
  if (logFile !== undefined) checkLogFilePath(logFile, '--log-file');
  const certFile = values['log-cert'] as string | undefined;
  const keyFile = values['log-key'] as string | undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) throw flagError('--log-cert and --log-key go together');
  const client = certFile !== undefined ? { certFile, keyFile } : {};
  const specs = values.log as string[] | undefined;
  const outputs = specs?.map((spec) =>
    outputFromCli(spec, format === 'none' ? 'json' : format, values['syslog-ca'] as string | undefined, values['spool-dir'] as string | undefined, client),
  );
  // The same sink twice would get every record twice (interleaved, in one format or two).
  const sinks = new Set<string>();
  for (const spec of specs ?? []) {
    const sink = spec.split(',')[0]!;
    if (sinks.has(sink)) throw flagError(`--log: ${sink} is given twice; give each sink once`);
    sinks.add(sink);
    if (sink.startsWith('file:')) checkLogFilePath(sink.slice(5), '--log');
  }
  const serverKeys = serverKeysFromCli(values['key-file'] as string[] | undefined, mode);
  const server = inFlagWords(specs, () =>
    createServer({
      ...knobs,
      ...(serverKeys ? { serverKeys } : {}),
      ...(knobs.stream ? {} : { maxMessageSize: Math.min(65536, limit) }),
      log:
        format === 'none' && !outputs
          ? false
          : {
              ...(outputs ? { outputs } : { destination: logFile ? { file: logFile } : 'stdout', format: format as LogFormat }),
              level,
              statsInterval: intFlag(values, 'stats-interval', 0, 2 ** 31 - 1),
              service: 'kcpwatch-serve',
              ipPrivacy,
            },
    }),
  );
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
    if (mode === 'secure') {
      // Datagrams echo too, on their channel: unreliable, so a full queue (false) drops the echo
      // as the network might; a failure is told once per connection, not once per datagram.
      let told = false;
      conn.on('datagram', (data, channel) => {
        try {
          conn.sendDatagram(data, { channel });
        } catch (err) {
          if (!told && conn.state === 'established') log(`datagram echo failed on ${conn.id}: ${(err as Error).message}`);
          told = true;
        }
      });
    }
    conn.on('close', (_reason, info) => log(`close ${conn.id} ${describeClose(info)}`));
  });
  // Signal handlers go in before anything is announced: once "listening" is out, a supervisor
  // may signal at any moment, and the I/O threads keep running while this thread waits.
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
    process.on('SIGINT', () => resolve('SIGINT'));
    process.on('SIGTERM', () => resolve('SIGTERM'));
  });
  const address = await server.listen(port, host);
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  log(`listening ${shown}:${address.port}`);
  if (mode === 'secure') {
    // Public: what clients pin. An ephemeral key changes every run, so say so.
    const [current, ...older] = server.publicKeys;
    const id = (key: string) => keyIdOf(Buffer.from(key, 'base64'));
    log(`public-key ${current} id ${id(current!)}${serverKeys ? '' : ' (ephemeral: made for this run; use --key-file to keep one)'}`);
    for (const key of older) log(`public-key ${key} id ${id(key)} (previous, still accepted)`);
  }
  let metrics: HttpServer | undefined;
  try {
    metrics = metricsPort === undefined ? undefined : await serveMetrics(server, metricsPort);
  } catch (err) {
    await server.close();
    const message = `--metrics-port ${metricsPort}: ${(err as Error).message}`;
    throw (err as NodeJS.ErrnoException).code === 'EADDRINUSE'
      ? new KcpAddressInUseError(message, { cause: err })
      : new KcpError(message, 'KCP_ERR_GENERIC', { cause: err });
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

/**
 * Secure mode's static keys: from `--key-file` (repeatable) or KCPWATCH_SERVER_KEY (base64 or
 * hex, comma-separated for two), never from a flag's value, which `ps` shows to every user.
 * `undefined`: none given, the server makes an ephemeral key.
 */
function serverKeysFromCli(files: string[] | undefined, mode: 'secure' | 'raw'): Buffer[] | undefined {
  const env = process.env.KCPWATCH_SERVER_KEY;
  const fromEnv = env !== undefined && env.trim() !== '';
  if (files === undefined && !fromEnv) return undefined;
  if (mode === 'raw') throw flagError('--key-file and KCPWATCH_SERVER_KEY are for secure mode: raw KCP has no handshake');
  if (files !== undefined && fromEnv) throw flagError('give --key-file or KCPWATCH_SERVER_KEY, not both');
  const keys = files !== undefined ? files.map(readKeyFile) : env!.split(',').map((k, i) => parseKey(k, `KCPWATCH_SERVER_KEY key ${i + 1}`));
  if (keys.length > 2) throw flagError(`at most two server keys (the current one, then the previous one while rotating), got ${keys.length}`);
  return keys;
}

/** `kcpwatch keygen [--out FILE]`. */
function keygen(args: string[]): number {
  const values = parseFlags('keygen', args);
  if (values.help) {
    process.stdout.write(commandUsage('keygen'));
    return 0;
  }
  const pair = generateKeyPair();
  const out = values.out as string | undefined;
  const lines = [`public-key ${pair.publicKey.toString('base64')}`, `public-key-hex ${pair.publicKey.toString('hex')}`, `key-id ${pair.keyId}`];
  if (out === undefined) {
    lines.unshift(`private-key ${pair.privateKey.toString('base64')}`);
  } else {
    if (out.length === 0) throw flagError('--out needs a file name');
    const { privatePath, publicPath } = writeKeyFiles(out, pair);
    lines.push(`private key written to ${privatePath} (mode 0600), public key to ${publicPath}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
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
      const values = parseFlags('demo', rest);
      if (values.help) {
        process.stdout.write(commandUsage('demo'));
        return 0;
      }
      const loss = Number(values.loss);
      if (!/^\d*\.?\d+$/.test(String(values.loss)) || !(loss >= 0 && loss <= 0.5)) {
        throw flagError(`--loss must be a probability in 0..0.5 (0.1 is 10%), got ${String(values.loss)}`);
      }
      return runDemo({
        clients: intFlag(values, 'clients', 1, 100)!,
        messages: intFlag(values, 'messages', 1, 100_000)!,
        loss,
        flood: intFlag(values, 'flood', 0, 1_000_000)!,
        out: (line) => process.stdout.write(`${line}\n`),
      });
    }
    case 'bench':
      return bench(rest);
    case 'keygen':
      return keygen(rest);
    case '--version':
    case '-v':
    case 'version':
      process.stdout.write(`${version}\n`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(usage);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`kcpwatch: unknown command ${command}\n\n${usage}`);
      return 1;
  }
}

/** The README's synopsis lines, generated from the flag tables (the README test compares). */
export function synopsis(): string {
  return (Object.keys(commands) as (keyof typeof commands)[])
    .map((name) => {
      const flags = Object.entries(commands[name].flags)
        .filter(([flag]) => flag !== 'help')
        .map(([flag, f]) => `[--${flag}${f.value ? ` ${f.default ?? f.value}` : ''}]${f.multiple ? '...' : ''}`);
      return `kcpwatch ${name} ${flags.join(' ')}`;
    })
    .join('\n');
}
