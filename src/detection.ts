/**
 * Options of the built-in detectors (`docs/detection.md`): thresholds and windows per rule,
 * enforcement and its allow-list. The detectors run in Rust; this only checks and resolves.
 */

import { isIP } from 'node:net';

import { KcpInvalidOptionError } from './errors';
import { checkKeys, describe, keysOf } from './options';
import { native, type Assert, type NativeDetectionOptions, type NativeRuleId, type Same } from './native';

/** The rules' stable ids. */
export type DetectionRuleId =
  | 'KCPW-001'
  | 'KCPW-002'
  | 'KCPW-003'
  | 'KCPW-004'
  | 'KCPW-005'
  | 'KCPW-006'
  | 'KCPW-007'
  | 'KCPW-008'
  | 'KCPW-009'
  | 'KCPW-010';
/** @internal The addon's `RuleId` names exactly these. */
export type RuleIdsAgree = Assert<Same<DetectionRuleId, NativeRuleId>>;

/** A built-in rule with its defaults. */
export interface DetectionRule {
  id: DetectionRuleId;
  name: string;
  /** Events (distinct convs for KCPW-004, a percentage for KCPW-007) that fire it. */
  threshold: number;
  /** Its window in milliseconds. */
  window: number;
  /** What it groups by. */
  key: 'source' | 'listener';
  /** The severity of its `kcp:alert`. */
  severity: string;
  /** MITRE ATT&CK technique, where one fits. */
  technique?: string;
  /** A rate rule (KCPW-007): the attempts in its window below which it does not fire. */
  minAttempts?: number;
}

export interface DetectionOptions {
  /** Run the detectors (default true). */
  enabled?: boolean;
  /** Sources tracked at once: the memory bound (default 4096, about 1.1 MiB). */
  tableCapacity?: number;
  /** An ongoing alert is repeated as an update this often, in ms (default 60000). */
  updateInterval?: number;
  /** Per-rule overrides of the threshold and the window (ms). */
  rules?: Partial<Record<DetectionRuleId, { threshold?: number; window?: number }>>;
  /** KCPW-002: how far above its moving baseline the global handshake rate must rise (default 5). */
  spikeFactor?: number;
  /** KCPW-007: attempts in the window before the failure ratio counts (default 20). */
  errorRateMinAttempts?: number;
  /**
   * Enforcement, off by default: a source a per-source rule fires for may open no new
   * connection for `refuseMs` (its established connections continue). Refusals are counted
   * (`refusedByDetector`) and logged (`rate_limited`, rule `refused_by_detector`).
   */
  enforce?: { refuseMs: number; rules?: DetectionRuleId[] };
  /** Networks never refused by enforcement, e.g. `['10.0.0.0/8', '2001:db8::/32']`. */
  allowList?: string[];
}

/** The built-in rules with their default thresholds and windows. */
export function detectorRules(): DetectionRule[] {
  return native.detectorRules() as DetectionRule[];
}

function count(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new KcpInvalidOptionError(`${name} must be an integer in ${min}..${max}, got ${describe(value)}`);
  }
  return value;
}

const detectionKeys = keysOf<DetectionOptions>({
  enabled: true,
  tableCapacity: true,
  updateInterval: true,
  rules: true,
  spikeFactor: true,
  errorRateMinAttempts: true,
  enforce: true,
  allowList: true,
});

/** Checks the options and fills in the defaults; `false` turns the detectors off. */
export function resolveDetection(options: DetectionOptions | false | undefined): NativeDetectionOptions {
  if (options !== undefined && options !== false && (typeof options !== 'object' || options === null)) {
    throw new KcpInvalidOptionError('detection must be an object or false');
  }
  const o = options || {};
  checkKeys(o, detectionKeys, 'detection');
  for (const [id, t] of Object.entries(o.rules ?? {})) {
    if (typeof t === 'object' && t !== null) checkKeys(t, ['threshold', 'window'], `detection.rules.${id}`);
  }
  if (typeof o.enforce === 'object' && o.enforce !== null) checkKeys(o.enforce, ['refuseMs', 'rules'], 'detection.enforce');
  const rules = detectorRules();
  const byId = new Map(rules.map((r) => [r.id, r]));
  const thresholds = Object.entries(o.rules ?? {}).map(([id, t]) => {
    const rule = byId.get(id as DetectionRuleId);
    if (!rule) throw new KcpInvalidOptionError(`detection.rules: unknown rule ${id}`);
    const max = id === 'KCPW-007' ? 100 : 2 ** 31 - 1;
    return {
      rule: id as DetectionRuleId,
      threshold: count(t?.threshold ?? rule.threshold, `detection.rules.${id}.threshold`, 1, max),
      window: count(t?.window ?? rule.window, `detection.rules.${id}.window`, 1, 86_400_000),
    };
  });
  const enforce = o.enforce;
  if (enforce !== undefined && (typeof enforce !== 'object' || enforce === null)) {
    throw new KcpInvalidOptionError('detection.enforce must be an object');
  }
  const enforceRules = enforce?.rules ?? [];
  for (const id of enforceRules) {
    const rule = byId.get(id);
    if (!rule) throw new KcpInvalidOptionError(`detection.enforce.rules: unknown rule ${describe(id)}`);
    if (rule.key !== 'source') throw new KcpInvalidOptionError(`detection.enforce.rules: ${id} is listener-wide; only per-source rules can refuse a source`);
  }
  const allowList = o.allowList ?? [];
  if (!Array.isArray(allowList)) throw new KcpInvalidOptionError('detection.allowList must be an array of ADDRESS/PREFIX strings');
  const networks = allowList.map((net: unknown) => {
    if (typeof net !== 'string') throw new KcpInvalidOptionError(`detection.allowList entries must be ADDRESS/PREFIX strings, got ${describe(net)}`);
    const network = parseNetwork(net);
    if (!network) throw new KcpInvalidOptionError(`detection.allowList entry ${JSON.stringify(net)} is not ADDRESS/PREFIX`);
    return network;
  });
  return {
    enabled: options === false ? false : (o.enabled ?? true),
    tableCapacity: count(o.tableCapacity ?? 4096, 'detection.tableCapacity', 8, 1 << 24),
    updateInterval: count(o.updateInterval ?? 60_000, 'detection.updateInterval', 1, 86_400_000),
    thresholds,
    spikeFactor: count(o.spikeFactor ?? 5, 'detection.spikeFactor', 1, 1000),
    errorRateMinAttempts: count(o.errorRateMinAttempts ?? 20, 'detection.errorRateMinAttempts', 1, 2 ** 31 - 1),
    refuseMs: enforce ? count(enforce.refuseMs, 'detection.enforce.refuseMs', 1, 86_400_000) : 0,
    enforceRules,
    allowList: networks,
  };
}

/**
 * `ADDRESS/PREFIX` (or a bare address: the whole address) in its parts, or `undefined`. The
 * address is a plain IP literal (no zone, which isIP takes and the native side does not).
 */
function parseNetwork(net: string): { address: string; prefix: number } | undefined {
  const slash = net.indexOf('/');
  const address = slash < 0 ? net : net.slice(0, slash);
  const family = isIP(address);
  if (!family || address.includes('%')) return undefined;
  const max = family === 6 ? 128 : 32;
  if (slash < 0) return { address, prefix: max };
  const prefix = net.slice(slash + 1);
  return /^\d+$/.test(prefix) && Number(prefix) <= max ? { address, prefix: Number(prefix) } : undefined;
}
