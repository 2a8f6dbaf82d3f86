// Every SIEM format, validated against the official definitions pinned in schema/official/
// (see schema/official/README.md for versions, sources and licences), for every event kind,
// IP privacy mode and IP family. The records are the matrix that
// crates/kcpwatch-log/tests/formats.rs (`siem_matrix_fixtures_are_up_to_date`) renders into
// crates/kcpwatch-log/tests/fixtures/siem/ and keeps equal to what the Rust writers produce:
//
//   cases.ndjson   which event, variant, privacy mode and family each line is
//   json.ndjson    the canonical record (also checked against schema/events.schema.json)
//   ecs.ndjson     ECS 9.0.0: ecs_flat.yml (field existence, types, allowed and expected values,
//                  category/type pairs from expected_event_types)
//   ocsf.ndjson    OCSF 1.4.0: the JSON Schema export per class and profile set (required
//                  attributes, types, enums, at_least_one), plus type_uid arithmetic, class and
//                  category, enum captions and observables
//   otlp.ndjson    opentelemetry-proto 1.5.0 .proto files through protobufjs, with a strict
//                  proto3 JSON walk (unknown fields, types, oneofs, 64-bit strings)
//   cef.log        the CEF:0 rules (header and extension escaping, keys, value types, lengths)
//   rfc5424.log    RFC 5424's ABNF and §6.3.3 escaping, values decoded back to the record
//   gelf.ndjson    GELF 1.1 (required fields, additional field names and value types, no _id)
//   hec.ndjson     Splunk HEC event envelope around the canonical record
import test from 'ava';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import protobuf from 'protobufjs';
import YAML from 'yaml';

const root = fileURLToPath(new URL('..', import.meta.url));
const official = path.join(root, 'schema', 'official');
const fixtures = path.join(root, 'crates', 'kcpwatch-log', 'tests', 'fixtures', 'siem');
const lines = (file) => readFileSync(path.join(fixtures, file), 'utf8').split('\n').filter((l) => l !== '');
const cases = lines('cases.ndjson').map((l) => JSON.parse(l));
const canonical = lines('json.ndjson').map((l) => JSON.parse(l));

const PRIVACY_MODES = ['full', 'truncate', 'hmac', 'cryptopan', 'omit'];
const FAMILIES = ['ipv4', 'ipv6'];

function where(i) {
  const c = cases[i];
  return `line ${i + 1} (${c.case}, ${c.privacy}, ${c.family})`;
}

/** Fails with the violations, at most 40 of them printed, and their total. */
function assertNone(t, format, violations) {
  const shown = violations.slice(0, 40).join('\n');
  t.deepEqual(violations, [], `${violations.length} ${format} violation(s):\n${shown}`);
}

/** Runs `check(line, i, push)` over a format's file; returns the violations. */
function validateFile(file, check) {
  const out = lines(file);
  const violations = [];
  if (out.length !== cases.length) violations.push(`${file}: ${out.length} lines for ${cases.length} cases`);
  out.forEach((line, i) => check(line, i, (msg) => violations.push(`${file} ${where(i)}: ${msg}`)));
  return violations;
}

function parseJson(line, push) {
  try {
    return JSON.parse(line);
  } catch (e) {
    push(`not JSON: ${e.message}`);
    return undefined;
  }
}

// ---- the matrix itself ------------------------------------------------------------------------

const eventSchema = JSON.parse(readFileSync(path.join(root, 'schema', 'events.schema.json'), 'utf8'));

test('the matrix has every event kind under every privacy mode over both IP families', (t) => {
  const events = eventSchema.$defs.event_name.enum;
  t.true(events.length >= 14, 'the event names are read from the schema');
  const missing = [];
  for (const event of events) {
    for (const privacy of PRIVACY_MODES) {
      for (const family of FAMILIES) {
        if (!cases.some((c) => c.event === event && c.privacy === privacy && c.family === family)) {
          missing.push(`${event} ${privacy} ${family}`);
        }
      }
    }
  }
  t.deepEqual(missing, []);
  t.is(canonical.length, cases.length);
  canonical.forEach((r, i) => t.is(r.name, cases[i].event, where(i)));
});

test('canonical records of the matrix follow schema/events.schema.json', (t) => {
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  const validate = ajv.compile(eventSchema);
  const violations = validateFile('json.ndjson', (line, i, push) => {
    const r = parseJson(line, push);
    if (r !== undefined && !validate(r)) {
      for (const e of validate.errors) push(`${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`);
    }
  });
  assertNone(t, 'canonical', violations);
});

