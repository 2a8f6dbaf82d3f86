// The Sigma rules in rules/: every file parses, every document is a well-formed Sigma rule or
// correlation on kcpwatch's canonical field names, and every detector KCPW-001..010 has a
// correlation with its default threshold, window and grouping key. The defaults come from the
// Rust core (`Rule::ALL` and `DetectorConfig::default()`, read through the addon's
// `detectorRules()`), and the table in docs/detection.md and the rules must agree with them.

import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import test from 'ava';
import YAML from 'yaml';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const rulesDir = join(root, 'rules');
const read = (path) => readFileSync(join(root, path), 'utf8');

const IDS = Array.from({ length: 10 }, (_, i) => `KCPW-${String(i + 1).padStart(3, '0')}`);
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const LEVELS = new Set(['informational', 'low', 'medium', 'high', 'critical']);
const STATUSES = new Set(['stable', 'test', 'experimental', 'deprecated', 'unsupported']);
const CORRELATION_TYPES = new Set(['event_count', 'value_count', 'temporal', 'temporal_ordered']);
const TACTICS = new Set([
  'reconnaissance', 'resource_development', 'initial_access', 'execution', 'persistence',
  'privilege_escalation', 'defense_evasion', 'credential_access', 'discovery', 'lateral_movement',
  'collection', 'command_and_control', 'exfiltration', 'impact',
]);
const TOP_LEVEL = new Set([
  'title', 'id', 'name', 'status', 'description', 'references', 'author', 'date', 'modified',
  'related', 'tags', 'logsource', 'detection', 'fields', 'falsepositives', 'level', 'correlation',
  'generate', 'kcpwatch',
]);
/** The detector's alert severity as a Sigma level. */
const LEVEL_OF = { warning: 'medium', alert: 'high' };
/** Sigma grouping of a detector's key: every detector runs per listener (`observer_instance`). */
const GROUP_BY = { source: ['observer_instance', 'src_ip'], listener: ['observer_instance'] };

// ---------------------------------------------------------------------------------------------
// The three sources of the defaults.

/** `10 s` → 10000, `60 s (tumbling)` → 60000, `10s` / `1m` → ms. */
function toMs(text) {
  const m = /^\s*(\d+)\s*(ms|s|m|h|d)\b/.exec(String(text));
  if (!m) throw new Error(`not a duration: ${text}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2]];
}

/** The first integer in a cell: `1,000, or 5 × ...` → 1000, `50 %` → 50. */
const firstInt = (cell) => Number(/\d[\d,]*/.exec(cell)[0].replaceAll(',', ''));

/** docs/detection.md, the "Rules" table. */
function fromDocs() {
  const lines = read('docs/detection.md').split('\n').filter((l) => l.startsWith('|'));
  const cells = (line) => line.split('|').slice(1, -1).map((c) => c.trim());
  const header = cells(lines[0]);
  const col = (name) => {
    const i = header.indexOf(name);
    if (i < 0) throw new Error(`docs/detection.md: no column "${name}" in ${header.join(' | ')}`);
    return i;
  };
  const [id, name, counts, key, threshold, window, severity, attack] = [
    'id', 'name', 'counts', 'key', 'default threshold', 'window', 'severity', 'ATT&CK',
  ].map(col);
  const out = new Map();
  for (const line of lines.slice(2)) {
    const c = cells(line);
    if (!/^KCPW-\d{3}$/.test(c[id] ?? '')) continue;
    const entry = {
      id: c[id],
      name: c[name].replaceAll('`', ''),
      threshold: firstInt(c[threshold]),
      window: toMs(c[window]),
      key: c[key],
      severity: c[severity],
      technique: /^T\d{4}(\.\d{3})?$/.test(c[attack]) ? c[attack] : undefined,
    };
    const min = /once (\d+) attempts/.exec(c[counts]);
    if (min) entry.minAttempts = Number(min[1]);
    out.set(entry.id, entry);
  }
  return out;
}

/**
 * The Rust core's view: `detectorRules()`, which the addon builds from `Rule::ALL` and
 * `DetectorConfig::default()` (`npm test` builds the addon before the tests run).
 */
function fromAddon() {
  const list = createRequire(import.meta.url)('../index.js').detectorRules();
  return new Map(list.map((r) => [r.id, { ...r, technique: r.technique ?? undefined, minAttempts: r.minAttempts ?? undefined }]));
}

// ---------------------------------------------------------------------------------------------
// The rules.

function loadRules() {
  const files = readdirSync(rulesDir).filter((f) => f.endsWith('.yml') || f.endsWith('.yaml')).sort();
  return files.map((file) => {
    const text = readFileSync(join(rulesDir, file), 'utf8');
    const docs = YAML.parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
    return { file, docs };
  });
}

