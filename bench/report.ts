// Bench results: per-target summaries across rounds, gateway/direct ratios, the stdout table and the JSON file.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { LoadResult } from './load';

/** CPU used during a run, in % of one core, per process (absent where /proc is unavailable). */
export type CpuShare = Partial<Record<'loadgen' | 'gateway' | 'upstream', number>>;

export interface RoundResult extends LoadResult {
  readonly round: number;
  readonly cpu: CpuShare;
}

export interface TargetSummary {
  readonly name: string;
  readonly label: string;
  readonly url: string;
  readonly rounds: readonly RoundResult[];
  readonly warmup?: LoadResult;
  /** Medians across rounds. */
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly rpsMin: number;
  readonly rpsMax: number;
  readonly cpu: CpuShare;
  /** Failures summed over the measured rounds (warm-up failures are counted in `warmup`). */
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
}

export interface Ratio {
  readonly target: string;
  /** gateway / direct; < 1 for throughput and > 1 for latency means the gateway costs something. */
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  /** req/s ratio within each round: the gateway run and the direct run next to it share the
   * machine's conditions, so the spread of these shows how far to trust the headline ratio. */
  readonly rpsByRound: readonly number[];
}

export interface BenchSettings {
  readonly rounds: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly connections: number;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Fold one target's rounds into medians and failure totals. */
export function summarize(name: string, label: string, url: string, rounds: readonly RoundResult[], warmup?: LoadResult): TargetSummary {
  const rps = rounds.map((r) => r.rps);
  const cpu: CpuShare = {};
  for (const k of ['loadgen', 'gateway', 'upstream'] as const) {
    const v = rounds.map((r) => r.cpu[k]).filter((x): x is number => x !== undefined);
    if (v.length) cpu[k] = median(v);
  }
  return {
    name,
    label,
    url,
    rounds,
    warmup,
    rps: median(rps),
    p50Ms: median(rounds.map((r) => r.p50Ms)),
    p99Ms: median(rounds.map((r) => r.p99Ms)),
    rpsMin: Math.min(...rps),
    rpsMax: Math.max(...rps),
    cpu,
    errors: sum(rounds.map((r) => r.errors)),
    timeouts: sum(rounds.map((r) => r.timeouts)),
    non2xx: sum(rounds.map((r) => r.non2xx)),
  };
}

function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

export function ratio(target: TargetSummary, direct: TargetSummary): Ratio {
  return {
    target: target.name,
    rps: target.rps / direct.rps,
    p50: target.p50Ms / direct.p50Ms,
    p99: target.p99Ms / direct.p99Ms,
    rpsByRound: target.rounds.map((r, i) => r.rps / direct.rounds[i].rps),
  };
}

/** Failures of a target, warm-up included (any failure makes the bench exit non-zero). */
export function failures(t: TargetSummary): number {
  const w = t.warmup;
  return t.errors + t.timeouts + t.non2xx + (w ? w.errors + w.timeouts + w.non2xx : 0);
}

/** A text table: the first `rightFrom` columns left-aligned, the rest right-aligned. */
export function table(rows: readonly (readonly string[])[], rightFrom = 1): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c < rightFrom ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ').trimEnd()).join('\n');
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => n.toFixed(2);
const x = (n: number) => `${n.toFixed(2)}x`;
const pct = (n: number | undefined) => (n === undefined ? '-' : String(Math.round(n)));

/** The human report. */
export function formatReport(s: BenchSettings, env: { cpus: number; node: string }, targets: readonly TargetSummary[], ratios: readonly Ratio[]): string {
  const out: string[] = [];
  out.push(`Gatehouse bench: ${s.rounds} interleaved rounds x ${s.durationS} s per target (${s.warmupS > 0 ? `after one ${s.warmupS} s warm-up each` : 'no warm-up'}), ${s.connections} connections, node ${env.node}, ${env.cpus} CPUs`);
  if (env.cpus < 3) out.push(`note: ${env.cpus} CPUs for up to 3 busy processes (load generator, gateway, upstream): the gateway rows include CPU contention`);
  out.push('');
  out.push(
    table([
      ['target', 'req/s (median)', 'req/s min..max', 'p50 ms', 'p99 ms', 'errors', 'timeouts', 'non-2xx', 'cpu% loadgen/gw/upstream'],
      ...targets.map((t) => [
        t.label,
        int(t.rps),
        `${int(t.rpsMin)}..${int(t.rpsMax)}`,
        ms(t.p50Ms),
        ms(t.p99Ms),
        String(t.errors),
        String(t.timeouts),
        String(t.non2xx),
        `${pct(t.cpu.loadgen)}/${pct(t.cpu.gateway)}/${pct(t.cpu.upstream)}`,
      ]),
    ]),
  );
  out.push('');
  out.push(
    table([
      ['ratio to direct (medians)', 'req/s', 'p50', 'p99', 'req/s ratio in each round'],
      ...ratios.map((r) => [targets.find((t) => t.name === r.target)!.label, x(r.rps), x(r.p50), x(r.p99), r.rpsByRound.map((v) => v.toFixed(2)).join(' ')]),
    ]),
  );
  for (const t of targets) {
    const w = t.warmup;
    if (w && w.errors + w.timeouts + w.non2xx > 0) out.push(`warm-up of ${t.label}: ${w.errors} errors, ${w.timeouts} timeouts, ${w.non2xx} non-2xx`);
  }
  return out.join('\n');
}

/** Per-round lines printed as the bench goes, so a long run shows progress. */
export function formatRound(label: string, r: RoundResult): string {
  const bad = r.errors + r.timeouts + r.non2xx;
  return `  round ${r.round} ${label.padEnd(22)} ${int(r.rps).padStart(8)} req/s  p50 ${ms(r.p50Ms)} ms  p99 ${ms(r.p99Ms)} ms${bad ? `  FAILURES: ${r.errors} errors, ${r.timeouts} timeouts, ${r.non2xx} non-2xx ${JSON.stringify(r.statusCodes)}` : ''}`;
}

export function writeJson(file: string, data: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(data, roundFloats, 2) + '\n');
}

// microsecond digits of a rate or a latency are noise; keep the file readable
function roundFloats(_key: string, v: unknown): unknown {
  return typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 1000) / 1000 : v;
}