// ---- ECS --------------------------------------------------------------------------------------

const ecs = YAML.parse(readFileSync(path.join(official, 'ecs-9.0.0', 'ecs_flat.yml'), 'utf8'));
const ECS_CUSTOM = 'kcp.';

/** Leaves of a nested ECS document as dotted names; arrays are leaves. */
function flatten(value, prefix, out) {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.push([prefix, value]);
  }
  return out;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** Whether `v` has the JSON shape Elasticsearch indexes for ECS type `type`. */
function ecsTypeError(type, v, def) {
  switch (type) {
    case 'keyword':
    case 'constant_keyword':
    case 'wildcard':
      if (typeof v !== 'string') return `${type} must be a string`;
      if (def.ignore_above && v.length > def.ignore_above) return `longer than ignore_above ${def.ignore_above}`;
      return null;
    case 'match_only_text':
    case 'text':
      return typeof v === 'string' ? null : `${type} must be a string`;
    case 'long':
      return Number.isSafeInteger(v) ? null : 'long must be an integer';
    case 'float':
    case 'scaled_float':
      return typeof v === 'number' ? null : `${type} must be a number`;
    case 'boolean':
      return typeof v === 'boolean' ? null : 'boolean must be true or false';
    case 'date':
      return typeof v === 'string' && RFC3339.test(v) && !Number.isNaN(Date.parse(v)) ? null : 'date must be RFC 3339';
    case 'ip':
      return typeof v === 'string' && isIP(v) !== 0 ? null : 'ip must be an IPv4 or IPv6 address';
    default:
      return `type ${type} is not written by kcpwatch`;
  }
}

/** Every ECS rule the document breaks. */
function ecsViolations(doc) {
  const found = [];
  for (const [name, value] of flatten(doc, '', [])) {
    if (name.startsWith(ECS_CUSTOM)) continue;
    const def = ecs[name];
    if (!def) {
      found.push(`${name}: not an ECS 9.0.0 field`);
      continue;
    }
    const isArray = (def.normalize ?? []).includes('array');
    if (Array.isArray(value) !== isArray) {
      found.push(`${name}: ${isArray ? 'ECS normalizes it to an array' : 'not an array field'}`);
    }
    for (const v of Array.isArray(value) ? value : [value]) {
      const err = ecsTypeError(def.type, v, def);
      if (err) found.push(`${name}: ${err} (${JSON.stringify(v)})`);
      if (def.allowed_values && !def.allowed_values.some((a) => a.name === v)) {
        found.push(`${name}: ${JSON.stringify(v)} is not an allowed value`);
      }
      if (def.expected_values && !def.expected_values.includes(v)) {
        found.push(`${name}: ${JSON.stringify(v)} is not an expected value`);
      }
    }
  }
  if (doc.ecs?.version !== '9.0.0') found.push(`ecs.version ${doc.ecs?.version}, expected 9.0.0`);
  const categories = ecs['event.category'].allowed_values;
  for (const category of doc.event?.category ?? []) {
    const expected = categories.find((c) => c.name === category)?.expected_event_types ?? [];
    for (const type of doc.event?.type ?? []) {
      if (!expected.includes(type)) {
        found.push(`event.type ${type} is not expected with event.category ${category} (expected: ${expected.join(', ')})`);
      }
    }
  }
  for (const required of ['@timestamp', 'ecs.version', 'event.kind', 'event.category', 'event.type']) {
    if (!flatten(doc, '', []).some(([n]) => n === required)) found.push(`${required} missing`);
  }
  return found;
}

test('ECS: every field exists in ECS 9.0.0 with its type, allowed values and expected category/type pairs', (t) => {
  t.true(Object.keys(ecs).length > 1000, 'ecs_flat.yml parsed');
  t.false(Object.keys(ecs).some((k) => k.startsWith(ECS_CUSTOM)), 'kcp.* is not an ECS field set');
  const violations = validateFile('ecs.ndjson', (line, i, push) => {
    const doc = parseJson(line, push);
    if (doc !== undefined) for (const v of ecsViolations(doc)) push(v);
  });
  assertNone(t, 'ECS', violations);
});

test('ECS: the validator catches a category/type pair ECS does not expect', (t) => {
  const doc = JSON.parse(lines('ecs.ndjson')[0]);
  doc.event.type = ['error'];
  t.true(ecsViolations(doc).some((v) => v.includes('event.type error is not expected with event.category network')));
  doc.event.type = ['connection'];
  doc.source = { ip: 'pseudonym:abc' };
  t.true(ecsViolations(doc).some((v) => v.startsWith('source.ip: ip must be')));
});

