// Soak: a real `gatehouse start` process under a fixed request rate with key-auth consumers whose
// keys live in the Vault test server and rotate all the time, while the config file is edited
// under it. Every request's key is classed from the rotation timeline, so each answer is checked
// exactly: current and in-grace keys must pass, expired ones must not. The gateway's RSS is read
// from /proc after a warm-up and at the end.
//
// Timing model. R = 0.8 × ttl: the gateway refreshes a value at 80 % of its ttl, so it sees a write
// at most R after it (plus m, the margin for what no one controls: the Vault fetch, a late timer,
// the 10 ms rebuild debounce and the rebuild). G = rotation_grace. A key written between ws and we
// (start and end of its Vault write), replaced by a write from ws' to we':
//   current   sent from we + R + m (the gateway has it), while no newer write has started;
//   in-grace  sent from ws' until ws' + G − m: the gateway saw the new key at some S ≥ ws' and
//             keeps the old one until S + G;
//   expired   sent from we' + R + G + m: S ≤ we' + R + m, so the grace ended before it was sent;
// anything in between is not sent. The gateway looks at a key somewhere between sending and the
// answer, so a current or in-grace key is judged only if answered before ws' + G (a replacing
// write may start while it is in flight); later answers are counted as "too late to judge".
// key-auth keeps one previous value (docs/secrets.md: "key-auth accepts both"), so two writes of
// one consumer are spaced by at least G (a key in its grace is never pushed out by the next
// rotation) and by R + m (the gateway sees every value, so "expired" never rests on a value it
// skipped). One consumer has no current key just after its rotation and no in-grace key for most
// of the period, so several consumers rotate in turn, staggered by period / n: then every class
// has a key at every moment once G − m ≥ period / n.
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import NodeVault from 'node-vault';
import { Pool } from 'undici';
import { delay, freePort, startGatehouse, startUpstream, tempDir, type GatehouseProcess, type Upstream } from '../helpers/harness';
import { startVaultServer, type VaultServer } from '../servers/vault';

export interface SoakOptions {
  /** Time under load (ms), warm-up included. */
  readonly durationMs: number;
  /** Load before the first RSS reading (ms), part of durationMs. */
  readonly warmupMs: number;
  /** Requests per second, sent open loop (a slow answer does not slow the sending). */
  readonly rate: number;
  /** Consumers, each with its own key in Vault; they rotate in turn, rotateEveryMs / consumers apart. */
  readonly consumers: number;
  /** Rotation period of each consumer's key (ms). */
  readonly rotateEveryMs: number;
  /** The config file is edited this often (ms). */
  readonly reloadEveryMs: number;
  /** secret_cache.ttl (s); the gateway refreshes a value at 80 % of it. */
  readonly ttl: number;
  /** secret_cache.rotation_grace (s). */
  readonly grace: number;
  /** Slack (ms) on top of 0.8 × ttl for the gateway to see a write: a Vault fetch, a late timer, a rebuild. */
  readonly marginMs: number;
  /** Largest allowed RSS growth (%) from the end of the warm-up to the end. */
  readonly maxRssGrowthPct: number;
  /** How long an edited config may take to serve (ms). */
  readonly reloadDeadlineMs?: number;
  readonly onProgress?: (line: string) => void;
  /** How often onProgress hears how it goes (ms); default 10 000. */
  readonly progressEveryMs?: number;
  readonly signal?: AbortSignal;
}

/**
 * The full soak: 70 s, rotation every 5 s, an edit every 7 s. The 20 s warm-up: under this load the
 * gateway's RSS climbs from ~88 MB to ~113 MB in its first 12–16 s (V8 grows the heap to its
 * working size, the JIT compiles the hot paths, the first major GC runs; answers are slow
 * meanwhile), then creeps by about 1 MB per 10 s, which a heap diff showed to be compiled code,
 * not live objects (the heap after a forced GC stayed at ~20 MB). The climb used to take 6–8 s; it
 * now takes longer (RSS sampled every 5 s on the 2-core CI machine: 95 MB at 6 s, 105 at 11 s, 113
 * at 16 s, then 114 → 122 MB from 21 s to 86 s), so a reading at 10 s could fall mid-climb. 20 s is
 * past it and has rotated every consumer four times and edited the config twice, so every path
 * has run before the first reading.
 */