const rules = loadRules();
const docsDefaults = fromDocs();
const rustDefaults = fromAddon();

test('every rule file parses as YAML, without errors or warnings', (t) => {
  t.true(rules.length >= IDS.length, `${rules.length} files in rules/`);
  for (const { file, docs } of rules) {
    t.true(docs.length > 0, `${file}: no document`);
    for (const [i, doc] of docs.entries()) {
      t.deepEqual(doc.errors.map(String), [], `${file} document ${i + 1}: errors`);
      t.deepEqual(doc.warnings.map(String), [], `${file} document ${i + 1}: warnings`);
      t.is(typeof doc.toJS(), 'object', `${file} document ${i + 1}: not a mapping`);
    }
  }
});

/** Every document of every file, as plain objects. */
const documents = rules.flatMap(({ file, docs }) => docs.map((d, i) => ({ file, index: i + 1, rule: d.toJS() })));

/** Field names a detection uses (`field|modifier` → `field`), in maps and lists of maps. */
function detectionFields(detection) {
  const fields = new Set();
  const visit = (value) => {
    if (Array.isArray(value)) value.forEach(visit);
    else if (value && typeof value === 'object') {
      for (const key of Object.keys(value)) fields.add(key.split('|')[0]);
    }
  };
  for (const [key, value] of Object.entries(detection)) if (key !== 'condition') visit(value);
  return fields;
}

/** The canonical field names: every property of schema/events.schema.json (kcp:alert's included). */
function canonicalFields() {
  const names = new Set();
  const walk = (o) => {
    if (!o || typeof o !== 'object') return;
    if (o.properties && typeof o.properties === 'object') for (const k of Object.keys(o.properties)) names.add(k);
    Object.values(o).forEach(walk);
  };
  walk(JSON.parse(read('schema/events.schema.json')));
  return names;
}

test('every document is a well-formed Sigma rule or correlation', (t) => {
  const ids = new Set();
  const names = new Set();
  const fields = canonicalFields();
  t.true(fields.has('rule_id') && fields.has('group_ip'), 'the kcp:alert fields were found');
  for (const { file, index, rule } of documents) {
    const where = `${file} document ${index}`;
    for (const key of Object.keys(rule)) t.true(TOP_LEVEL.has(key), `${where}: unknown key ${key}`);
    t.true(typeof rule.title === 'string' && rule.title.length > 0 && rule.title.length <= 256, `${where}: title`);
    t.regex(String(rule.id), UUID_V4, `${where}: id is a UUIDv4`);
    t.false(ids.has(rule.id), `${where}: id ${rule.id} is used twice`);
    ids.add(rule.id);
    t.true(STATUSES.has(rule.status), `${where}: status ${rule.status}`);
    t.true(typeof rule.description === 'string' && rule.description.length > 40, `${where}: description`);
    t.true(Array.isArray(rule.references) && rule.references.every((r) => typeof r === 'string'), `${where}: references`);
    t.is(typeof rule.author, 'string', `${where}: author`);
    t.regex(String(rule.date), /^\d{4}-(0[1-9]|1[012])-(0[1-9]|[12]\d|3[01])$/, `${where}: date`);
    t.true(LEVELS.has(rule.level), `${where}: level ${rule.level}`);
    t.true(Array.isArray(rule.falsepositives) && rule.falsepositives.length > 0, `${where}: falsepositives`);
    for (const tag of rule.tags ?? []) {
      const m = /^attack\.(.+)$/.exec(tag);
      t.truthy(m, `${where}: tag ${tag} is not in the attack namespace`);
      if (m) t.true(/^t\d{4}(\.\d{3})?$/.test(m[1]) || TACTICS.has(m[1]), `${where}: tag ${tag}`);
    }
    if (rule.name !== undefined) {
      t.regex(rule.name, /^[a-z0-9_]+$/, `${where}: name`);
      t.false(names.has(rule.name), `${where}: name ${rule.name} is used twice`);
      names.add(rule.name);
    }
    if (rule.correlation) {
      t.is(rule.logsource, undefined, `${where}: a correlation has no logsource`);
      t.is(rule.detection, undefined, `${where}: a correlation has no detection`);
      const c = rule.correlation;
      t.true(CORRELATION_TYPES.has(c.type), `${where}: correlation type ${c.type}`);
      t.true(Array.isArray(c.rules) && c.rules.length > 0, `${where}: correlation rules`);
      t.regex(String(c.timespan), /^\d+[smhd]$/, `${where}: timespan`);
      t.true(Array.isArray(c['group-by']), `${where}: group-by`);
      for (const g of c['group-by'] ?? []) t.true(fields.has(g), `${where}: group-by ${g} is not a canonical field`);
      const ops = Object.keys(c.condition ?? {}).filter((k) => k !== 'field');
      t.true(ops.length >= 1 && ops.every((op) => ['gt', 'gte', 'lt', 'lte', 'eq'].includes(op)), `${where}: condition`);
      for (const op of ops) t.true(Number.isInteger(c.condition[op]), `${where}: condition.${op}`);
      if (c.type === 'value_count') t.true(fields.has(c.condition.field), `${where}: value_count field`);
    } else {
      t.is(rule.logsource?.product, 'kcpwatch', `${where}: logsource.product`);
      t.is(rule.logsource?.service, 'security', `${where}: logsource.service`);
      const d = rule.detection;
      t.true(d && typeof d.condition === 'string' && d.condition.length > 0, `${where}: detection.condition`);
      // Every identifier the condition names (or matches with a `*` pattern) is defined.
      const defined = Object.keys(d ?? {}).filter((k) => k !== 'condition');
      const words = (d?.condition ?? '').match(/[A-Za-z_][\w*]*/g) ?? [];
      for (const w of words.filter((x) => !['and', 'or', 'not', 'of', 'them', 'all'].includes(x))) {
        const re = new RegExp(`^${w.replaceAll('*', '.*')}$`);
        t.true(defined.some((k) => re.test(k)), `${where}: condition names ${w}, which is not defined`);
      }
      for (const f of detectionFields(d ?? {})) t.true(fields.has(f), `${where}: ${f} is not a canonical field name`);
      for (const f of rule.fields ?? []) t.true(fields.has(f), `${where}: fields: ${f} is not canonical`);
    }
  }
  // Every correlation refers to rules defined in its own file (each file converts on its own).
  for (const { file, docs } of rules) {
    const local = new Set(docs.map((d) => d.toJS().name).filter(Boolean));
    for (const d of docs) {
      for (const ref of d.toJS().correlation?.rules ?? []) t.true(local.has(ref), `${file}: correlation refers to ${ref}, not in the file`);
    }
  }
});

