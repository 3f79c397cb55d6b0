// Load runs with wrk (https://github.com/wg/wrk), when the machine has it: a C load generator that
// costs the machine far less CPU per request than autocannon, so more of the cores go to the target.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { LoadOptions, LoadResult } from './load';
import { adopt } from './procs';

/** Absolute path of an executable on $PATH (or in the sbin dirs, where nginx lives), or undefined. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const d of dirs) {
    if (d && existsSync(join(d, name))) return join(d, name);
  }
  return undefined;
}

/** From `wrk -v`'s first line, e.g. "wrk debian/4.1.0-3+b2 [epoll]" (without the copyright). */
export function wrkVersion(bin: string): string {
  // wrk -v prints its version (then its usage) and exits 1
  const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
  const line = `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0];
  return line.replace(/\s+Copyright.*$/, '').trim() || 'wrk';
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function durationMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m) throw new Error(`wrk: cannot read the duration "${text}"`);
  return Number(m[1]) * UNIT_MS[m[2]];
}

/** Parse wrk's report (run with --latency). Exported for a unit check against a captured report. */
export function parseWrk(out: string): LoadResult {
  const pick = (re: RegExp, what: string): RegExpExecArray => {
    const m = re.exec(out);
    if (!m) throw new Error(`wrk: no ${what} in its output:\n${out}`);
    return m;
  };
  const total = pick(/^\s*(\d+) requests in ([\d.]+\w+),/m, 'request count');
  const p50 = pick(/^\s*50(?:\.000)?%\s+([\d.]+\w+)/m, '50% latency');
  const p99 = pick(/^\s*99(?:\.000)?%\s+([\d.]+\w+)/m, '99% latency');
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  // wrk prints the run's time to 10 ms only; its Requests/sec uses the microsecond-exact time
  const rps = Number(pick(/^Requests\/sec:\s+([\d.]+)/m, 'Requests/sec')[1]);
  const requests = Number(total[1]);
  return {
    requests,
    seconds: rps > 0 ? requests / rps : durationMs(total[2]) / 1000,
    rps,
    p50Ms: durationMs(p50[1]),
    p99Ms: durationMs(p99[1]),
    errors: sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) : 0,
    timeouts: sock ? Number(sock[4]) : 0,
    non2xx,
    // wrk counts answers >= 400 only; it keeps no per-status counts
    statusCodes: {},
  };
}

/** One wrk run: `wrk -t<threads> -c<connections> -d<duration>s --latency [-H …] <url>`. */
export function runWrk(bin: string, o: LoadOptions, threads = 2): Promise<LoadResult & { raw: string }> {
  const args = [`-t${Math.min(threads, o.connections)}`, `-c${o.connections}`, `-d${o.durationS}s`, '--latency', '--timeout', '10s'];
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push('-H', `${k}: ${v}`);
  args.push(o.url);
  return new Promise(function run(ok, fail) {
    const proc = adopt(spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let err = '';
    proc.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
    proc.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')));
    proc.once('error', fail);
    proc.once('close', function done(code, signal) {
      if (code !== 0) return fail(new Error(`wrk exited with code ${code} signal ${signal}: ${err}${out}`));
      try {
        ok({ ...parseWrk(out), raw: out });
      } catch (e) {
        fail(e as Error);
      }
    });
  });
}
