// The real servers tests start (etcd, Redis) are Debian's packages: a binary is looked for where
// Debian and local installs put it, then on PATH; when it is missing and we are root its package is
// installed with apt; otherwise the suite fails loudly, naming the command to run (it never skips).
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const found = new Map<string, string>();

/**
 * Path of `name`, installing Debian package `pkg` first when needed and possible.
 * @param what the server, for the error message ("a real Redis")
 * @throws Error when the binary is missing and cannot be installed here
 */
export function debianBinary(name: string, pkg: string, what: string): string {
  const known = found.get(name);
  if (known) return known;
  const find = () => [`/usr/bin/${name}`, `/usr/local/bin/${name}`, ...(process.env.PATH ?? '').split(':').map((d) => join(d, name))].find((p) => existsSync(p));
  let path = find();
  if (!path && process.getuid?.() === 0) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update'], { stdio: 'ignore', env });
    execFileSync('apt-get', ['install', '-y', pkg], { stdio: 'ignore', env });
    path = find();
  }
  if (!path) throw new Error(`${name} is not installed and cannot be installed here (not root): run \`apt-get install -y ${pkg}\` — these tests need ${what}`);
  found.set(name, path);
  return path;
}

/** What every started server offers its tests: `kill` (an outage), `restart`, and `close` (kill, then remove its folder). */
export function lifecycle(run: () => Promise<void>, kill: () => Promise<void>, dir: string): { kill(): Promise<void>; restart(): Promise<void>; close(): Promise<void> } {
  return {
    kill,
    restart: run,
    async close() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
