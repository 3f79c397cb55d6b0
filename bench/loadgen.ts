// The load generator of the peer and route benches: wrk when installed (`wrk -t2 -c<C> -d<S>s --latency`),
// else autocannon in the bench process (bench/load.ts). One interface, so the benches do not care which.
import { runLoad, type LoadResult } from './load';
import { benchPackageVersion } from './packages';
import { findBinary, runWrk, wrkVersion } from './wrk';

export type LoadChoice = 'auto' | 'wrk' | 'autocannon';

export interface LoadGen {
  readonly name: 'wrk' | 'autocannon';
  readonly version: string;
  /** Whether this process is the load generator (its CPU is then measurable). */
  readonly inProcess: boolean;
  run(url: string, headers: Record<string, string>, durationS: number, connections: number): Promise<LoadResult>;
}

export const LOAD_HELP = 'load generator: wrk (wrk -t2 -c<C> -d<S>s --latency), autocannon, or auto = wrk when installed (default)';

export function parseLoadChoice(raw: string): LoadChoice {
  if (raw !== 'auto' && raw !== 'wrk' && raw !== 'autocannon') throw new Error(`--load must be auto, wrk or autocannon, got "${raw}"`);
  return raw;
}

/** Version of a package of bench/package.json (bench/packages.ts). */
export function versionOf(pkg: string): string {
  return benchPackageVersion(pkg);
}

export function loadGenerator(choice: LoadChoice): LoadGen {
  const wrk = choice === 'autocannon' ? undefined : findBinary('wrk');
  if (choice === 'wrk' && !wrk) throw new Error('--load wrk: no wrk binary on PATH (apt-get install wrk)');
  if (wrk) {
    return {
      name: 'wrk',
      version: wrkVersion(wrk),
      inProcess: false,
      // wrk's latency percentiles come from its HdrHistogram (microsecond resolution)
      run: (url, headers, durationS, connections) => runWrk(wrk, { url, headers, durationS, connections }, 2),
    };
  }
  return {
    name: 'autocannon',
    version: `autocannon ${versionOf('autocannon')}`,
    inProcess: true,
    run: (url, headers, durationS, connections) => runLoad({ url, headers, durationS, connections }),
  };
}
