#!/usr/bin/env node
// Fails when modules import each other in a cycle: inside each Rust crate (between sibling
// modules, at every level of the module tree) and between the TypeScript sources. A child using
// its parent (`super::`) and a parent declaring its children are not cycles; two siblings that
// use each other, directly or around a loop, are.
//
// Rust paths are read from `use` items and from inline `crate::` / `super::` / `self::` paths;
// a name the crate root re-exports (`use crate::Name`) counts as a use of the module that defines
// it. TypeScript imports are read by the TypeScript compiler (`preProcessFile`), type-only
// imports included.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function files(dir, ext) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...files(path, ext));
    else if (name.endsWith(ext)) out.push(path);
  }
  return out;
}

/** Strongly connected components with more than one member (Tarjan). */
function cycles(graph) {
  let index = 0;
  const stack = [];
  const info = new Map();
  const found = [];
  const visit = (v) => {
    info.set(v, { index, low: index, onStack: true });
    index++;
    stack.push(v);
    for (const w of graph.get(v) ?? []) {
      if (!info.has(w)) {
        visit(w);
        info.get(v).low = Math.min(info.get(v).low, info.get(w).low);
      } else if (info.get(w).onStack) {
        info.get(v).low = Math.min(info.get(v).low, info.get(w).index);
      }
    }
    if (info.get(v).low === info.get(v).index) {
      const scc = [];
      let w;
      do {
        w = stack.pop();
        info.get(w).onStack = false;
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) found.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!info.has(v)) visit(v);
  return found;
}

function addEdge(graph, from, to) {
  if (!graph.has(from)) graph.set(from, new Set());
  if (!graph.has(to)) graph.set(to, new Set());
  graph.get(from).add(to);
}

/** The module path of a Rust source file: `crate`, `crate::a`, `crate::a::b`. */
function rustModule(src, file) {
  const parts = relative(src, file).replace(/\.rs$/, '').split('/');
  if (parts.at(-1) === 'mod' || parts.at(-1) === 'lib' || parts.at(-1) === 'main') parts.pop();
  return ['crate', ...parts].join('::');
}

/** Every path a Rust file names: `use` trees flattened, and inline `crate::`/`super::` paths. */
function rustPaths(text) {
  const code = text.replace(/\/\/[^\n]*/g, '').replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const paths = [];
  const flatten = (prefix, tree) => {
    tree = tree.trim();
    const brace = tree.indexOf('{');
    if (brace === -1) {
      const name = tree.split(/\s+as\s+/)[0].trim();
      if (name) paths.push(prefix ? (name === 'self' ? prefix : `${prefix}::${name}`) : name);
      return;
    }
    const head = tree.slice(0, brace).replace(/::\s*$/, '').trim();
    const inner = tree.slice(brace + 1, tree.lastIndexOf('}'));
    const base = prefix ? (head ? `${prefix}::${head}` : prefix) : head;
    let depth = 0;
    let start = 0;
    for (let i = 0; i <= inner.length; i++) {
      const c = inner[i];
      if (c === '{') depth++;
      else if (c === '}') depth--;
      else if ((c === ',' && depth === 0) || i === inner.length) {
        flatten(base, inner.slice(start, i));
        start = i + 1;
      }
    }
  };
  for (const m of code.matchAll(/\buse\s+([^;]+);/g)) flatten('', m[1]);
  for (const m of code.matchAll(/\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)/g)) paths.push(m[1]);
  return paths;
}

function checkRustCrate(src) {
  const modules = new Map();
  for (const file of files(src, '.rs')) modules.set(rustModule(src, file), readFileSync(file, 'utf8'));
  // Names the crate root re-exports, by the module that defines them.
  const reexports = new Map();
  for (const path of rustPaths(modules.get('crate') ?? '')) {
    const parts = path.split('::');
    if (parts[0] === 'crate' || parts[0] === 'self') parts.shift();
    if (parts.length >= 2 && modules.has(`crate::${parts[0]}`)) reexports.set(parts.at(-1), `crate::${parts.slice(0, -1).join('::')}`);
  }
  const resolvePath = (from, path) => {
    let parts = path.split('::');
    let base = from.split('::');
    if (parts[0] === 'crate') {
      base = ['crate'];
      parts = parts.slice(1);
    } else if (parts[0] === 'self') {
      parts = parts.slice(1);
    } else if (parts[0] === 'super') {
      while (parts[0] === 'super') {
        base = base.slice(0, -1);
        parts = parts.slice(1);
      }
    } else {
      // A path relative to this module: only its own children count.
      if (!modules.has(`${from}::${parts[0]}`)) return undefined;
    }
    let best = base.join('::');
    for (let i = 1; i <= parts.length; i++) {
      const candidate = [...base, ...parts.slice(0, i)].join('::');
      if (modules.has(candidate)) best = candidate;
      else break;
    }
    if (best === 'crate' && parts.length >= 1 && reexports.has(parts.at(-1))) return reexports.get(parts.at(-1));
    return best;
  };
  const levels = new Map();
  for (const [from, text] of modules) {
    for (const path of rustPaths(text)) {
      const to = resolvePath(from, path);
      if (!to || to === from) continue;
      const a = from.split('::');
      const b = to.split('::');
      let common = 0;
      while (common < a.length && common < b.length && a[common] === b[common]) common++;
      // One contains the other: a child using its parent, or a parent its child.
      if (common === a.length || common === b.length) continue;
      const level = a.slice(0, common).join('::');
      if (process.env.CYCLES_VERBOSE) console.log(`${relative(root, src)}: ${from} -> ${to} (${path})`);
      if (!levels.has(level)) levels.set(level, new Map());
      addEdge(levels.get(level), a.slice(0, common + 1).join('::'), b.slice(0, common + 1).join('::'));
    }
  }
  return [...levels.values()].flatMap(cycles);
}

function checkTypeScript(src) {
  const graph = new Map();
  for (const file of files(src, '.ts')) {
    const from = relative(root, file);
    graph.set(from, graph.get(from) ?? new Set());
    for (const ref of ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles) {
      if (!ref.fileName.startsWith('.')) continue;
      const target = resolve(dirname(file), ref.fileName);
      const to = [`${target}.ts`, join(target, 'index.ts')].find((p) => {
        try {
          return statSync(p).isFile();
        } catch {
          return false;
        }
      });
      if (to) addEdge(graph, from, relative(root, to));
    }
  }
  return cycles(graph);
}

const crates = readdirSync(join(root, 'crates')).filter((c) => c !== 'kcp');
const report = [];
for (const crate of crates) {
  for (const scc of checkRustCrate(join(root, 'crates', crate, 'src'))) report.push(`${crate}: ${scc.join(' <-> ')}`);
}
for (const scc of checkTypeScript(join(root, 'src'))) report.push(`src: ${scc.join(' <-> ')}`);
if (report.length > 0) {
  console.error(`import cycles (${report.length}):\n  ${report.join('\n  ')}`);
  process.exit(1);
}
console.log(`no import cycles in ${crates.length} crates (between sibling modules) or in src/`);
