// `node --expose-gc dist/bench/credential-index.js [--consumers N] [--module path]`: the credential
// index of key-auth at N keys (default 100 000): a full build against one update replacing one
// consumer's key (time and heap allocated), and the lookup cost (ns per find). `--module` points at
// another build of core/credentials.js, to compare lookups with an earlier version.
import { performance } from 'node:perf_hooks';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { CredentialEntry, CredentialIndex } from '../core/credentials';

type Who = { readonly username: string };

const { values } = parseArgs({ options: { consumers: { type: 'string', default: '100000' }, module: { type: 'string' } } });
const n = Number(values.consumers);
const { credentialIndex } = require(values.module ? resolve(values.module) : '../core/credentials') as { credentialIndex: <T>(e: Iterable<CredentialEntry<T>>) => CredentialIndex<T> };
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const entries: CredentialEntry<Who>[] = [];
for (let i = 0; i < n; i++) entries.push({ credential: `bench-key-${i}-${(i * 2654435761) >>> 0}`, value: Object.freeze({ username: `c${i}` }), owner: `c${i}` });

// full build: median of 5
const builds: number[] = [];
const buildHeap: number[] = [];
let index!: CredentialIndex<Who>;
for (let r = 0; r < 5; r++) {
  gc();
  const heap = process.memoryUsage().heapUsed;
  const t = performance.now();
  index = credentialIndex(entries);
  builds.push(performance.now() - t);
  buildHeap.push(process.memoryUsage().heapUsed - heap);
}
console.log(`full build of ${n} keys: ${median(builds).toFixed(1)} ms (median of 5), heap +${(median(buildHeap) / 1e6).toFixed(1)} MB`);

// one update: consumer i's key replaced; each measured alone (heap delta with no collection between)
if (typeof index.update === 'function') {
  const times: number[] = [];
  const heaps: number[] = [];
  let current = index;
  for (let r = 0; r < 1_000; r++) {
    const i = r * 97 % n;
    const old = { credential: entries[i].credential, owner: entries[i].owner };
    const next = { credential: `${entries[i].credential}-r${r}`, value: entries[i].value, owner: entries[i].owner };
    if (r % 100 === 0) gc();
    // what measuring alone allocates, taken off
    const idle = process.memoryUsage().heapUsed;
    const heap = process.memoryUsage().heapUsed;
    const overhead = heap - idle;
    const t = performance.now();
    const updated = current.update({ removed: [old], added: [next] })!;
    times.push(performance.now() - t);
    heaps.push(process.memoryUsage().heapUsed - heap - overhead);
    entries[i] = next;
    current = updated;
  }
  console.log(`one update (a key replaced): ${(median(times) * 1000).toFixed(1)} µs median, ${(Math.max(...times)).toFixed(2)} ms max of 1 000; heap +${(median(heaps) / 1024).toFixed(1)} KiB median`);
  index = current;
}

// lookups: hits and misses, ns per find (median of 5 runs of 200 000)
const probes = Array.from({ length: 1024 }, (_, j) => (j % 2 === 0 ? entries[(j * 7919) % n].credential : `absent-${j}`));
const per: number[] = [];
let found = 0;
for (let r = 0; r < 5; r++) {
  const t = performance.now();
  for (let k = 0; k < 200_000; k++) if (index.find(probes[k & 1023], 1) !== undefined) found++;
  per.push(((performance.now() - t) * 1e6) / 200_000);
}
console.log(`find: ${median(per).toFixed(0)} ns/op (median of 5 × 200 000; half hits, ${found} found)`);
