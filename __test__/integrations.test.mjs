// The operator material in integrations/ checked against what kcpwatch writes, as far as a
// machine without Elasticsearch or Splunk allows:
//   elasticsearch/kcpwatch-ecs-template.json  a composable index template: valid JSON of the
//     shape PUT _index_template takes; every field of every ECS record in the SIEM matrix
//     (crates/kcpwatch-log/tests/fixtures/siem/ecs.ndjson, the whole format matrix) mapped explicitly, ECS
//     fields with their ECS 9.0.0 type (schema/official/ecs-9.0.0/ecs_flat.yml), every value
//     compatible with its mapped type.
//   splunk/props.conf, splunk/transforms.conf  parsed as Splunk .conf files; only settings of
//     props.conf.spec / transforms.conf.spec; the sourcetype is the one the HEC output sets; the
//     TIME_PREFIX / TIME_FORMAT pair reads every canonical record's `ts` back to its `time`; the
//     LINE_BREAKER splits an NDJSON file into its records; the transforms and aliases point at
//     fields the records have.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import YAML from 'yaml';

const root = fileURLToPath(new URL('..', import.meta.url));
const read = (...p) => readFileSync(path.join(root, ...p), 'utf8');
const ndjson = (name) =>
  read('crates', 'kcpwatch-log', 'tests', 'fixtures', 'siem', name)
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l));

// ---------------------------------------------------------------- Elasticsearch

const template = JSON.parse(read('integrations', 'elasticsearch', 'kcpwatch-ecs-template.json'));
const ecs = YAML.parse(read('schema', 'official', 'ecs-9.0.0', 'ecs_flat.yml'));

/** The mapping of a dotted field path in the template, or undefined. */
function mappingOf(dotted) {
  let props = template.template.mappings.properties;
  const parts = dotted.split('.');
  for (const [i, part] of parts.entries()) {
    const m = props?.[part];
    if (!m) return undefined;
    if (i === parts.length - 1) return m;
    props = m.properties;
  }
  return undefined;
}

/** Every leaf of a document as [dotted path, value] (arrays are values). */
function leaves(doc, prefix = '') {
  return Object.entries(doc).flatMap(([k, v]) => {
    const key = prefix ? `${prefix}.${k}` : k;
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? leaves(v, key) : [[key, v]];
  });
}

