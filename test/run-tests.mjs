#!/usr/bin/env node
// Node 20's test runner has no globs and silently runs nothing when given none, so the suite collects
// its files itself and fails loudly when a folder holds no tests.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...collect(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const dirs = process.argv.slice(2);
if (dirs.length === 0) {
  console.error('usage: node test/run-tests.mjs DIR...');
  process.exit(2);
}
const files = [];
for (const d of dirs) {
  const found = d.endsWith('.test.ts') ? [d] : collect(d);
  if (found.length === 0) {
    console.error(`run-tests: no *.test.ts files under ${d}`);
    process.exit(1);
  }
  files.push(...found);
}
console.error(`run-tests: ${files.length} files: ${files.map((f) => relative('.', f)).join(' ')}`);
// Lab tests share the kernel's netfilter and conntrack modules; one file at a time keeps timings sane.
const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
child.on('close', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
