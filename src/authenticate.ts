/**
 * What a secure-mode server's `authenticate` receives and may answer: the peer, the verdicts,
 * `rejectAuth`, and the user id a verdict names for the records.
 */

import { KcpInvalidOptionError } from './errors';
import { describe } from './options';

/** Who presented a token to `authenticate`: the validated address and the connection id to be. */
export interface AuthPeer {
  /** The connection id the session will have if accepted (also in `kcp:connection_attempted`). */
  id: string;
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
}

/**
 * A refusal with the application's reason code, from {@link rejectAuth}: the client's
 * `KcpAuthRejectedError` carries the code as `appCode`.
 */
export class AuthRejection {
  /** The refusal code (1..65535), sent to the client in the REJECT. */
  readonly code: number;
  constructor(code: number) {
    if (typeof code !== 'number' || !Number.isInteger(code) || code < 1 || code > 0xffff) {
      throw new KcpInvalidOptionError(`an authentication refusal code must be an integer in 1..65535, got ${describe(code)}`);
    }
    this.code = code;
    Object.freeze(this);
  }
}

/**
 * What `authenticate` returns to refuse a client with a reason code the client sees (as
 * `KcpAuthRejectedError.appCode`): `return rejectAuth(4003)`. Secure mode only.
 */
export function rejectAuth(code: number): AuthRejection {
  return new AuthRejection(code);
}

/**
 * What `authenticate` answers: the player's identity or context accepts; `false`, `null` or
 * `undefined` refuses; {@link rejectAuth}`(code)` refuses with a code the client sees.
 */
export type AuthVerdict<Auth> = Auth | AuthRejection | false | null | undefined;

/**
 * Decides whether a client's token (a game ticket, a signed join token) may open a session,
 * and who it is. Return or resolve the player's identity (any value but `false`, `null` and
 * `undefined`; `true` works too) to accept: it becomes `connection.auth`. `false`, `null`,
 * `undefined`, a throw, a rejection or an answer later than `authTimeout` refuses;
 * `rejectAuth(code)` refuses with a code the client sees as `KcpAuthRejectedError.appCode`.
 */
export type Authenticate<Auth = unknown> = (token: Buffer, peer: AuthPeer) => AuthVerdict<Auth> | PromiseLike<AuthVerdict<Auth>>;

/** The longest user id records carry, in bytes of UTF-8 (the native side's bound). */
export const MAX_USER_ID_BYTES = 128;

/**
 * @internal The user id the records of a connection carry, from what `authenticate` answered:
 * a string (or finite number) answer itself; else, of an object, the first string or number of
 * `userId`, `user`, `id`, or `user.id` when `user` is an object. `true` and other answers name
 * no user. Empty strings name none either.
 */
export function userIdOf(verdict: unknown): string | undefined {
  const text = (v: unknown): string | undefined =>
    typeof v === 'string' ? v || undefined : typeof v === 'number' && Number.isFinite(v) ? String(v) : typeof v === 'bigint' ? String(v) : undefined;
  const direct = text(verdict);
  if (direct !== undefined || typeof verdict !== 'object' || verdict === null) return direct;
  try {
    const o = verdict as Record<string, unknown>;
    const nested = typeof o.user === 'object' && o.user !== null ? (o.user as Record<string, unknown>).id : undefined;
    return text(o.userId) ?? text(o.user) ?? text(o.id) ?? text(nested);
  } catch {
    // A getter that throws (a proxy, a lazy model) names no user; the answer still stands.
    return undefined;
  }
}

