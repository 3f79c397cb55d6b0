// The running Gatehouse's package name and version, read from its package.json.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { name: string; version: string; engines?: { node?: string } };

/** The npm name Gatehouse is installed under (`gatehouse-gateway`; the command is `gatehouse`). */
export const packageName: string = pkg.name;
export const version: string = pkg.version;
/** The Node versions Gatehouse supports (package.json `engines.node`); a project made by `init` declares the same. */
export const nodeEngine: string | undefined = pkg.engines?.node;
