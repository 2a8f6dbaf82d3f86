/**
 * The security event types (`kcp:*`), one interface per event, mirroring the canonical JSON
 * records written by `crates/kcpwatch/src/events/canonical.rs` and described by
 * `schema/events.schema.json` and `docs/events.md`.
 */

/** Fields every record carries. */
export interface EventBase {
  ts: string;
  time: number;
  level: number;
  level_name: string;
  severity: number;
  name: string;
  seq: number;
  observer_host: string;
  observer_service: string;
  observer_instance: string;
  observer_version: string;
  msg: string;
  [field: string]: unknown;
}

export type KcpEvent = EventBase;
export type KcpEventName = string;
