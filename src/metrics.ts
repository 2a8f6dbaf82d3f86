/**
 * Prometheus text exposition (format 0.0.4) of a listener's counters: a pure function from
 * `server.stats()` to text, so it can be tested without a socket and reused by any HTTP
 * server. `docs/metrics.md` lists every metric and the kcp-go SNMP counter it matches.
 */

import { metricFamilies, type ServerStats } from './generated/stats';

/** Constant labels put on every sample, e.g. `{ listener: '127.0.0.1:4000' }`. */
export type MetricsLabels = Record<string, string>;

type MetricType = (typeof metricFamilies)[number]['type'];

interface Sample {
  /** Appended to the family name (`_sum`, `_count` of a summary). */
  suffix?: string;
  labels?: Readonly<Record<string, string>>;
  value: number;
}

interface Family {
  name: string;
  type: MetricType;
  help: string;
  samples: Sample[];
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/**
 * Every metric family, in exposition order, from the table `kcpwatch::stats::METRICS` declares
 * (src/generated/stats.ts); a family with `onlyWhen` only while that flag is set.
 */
function families(s: ServerStats): Family[] {
  return metricFamilies
    .filter((f) => f.onlyWhen === undefined || s[f.onlyWhen])
    .map((f) => ({
      name: f.name,
      type: f.type,
      help: f.help,
      samples: f.samples.map((x) => ({ suffix: x.suffix, labels: x.labels, value: x.seconds ? s[x.stat] / 1000 : s[x.stat] })),
    }));
}

/**
 * Renders `stats` as Prometheus text exposition format 0.0.4: `# HELP` and `# TYPE` before
 * each family's samples, every sample carrying `labels`.
 */
export function renderMetrics(stats: ServerStats, labels: MetricsLabels = {}): string {
  for (const name of Object.keys(labels)) {
    if (!LABEL_NAME.test(name) || name.startsWith('__')) throw new TypeError(`invalid label name ${JSON.stringify(name)}`);
  }
  const constant = Object.entries(labels);
  const lines: string[] = [];
  for (const family of families(stats)) {
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`);
    lines.push(`# TYPE ${family.name} ${family.type}`);
    for (const sample of family.samples) {
      const pairs = [...constant, ...Object.entries(sample.labels ?? {})];
      const rendered = pairs.length ? `{${pairs.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}` : '';
      lines.push(`${family.name}${sample.suffix ?? ''}${rendered} ${formatValue(sample.value)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** The content type of {@link renderMetrics}'s output. */
export const metricsContentType = 'text/plain; version=0.0.4; charset=utf-8';
