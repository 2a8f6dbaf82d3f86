/**
 * Secure mode's server static keys (`docs/protocol.md`, "Keys"; `docs/security.md`, "Server
 * keys"): parsing the forms an application passes and reading key files. The keys themselves
 * are made and used by the native core (snow); nothing here is cryptography.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { KcpInvalidOptionError } from './errors';
import { native } from './native';

/** A 32-byte X25519 key as a Buffer, a Uint8Array, or text in base64 or hex. */
export type KeyInput = Uint8Array | string;

/** @internal A 32-byte key from the forms the API accepts; `what` names it in errors. */
export function parseKey(value: unknown, what: string): Buffer {
  let bytes: Buffer | undefined;
  if (value instanceof Uint8Array) {
    bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  } else if (typeof value === 'string') {
    const text = value.trim();
    if (/^[0-9a-fA-F]{64}$/.test(text)) bytes = Buffer.from(text, 'hex');
    else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(text)) bytes = Buffer.from(text, 'base64');
  }
  if (bytes === undefined || bytes.length !== 32) {
    // Never echo the value: it may be a private key.
    throw new KcpInvalidOptionError(`${what} must be a 32-byte key: a Buffer, or base64 (44 characters) or hex (64 characters) text`);
  }
  return Buffer.from(bytes);
}

/** @internal The private key in a key file written by `kcpwatch keygen` (base64 or hex text). */
export function readKeyFile(path: string): Buffer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new KcpInvalidOptionError(`cannot read key file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return parseKey(text, `the key in ${path}`);
}

/** A server static key pair (see {@link generateKeyPair}). */
export interface KeyPair {
  /** The private key (32 bytes). Keep it secret: a file readable by the server only. */
  privateKey: Buffer;
  /** The public key (32 bytes) clients pin, as `serverKey`. */
  publicKey: Buffer;
  /** The key id (8 hex digits) handshakes and records name the key by. */
  keyId: string;
}

/** A fresh server static key pair from the operating system's random source. */
export function generateKeyPair(): KeyPair {
  return native.generateKeyPair();
}

/** @internal The key pair of a private key. */
export function keyPairFromPrivate(privateKey: Buffer): KeyPair {
  return native.keyPairFromPrivate(privateKey);
}

/**
 * @internal Writes a key pair as `kcpwatch keygen --out` does: the private key (base64) to
 * `path` with mode 0600, the public key (base64) to `path.pub`. Refuses to overwrite either
 * file: replacing a server's key locks out every client that pinned it.
 */
export function writeKeyFiles(path: string, pair: KeyPair): { privatePath: string; publicPath: string } {
  const publicPath = `${path}.pub`;
  for (const file of [path, publicPath]) {
    if (existsSync(file)) throw new KcpInvalidOptionError(`${file} exists; keygen never overwrites a key (move it away first)`);
  }
  // 'wx': created here, never through an existing file or a symlink planted at the path.
  writeFileSync(path, `${pair.privateKey.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600); // the umask may have cleared bits, never added them; this makes it exact
  writeFileSync(publicPath, `${pair.publicKey.toString('base64')}\n`, { mode: 0o644, flag: 'wx' });
  return { privatePath: path, publicPath };
}

/** @internal The key id (8 hex digits) of a public key. */
export function keyIdOf(publicKey: Buffer): string {
  return createHash('sha256').update(publicKey).digest().subarray(0, 4).toString('hex');
}
