// Shared knobs of the property and fuzz tests (test/fuzz/*.test.ts).
//
// - FUZZ_RUNS: runs per property. Unset, each property uses its own default, sized so that the
//   whole fuzz set takes about 25 s of `npm test` on a quiet 2-core machine (about 40 s when other
//   work shares it). For a long soak, every property making 10000 runs:
//     npx tsc -p tsconfig.json && FUZZ_RUNS=10000 node scripts/run-tests.js fuzz
//   (about 12 minutes on a quiet 2-core machine, most of it in the three HTTP properties: router
//   through real gateways, Admin API JSON and Admin API bytes, each a few minutes.)
// - FUZZ_SEED: replay a failure. fast-check prints the seed and path of a failing run; pass the seed
//   here (and the same FUZZ_RUNS) to get the same runs again.
//
// Each file also watches for unhandled rejections, uncaught exceptions and the warnings that mean
// a bug (a timer too long for Node, a listener leak): anything that escapes while the properties
// run fails the test that saw it (noEscapes()), not just the process.
import fc from 'fast-check';

export { fc };

/** fast-check parameters of one property; prints its run count once (one line, no values). */
export function params(name: string, defaultRuns: number, o: { shrink?: boolean } = {}): { numRuns: number; seed?: number; endOnFailure: boolean } {
  const env = process.env.FUZZ_RUNS;
  const n = env === undefined || env === '' ? defaultRuns : Number(env);
  if (!Number.isInteger(n) || n < 1) throw new Error(`FUZZ_RUNS must be a positive integer, not "${env}"`);
  const seedEnv = process.env.FUZZ_SEED;
  const seed = seedEnv === undefined || seedEnv === '' ? undefined : Number(seedEnv);
  if (seed !== undefined && !Number.isInteger(seed)) throw new Error(`FUZZ_SEED must be an integer, not "${seedEnv}"`);
  console.log(`fuzz: ${name}: ${n} runs${seed === undefined ? '' : ` (seed ${seed})`}`);
  // shrink: false for slow (HTTP) properties, where shrinking can take minutes; the first counterexample says enough
  return { numRuns: n, ...(seed === undefined ? {} : { seed }), endOnFailure: o.shrink === false };
}

const escaped: string[] = [];
let watching = false;

/** Start recording unhandled rejections and uncaught exceptions (once per process). */
export function watchProcess(): void {
  if (watching) return;
  watching = true;
  // the type and message only: a reason could carry a value a property planted
  const describe = (kind: string, e: unknown) => `${kind}: ${e instanceof Error ? `${e.name}: ${e.message.split('\n')[0]}` : typeof e}`;
  process.on('unhandledRejection', (reason) => escaped.push(describe('unhandledRejection', reason)));
  process.on('uncaughtException', (err) => escaped.push(describe('uncaughtException', err)));
  // warnings that mean a bug here: a timer Node cut to 1 ms (it then fires every millisecond), a listener leak
  process.on('warning', (w) => {
    if (w.name === 'TimeoutOverflowWarning' || w.name === 'MaxListenersExceededWarning') escaped.push(describe('warning', w));
  });
}

/** Fail when anything escaped since the last call (the list is cleared, so one failure is reported once). */
export async function noEscapes(): Promise<void> {
  // a rejection is reported as unhandled only after the microtask queue drains
  await new Promise<void>((r) => setImmediate(r));
  const seen = escaped.splice(0);
  if (seen.length) throw new Error(`${seen.length} unhandled error(s) or warning(s) escaped while the property ran:\n${seen.join('\n')}`);
}

/** A place in a document: object keys and array indexes from the root. */
export type Path = Array<string | number>;

/** Every place in a document: each object key and array index, depth first. */
export function placesOf(v: unknown, at: Path = [], out: Path[] = []): Path[] {
  if (Array.isArray(v)) v.forEach((x, i) => (out.push([...at, i]), placesOf(x, [...at, i], out)));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push([...at, k]), placesOf(x, [...at, k], out);
  return out;
}

/** Set own property `k` (also "__proto__", as JSON.parse and YAML produce it). */
export function setOwn(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}