export const FULL_SOAK: SoakOptions = {
  durationMs: 70_000,
  warmupMs: 20_000,
  rate: 200,
  consumers: 5,
  rotateEveryMs: 5000,
  reloadEveryMs: 7000,
  ttl: 1,
  grace: 2.5,
  marginMs: 1000,
  maxRssGrowthPct: 10,
};

/**
 * The soak inside `npm test`: 28 s, rotation and edits at 0.7× the period. The margin stays 1 s: it
 * covers how late a loaded machine runs the gateway's timers, which does not shrink with the soak;
 * 7 consumers (one rotation every 0.5 s) keep an in-grace key at every moment with the shorter grace.
 * The warm-up (16 s) covers the heap's climb to its working size described above; RSS is then
 * measured over 12 s. With 8 s, a CI run took its first reading at 106 MB, mid-climb, and counted
 * the rest of the start as growth.
 */
export const SHORT_SOAK: SoakOptions = {
  durationMs: 28_000,
  warmupMs: 16_000,
  rate: 150,
  consumers: 7,
  rotateEveryMs: 3500,
  reloadEveryMs: 5000,
  ttl: 0.5,
  grace: 1.75,
  marginMs: 1000,
  maxRssGrowthPct: 10,
};

export type KeyClass = 'current' | 'inGrace' | 'expired';
export const CLASSES: readonly KeyClass[] = ['current', 'inGrace', 'expired'];

export interface ClassFigures {
  sent: number;
  /** 200 from the upstream, with the key's own consumer. */
  accepted: number;
  /** 401 "Invalid API key in request". */
  rejected: number;
  /** Anything else: another status or body, a transport error. */
  other: number;
  /** A current or in-grace key answered only after its grace may have ended: not judged. */
  late: number;
}

export interface SoakFigures {
  readonly options: Omit<SoakOptions, 'onProgress' | 'progressEveryMs' | 'signal'>;
  /** Measured time under load (ms). */
  readonly elapsedMs: number;
  readonly classes: Record<KeyClass, ClassFigures>;
  readonly sent: number;
  readonly achievedRate: number;
  /** Send slots with no key of any class yet (only at the very start, while the first keys settle). */
  readonly skippedSlots: number;
  /** Longest gap between two turns of the sending loop (ms): the sending is late by up to this. */
  readonly maxTickGapMs: number;
  /** Send slots after the warm-up where a class had no key to send (the slot went to the next class). */
  readonly classGaps: Record<KeyClass, number>;
  /** Requests whose answer took longer than the margin (the classing assumes it never does). */
  readonly slowAnswers: number;
  readonly maxLatencyMs: number;
  readonly maxInFlight: number;
  /** CPU the gateway used after the warm-up, in % of one core. */
  readonly gatewayCpuPct: number;
  /** Requests the upstream received (must equal the accepted ones). */
  readonly upstreamSeen: number;
  /** Vault writes of a new key after the initial ones. */
  readonly rotations: number;
  /** Rebuilds the gateway logged for changed secrets and for ended graces. */
  readonly secretRebuilds: number;
  /** Longest time from a Vault write to the gateway's rebuild with it (ms, from its log). */
  readonly maxApplyMs: number;
  readonly graceRebuilds: number;
  /** Config file edits, and how many the gateway served (marker route checked). */
  readonly reloads: number;
  readonly reloadsApplied: number;
  readonly reloadsLogged: number;
  readonly maxReloadMs: number;
  readonly rss: { readonly startKb: number; readonly endKb: number; readonly growthPct: number; readonly minKb: number; readonly maxKb: number; readonly samples: ReadonlyArray<{ readonly t: number; readonly kb: number }> };
  /** Empty when the soak passed. */
  readonly violations: string[];
}

interface Gen {
  readonly key: string;
  /** ms: the Vault write started / ended (Infinity while in flight). */
  readonly ws: number;
  we: number;
}

interface SoakConsumer {
  readonly name: string;
  readonly gens: Gen[];
}