const rfc3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** Why `value` would not index under `type` (Elasticsearch's default, non-coercing view), or null. */
function incompatible(type, value) {
  const one = (v) => {
    switch (type) {
      case 'keyword':
      case 'constant_keyword':
      case 'wildcard':
      case 'match_only_text':
      case 'text':
        return typeof v === 'string' ? null : `${type} needs a string`;
      case 'ip':
        return typeof v === 'string' && isIP(v) !== 0 ? null : 'ip needs an IPv4 or IPv6 address';
      case 'long':
        return Number.isSafeInteger(v) ? null : 'long needs an integer';
      case 'double':
      case 'float':
      case 'scaled_float':
        return typeof v === 'number' ? null : `${type} needs a number`;
      case 'boolean':
        return typeof v === 'boolean' ? null : 'boolean needs true or false';
      case 'date':
        // strict_date_optional_time||epoch_millis, the default date format.
        return (typeof v === 'string' && rfc3339.test(v) && !Number.isNaN(Date.parse(v))) || Number.isSafeInteger(v)
          ? null
          : 'date needs RFC 3339 or epoch milliseconds';
      default:
        return `type ${type} is not checked here`;
    }
  };
  for (const v of Array.isArray(value) ? value : [value]) {
    const why = one(v);
    if (why) return why;
  }
  return null;
}

test('the Elasticsearch template is a composable index template for the ECS output', (t) => {
  t.deepEqual(Object.keys(template).sort(), ['_meta', 'data_stream', 'index_patterns', 'priority', 'template']);
  t.true(Array.isArray(template.index_patterns) && template.index_patterns.includes('kcpwatch'), 'matches the elastic output default index');
  t.true(Number.isInteger(template.priority) && template.priority > 100, 'above the built-in logs-*-* templates (100)');
  t.deepEqual(template.data_stream, {}, 'a data stream: the elastic output writes with create');
  t.is(template._meta.ecs_version, '9.0.0');
  const { mappings } = template.template;
  t.is(mappings.date_detection, false);
  t.is(mappings.properties['@timestamp'].type, 'date', 'data streams need @timestamp as a date');
  for (const dt of mappings.dynamic_templates) {
    const [[, spec]] = Object.entries(dt);
    t.true(spec.path_match.startsWith('kcp.'), 'dynamic mapping only for kcpwatch fields');
  }
});

test('every field the ECS output writes is mapped, with its ECS 9.0.0 type or a typed kcp.* field', (t) => {
  const records = ndjson('ecs.ndjson');
  // The whole matrix: the same records as the canonical JSON fixture, format by format.
  t.is(records.length, ndjson('json.ndjson').length);
  t.true(records.length >= 250);
  const problems = [];
  const seen = new Set();
  for (const record of records) {
    for (const [field, value] of leaves(record)) {
      seen.add(field);
      const m = mappingOf(field);
      if (!m) {
        problems.push(`${field}: not mapped`);
        continue;
      }
      if (ecs[field]) {
        if (m.type !== ecs[field].type) problems.push(`${field}: ${m.type}, ECS says ${ecs[field].type}`);
        if (ecs[field].ignore_above !== undefined && m.ignore_above !== ecs[field].ignore_above) {
          problems.push(`${field}: ignore_above ${m.ignore_above}, ECS says ${ecs[field].ignore_above}`);
        }
      } else if (!field.startsWith('kcp.')) {
        problems.push(`${field}: neither an ECS field nor under kcp.*`);
      }
      const why = incompatible(m.type, value);
      if (why) problems.push(`${field} = ${JSON.stringify(value)}: ${why}`);
    }
  }
  t.deepEqual([...new Set(problems)], []);
  t.true(seen.size > 100, `${seen.size} distinct fields checked`);
  t.log(`${seen.size} distinct fields of ${records.length} ECS records mapped`);
});

test('the template maps nothing beyond ECS and kcp.*, and every leaf has a type', (t) => {
  const stray = [];
  const walk = (props, prefix) => {
    for (const [k, m] of Object.entries(props)) {
      const key = prefix ? `${prefix}.${k}` : k;
      if (m.properties) walk(m.properties, key);
      else if (typeof m.type !== 'string') stray.push(`${key}: no type`);
      else if (!ecs[key] && !key.startsWith('kcp.')) stray.push(`${key}: not in ECS 9.0.0`);
    }
  };
  walk(template.template.mappings.properties, '');
  t.deepEqual(stray, []);
});

// ---------------------------------------------------------------- Splunk

/** A Splunk .conf file: stanzas of `key = value`, `#` comments, `\` line continuations. */
function parseConf(text) {
  const stanzas = new Map();
  let current = null;
  const lines = text.replace(/\\\n/g, '').split('\n');
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const stanza = /^\[([^\]]+)\]$/.exec(line);
    if (stanza) {
      if (stanzas.has(stanza[1])) throw new Error(`line ${i + 1}: stanza [${stanza[1]}] twice`);
      current = new Map();
      stanzas.set(stanza[1], current);
      continue;
    }
    const kv = /^([A-Za-z_][A-Za-z0-9_:.-]*)\s*=\s*(.*)$/.exec(line);
    if (!kv || !current) throw new Error(`line ${i + 1}: not a setting inside a stanza: ${line}`);
    if (current.has(kv[1])) throw new Error(`line ${i + 1}: ${kv[1]} twice`);
    current.set(kv[1], kv[2]);
  }
  return stanzas;
}

// The settings used, as props.conf.spec and transforms.conf.spec (Splunk 9.x) name them;
// CLASS-suffixed ones by their prefix.
const propsSettings = new Set([
  'SHOULD_LINEMERGE', 'LINE_BREAKER', 'TRUNCATE', 'TIME_PREFIX', 'TIME_FORMAT', 'TZ',
  'MAX_TIMESTAMP_LOOKAHEAD', 'KV_MODE', 'AUTO_KV_JSON', 'INDEXED_EXTRACTIONS', 'TIMESTAMP_FIELDS',
  'CHARSET', 'category', 'description', 'pulldown_type',
]);
const propsClasses = ['TRANSFORMS-', 'FIELDALIAS-', 'EVAL-', 'REPORT-', 'EXTRACT-'];
const transformsSettings = new Set(['REGEX', 'FORMAT', 'DEST_KEY', 'SOURCE_KEY', 'WRITE_META', 'DEFAULT_VALUE', 'MV_ADD']);

const props = parseConf(read('integrations', 'splunk', 'props.conf'));
const transforms = parseConf(read('integrations', 'splunk', 'transforms.conf'));
const sourcetype = 'kcpwatch:event';
const stanza = props.get(sourcetype);

/** Splunk's strptime subset used here, as a regex with named parts. */
function splunkTimeRegex(format) {
  const parts = {
    '%Y': '(?<Y>\\d{4})', '%m': '(?<m>\\d{2})', '%d': '(?<d>\\d{2})', '%H': '(?<H>\\d{2})',
    '%M': '(?<M>\\d{2})', '%S': '(?<S>\\d{2})', '%6N': '(?<N>\\d{6})', '%3N': '(?<N>\\d{3})',
  };
  let re = '';
  for (let i = 0; i < format.length; i++) {
    const d = format.slice(i, i + 3) === '%6N' || format.slice(i, i + 3) === '%3N' ? format.slice(i, i + 3) : format.slice(i, i + 2);
    if (parts[d]) {
      re += parts[d];
      i += d.length - 1;
    } else if (format[i] === '%') {
      throw new Error(`directive ${d} not handled by the test`);
    } else {
      re += format[i].replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    }
  }
  return new RegExp(`^${re}`);
}

