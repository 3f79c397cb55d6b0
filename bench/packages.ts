// The bench's own packages (autocannon and the peers: fastify, @fastify/http-proxy, fast-gateway) are not
// Gatehouse's: they live in bench/node_modules, installed from bench/package.json and its lockfile by the
// `npm run bench*` scripts (npm ci --prefix bench), so Gatehouse's own `npm ci` never carries them (fastify 5
// pulls cookie 2, which wants Node 22). The compiled bench runs from dist/bench/, whose require() looks only
// in dist/node_modules and node_modules, so they are loaded from bench/ by path. The peers themselves are
// compiled by bench/tsconfig.json into bench/dist/, beside bench/node_modules.
import { createRequire } from 'node:module';
import { resolve } from 'node:path';

/** bench/ of the source tree (this file runs as dist/bench/packages.js). */
export const BENCH_SRC = resolve(__dirname, '..', '..', 'bench');

const benchRequire = createRequire(resolve(BENCH_SRC, 'package.json'));

/** A package of bench/package.json, loaded from bench/node_modules. */
export function benchPackage<T>(name: string): T {
  try {
    return benchRequire(name) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
    throw new Error(`${name} is not installed in bench/node_modules: run the bench through npm (npm run bench, npm run bench:peers, …), which installs it first (npm ci --prefix bench)`);
  }
}

/** The installed version of a package of bench/package.json. */
export function benchPackageVersion(name: string): string {
  return benchPackage<{ version: string }>(`${name}/package.json`).version;
}
