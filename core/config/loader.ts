// Reads gatehouse.yaml (or .json) from disk into a raw document, with line-precise parse errors.
import { readFile } from 'node:fs/promises';
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
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === undefined ? (err as Error).message : `${READ_ERRORS[code] ?? 'read failed'} (${code})`;
    throw new GatehouseError('GH_ERR_CONFIG_READ', `${path}: ${why}`);
  }
  const doc = parseConfigText(text, path);
  if (Object.keys(doc).length === 0) throw new GatehouseError('GH_ERR_CONFIG_PARSE', `${path}: the file is empty`);
  return doc;
}