// ---- OCSF -------------------------------------------------------------------------------------

const OCSF_VERSION = '1.4.0';
const ocsfDir = path.join(official, `ocsf-${OCSF_VERSION}`);
const ocsfEnums = JSON.parse(readFileSync(path.join(ocsfDir, 'enums.json'), 'utf8'));
const ajvOcsf = new Ajv2020({ strict: false, allErrors: true });
const ocsfSchemas = new Map();

/** The class's JSON Schema for the record's profile set. */
function ocsfSchema(className, profiles) {
  const key = [className, ...[...profiles].sort()].join('.');
  if (!ocsfSchemas.has(key)) {
    const file = className + (profiles.length ? `.${[...profiles].sort().join('+')}` : '') + '.json';
    const schema = JSON.parse(readFileSync(path.join(ocsfDir, file), 'utf8'));
    ocsfSchemas.set(key, { schema, validate: ajvOcsf.compile(schema) });
  }
  return ocsfSchemas.get(key);
}

/** Walks the record beside its schema; checks sibling captions of enum attributes. */
function ocsfCaptions(node, schema, defs, owner, at, found) {
  for (const [key, value] of Object.entries(node)) {
    const prop = schema.properties?.[key];
    if (!prop) continue;
    const enumInfo = ocsfEnums.enums[`${owner}.${key}`];
    if (enumInfo && enumInfo.sibling && typeof value === 'number') {
      const caption = enumInfo.values[String(value)];
      const sibling = node[enumInfo.sibling];
      if (value === 99) {
        if (typeof sibling !== 'string' || sibling === '') found.push(`${at}${enumInfo.sibling}: 99 Other needs its own caption`);
      } else if (sibling !== undefined && sibling !== caption) {
        found.push(`${at}${enumInfo.sibling}: ${JSON.stringify(sibling)} but ${key} ${value} is ${JSON.stringify(caption)}`);
      }
    }
    const ref = prop.$ref ?? prop.items?.$ref;
    if (!ref) continue;
    const objectName = ref.split('/').pop();
    const objectSchema = defs[objectName];
    for (const [i, item] of (Array.isArray(value) ? value.map((v, j) => [j, v]) : [[null, value]])) {
      if (item && typeof item === 'object') {
        ocsfCaptions(item, objectSchema, defs, objectName, `${at}${key}${i === null ? '' : `[${i}]`}.`, found);
      }
    }
  }
}

/** Values at a dotted path (arrays fan out). */
function valuesAt(node, dotted) {
  let current = [node];
  for (const part of dotted.split('.')) {
    current = current.flatMap((n) => (Array.isArray(n) ? n : [n])).map((n) => n?.[part]).filter((v) => v !== undefined);
  }
  return current.flatMap((v) => (Array.isArray(v) ? v : [v]));
}

function ocsfViolations(r) {
  const found = [];
  const className = Object.keys(ocsfEnums.classes).find((c) => ocsfEnums.classes[c].uid === r.class_uid);
  if (!className) return [`class_uid ${r.class_uid} is neither Network Activity nor Detection Finding`];
  const cls = ocsfEnums.classes[className];
  const profiles = r.metadata?.profiles ?? [];
  const { schema, validate } = ocsfSchema(className, profiles);
  if (!validate(r)) {
    for (const e of validate.errors) found.push(`${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`);
  }
  if (r.metadata?.version !== OCSF_VERSION) found.push(`metadata.version ${r.metadata?.version}, expected ${OCSF_VERSION}`);
  if (r.category_uid !== cls.category_uid) found.push(`category_uid ${r.category_uid}, class ${cls.uid} is in ${cls.category_uid}`);
  if (r.type_uid !== r.class_uid * 100 + r.activity_id) found.push(`type_uid ${r.type_uid} != class_uid * 100 + activity_id`);
  if (r.class_name !== undefined && r.class_name !== cls.caption) found.push(`class_name ${r.class_name}`);
  ocsfCaptions(r, schema, schema.$defs ?? {}, className, '', found);
  for (const o of r.observables ?? []) {
    const at = o.name.startsWith('unmapped.') ? [r.unmapped?.[o.name.slice('unmapped.'.length)]] : valuesAt(r, o.name);
    if (!at.includes(o.value)) found.push(`observable ${o.name} = ${JSON.stringify(o.value)} is not in the record`);
    if (o.type_id === 2 && isIP(o.value) === 0) found.push(`observable ${o.name} is an IP Address but ${JSON.stringify(o.value)} is not one`);
  }
  for (const ep of ['src_endpoint', 'dst_endpoint']) {
    if (r[ep]?.ip !== undefined && isIP(r[ep].ip) === 0) found.push(`${ep}.ip ${JSON.stringify(r[ep].ip)} is not an IP address`);
  }
  return found;
}

