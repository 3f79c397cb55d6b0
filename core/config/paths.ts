// Paths in config documents: how an issue names a place (`routes[0].upstream`), and editing the
// strings found at a list of dotted paths (redaction, encryption at rest).

/**
 * Join a config path and one key: `routes[0]` + `upstream` → `routes[0].upstream`. A number is an
 * array index (`[0]`); a string is an object key, quoted when it is not an identifier (`["0"]`).
 */
export function joinPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(key)) return base ? `${base}.${key}` : key;
  return `${base}[${JSON.stringify(key)}]`;
}

/** Replace, in place, each string found at one of `paths` (dotted, `[]` for array items) by `fn(string)`. */
export function mapStringsAt(value: unknown, paths: readonly string[], fn: (s: string) => string): void {
  for (const p of paths) mapAt(value, p.split('.'), fn);
}

function mapAt(v: unknown, segs: string[], fn: (s: string) => string): void {
  if (v === null || typeof v !== 'object') return;
  const [head, ...rest] = segs;
  if (head.endsWith('[]')) {
    const key = head.slice(0, -2);
    const arr = key ? (v as Record<string, unknown>)[key] : v;
    if (Array.isArray(arr)) arr.forEach((x, i) => (rest.length ? mapAt(x, rest, fn) : mapValue(arr as unknown[], i, fn)));
    return;
  }
  const o = v as Record<string, unknown>;
  if (!Object.prototype.hasOwnProperty.call(o, head)) return;
  if (rest.length) mapAt(o[head], rest, fn);
  else mapValue(o, head, fn);
}

function mapValue(container: Record<string, unknown> | unknown[], key: string | number, fn: (s: string) => string): void {
  const x = (container as Record<string | number, unknown>)[key];
  if (typeof x === 'string') (container as Record<string | number, unknown>)[key] = fn(x);
}
