// The file store at 100,000 consumers: one Admin write as a journal append (writeChanges) against
// the whole data file rewritten (writeData), and a compaction: how long it takes and the longest
// the event loop was blocked meanwhile (the proxy serves requests on the same thread).
//   npm run build && node dist/bench/file-store.js [consumers]
import { open, rename } from 'node:fs/promises';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { DataChange, DataSections } from '../core/contracts';
import { FileConfigStore, journalOf } from '../core/stores/file-store';

const CONSUMERS = Number(process.argv[2] ?? 100_000);
const WRITES = 50;

const consumer = (i: number, v = 0) => ({ username: `consumer-${i}`, desc: `consumer number ${i} v${v}`, plugins: { 'key-auth': { key: `key-${i}-${'k'.repeat(24)}-${v}` } } });
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `p50 ${s[Math.floor(s.length / 2)].toFixed(2)} ms, p99 ${s[Math.min(s.length - 1, Math.floor(s.length * 0.99))].toFixed(2)} ms, max ${s[s.length - 1].toFixed(2)} ms`;
};

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-store-'));
  try {
    const file = join(dir, 'gatehouse.yaml');
    writeFileSync(file, 'proxy: { listen: "127.0.0.1:0" }\n');
    const data = join(dir, 'gatehouse.data.json');
    let compactions = 0;
    let compactedAt = 0;
    const store = new FileConfigStore(file, 100, true, undefined, {
      compactionStep: (step) => {
        if (step === 'sealed') compactedAt = performance.now();
        if (step === 'renamed') compactions++;
      },
    });
    store.shareObjects = true;
    const consumers = Array.from({ length: CONSUMERS }, (_, i) => consumer(i));
    let sections = { routes: [{ id: 'r1', uri: '/*', plugins: { 'key-auth': {} } }], upstreams: [], consumers, secrets: [] } as unknown as DataSections;
    await store.load();

    // the write before the journal: the whole document stringified in one go, written, fsynced, renamed
    const old: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const tmp = `${data}.old.tmp`;
      const fh = await open(tmp, 'w', 0o600);
      await fh.writeFile(JSON.stringify(sections, null, 2) + '\n');
      await fh.sync();
      await fh.close();
      await rename(tmp, join(dir, 'old.data.json'));
      old.push(performance.now() - t0);
    }
    console.log(`the whole data file in one JSON.stringify (every write before the journal): ${stats(old)}`);
    const full: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await store.writeData(sections);
      full.push(performance.now() - t0);
    }
    console.log(`data file: ${(statSync(data).size / 1e6).toFixed(1)} MB, ${CONSUMERS} consumers`);
    console.log(`writeData (the whole data file, a chunk of resources per turn): ${stats(full)}`);

    const one: number[] = [];
    for (let i = 0; i < WRITES; i++) {
      const n = (i * 7919) % CONSUMERS;
      const before = (sections.consumers as Array<Record<string, unknown>>)[n];
      const after = consumer(n, i + 1);
      const list = [...sections.consumers];
      list[n] = after;
      sections = { ...sections, consumers: list };
      const change: DataChange = { kind: 'consumers', id: `consumer-${n}`, before, after };
      const t0 = performance.now();
      await store.writeChanges([change], () => sections);
      one.push(performance.now() - t0);
    }
    console.log(`writeChanges (one consumer: append + fdatasync): ${stats(one)}; journal ${statSync(journalOf(data)).size} bytes after ${WRITES} writes`);

    // compaction: forced by a store whose threshold the journal is past already
    const compacting = new FileConfigStore(file, 100, true, undefined, {
      compactMinBytes: 1,
      compactRatio: 0,
      compactionStep: (step) => {
        if (step === 'sealed') compactedAt = performance.now();
        if (step === 'renamed') compactions++;
      },
    });
    compacting.shareObjects = true;
    await compacting.load();
    const h = monitorEventLoopDelay({ resolution: 5 });
    // a timer beside it, as a proxied request would be: the longest wait between its ticks
    let last = performance.now();
    let longest = 0;
    const tick = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
    }, 1);
    h.enable();
    const before = compactions;
    const n = 1;
    const change: DataChange = { kind: 'consumers', id: `consumer-${n}`, before: (sections.consumers as Array<Record<string, unknown>>)[n], after: consumer(n, 999) };
    const t0 = performance.now();
    await compacting.writeChanges([change], () => sections);
    const answered = performance.now() - t0;
    await compacting.close(); // waits for the compaction
    const took = performance.now() - compactedAt;
    h.disable();
    clearInterval(tick);
    console.log(`compaction: ${compactions - before} run, ${took.toFixed(0)} ms from sealing the journal to the data file renamed; the write that triggered it answered in ${answered.toFixed(2)} ms`);
    console.log(`event loop during the compaction: longest block ${(h.max / 1e6).toFixed(1)} ms (monitorEventLoopDelay), p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms; longest gap between 1 ms timer ticks ${longest.toFixed(1)} ms`);
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void main();