test('the defaults agree: docs/detection.md and the Rust DetectorConfig (through the addon)', (t) => {
  t.deepEqual([...docsDefaults.keys()], IDS, 'docs/detection.md lists KCPW-001..010');
  t.deepEqual([...rustDefaults.keys()], IDS, 'Rule::ALL covers KCPW-001..010');
  for (const id of IDS) {
    const d = docsDefaults.get(id);
    const r = rustDefaults.get(id);
    for (const x of [d, r]) {
      t.true(Number.isInteger(x.threshold) && x.threshold > 0 && Number.isInteger(x.window) && x.window > 0, `${id}: parsed ${JSON.stringify(x)}`);
      t.true(typeof x.name === 'string' && ['source', 'listener'].includes(x.key) && ['warning', 'alert'].includes(x.severity), `${id}: parsed ${JSON.stringify(x)}`);
    }
    for (const k of ['name', 'threshold', 'window', 'key', 'severity', 'technique', 'minAttempts']) {
      t.is(d[k], r[k], `${id} ${k}: docs/detection.md says ${d[k]}, the Rust code ${r[k]}`);
    }
  }
  t.true(Number.isInteger(rustDefaults.get('KCPW-007').minAttempts), 'KCPW-007 has a minimum of attempts');
});

test('every detector has its file: a kcp:alert rule and a correlation with its threshold, window and key', (t) => {
  for (const id of IDS) {
    const def = rustDefaults.get(id);
    const slug = def.name.replaceAll('_', '-');
    const expected = `${id.toLowerCase()}-${slug}.yml`;
    const file = rules.find((r) => r.file === expected);
    if (!file) {
      t.fail(`${id}: no rules/${expected}`);
      continue;
    }
    const docs = file.docs.map((d) => d.toJS());
    const tagged = docs.filter((d) => d.kcpwatch?.rule_id !== undefined);
    t.true(tagged.every((d) => d.kcpwatch.rule_id === id), `${expected}: every kcpwatch.rule_id is ${id}`);
    const technique = def.technique && `attack.${def.technique.toLowerCase()}`;

    // The exact rule: the built-in alert record itself.
    const alerts = docs.filter((d) => d.detection?.selection?.name === 'kcp:alert');
    t.is(alerts.length, 1, `${id}: one rule on the kcp:alert record`);
    const alert = alerts[0];
    if (alert) {
      t.is(alert.detection.selection.rule_id, id, `${id}: the alert rule matches rule_id ${id}`);
      t.is(alert.kcpwatch?.exact, true, `${id}: the alert rule is marked exact`);
      t.is(alert.level, LEVEL_OF[def.severity], `${id}: level follows the alert's severity (${def.severity})`);
      if (technique) t.true(alert.tags?.includes(technique), `${id}: alert rule tagged ${technique}`);
      else t.false((alert.tags ?? []).some((x) => /^attack\.t\d/.test(x)), `${id}: no technique`);
      t.true(alert.title.includes(id), `${id}: title names the rule`);
    }

    // The correlation on the records.
    const correlations = docs.filter((d) => d.correlation);
    t.is(correlations.length, 1, `${id}: one correlation`);
    const corr = correlations[0];
    if (!corr) continue;
    const c = corr.correlation;
    t.is(corr.kcpwatch?.rule_id, id, `${id}: the correlation names its detector`);
    t.true(corr.title.includes(id), `${id}: correlation title names the rule`);
    t.is(toMs(c.timespan), def.window, `${id}: timespan ${c.timespan} is the detector's window (${def.window} ms)`);
    t.deepEqual(c['group-by'], GROUP_BY[def.key], `${id}: grouped like the detector (${def.key}, per listener)`);
    if (id === 'KCPW-007') {
      // A ratio is not expressible in Sigma: the correlation is the necessary condition, at least
      // percent × min_attempts / 100 failures in the window (the description says so).
      t.is(c.type, 'event_count');
      t.is(c.condition.gte, Math.ceil((def.threshold * def.minAttempts) / 100), `${id}: necessary-condition count`);
      t.regex(corr.description, /ratio/i, `${id}: the description says why it is not exact`);
      t.regex(corr.description, /cannot/i);
    } else {
      t.is(c.condition.gte, def.threshold, `${id}: condition.gte is the detector's threshold (${def.threshold})`);
      t.is(c.type, id === 'KCPW-004' ? 'value_count' : 'event_count', `${id}: correlation type`);
      if (id === 'KCPW-004') t.is(c.condition.field, 'conv', `${id}: distinct convs`);
    }
    t.is(corr.level, id === 'KCPW-007' ? 'low' : LEVEL_OF[def.severity], `${id}: correlation level`);
    if (technique) t.true(corr.tags?.includes(technique), `${id}: correlation tagged ${technique}`);
    // The correlation counts the records of its own base rules, on canonical names.
    const base = docs.filter((d) => c.rules.includes(d.name));
    t.is(base.length, c.rules.length, `${id}: the correlation's rules are in the file`);
    for (const b of base) t.not(b.detection.selection?.name ?? b.detection.selection_attempted?.name, 'kcp:alert');
  }
});