/** The gateway's resident set size in kB, from /proc/<pid>/status. */
export function rssKb(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

/** CPU time (ms, user + system) the process has used, from /proc/<pid>/stat (Linux USER_HZ = 100). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // fields after the command name, which is in parentheses and may hold spaces
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

const newKey = (consumer: string, gen: number) => `soak-${consumer}-${gen}-${randomBytes(12).toString('hex')}`;

/** Run one soak; never throws for a failed check (see `violations`), only when it cannot run. */
export async function runSoak(o: SoakOptions): Promise<SoakFigures> {
  const R = o.ttl * 1000 * 0.8;
  const G = o.grace * 1000;
  const m = o.marginMs;
  // two writes of one consumer: see the timing model at the top
  const minSpacing = Math.max(G, R + m);
  if (o.warmupMs >= o.durationMs) throw new Error('warmupMs must be shorter than durationMs');
  if (o.rotateEveryMs < minSpacing) throw new Error(`rotateEveryMs must be at least max(grace, 0.8 × ttl + margin) = ${minSpacing} ms`);
  const progress = o.onProgress ?? (() => undefined);
  const reloadDeadline = o.reloadDeadlineMs ?? 5000;
  const progressEvery = o.progressEveryMs ?? 10_000;

  const dir = tempDir('gatehouse-soak-');
  const cleanups: Array<() => Promise<unknown> | unknown> = [() => rmSync(dir, { recursive: true, force: true })];
  const violations: string[] = [];
  const samples: string[] = [];
  const sample = (s: string) => {
    if (samples.length < 10) samples.push(s);
  };

  try {
    // -- Vault, keys, upstream, gateway ----------------------------------------------------------
    const vault: VaultServer = await startVaultServer();
    cleanups.push(() => vault.close());
    const vc = NodeVault({ endpoint: vault.url, token: vault.rootToken, requestOptions: { timeout: 5000 } });
    const consumers: SoakConsumer[] = [];
    const allKeys: string[] = [];
    const write = async (c: SoakConsumer) => {
      const key = newKey(c.name, c.gens.length);
      allKeys.push(key);
      const g: Gen = { key, ws: Date.now(), we: Number.POSITIVE_INFINITY };
      c.gens.push(g);
      await vc.write(`secret/data/soak/${c.name}`, { data: { key } });
      g.we = Date.now();
    };
    for (let i = 0; i < o.consumers; i++) {
      const c: SoakConsumer = { name: `soak-${i}`, gens: [] };
      consumers.push(c);
      await write(c);
    }

    const upstream: Upstream = await startUpstream((req, res) => res.end(String(req.headers['x-consumer-username'] ?? '')), 'soak');
    cleanups.push(() => upstream.close());

    const port = await freePort();
    const file = join(dir, 'soak.yaml');
    const config = (marker: number) => ({
      gateway: { listen: `127.0.0.1:${port}`, access_log: false, log_level: 'info' },
      secret_cache: { ttl: o.ttl, rotation_grace: o.grace },
      secrets: [{ id: 'vault/soak', uri: vault.url, prefix: 'secret/soak', kv_version: 2, token: '$env://SOAK_VAULT_TOKEN' }],
      consumers: consumers.map((c) => ({ username: c.name, plugins: { 'key-auth': { key: `$secret://vault/soak/${c.name}/key` } } })),
      routes: [
        { id: 'soak', uri: '/soak', plugins: { 'key-auth': {} }, upstream: { nodes: { [upstream.node]: 1 } } },
        { id: 'marker', uri: '/marker', plugins: { mocking: { response_example: `reload-${marker}`, content_type: 'text/plain' } } },
      ],
    });
    await writeFile(file, JSON.stringify(config(0), null, 2));
    const gh: GatehouseProcess = await startGatehouse(file, port, {
      SOAK_VAULT_TOKEN: vault.rootToken,
      NO_PROXY: '127.0.0.1,localhost',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    });
    cleanups.push(async () => {
      gh.child.kill('SIGTERM');
      const done = await Promise.race([gh.exited.then(() => true), delay(5000).then(() => false)]);
      if (!done) await gh.kill();
    });
    const pid = gh.child.pid!;
    const base = `http://127.0.0.1:${port}`;
    const pool = new Pool(base, { connections: 32, keepAliveTimeout: 10_000 });
    const probe = new Pool(base, { connections: 1 });
    cleanups.push(() => pool.destroy(), () => probe.destroy());

    // -- the run -----------------------------------------------------------------------------------
    const t0 = Date.now();
    const tEnd = t0 + o.durationMs;
    const tWarm = t0 + o.warmupMs;
    let stopped = false;
    const stop = () => (stopped = true);
    o.signal?.addEventListener('abort', stop, { once: true });
    const sleepUntil = async (t: number) => {
      while (!stopped && Date.now() < t) await delay(Math.min(100, t - Date.now()));
    };

    // rotations: consumer i at t0 + i·P/n + k·P, never closer than minSpacing to its last write
    let rotations = 0;
    const rotating = consumers.map(async (c, i) => {
      for (let k = 0; ; k++) {
        const nominal = t0 + (i * o.rotateEveryMs) / o.consumers + k * o.rotateEveryMs;
        await sleepUntil(Math.max(nominal, c.gens[c.gens.length - 1].ws + minSpacing));
        if (stopped || Date.now() >= tEnd) return;
        try {
          await write(c);
          rotations++;
        } catch (err) {
          violations.push(`rotation of ${c.name} failed: ${(err as Error).message}`);
          return;
        }
      }
    });

    // config edits: in place (a plain save) and by rename (vim, Kubernetes ConfigMaps) in turn;
    // each changes the marker route, which is polled until the gateway serves the new one
    let reloads = 0;
    let reloadsApplied = 0;
    let maxReloadMs = 0;
    const reloading = (async () => {
      for (let k = 1; ; k++) {
        await sleepUntil(t0 + k * o.reloadEveryMs);
        if (stopped || Date.now() >= tEnd) return;
        const text = JSON.stringify(config(k), null, 2);
        const at = Date.now();
        if (k % 2 === 1) await writeFile(file, text);
        else {
          await writeFile(join(dir, '.soak.next'), text);
          await rename(join(dir, '.soak.next'), file);
        }
        reloads++;
        for (;;) {
          let body = '';
          try {
            const r = await probe.request({ path: '/marker', method: 'GET' });
            body = await r.body.text();
          } catch {
            // counted below if it never shows
          }
          if (body === `reload-${k}`) {
            reloadsApplied++;
            maxReloadMs = Math.max(maxReloadMs, Date.now() - at);
            break;
          }
          if (Date.now() - at > reloadDeadline) {
            violations.push(`config edit ${k} was not served within ${reloadDeadline} ms`);
            break;
          }
          await delay(20);
        }
      }
    })();

    // RSS, once a second
    const rssSamples: Array<{ t: number; kb: number }> = [];
    let rssStart: number | undefined;
    let cpuStart = { at: 0, ms: 0 };
    const sampler = setInterval(() => {
      try {
        rssSamples.push({ t: Date.now() - t0, kb: rssKb(pid) });
      } catch {
        // the process is gone: reported below
      }
    }, 1000);
    cleanups.push(() => clearInterval(sampler));

    // load: open loop at o.rate; the classes take turns slot by slot
    const classes: Record<KeyClass, ClassFigures> = {
      current: { sent: 0, accepted: 0, rejected: 0, other: 0, late: 0 },
      inGrace: { sent: 0, accepted: 0, rejected: 0, other: 0, late: 0 },
      expired: { sent: 0, accepted: 0, rejected: 0, other: 0, late: 0 },
    };
    const classGaps: Record<KeyClass, number> = { current: 0, inGrace: 0, expired: 0 };
    let sent = 0;
    /** Send slots due so far (rate × time), and those with no key at all to send. */
    let slots = 0;
    let skipped = 0;
    let slot = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    let maxLatencyMs = 0;
    /** Slowest answer since the last progress line. */
    let windowMaxMs = 0;
    let slowAnswers = 0;
    let lateAccepted = 0;
    const pending = new Set<Promise<void>>();

    /** Keys of one class that may be sent at time t, with where they stand in their timeline. */
    const candidates = (cls: KeyClass, t: number): Array<{ c: SoakConsumer; j: number }> => {
      const out: Array<{ c: SoakConsumer; j: number }> = [];
      for (const c of consumers) {
        const gens = c.gens;
        for (let j = gens.length - 1; j >= 0; j--) {
          const g = gens[j];
          const next = gens[j + 1];
          let k: KeyClass | undefined;
          if (next === undefined) k = t >= g.we + R + m ? 'current' : undefined;
          else if (t >= g.we + R + m && t < next.ws + G - m) k = 'inGrace';
          else if (t >= next.we + R + G + m) k = 'expired';
          if (k === cls) out.push({ c, j });
        }
      }
      return out;
    };

    const describe = (c: SoakConsumer, j: number, t: number) => {
      const g = c.gens[j];
      const next = c.gens[j + 1];
      const rel = (x: number) => (Number.isFinite(x) ? `${t - x} ms` : 'in flight');
      return `${c.name} generation ${j} (since its write ended ${rel(g.we)}${next ? `, since the next write started ${rel(next.ws)} and ended ${rel(next.we)}` : ''})`;
    };

    const send = (cls: KeyClass, c: SoakConsumer, j: number) => {
      const t = Date.now();
      const figures = classes[cls];
      figures.sent++;
      sent++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const p = (async () => {
        let status = 0;
        let body = '';
        try {
          const r = await pool.request({ path: '/soak', method: 'GET', headers: { apikey: c.gens[j].key } });
          status = r.statusCode;
          body = await r.body.text();
        } catch (err) {
          body = (err as Error).message;
        }
        const answered = Date.now();
        const took = answered - t;
        maxLatencyMs = Math.max(maxLatencyMs, took);
        windowMaxMs = Math.max(windowMaxMs, took);
        if (took > m) slowAnswers++;
        let rejected = false;
        if (status === 401) {
          try {
            rejected = (JSON.parse(body) as { message?: unknown }).message === 'Invalid API key in request';
          } catch {
            rejected = false;
          }
        }
        const accepted = status === 200 && body === c.name;
        // the gateway looked at the key at some moment between sending and the answer: a key that
        // must pass must still have been in its grace at the answer (the replacing write may have
        // started meanwhile), else the answer proves nothing; an expired key stays expired
        const next = c.gens[j + 1];
        const late = cls !== 'expired' && (accepted || rejected) && next !== undefined && answered >= next.ws + G;
        const what = () => `${describe(c, j, t)}, answered in ${took} ms`;
        if (late) {
          figures.late++;
          if (accepted) lateAccepted++;
        } else if (accepted) {
          figures.accepted++;
          if (cls === 'expired') sample(`expired key accepted: ${what()}`);
        } else if (rejected) {
          figures.rejected++;
          if (cls !== 'expired') sample(`${cls} key rejected: ${what()}`);
        } else {
          figures.other++;
          sample(`${cls} key answered ${status || 'no status'} (${body.slice(0, 80)}): ${what()}`);
        }
      })().finally(() => {
        inFlight--;
        pending.delete(p);
      });
      pending.add(p);
    };

    const tick = () => {
      const now = Date.now();
      const due = Math.floor(((Math.min(now, tEnd) - t0) * o.rate) / 1000);
      while (slots < due) {
        slots++;
        let sentOne = false;
        for (let tries = 0; tries < CLASSES.length && !sentOne; tries++) {
          const cls = CLASSES[slot++ % CLASSES.length];
          const list = candidates(cls, now);
          if (list.length === 0) {
            if (now >= tWarm) classGaps[cls]++;
            continue;
          }
          let pick = list[Math.floor(Math.random() * list.length)];
          if (cls === 'expired' && Math.random() < 0.5) {
            // half the expired keys are the ones that just left their grace: the edge that matters
            pick = list.filter((x) => x.c === pick.c).reduce((a, b) => (b.j > a.j ? b : a));
          }
          send(cls, pick.c, pick.j);
          sentOne = true;
        }
        if (!sentOne) skipped++; // no key of any class may be sent yet (the first keys are settling)
      }
    };

    progress(`soak: ${o.durationMs / 1000} s at ${o.rate} req/s, ${o.consumers} consumers rotating every ${o.rotateEveryMs / 1000} s, config edited every ${o.reloadEveryMs / 1000} s (ttl ${o.ttl} s, grace ${o.grace} s, margin ${m} ms)`);
    let lastReport = t0;
    let lastTick = t0;
    let maxTickGapMs = 0;
    while (!stopped && Date.now() < tEnd) {
      maxTickGapMs = Math.max(maxTickGapMs, Date.now() - lastTick);
      lastTick = Date.now();
      tick();
      if (Date.now() >= tWarm && rssStart === undefined) {
        rssStart = rssKb(pid);
        cpuStart = { at: Date.now(), ms: cpuMs(pid) };
        progress(`warm-up done: RSS ${rssStart} kB`);
      }
      if (Date.now() - lastReport >= progressEvery) {
        lastReport = Date.now();
        progress(`  ${Math.round((lastReport - t0) / 1000)} s: ${sent} sent, slowest answer ${windowMaxMs} ms, ${rotations} rotations, ${reloads} edits, RSS ${rssSamples.at(-1)?.kb ?? '?'} kB`);
        windowMaxMs = 0;
      }
      await delay(5);
    }
    const elapsedMs = Date.now() - t0;
    let rssEnd = 0;
    let cpuPct = Number.NaN;
    try {
      rssEnd = rssKb(pid);
      cpuPct = ((cpuMs(pid) - cpuStart.ms) / (Date.now() - cpuStart.at)) * 100;
    } catch {
      violations.push('the gateway process is gone');
    }
    stopped = true;
    clearInterval(sampler);
    await Promise.all([...pending]);
    await Promise.all(rotating);
    await reloading;
    if (o.signal?.aborted) violations.push('aborted');

    // -- the verdict -------------------------------------------------------------------------------
    const logs = gh.logLines();
    const count = (msg: string) => logs.filter((l) => l.msg === msg).length;
    const output = gh.stdout() + gh.stderr();
    // how long the gateway took to apply a rotation: from the start of a Vault write to the first
    // "secrets changed" rebuild after it (an estimate from its log; the margin must cover it − R)
    const rebuiltAt = logs.filter((l) => l.msg === 'secrets changed').map((l) => Date.parse(String(l.time)));
    let maxApplyMs = 0;
    for (const c of consumers) {
      for (const g of c.gens.slice(1)) {
        const r = rebuiltAt.find((x) => x >= g.ws);
        if (r !== undefined) maxApplyMs = Math.max(maxApplyMs, r - g.ws);
      }
    }
    for (const cls of CLASSES) if (classes[cls].sent === 0) violations.push(`no ${cls} key was sent`);
    const badRejects = classes.current.rejected + classes.inGrace.rejected;
    if (badRejects > 0) violations.push(`${badRejects} requests with a current or in-grace key were rejected (current ${classes.current.rejected}, in-grace ${classes.inGrace.rejected})`);
    if (classes.expired.accepted > 0) violations.push(`${classes.expired.accepted} requests with an expired key were accepted`);
    const other = CLASSES.reduce((n, cls) => n + classes[cls].other, 0);
    if (other > 0) violations.push(`${other} requests got neither the upstream's answer nor a 401 (current ${classes.current.other}, in-grace ${classes.inGrace.other}, expired ${classes.expired.other})`);
    const accepted = CLASSES.reduce((n, cls) => n + classes[cls].accepted, lateAccepted);
    if (upstream.seen.length !== accepted) violations.push(`the upstream saw ${upstream.seen.length} requests, ${accepted} were accepted`);
    if (reloadsApplied !== reloads) violations.push(`${reloads - reloadsApplied} of ${reloads} config edits were not served`);
    if (count('config reload rejected; the last good config keeps serving') > 0) violations.push('a config reload was rejected');
    if (allKeys.some((k) => output.includes(k)) || output.includes(vault.rootToken)) violations.push('a key or the Vault token appeared in the gateway output');
    const start = rssStart ?? 0;
    const growthPct = start > 0 ? ((rssEnd - start) / start) * 100 : Number.NaN;
    if (!(growthPct < o.maxRssGrowthPct)) violations.push(`RSS grew ${growthPct.toFixed(1)} % (${start} → ${rssEnd} kB), limit ${o.maxRssGrowthPct} %`);
    violations.push(...samples);
    const kbs = rssSamples.filter((s) => s.t >= o.warmupMs).map((s) => s.kb);
    return {
      options: {
        durationMs: o.durationMs, warmupMs: o.warmupMs, rate: o.rate, consumers: o.consumers, rotateEveryMs: o.rotateEveryMs, reloadEveryMs: o.reloadEveryMs,
        ttl: o.ttl, grace: o.grace, marginMs: o.marginMs, maxRssGrowthPct: o.maxRssGrowthPct, reloadDeadlineMs: reloadDeadline,
      },
      elapsedMs,
      classes,
      sent,
      achievedRate: (sent * 1000) / elapsedMs,
      skippedSlots: skipped,
      maxTickGapMs,
      classGaps,
      slowAnswers,
      maxLatencyMs,
      maxInFlight,
      gatewayCpuPct: cpuPct,
      upstreamSeen: upstream.seen.length,
      rotations,
      secretRebuilds: rebuiltAt.length,
      maxApplyMs,
      graceRebuilds: count('rotation grace ended'),
      reloads,
      reloadsApplied,
      reloadsLogged: count('config reloaded'),
      maxReloadMs,
      rss: { startKb: start, endKb: rssEnd, growthPct, minKb: kbs.length ? Math.min(...kbs) : 0, maxKb: kbs.length ? Math.max(...kbs) : 0, samples: rssSamples },
      violations,
    };
  } finally {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch {
        // cleanup goes on
      }
    }
  }
}

