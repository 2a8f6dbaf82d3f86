/**
 * kcpwatch: a KCP transport for Node.js game servers whose every connection is visible to
 * security monitoring. The KCP engine and all UDP I/O run in Rust; this is the typed API.
 */

export { AuthRejection, rejectAuth } from './authenticate';
export type { Authenticate, AuthPeer, AuthVerdict } from './authenticate';
export { createServer, Server } from './server';
export type {
  AddressInfo,
  BroadcastTarget,
  CommonServerOptions,
  ListenOptions,
  PublicKeyOf,
  RawServerOptions,
  SecureServerOptions,
  ServerCloseOptions,
  ServerEvents,
  ServerOptions,
  ServerStats,
} from './server';
export { Client, connect, createClient } from './client';
export type { ClientConnectOptions, ClientEvents, ClientOptions, ConnectOptions, RawConnectOptions, SecureConnectOptions } from './client';
export { Connection } from './connection';
export type { ConnectionEvents, ConnectionState, ConnectionStats, SendData } from './connection';
export type { Datagram, DatagramOptions } from './datagram';
export { metricsContentType, renderMetrics } from './metrics';
export type { MetricsLabels } from './metrics';
export type { CloseInfo, CloseReason } from './records';
export type * from './event-types';
export type { FileDestination, HttpDestination, PinoLike, SyslogDestination, IpPrivacy, LogDestination, LogFormat, LogOptions, LogOutputOptions, SeverityName } from './log';
export { logFormats, pinoSink, severities } from './log';
export { defaultLimits, presets } from './options';
export { detectorRules } from './detection';
export type { DetectionOptions, DetectionRule, DetectionRuleId } from './detection';
export type { FecOptions, KcpOptions, LimitOptions, PresetName, Mode, RawLimitOptions } from './options';
export * from './errors';
export { createRelay } from './relay';
export { generateKeyPair } from './keys';
export type { KeyInput, KeyPair } from './keys';
export type { Relay, RelayOptions, RelayStats, ImpairmentOptions } from './relay';