test(`OCSF: every record validates against the OCSF ${OCSF_VERSION} JSON Schema of its class and profiles`, (t) => {
  const violations = validateFile('ocsf.ndjson', (line, i, push) => {
    const r = parseJson(line, push);
    if (r !== undefined) for (const v of ocsfViolations(r)) push(v);
  });
  assertNone(t, 'OCSF', violations);
});

test('OCSF: the validator catches an endpoint with nothing but a port, and a wrong type_uid', (t) => {
  const r = JSON.parse(lines('ocsf.ndjson').find((l) => JSON.parse(l).class_uid === 4001 && l.includes('"src_endpoint"')));
  r.src_endpoint = { port: 1 };
  r.type_uid += 1;
  const found = ocsfViolations(r);
  t.true(found.some((v) => v.startsWith('/src_endpoint must match a schema in anyOf')), found.join('\n'));
  t.true(found.some((v) => v.startsWith('type_uid')), found.join('\n'));
});

// ---- OTLP -------------------------------------------------------------------------------------

const protoRoot = new protobuf.Root();
protoRoot.resolvePath = (_origin, target) => path.join(official, 'opentelemetry-proto-1.5.0', target);
protoRoot.loadSync('opentelemetry/proto/collector/logs/v1/logs_service.proto');
protoRoot.resolveAll();
const ExportLogsServiceRequest = protoRoot.lookupType('opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest');

const INT64 = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const INT32 = { int32: [-(2 ** 31), 2 ** 31 - 1], sint32: [-(2 ** 31), 2 ** 31 - 1], sfixed32: [-(2 ** 31), 2 ** 31 - 1], uint32: [0, 2 ** 32 - 1], fixed32: [0, 2 ** 32 - 1] };

/** The proto3 JSON mapping, strictly: known lowerCamelCase fields only, exact value types. */
function otlpStrict(type, obj, at, found) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    found.push(`${at}: ${type.name} must be a JSON object`);
    return;
  }
  const oneofsSeen = new Map();
  for (const [key, value] of Object.entries(obj)) {
    const field = type.fields[key];
    if (!field) {
      found.push(`${at}.${key}: no field ${key} in ${type.fullName}`);
      continue;
    }
    if (field.partOf) {
      const other = oneofsSeen.get(field.partOf.name);
      if (other) found.push(`${at}: ${key} and ${other} are both set in oneof ${field.partOf.name}`);
      oneofsSeen.set(field.partOf.name, key);
    }
    const items = field.repeated ? value : [value];
    if (field.repeated && !Array.isArray(value)) {
      found.push(`${at}.${key}: repeated field must be an array`);
      continue;
    }
    items.forEach((v, i) => {
      const p = field.repeated ? `${at}.${key}[${i}]` : `${at}.${key}`;
      if (field.resolvedType instanceof protobuf.Type) return otlpStrict(field.resolvedType, v, p, found);
      if (field.resolvedType instanceof protobuf.Enum) {
        const ok = Object.values(field.resolvedType.values).includes(v) || Object.hasOwn(field.resolvedType.values, v);
        if (!ok) found.push(`${p}: ${JSON.stringify(v)} is not a ${field.resolvedType.name}`);
        return undefined;
      }
      if (INT64.has(field.type)) {
        if (typeof v !== 'string' || !/^-?\d+$/.test(v)) found.push(`${p}: ${field.type} must be a decimal string, got ${JSON.stringify(v)}`);
        else if (field.type.startsWith('u') || field.type === 'fixed64' ? BigInt(v) < 0n || BigInt(v) >= 2n ** 64n : BigInt(v) < -(2n ** 63n) || BigInt(v) >= 2n ** 63n) {
          found.push(`${p}: ${v} out of ${field.type} range`);
        }
      } else if (INT32[field.type]) {
        const [lo, hi] = INT32[field.type];
        if (!Number.isInteger(v) || v < lo || v > hi) found.push(`${p}: ${JSON.stringify(v)} is not a ${field.type}`);
      } else if (field.type === 'string') {
        if (typeof v !== 'string') found.push(`${p}: string expected`);
      } else if (field.type === 'bool') {
        if (typeof v !== 'boolean') found.push(`${p}: bool expected`);
      } else if (field.type === 'double' || field.type === 'float') {
        if (typeof v !== 'number') found.push(`${p}: number expected`);
      } else if (field.type === 'bytes') {
        if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) found.push(`${p}: base64 expected`);
      } else {
        found.push(`${p}: unhandled type ${field.type}`);
      }
      return undefined;
    });
  }
}