/** The figures as a two-column table. */
export function formatFigures(f: SoakFigures): string {
  const rows: Array<[string, string]> = [];
  const o = f.options;
  rows.push(['duration', `${(f.elapsedMs / 1000).toFixed(1)} s (warm-up ${o.warmupMs / 1000} s)`]);
  rows.push(['rate', `${f.sent} sent, ${f.achievedRate.toFixed(1)} req/s (target ${o.rate}); ${f.skippedSlots} slots with no key yet, sender at most ${f.maxTickGapMs} ms late`]);
  rows.push(['timing', `ttl ${o.ttl} s, grace ${o.grace} s, margin ${o.marginMs} ms, ${o.consumers} consumers, rotation every ${o.rotateEveryMs / 1000} s each, edit every ${o.reloadEveryMs / 1000} s`]);
  const names: Record<KeyClass, string> = { current: 'current', inGrace: 'in-grace', expired: 'expired' };
  for (const cls of CLASSES) {
    const c = f.classes[cls];
    rows.push([`${names[cls]} keys`, `${c.sent} sent, ${c.accepted} accepted, ${c.rejected} rejected, ${c.other} other, ${c.late} too late to judge; no key for ${f.classGaps[cls]} slots after warm-up`]);
  }
  rows.push(['upstream saw', String(f.upstreamSeen)]);
  rows.push(['latency', `max ${f.maxLatencyMs} ms, ${f.slowAnswers} over the margin, max ${f.maxInFlight} in flight; gateway CPU ${f.gatewayCpuPct.toFixed(0)} % of a core after warm-up`]);
  rows.push(['rotations', `${f.rotations}; gateway rebuilds: ${f.secretRebuilds} for changed secrets (at most ${f.maxApplyMs} ms after a write; 0.8 × ttl + margin = ${o.ttl * 800 + o.marginMs} ms), ${f.graceRebuilds} for ended graces`]);
  rows.push(['reloads', `${f.reloads} edits, ${f.reloadsApplied} served (max ${f.maxReloadMs} ms), ${f.reloadsLogged} logged`]);
  rows.push(['RSS', `${f.rss.startKb} kB after warm-up → ${f.rss.endKb} kB at the end: ${f.rss.growthPct >= 0 ? '+' : ''}${f.rss.growthPct.toFixed(1)} % (limit ${o.maxRssGrowthPct} %); min ${f.rss.minKb}, max ${f.rss.maxKb} kB`]);
  rows.push(['verdict', f.violations.length === 0 ? 'pass' : `FAIL\n${f.violations.map((v) => `  - ${v}`).join('\n')}`]);
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}
