// Reads gatehouse.yaml (or .json) from disk into a raw document, with line-precise parse errors.
import { open } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import type { parseDocument as ParseDocument } from 'yaml';
import { CORE_SCHEMA, load, type YAMLException } from 'js-yaml';
import { GatehouseError } from '../errors';
import type { RawConfig } from '../contracts';

/**
 * Parse configuration text (YAML, which includes JSON).
 *
 * Valid documents go through js-yaml (core schema: no timestamps or custom tags), which builds
 * plain objects directly: a 100 000-consumer file parses in under a second. Invalid ones are parsed
 * again with `yaml`, whose diagnostics are more precise and list every error.
 * @param source shown in error messages (a file path)
 * @throws GatehouseError GH_ERR_CONFIG_PARSE naming line and column
 */
export function parseConfigText(text: string, source: string): RawConfig {
  let value: unknown;
  try {
    value = load(text, { filename: source, schema: CORE_SCHEMA, json: false });
  } catch (fast) {
    throw parseError(text, source, fast as YAMLException);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new GatehouseError('GH_ERR_CONFIG_PARSE', `${source}: the document must be a mapping (key: value), not ${Array.isArray(value) ? 'a list' : typeof value}`);
  }
  return value as RawConfig;
}

function parseError(text: string, source: string, fast: YAMLException): GatehouseError {
  // `yaml` (precise diagnostics) is loaded only when a document does not parse
  const { parseDocument } = require('yaml') as { parseDocument: typeof ParseDocument };
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    const lines = doc.errors.map((e) => {
      const pos = e.linePos?.[0];
      // the parser's own " at line L, column C:" would repeat the position given up front
      const message = e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
      return `${source}${pos ? `:${pos.line}:${pos.col}` : ''}: ${message}`;
    });
    return new GatehouseError('GH_ERR_CONFIG_PARSE', lines.join('\n'));
  }
  // the two parsers disagree: report js-yaml's own finding
  const m = fast.mark;
  return new GatehouseError('GH_ERR_CONFIG_PARSE', `${source}${m ? `:${m.line + 1}:${m.column + 1}` : ''}: ${fast.reason ?? fast.message}`);
}

const READ_ERRORS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'is a directory, not a file',
  ENOTDIR: 'a parent of it is not a directory',
};

/**
 * Read and parse a config file. A file with no settings (empty, only comments, `{}`) is refused, by
 * start and validate as by a reload: it is what an in-place write looks like half-way through or a
 * truncated file, never a gateway anyone means to run (0.0.0.0:9080 without routes).
 * @throws GatehouseError GH_ERR_CONFIG_READ / GH_ERR_CONFIG_PARSE
 */
export async function readConfigFile(path: string): Promise<RawConfig> {
  let text: string;
  let stamp: string;
  try {
    const fh = await open(path, 'r');
    try {
      // the identity and times before the text: an edit during the read changes them, and the
      // stamp then names an older file than the text (a reader that trusts it reads again)
      stamp = fileStamp(await fh.stat());
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === undefined ? (err as Error).message : `${READ_ERRORS[code] ?? 'read failed'} (${code})`;
    throw new GatehouseError('GH_ERR_CONFIG_READ', `${path}: ${why}`);
  }
  const doc = parseConfigText(text, path);
  if (Object.keys(doc).length === 0) throw new GatehouseError('GH_ERR_CONFIG_PARSE', `${path}: the file is empty`);
  Object.defineProperty(doc, CONFIG_FILE_STAMP, { value: stamp, enumerable: false });
  return doc;
}

/**
 * A document read by `readConfigFile` carries, under this symbol (not enumerable: no copy, no
 * serialisation and no validation sees it), the stamp of the file it was read from.
 */
export const CONFIG_FILE_STAMP: unique symbol = Symbol('gatehouse.configFileStamp');

/** A file's identity and times: equal stamps, the same content (an edit changes mtime and ctime). */
export function fileStamp(st: Pick<Stats, 'dev' | 'ino' | 'size' | 'mtimeMs' | 'ctimeMs'>): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

/** The stamp of the file a document was read from, when `readConfigFile` read it. */
export function configFileStamp(doc: RawConfig): string | undefined {
  const v = (doc as { [CONFIG_FILE_STAMP]?: unknown })[CONFIG_FILE_STAMP];
  return typeof v === 'string' ? v : undefined;
}