function otlpViolations(obj) {
  const found = [];
  otlpStrict(ExportLogsServiceRequest, obj, '', found);
  if (found.length) return found;
  const message = ExportLogsServiceRequest.fromObject(obj);
  const err = ExportLogsServiceRequest.verify(message);
  if (err) found.push(`protobufjs: ${err}`);
  const back = ExportLogsServiceRequest.toObject(ExportLogsServiceRequest.decode(ExportLogsServiceRequest.encode(message).finish()), { longs: String });
  const records = back.resourceLogs?.[0]?.scopeLogs?.[0]?.logRecords ?? [];
  if (records.length !== 1) found.push(`${records.length} log records after a binary round trip, expected 1`);
  for (const rl of obj.resourceLogs ?? []) {
    const keySets = [rl.resource?.attributes ?? [], ...(rl.scopeLogs ?? []).flatMap((s) => (s.logRecords ?? []).map((l) => l.attributes ?? []))];
    for (const attrs of keySets) {
      const keys = attrs.map((a) => a.key);
      const dup = keys.find((k, i) => keys.indexOf(k) !== i);
      if (dup) found.push(`attribute ${dup} twice (keys must be unique)`);
    }
    for (const s of rl.scopeLogs ?? []) {
      for (const l of s.logRecords ?? []) {
        if (!l.timeUnixNano || l.timeUnixNano === '0') found.push('timeUnixNano missing');
        if (!l.severityNumber) found.push('severityNumber missing');
      }
    }
  }
  return found;
}

test('OTLP: every record parses strictly as an opentelemetry-proto 1.5.0 ExportLogsServiceRequest', (t) => {
  const violations = validateFile('otlp.ndjson', (line, i, push) => {
    const obj = parseJson(line, push);
    if (obj !== undefined) for (const v of otlpViolations(obj)) push(v);
  });
  assertNone(t, 'OTLP', violations);
});

test('OTLP: the strict walk refuses unknown fields and numbers for 64-bit integers', (t) => {
  const obj = JSON.parse(lines('otlp.ndjson')[0]);
  const record = obj.resourceLogs[0].scopeLogs[0].logRecords[0];
  record.timeUnixNano = Number(record.timeUnixNano);
  record.event_id = 'x';
  const found = otlpViolations(obj);
  t.true(found.some((v) => v.includes('timeUnixNano: fixed64 must be a decimal string')), found.join('\n'));
  t.true(found.some((v) => v.includes('no field event_id')), found.join('\n'));
});

// ---- CEF --------------------------------------------------------------------------------------

// The extension keys kcpwatch writes, from the ArcSight CEF Implementation Standard's key
// dictionary (CEF:0, "Common Event Format", Micro Focus, revision 25), with the type and the
// length limit the standard gives each; custom keys follow the VendornameProductnameKey form.
const CEF_KEYS = {
  act: ['string', 63],
  cat: ['string', 1023],
  deviceDirection: ['direction'],
  deviceExternalId: ['string', 255],
  dvc: ['ipv4'],
  dvchost: ['string', 100],
  dst: ['ipv4'],
  dpt: ['port'],
  end: ['time'],
  externalId: ['string', 40],
  in: ['integer'],
  out: ['integer'],
  msg: ['string', 1023],
  outcome: ['string', 63],
  proto: ['string', 31],
  reason: ['string', 1023],
  rt: ['time'],
  spt: ['port'],
  src: ['ipv4'],
  start: ['time'],
  suser: ['string', 1023],
  c6a1: ['ipv6'],
  c6a2: ['ipv6'],
  c6a3: ['ipv6'],
  c6a4: ['ipv6'],
  cn1: ['long'],
  cn2: ['long'],
  cn3: ['long'],
  cs1: ['string', 4000],
  cs2: ['string', 4000],
  cs3: ['string', 4000],
  cs4: ['string', 4000],
  cs5: ['string', 4000],
  cs6: ['string', 4000],
};
for (const k of ['c6a1', 'c6a2', 'c6a3', 'c6a4', 'cn1', 'cn2', 'cn3', 'cs1', 'cs2', 'cs3', 'cs4', 'cs5', 'cs6']) {
  CEF_KEYS[`${k}Label`] = ['string', 1023];
}
const CEF_CUSTOM = /^KcpwatchKcpwatch[A-Z][A-Za-z0-9]*$/;

