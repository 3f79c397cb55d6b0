// `npm run soak`: the full soak (70 s, rotation every 5 s, an edit every 7 s), a table of figures,
// exit 1 on any violation. `--short` starts from the form npm test runs; flags override the
// defaults: --duration 70 --warmup 20 --rate 200 --consumers 5 --rotate 5 --reload 7 --ttl 1
// --grace 2.5 --margin 1 (seconds, rate in req/s).
import { FULL_SOAK, SHORT_SOAK, formatFigures, runSoak, type SoakOptions } from './soak';

const FLAGS: Record<string, (o: SoakOptions, v: number) => SoakOptions> = {
  duration: (o, v) => ({ ...o, durationMs: v * 1000 }),
  warmup: (o, v) => ({ ...o, warmupMs: v * 1000 }),
  rate: (o, v) => ({ ...o, rate: v }),
  consumers: (o, v) => ({ ...o, consumers: v }),
  rotate: (o, v) => ({ ...o, rotateEveryMs: v * 1000 }),
  reload: (o, v) => ({ ...o, reloadEveryMs: v * 1000 }),
  ttl: (o, v) => ({ ...o, ttl: v }),
  grace: (o, v) => ({ ...o, grace: v }),
  margin: (o, v) => ({ ...o, marginMs: v * 1000 }),
};

function parse(args: string[]): SoakOptions {
  let o = args.includes('--short') ? SHORT_SOAK : FULL_SOAK;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--short') continue;
    const [flag, inline] = args[i].split('=', 2);
    const set = FLAGS[flag.replace(/^--/, '')];
    const raw = inline ?? args[++i];
    const v = Number(raw);
    if (!set || !(v > 0)) throw new Error(`usage: soak [--short] [--${Object.keys(FLAGS).join(' N] [--')} N] (bad: ${args.join(' ')})`);
    o = set(o, v);
  }
  return o;
}

async function main(): Promise<number> {
  process.env.NO_PROXY ??= '127.0.0.1,localhost';
  const abort = new AbortController();
  // a signal stops the load; runSoak then stops the gateway it started and reports
  for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => abort.abort());
  const options = { ...parse(process.argv.slice(2)), signal: abort.signal, onProgress: (l: string) => console.log(l) };
  const t = Date.now();
  const figures = await runSoak(options);
  console.log(`\n${formatFigures(figures)}\n(wall time ${((Date.now() - t) / 1000).toFixed(1)} s)`);
  return figures.violations.length === 0 ? 0 : 1;
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    console.error(`soak: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 2;
  },
);