test('props.conf and transforms.conf parse, with documented settings only', (t) => {
  t.truthy(stanza, `a [${sourcetype}] stanza`);
  for (const [name, settings] of props) {
    for (const key of settings.keys()) {
      t.true(propsSettings.has(key) || propsClasses.some((c) => key.startsWith(c)), `[${name}] ${key} is a props.conf setting`);
    }
  }
  for (const [name, settings] of transforms) {
    for (const key of settings.keys()) t.true(transformsSettings.has(key), `[${name}] ${key} is a transforms.conf setting`);
  }
  t.is(stanza.get('SHOULD_LINEMERGE'), 'false');
  t.is(stanza.get('KV_MODE'), 'json');
  t.is(stanza.get('TZ'), 'UTC');
  for (const [key, value] of stanza) {
    if (key.startsWith('TRANSFORMS-')) {
      for (const name of value.split(',').map((s) => s.trim())) t.true(transforms.has(name), `${key} -> [${name}] exists`);
    }
  }
});

test('the HEC output sends the sourcetype props.conf configures', (t) => {
  const events = ndjson('hec.ndjson');
  t.true(events.length > 0);
  for (const e of events) t.is(e.sourcetype, sourcetype);
});

test('TIME_PREFIX and TIME_FORMAT read every canonical record back to its time', (t) => {
  const lines = read('crates', 'kcpwatch-log', 'tests', 'fixtures', 'siem', 'json.ndjson').split('\n').filter(Boolean);
  const hecLines = ndjson('hec.ndjson').map((e) => JSON.stringify(e.event));
  const prefix = new RegExp(stanza.get('TIME_PREFIX'));
  const format = splunkTimeRegex(stanza.get('TIME_FORMAT'));
  const lookahead = Number(stanza.get('MAX_TIMESTAMP_LOOKAHEAD'));
  t.true(lookahead > 0);
  for (const line of [...lines, ...hecLines]) {
    const record = JSON.parse(line);
    const p = prefix.exec(line);
    if (!p) return t.fail(`TIME_PREFIX does not match ${line.slice(0, 80)}`);
    const rest = line.slice(p.index + p[0].length);
    const m = format.exec(rest.slice(0, lookahead));
    if (!m) return t.fail(`TIME_FORMAT does not read ${rest.slice(0, 40)}`);
    const { Y, m: mo, d, H, M, S, N } = m.groups;
    // TZ = UTC; Splunk keeps the microseconds, the record's `time` is in milliseconds.
    const micros = Date.UTC(+Y, +mo - 1, +d, +H, +M, +S) * 1000 + Number(N.padEnd(6, '0'));
    t.is(Math.floor(micros / 1000), record.time, `ts ${record.ts} read as time ${record.time}`);
  }
  t.log(`${lines.length + hecLines.length} timestamps read back`);
});

test('LINE_BREAKER splits an NDJSON file into its records and TRUNCATE leaves them whole', (t) => {
  const text = read('crates', 'kcpwatch-log', 'tests', 'fixtures', 'siem', 'json.ndjson');
  const breaker = new RegExp(stanza.get('LINE_BREAKER'), 'g');
  t.is(new RegExp(`${breaker.source}|`).exec('').length, 2, 'LINE_BREAKER has the one capturing group Splunk requires');
  const events = text.split(breaker).filter((s, i) => i % 2 === 0 && s.length > 0);
  const lines = text.split('\n').filter(Boolean);
  t.deepEqual(events, lines);
  const longest = Math.max(...lines.map((l) => Buffer.byteLength(l)));
  t.true(Number(stanza.get('TRUNCATE')) >= 10 * longest, `TRUNCATE ${stanza.get('TRUNCATE')} vs longest record ${longest}`);
});

test('the host transform and the field aliases use fields every record has', (t) => {
  const lines = read('crates', 'kcpwatch-log', 'tests', 'fixtures', 'siem', 'json.ndjson').split('\n').filter(Boolean);
  const host = transforms.get('kcpwatch_host_from_record');
  t.is(host.get('DEST_KEY'), 'MetaData:Host');
  t.is(host.get('FORMAT'), 'host::$1');
  const re = new RegExp(host.get('REGEX'));
  for (const line of lines) t.is(re.exec(line)?.[1], JSON.parse(line).observer_host);
  const fields = new Set(lines.flatMap((l) => Object.keys(JSON.parse(l))));
  for (const [key, value] of stanza) {
    if (!key.startsWith('FIELDALIAS-')) continue;
    const [, source] = /^(\S+) AS \S+$/.exec(value) ?? [];
    t.true(fields.has(source), `${key}: ${source} is a canonical field`);
  }
});

test('the npm package ships integrations/', (t) => {
  const pkg = JSON.parse(read('package.json'));
  t.true(pkg.files.includes('integrations/'), 'package.json files lists integrations/');
});