test('rules counting sampled records say so', (t) => {
  for (const { file, index, rule } of documents) {
    if (!rule.correlation) continue;
    const base = documents.filter((d) => d.file === file && rule.correlation.rules.includes(d.rule.name));
    const sampled = base.some(({ rule: b }) => {
      const selections = Object.entries(b.detection).filter(([k]) => k !== 'condition').map(([, v]) => v);
      return selections.some((s) => ['kcp:packet_dropped', 'kcp:connection_failed'].includes(s.name));
    });
    if (sampled) {
      t.regex(rule.description, /sampl/i, `${file} document ${index}: counts sampled records without saying so`);
      t.regex(rule.description, /suppressed/, `${file} document ${index}: should name \`suppressed\``);
    }
  }
});

test('the ECS pipeline parses and maps every field the rules use', (t) => {
  const text = readFileSync(join(rulesDir, 'pipelines', 'kcpwatch-ecs.yaml'), 'utf8');
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  t.deepEqual(doc.errors.map(String), []);
  const pipeline = doc.toJS();
  const mapping = pipeline.transformations.find((x) => x.type === 'field_name_mapping')?.mapping ?? {};
  const used = new Set();
  for (const { rule } of documents) {
    if (rule.detection) for (const f of detectionFields(rule.detection)) used.add(f);
    for (const f of rule.fields ?? []) used.add(f);
    for (const f of rule.correlation?.['group-by'] ?? []) used.add(f);
    if (rule.correlation?.condition?.field) used.add(rule.correlation.condition.field);
  }
  for (const f of used) t.truthy(mapping[f], `${f} has no ECS mapping`);
  // The ECS formatter keeps unmapped fields under kcp.* (crates/kcpwatch-log/src/formats/ecs.rs).
  for (const [from, to] of Object.entries(mapping)) t.regex(to, /^[a-z_@]+(\.[a-z_]+)+$|^message$/, `${from} → ${to}`);
});