/** Splits a CEF line into header fields and extension text, enforcing header escaping. */
function cefHeader(line, found) {
  if (!line.startsWith('CEF:')) {
    found.push('does not start with CEF:');
    return null;
  }
  const fields = [];
  let current = '';
  let i = 4;
  while (fields.length < 7 && i < line.length) {
    const c = line[i];
    if (c === '\\') {
      const next = line[i + 1];
      if (next !== '\\' && next !== '|') found.push(`header: \\${next} is not a CEF header escape`);
      current += next;
      i += 2;
    } else if (c === '|') {
      fields.push(current);
      current = '';
      i += 1;
    } else {
      if (c === '\r' || c === '\n') found.push('header: raw line break');
      current += c;
      i += 1;
    }
  }
  if (fields.length < 7) {
    found.push(`header has ${fields.length} of 7 fields`);
    return null;
  }
  return { fields, extension: line.slice(i) };
}

/** Parses the extension the way the standard defines it: a key is a word before an unescaped
 *  `=`, its value runs to the space before the next key. */
function cefExtension(text, found) {
  const pairs = [];
  const unescapedEq = [];
  for (let i = 0; i < text.length; i += 1) {
    if (text[i] === '\\') {
      const next = text[i + 1];
      if (!['\\', '=', 'n', 'r'].includes(next)) found.push(`extension: \\${next} is not a CEF extension escape`);
      i += 1;
    } else if (text[i] === '=') {
      unescapedEq.push(i);
    } else if (text[i] === '\r' || text[i] === '\n') {
      found.push('extension: raw line break');
    }
  }
  const keyStarts = unescapedEq.map((eq) => {
    const start = text.lastIndexOf(' ', eq) + 1;
    return [start, text.slice(start, eq), eq];
  });
  keyStarts.forEach(([start, key, eq], n) => {
    const end = n + 1 < keyStarts.length ? keyStarts[n + 1][0] - 1 : text.length;
    const raw = text.slice(eq + 1, end);
    const value = raw.replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c));
    if (start !== 0 && text[start - 1] !== ' ') found.push(`extension: key ${key} not after a space`);
    pairs.push([key, value]);
  });
  if (keyStarts.length && keyStarts[0][0] !== 0) found.push('extension: text before the first key');
  return pairs;
}

function cefViolations(line) {
  const found = [];
  const parsed = cefHeader(line, found);
  if (!parsed) return found;
  const [version, vendor, product, , signature, name, severity] = parsed.fields;
  if (version !== '0') found.push(`version ${version}`);
  if (vendor !== 'kcpwatch' || product !== 'kcpwatch') found.push('vendor/product');
  if (!signature || !name) found.push('signature id and name are required');
  if (!/^(10|[0-9])$/.test(severity)) found.push(`severity ${severity} is not 0-10`);
  const seen = new Set();
  for (const [key, value] of cefExtension(parsed.extension, found)) {
    if (seen.has(key)) found.push(`${key} twice`);
    seen.add(key);
    const spec = CEF_KEYS[key];
    if (!spec) {
      if (!CEF_CUSTOM.test(key)) found.push(`${key}: neither a CEF dictionary key nor a VendorProductKey custom key`);
      continue;
    }
    const [type, max] = spec;
    const bad = {
      string: () => max && [...value].length > max && `longer than ${max}`,
      ipv4: () => isIP(value) !== 4 && 'not an IPv4 address',
      ipv6: () => isIP(value) !== 6 && 'not an IPv6 address',
      port: () => !(/^\d+$/.test(value) && Number(value) <= 65535) && 'not a port',
      integer: () => !/^\d+$/.test(value) && 'not an integer',
      long: () => !/^-?\d+$/.test(value) && 'not a long',
      time: () => !/^\d{13}$/.test(value) && 'not epoch milliseconds',
      direction: () => !['0', '1'].includes(value) && 'not 0 or 1',
    }[type]();
    if (bad) found.push(`${key}=${JSON.stringify(value)}: ${bad}`);
    if (key.endsWith('Label') && !seen.has(key.slice(0, -'Label'.length))) found.push(`${key} without its value`);
  }
  return found;
}

test('CEF: headers and extensions follow the CEF:0 escaping, key dictionary, types and lengths', (t) => {
  const violations = validateFile('cef.log', (line, i, push) => {
    for (const v of cefViolations(line)) push(v);
  });
  assertNone(t, 'CEF', violations);
});

