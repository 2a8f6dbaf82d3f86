/**
 * One error class per failure, each with a stable `code` (undici style). Errors raised in Rust
 * arrive as `[CODE] message` and are mapped onto these classes by {@link fromNative}.
 */

export class KcpError extends Error {
  readonly code: string;
  constructor(message: string, code = 'KCP_ERR_GENERIC', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KcpError';
    this.code = code;
  }
}

function define(name: string, code: string) {
  const cls = class extends KcpError {
    constructor(message: string, options?: { cause?: unknown }) {
      super(message, code, options);
      this.name = name;
    }
  };
  Object.defineProperty(cls, 'name', { value: name });
  return cls;
}

/** An option has a wrong type or a value that cannot work. */
export const KcpInvalidOptionError = define('KcpInvalidOptionError', 'KCP_ERR_INVALID_OPTION');
/** The address is already bound by another socket (EADDRINUSE). */
export const KcpAddressInUseError = define('KcpAddressInUseError', 'KCP_ERR_ADDR_IN_USE');
/** The address does not belong to this host (EADDRNOTAVAIL). */
export const KcpAddressNotAvailableError = define('KcpAddressNotAvailableError', 'KCP_ERR_ADDR_NOT_AVAILABLE');
/** Binding was refused by the OS (EACCES, privileged port). */
export const KcpPermissionDeniedError = define('KcpPermissionDeniedError', 'KCP_ERR_PERMISSION_DENIED');
/** Any other bind failure. */
export const KcpBindError = define('KcpBindError', 'KCP_ERR_BIND');
/** A host name did not resolve. */
export const KcpResolveError = define('KcpResolveError', 'KCP_ERR_RESOLVE');
/** The server, client or connection is closed. */
export const KcpClosedError = define('KcpClosedError', 'KCP_ERR_CLOSED');
/** The message exceeds `maxMessageSize`. */
export const KcpMessageTooLargeError = define('KcpMessageTooLargeError', 'KCP_ERR_MESSAGE_TOO_LARGE');
/** Queued bytes would exceed `maxSendQueueBytes`; wait for `drain`. */
export const KcpQueueFullError = define('KcpQueueFullError', 'KCP_ERR_QUEUE_FULL');
/** Empty messages cannot be sent in message mode. */
export const KcpEmptyMessageError = define('KcpEmptyMessageError', 'KCP_ERR_EMPTY_MESSAGE');
/** Opening a connection failed (duplicate conv, capacity). */
export const KcpConnectError = define('KcpConnectError', 'KCP_ERR_CONNECT');
/** A client is at its `maxConnections`: close one of its connections first. */
export const KcpConnectionLimitError = define('KcpConnectionLimitError', 'KCP_ERR_CONNECTION_LIMIT');
/** The feature is not available in this version. */
export const KcpNotSupportedError = define('KcpNotSupportedError', 'KCP_ERR_NOT_SUPPORTED');
/** Secure mode: the server did not answer the handshake in time (down, unreachable, or rate-limiting us). */
export const KcpHandshakeTimeoutError = define('KcpHandshakeTimeoutError', 'KCP_ERR_HANDSHAKE_TIMEOUT');
/** Secure mode: the server's `authenticate` refused our token (or did not answer in time). */
export const KcpAuthRejectedError = define('KcpAuthRejectedError', 'KCP_ERR_AUTH_REJECTED');
/** Secure mode: the server refused us for a connection limit (total, per address or per prefix). */
export const KcpServerFullError = define('KcpServerFullError', 'KCP_ERR_SERVER_FULL');
/** Secure mode: the server refused us for opening handshakes too fast. */
export const KcpRateLimitedError = define('KcpRateLimitedError', 'KCP_ERR_RATE_LIMITED');
/** Secure mode: the server speaks another protocol version. */
export const KcpVersionMismatchError = define('KcpVersionMismatchError', 'KCP_ERR_VERSION_MISMATCH');
/** Secure mode: the handshake failed for another reason. */
export const KcpHandshakeError = define('KcpHandshakeError', 'KCP_ERR_HANDSHAKE');
/** `listen()` was called on a server that is listening or binding already. */
export const KcpAlreadyListeningError = define('KcpAlreadyListeningError', 'KCP_ERR_ALREADY_LISTENING');
/** The native addon for this platform is not installed (or does not load here). */
export const KcpNativeBindingError = define('KcpNativeBindingError', 'KCP_ERR_NATIVE_BINDING');
/** A failure inside the library itself. */
export const KcpInternalError = define('KcpInternalError', 'KCP_ERR_INTERNAL');

const byCode: Record<string, new (message: string, options?: { cause?: unknown }) => KcpError> = {
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
  KCP_ERR_ALREADY_LISTENING: KcpAlreadyListeningError,
  KCP_ERR_INTERNAL: KcpInternalError,
  KCP_ERR_HANDSHAKE_TIMEOUT: KcpHandshakeTimeoutError,
  KCP_ERR_AUTH_REJECTED: KcpAuthRejectedError,
  KCP_ERR_SERVER_FULL: KcpServerFullError,
  KCP_ERR_RATE_LIMITED: KcpRateLimitedError,
  KCP_ERR_VERSION_MISMATCH: KcpVersionMismatchError,
  KCP_ERR_HANDSHAKE: KcpHandshakeError,
};

/** The error a client's failed handshake reports, by the failure reason. */
export function handshakeError(reason: string, server: string): KcpError {
  switch (reason) {
    case 'handshake_timeout':
      return new KcpHandshakeTimeoutError(`no answer from ${server} to the handshake`);
    case 'auth_rejected':
      return new KcpAuthRejectedError(`${server} rejected the token`);
    case 'capacity':
      return new KcpServerFullError(`${server} is at a connection limit`);
    case 'rate_limited':
      return new KcpRateLimitedError(`${server} is rate-limiting handshakes from this address`);
    case 'version_mismatch':
      return new KcpVersionMismatchError(`${server} speaks another protocol version`);
    default:
      return new KcpHandshakeError(`handshake with ${server} failed: ${reason}`);
  }
}

/** Builds the error class for a stable code. */
export function errorFor(code: string, message: string, cause?: unknown): KcpError {
  const Cls = byCode[code];
  return Cls ? new Cls(message, { cause }) : new KcpError(message, code, { cause });
}

/** The security record (canonical JSON) the native side wrote about an error, if any. */
const securityRecords = new WeakMap<KcpError, string>();

/** @internal The `kcp:error` record written for `error` (a bind failure), as canonical JSON. */
export function securityRecordOf(error: KcpError): string | undefined {
  return securityRecords.get(error);
}

/**
 * Maps an error thrown by the native addon onto its class. A record line after the message
 * (see `crates/kcpwatch-node/src/errors.rs`) is taken off and kept for event listeners.
 */
export function fromNative(err: unknown): KcpError {
  const text = err instanceof Error ? err.message : String(err);
  const newline = text.indexOf('\n{');
  const message = newline < 0 ? text : text.slice(0, newline);
  const match = /^\[(KCP_ERR_[A-Z_]+)\] (.*)$/s.exec(message);
  if (!match) return new KcpInternalError(message, { cause: err });
  const error = errorFor(match[1]!, match[2]!, err);
  if (newline >= 0) securityRecords.set(error, text.slice(newline + 1));
  return error;
}
