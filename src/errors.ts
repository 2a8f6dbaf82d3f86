/**
 * One error class per failure, each with a stable `code` (undici style). The codes are declared
 * once, in Rust (`ErrorCode` in kcpwatch-proto), and generated into `generated/error-codes.ts`;
 * `errorClasses` gives each its class, and tsc fails when a code has none. Errors raised in
 * Rust arrive with the code as their `code` property and are mapped onto these classes by
 * {@link fromNative}.
 */

import type { KcpErrorCode } from './generated/error-codes';

export type { KcpErrorCode };

/** Options every error constructor takes (as `Error`'s). */
export interface KcpErrorOptions {
  cause?: unknown;
}

/** The base of every kcpwatch error: `err instanceof KcpError`, then narrow on `err.code`. */
export class KcpError extends Error {
  /** The stable code: one per failure, never reworded. */
  readonly code: KcpErrorCode;
  constructor(message: string, code: KcpErrorCode = 'KCP_ERR_GENERIC', options?: KcpErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The constructor of one failure's class: its `code` is a literal type, on the class and its errors. */
export interface KcpErrorClass<C extends string> {
  new (message: string, options?: KcpErrorOptions): KcpError & { readonly code: C };
  readonly code: C;
}

/** The base class of one failure. */
function coded<C extends KcpErrorCode>(code: C): KcpErrorClass<C> {
  return class extends KcpError {
    static readonly code = code;
    constructor(message: string, options?: KcpErrorOptions) {
      super(message, code, options);
    }
  } as unknown as KcpErrorClass<C>;
}

/** An option has a wrong type or a value that cannot work. */
export class KcpInvalidOptionError extends coded('KCP_ERR_INVALID_OPTION') {}
/** The address is already bound by another socket (EADDRINUSE). */
export class KcpAddressInUseError extends coded('KCP_ERR_ADDR_IN_USE') {}
/** The address does not belong to this host (EADDRNOTAVAIL). */
export class KcpAddressNotAvailableError extends coded('KCP_ERR_ADDR_NOT_AVAILABLE') {}
/** Binding was refused by the OS (EACCES, privileged port). */
export class KcpPermissionDeniedError extends coded('KCP_ERR_PERMISSION_DENIED') {}
/** Any other bind failure. */
export class KcpBindError extends coded('KCP_ERR_BIND') {}
/** A host name did not resolve. */
export class KcpResolveError extends coded('KCP_ERR_RESOLVE') {}
/** The server, client or connection is closed. */
export class KcpClosedError extends coded('KCP_ERR_CLOSED') {}
/** The message exceeds `maxMessageSize`. */
export class KcpMessageTooLargeError extends coded('KCP_ERR_MESSAGE_TOO_LARGE') {}
/** Queued bytes would exceed `maxSendQueueBytes`; wait for `drain`. */
export class KcpQueueFullError extends coded('KCP_ERR_QUEUE_FULL') {}
/**
 * No longer thrown: an empty message is sent as a PUSH of length 0 and delivered as a 0-byte
 * message, as ikcp does. Kept so code that names it still compiles.
 */
export class KcpEmptyMessageError extends coded('KCP_ERR_EMPTY_MESSAGE') {}
/** Opening a connection failed (duplicate conv, capacity). */
export class KcpConnectError extends coded('KCP_ERR_CONNECT') {}
/** A client is at its `maxConnections`: close one of its connections first. */
export class KcpConnectionLimitError extends coded('KCP_ERR_CONNECTION_LIMIT') {}
/** The feature is not available in this version. */
export class KcpNotSupportedError extends coded('KCP_ERR_NOT_SUPPORTED') {}
/** Secure mode: the server did not answer the handshake in time (down, unreachable, or rate-limiting us). */
export class KcpHandshakeTimeoutError extends coded('KCP_ERR_HANDSHAKE_TIMEOUT') {}
/**
 * Secure mode: ICMP reported the server's address unreachable (nothing listens on that port, or
 * no route to it) for the first HELLO and its retransmission, with no answer from the server
 * between: the wrong address or port, or a server that is down. Comes within about 300 ms.
 */
export class KcpUnreachableError extends coded('KCP_ERR_UNREACHABLE') {}
/**
 * Secure mode: the server's `authenticate` refused our token (or did not answer in time).
 * `appCode` is the code it refused with (`return rejectAuth(code)`), when it gave one.
 */
export class KcpAuthRejectedError extends coded('KCP_ERR_AUTH_REJECTED') {
  /** The server application's refusal code (1..65535), absent when it gave none. */
  appCode?: number;
}
/**
 * Secure mode: the server shut down (or restarted) during our handshake, before it judged our
 * token: the token may well be valid. Connecting again later, or to another server, may work.
 */
export class KcpServerShutdownError extends coded('KCP_ERR_SERVER_SHUTDOWN') {}
/** Secure mode: the server refused us for a connection limit (total, per address or per prefix). */
export class KcpServerFullError extends coded('KCP_ERR_SERVER_FULL') {}
/**
 * Reserved: a REJECT for opening handshakes too fast, which the protocol defines but no server
 * sends (a rate-limited HELLO gets no answer, so the client sees `KcpHandshakeTimeoutError`).
 */
export class KcpRateLimitedError extends coded('KCP_ERR_RATE_LIMITED') {}
/** Secure mode: the server speaks another protocol version. */
export class KcpVersionMismatchError extends coded('KCP_ERR_VERSION_MISMATCH') {}
/**
 * Secure mode: the server could not prove it holds the key the client pinned (`serverKey`):
 * it does not know that key (`unknown_server_key`: an old key after a rotation, or another
 * server), or whoever answered does not hold it (`server_auth_failed`).
 */
export class KcpServerAuthError extends coded('KCP_ERR_SERVER_AUTH') {}
/**
 * Secure mode: `stream: true` is set on one side only. Stream mode keeps no message
 * boundaries, so a stream side and a message side would cut each other's bytes differently;
 * the server refuses the handshake (REJECT `stream_mismatch`). Set the same `stream` on both.
 */
export class KcpStreamMismatchError extends coded('KCP_ERR_STREAM_MISMATCH') {}
/** Secure mode: the handshake failed for another reason. */
export class KcpHandshakeError extends coded('KCP_ERR_HANDSHAKE') {}
/** Server: the application's `authenticate` threw or rejected; the client was refused (`error` event). */
export class KcpAuthenticateError extends coded('KCP_ERR_AUTHENTICATE') {}
/** `listen()` was called on a server that is listening or binding already. */
export class KcpAlreadyListeningError extends coded('KCP_ERR_ALREADY_LISTENING') {}
/** The native addon for this platform is not installed (or does not load here). */
export class KcpNativeBindingError extends coded('KCP_ERR_NATIVE_BINDING') {}
/** A failure inside the library itself. */
export class KcpInternalError extends coded('KCP_ERR_INTERNAL') {}

/**
 * Each code's class. The type makes tsc fail when a code of `generated/error-codes.ts` has no
 * class here, or a class carries another code than its key (`KCP_ERR_GENERIC` is the base
 * `KcpError`'s).
 */
const errorClasses: { readonly [C in Exclude<KcpErrorCode, 'KCP_ERR_GENERIC'>]: KcpErrorClass<C> } = {
  KCP_ERR_INVALID_OPTION: KcpInvalidOptionError,
  KCP_ERR_ADDR_IN_USE: KcpAddressInUseError,
  KCP_ERR_ADDR_NOT_AVAILABLE: KcpAddressNotAvailableError,
  KCP_ERR_PERMISSION_DENIED: KcpPermissionDeniedError,
  KCP_ERR_BIND: KcpBindError,
  KCP_ERR_RESOLVE: KcpResolveError,
  KCP_ERR_CLOSED: KcpClosedError,
  KCP_ERR_MESSAGE_TOO_LARGE: KcpMessageTooLargeError,
  KCP_ERR_QUEUE_FULL: KcpQueueFullError,
  KCP_ERR_EMPTY_MESSAGE: KcpEmptyMessageError,
  KCP_ERR_CONNECT: KcpConnectError,
  KCP_ERR_CONNECTION_LIMIT: KcpConnectionLimitError,
  KCP_ERR_NOT_SUPPORTED: KcpNotSupportedError,
  KCP_ERR_HANDSHAKE_TIMEOUT: KcpHandshakeTimeoutError,
  KCP_ERR_UNREACHABLE: KcpUnreachableError,
  KCP_ERR_AUTH_REJECTED: KcpAuthRejectedError,
  KCP_ERR_SERVER_SHUTDOWN: KcpServerShutdownError,
  KCP_ERR_SERVER_FULL: KcpServerFullError,
  KCP_ERR_RATE_LIMITED: KcpRateLimitedError,
  KCP_ERR_VERSION_MISMATCH: KcpVersionMismatchError,
  KCP_ERR_SERVER_AUTH: KcpServerAuthError,
  KCP_ERR_STREAM_MISMATCH: KcpStreamMismatchError,
  KCP_ERR_HANDSHAKE: KcpHandshakeError,
  KCP_ERR_AUTHENTICATE: KcpAuthenticateError,
  KCP_ERR_ALREADY_LISTENING: KcpAlreadyListeningError,
  KCP_ERR_NATIVE_BINDING: KcpNativeBindingError,
  KCP_ERR_INTERNAL: KcpInternalError,
};

/** The classes by code, as a Map: a code from outside (`constructor`, ...) never reaches `Object.prototype`. */
const byCode = new Map<string, KcpErrorClass<KcpErrorCode>>(Object.entries(errorClasses));
/** @internal The error a client's failed handshake reports, by the failure reason. */
export function handshakeError(reason: string, server: string, appCode?: number): KcpError {
  switch (reason) {
    case 'handshake_timeout':
      return new KcpHandshakeTimeoutError(
        `no answer from ${server} to the handshake: is the server in secure mode (a raw-mode server ignores the handshake), are the address and port right, is a firewall dropping UDP?`,
      );
    case 'unreachable':
      return new KcpUnreachableError(`${server} is unreachable: nothing listens on that UDP port, or there is no route to it (ICMP)`);
    case 'auth_rejected': {
      const error = new KcpAuthRejectedError(appCode === undefined ? `${server} rejected the token` : `${server} rejected the token with code ${appCode}`);
      if (appCode !== undefined) error.appCode = appCode;
      return error;
    }
    case 'shutdown':
      return new KcpServerShutdownError(`${server} shut down during the handshake, before it judged the token: connect again later`);
    case 'capacity':
      return new KcpServerFullError(`${server} is at a connection limit`);
    case 'rate_limited':
      return new KcpRateLimitedError(`${server} is rate-limiting handshakes from this address`);
    case 'version_mismatch':
      return new KcpVersionMismatchError(`${server} speaks another protocol version`);
    case 'unknown_server_key':
      return new KcpServerAuthError(`${server} does not hold the server key this client pinned (serverKey): an old key after a rotation, or another server`);
    case 'server_auth_failed':
      return new KcpServerAuthError(`whoever answered for ${server} does not hold the pinned server key (serverKey)`);
    case 'stream_mismatch':
      return new KcpStreamMismatchError(
        `${server} refused the handshake: \`stream: true\` is set on one side only (one side is in stream mode, the other in message mode); give the client and the server the same \`stream\` option`,
      );
    default:
      return new KcpHandshakeError(`handshake with ${server} failed: ${reason}`);
  }
}

/**
 * @internal Builds the error class for a stable code. A code this build does not know (a newer
 * addon) keeps its code on a plain `KcpError`.
 */
export function errorFor(code: string, message: string, cause?: unknown): KcpError {
  const Cls = byCode.get(code);
  return Cls ? new Cls(message, { cause }) : new KcpError(message, code as KcpErrorCode, { cause });
}

/** The security record (canonical JSON) the native side wrote about an error, if any. */
const securityRecords = new WeakMap<KcpError, string>();

/** @internal The `kcp:error` record written for `error` (a bind failure), as canonical JSON. */
export function securityRecordOf(error: KcpError): string | undefined {
  return securityRecords.get(error);
}

/**
 * @internal Maps an error thrown by the native addon onto its class: its `code` property is the
 * stable code (see `crates/kcpwatch-node/src/errors.rs`); any other error (napi's own, with a
 * status as its code) is internal. A bind failure's `kcp:error` record comes as its
 * `securityRecord` property and is kept for event listeners.
 */
export function fromNative(err: unknown): KcpError {
  if (!(err instanceof Error)) return new KcpInternalError(String(err), { cause: err });
  const { code, securityRecord } = err as Error & { code?: unknown; securityRecord?: unknown };
  if (typeof code !== 'string' || !code.startsWith('KCP_ERR_')) return new KcpInternalError(err.message, { cause: err });
  const error = errorFor(code, err.message, err);
  if (typeof securityRecord === 'string') securityRecords.set(error, securityRecord);
  return error;
}