test('CEF: escaped values come back as the canonical text', (t) => {
  const i = cases.findIndex((c) => c.case === 'error_awkward_text');
  const pairs = new Map(cefExtension(cefHeader(lines('cef.log')[i], []).extension, []));
  t.is(pairs.get('KcpwatchKcpwatchErrorMessage'), canonical[i].error_message);
  t.is(pairs.get('msg'), canonical[i].msg);
  t.true(cefViolations('CEF:0|kcpwatch|kcpwatch|1|a\\b|n|5|msg=a=b').length >= 2);
});

// ---- RFC 5424 ---------------------------------------------------------------------------------

const PRINTUSASCII = /^[!-~]+$/;
const TIMESTAMP = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$/;

/** Parses one RFC 5424 message per its ABNF; PARAM-VALUEs unescaped per §6.3.3. */
function parseSyslog(line, found) {
  const m = /^<(\d{1,3})>(\d{1,2}) (\S+) (\S+) (\S+) (\S+) (\S+) /.exec(line);
  if (!m) {
    found.push('header does not match <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID');
    return null;
  }
  const [, pri, version, timestamp, hostname, app, procid, msgid] = m;
  if (Number(pri) > 191 || (pri.length > 1 && pri[0] === '0')) found.push(`PRI ${pri}`);
  if (version !== '1') found.push(`VERSION ${version}`);
  if (timestamp !== '-' && !TIMESTAMP.test(timestamp)) found.push(`TIMESTAMP ${timestamp}`);
  for (const [field, value, max] of [['HOSTNAME', hostname, 255], ['APP-NAME', app, 48], ['PROCID', procid, 128], ['MSGID', msgid, 32]]) {
    if (!PRINTUSASCII.test(value) || value.length > max) found.push(`${field} ${JSON.stringify(value)}: 1-${max} PRINTUSASCII`);
  }
  let i = m[0].length;
  const elements = [];
  if (line[i] === '-') {
    i += 1;
  } else {
    while (line[i] === '[') {
      i += 1;
      const idEnd = line.slice(i).search(/[ \]]/);
      const id = line.slice(i, i + idEnd);
      if (!/^[!-~]{1,32}$/.test(id) || /[= \]"]/.test(id) || !(/^[^@]+@\d+(\.\d+)*$/.test(id) || !id.includes('@'))) {
        found.push(`SD-ID ${JSON.stringify(id)}`);
      }
      i += idEnd;
      const params = [];
      while (line[i] === ' ') {
        i += 1;
        const eq = line.indexOf('=', i);
        const name = line.slice(i, eq);
        if (!/^[!-~]{1,32}$/.test(name) || /[= \]"]/.test(name)) found.push(`PARAM-NAME ${JSON.stringify(name)}`);
        if (line[eq + 1] !== '"') {
          found.push(`PARAM ${name}: value not quoted`);
          return null;
        }
        i = eq + 2;
        let value = '';
        for (;;) {
          if (i >= line.length) {
            found.push(`PARAM ${name}: unterminated value`);
            return null;
          }
          const c = line[i];
          if (c === '\\' && ['"', '\\', ']'].includes(line[i + 1])) {
            value += line[i + 1];
            i += 2;
          } else if (c === '\\') {
            // §6.3.3: any other backslash is kept as written; a writer producing one makes
            // "\n" (two characters) and a real line feed impossible to tell apart.
            found.push(`PARAM ${name}: backslash before ${JSON.stringify(line[i + 1])} is not an RFC 5424 escape`);
            value += c;
            i += 1;
          } else if (c === '"') {
            i += 1;
            break;
          } else if (c === ']') {
            found.push(`PARAM ${name}: unescaped ]`);
            value += c;
            i += 1;
          } else {
            value += c;
            i += 1;
          }
        }
        params.push([name, value]);
      }
      if (line[i] !== ']') {
        found.push(`SD-ELEMENT ${id} not closed at ${i}`);
        return null;
      }
      i += 1;
      elements.push({ id, params });
    }
  }
  let msg = null;
  if (i < line.length) {
    if (line[i] !== ' ') found.push('no SP before MSG');
    msg = line.slice(i + 1);
  }
  return { pri: Number(pri), hostname, app, procid, msgid, elements, msg };
}

/** The documented percent rule of kcpwatch's PARAM-VALUEs: %XX for `%` and control characters. */
function percentDecode(text) {
  return text.replace(/%([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
}

function syslogViolations(line, record) {
  const found = [];
  if (/[\u0000-\u001f\u007f]/.test(line)) found.push('raw control character in the message');
  const m = parseSyslog(line, found);
  if (!m) return found;
  if (m.pri !== 16 * 8 + record.severity) found.push(`PRI ${m.pri} for severity ${record.severity}`);
  if (m.msgid !== record.name) found.push(`MSGID ${m.msgid}`);
  if (m.elements.length !== 1) return [...found, `${m.elements.length} SD-ELEMENTs`];
  const params = new Map(m.elements[0].params);
  for (const [key, value] of Object.entries(record)) {
    const want = typeof value === 'string' ? value : JSON.stringify(value);
    if (!params.has(key)) found.push(`PARAM ${key} missing`);
    else if (percentDecode(params.get(key)) !== want) {
      found.push(`PARAM ${key}: ${JSON.stringify(params.get(key))} decodes to ${JSON.stringify(percentDecode(params.get(key)))}, not ${JSON.stringify(want)}`);
    } else if (/%(?![0-9A-F]{2})/.test(params.get(key))) found.push(`PARAM ${key}: bare %`);
  }
  if (params.size !== Object.keys(record).length) found.push('extra PARAMs');
  if (m.msg !== null && !m.msg.startsWith('\ufeff')) found.push('MSG without the UTF-8 BOM');
  return found;
}

test('RFC 5424: every line follows the ABNF, and every PARAM-VALUE decodes to the canonical value', (t) => {
  const violations = validateFile('rfc5424.log', (line, i, push) => {
    for (const v of syslogViolations(line, canonical[i])) push(v);
  });
  assertNone(t, 'RFC 5424', violations);
});

test('RFC 5424: the parser flags the old backslash-n line breaks', (t) => {
  const line = '<131>1 2025-11-26T15:14:55.812320Z h kcpwatch i kcp:error [kcp@32473 m="a\\nb"] x';
  const found = [];
  parseSyslog(line, found);
  t.true(found.some((v) => v.includes('is not an RFC 5424 escape')));
});

// ---- GELF -------------------------------------------------------------------------------------

function gelfViolations(doc) {
  const found = [];
  if (doc.version !== '1.1') found.push(`version ${JSON.stringify(doc.version)}`);
  for (const key of ['host', 'short_message']) {
    if (typeof doc[key] !== 'string' || doc[key].trim() === '') found.push(`${key} must be a non-empty string`);
  }
  if (doc.timestamp !== undefined && typeof doc.timestamp !== 'number') found.push('timestamp must be a number');
  if (doc.level !== undefined && !(Number.isInteger(doc.level) && doc.level >= 0 && doc.level <= 7)) found.push('level must be 0-7');
  if (doc.full_message !== undefined && typeof doc.full_message !== 'string') found.push('full_message must be a string');
  for (const [key, value] of Object.entries(doc)) {
    if (['version', 'host', 'short_message', 'full_message', 'timestamp', 'level'].includes(key)) continue;
    if (!key.startsWith('_')) found.push(`${key}: additional fields start with _`);
    if (!/^[\w.-]*$/.test(key)) found.push(`${key}: not ^[\\w\\.\\-]*$`);
    if (key === '_id') found.push('_id is reserved');
    if (typeof value !== 'string' && typeof value !== 'number') found.push(`${key}: only strings and numbers`);
  }
  return found;
}

test('GELF: version, host, short_message, additional fields as GELF 1.1 defines them', (t) => {
  const violations = validateFile('gelf.ndjson', (line, i, push) => {
    const doc = parseJson(line, push);
    if (doc !== undefined) for (const v of gelfViolations(doc)) push(v);
  });
  assertNone(t, 'GELF', violations);
});

// ---- HEC --------------------------------------------------------------------------------------

test('HEC: the event envelope around the unchanged canonical record', (t) => {
  const violations = validateFile('hec.ndjson', (line, i, push) => {
    const doc = parseJson(line, push);
    if (doc === undefined) return;
    if (typeof doc.time !== 'number') push('time must be epoch seconds');
    for (const key of ['host', 'source', 'sourcetype']) if (typeof doc[key] !== 'string' || doc[key] === '') push(`${key}`);
    for (const key of Object.keys(doc)) if (!['time', 'host', 'source', 'sourcetype', 'index', 'event', 'fields'].includes(key)) push(`unknown key ${key}`);
    if (JSON.stringify(doc.event) !== JSON.stringify(canonical[i])) push('event is not the canonical record');
  });
  assertNone(t, 'HEC', violations);
});
