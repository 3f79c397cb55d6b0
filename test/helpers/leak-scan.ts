// Leak scan (docs/security.md): after a test run, look for every planted secret (the canaries the leak tap
// recorded, plus KNOWN_PLANTED) in everything the run's processes let out (the tap files), as
// written and base64-, base64url-, URL- and JSON-string-encoded. A hit is reported by file, offset,
// canary number and source, with its context redacted: a report never contains a canary's value.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CANARY_DIR } from './leak-tap';

/** Shorter values are not canaries: they occur by chance ("test", "root", "true", ports). */
export const MIN_CANARY_LENGTH = 8;

/**
 * Planted values the tap cannot see being planted (written into config literals, files read by
 * the file provider, in-memory test providers). Only values of 8+ characters are listed.
 */
export const KNOWN_PLANTED: readonly string[] = [
  'sk-jack-1', // test/secrets.test.ts: a value of the in-memory test provider
  'not-for-you', // providers/file/file.test.ts: a file outside the secret folder
];

/**
 * Planted values that are public: the quickstart's documented demo key (README: `npm start` sets
 * DEMO_API_KEY=secret-key when unset, and the example prints it in its curl hints).
 */
export const PUBLIC_VALUES: readonly string[] = ['secret-key'];

/**
 * A loopback listen address (`127.0.0.1:40123`, a test's `gateway.listen` set through an env
 * variable): public, like the bare port numbers left out as all digits, and free ports recur across
 * the run, so another test's "listening on" line would match it by chance.
 */
const LOOPBACK_ADDRESS = /^(?:127\.0\.0\.1|localhost|\[::1\])?:\d+$/;

/** Public key material stored next to secrets (a jwt-auth RS256 public_key): meant to be shown. */
const PUBLIC_PEM = /^\s*-----BEGIN (?:PUBLIC KEY|RSA PUBLIC KEY|CERTIFICATE)-----/;

/**
 * Occurrences that are the product (or a test tool) doing what it is asked: the text right before
 * the value, in one kind of tap file. Everything else in those files is still scanned.
 */
export const EXEMPT: ReadonlyArray<{ readonly file: RegExp; readonly before: string; readonly why: string }> = [
  { file: /\.stderr$/, before: "this run's admin key (X-API-KEY) is ", why: 'a generated admin key is printed once on stderr, by design (docs/security.md)' },
  { file: /^main\.js-secret-reveal\..*\.stdout$/, before: 'value        ', why: '`gatehouse secret resolve --reveal` prints the value it was asked for' },
  { file: /^vault\.js\..*\.stdout$/, before: '(root token: ', why: 'the Vault test server CLI prints its root token, as `vault server -dev` does' },
];

export interface Canary {
  /** 1-based number used in reports instead of the value. */
  readonly n: number;
  readonly value: string;
  /** Where it was planted (first source; `sources` counts all). */
  readonly source: string;
  readonly sources: number;
  /** Encoded forms searched for, by name. */
  readonly forms: ReadonlyArray<{ readonly form: string; readonly bytes: Buffer }>;
}

export interface LeakHit {
  /** Tap file name (label.pid.rand.stream). */
  readonly file: string;
  readonly offset: number;
  readonly canary: number;
  readonly source: string;
  readonly form: string;
  /** Up to 48 bytes either side, every canary replaced by «canary #n», control bytes escaped. */
  readonly context: string;
}

export interface LeakScanResult {
  readonly files: number;
  readonly bytes: number;
  readonly canaries: number;
  /** Planted values not used as canaries: shorter than MIN_CANARY_LENGTH, all digits, public (a loopback address, PUBLIC_VALUES, PEM public keys, certificates). */
  readonly skipped: number;
  /** Occurrences not counted, by EXEMPT rule. */
  readonly exempt: number;
  readonly hits: readonly LeakHit[];
  readonly ms: number;
}

/** Encoded forms a value may take in a log line, an error, or a response body. */
export function canaryForms(value: string): Array<{ form: string; bytes: Buffer }> {
  const seen = new Map<string, string>();
  const add = (form: string, text: string) => {
    if (text.length >= MIN_CANARY_LENGTH && !seen.has(text)) seen.set(text, form);
  };
  add('raw', value);
  add('json-escaped', JSON.stringify(value).slice(1, -1));
  add('url-encoded', encodeURIComponent(value));
  add('url-encoded', encodeURI(value));
  add('form-encoded', encodeURIComponent(value).replace(/%20/g, '+'));
  // base64 at each of the three alignments the value can have inside a longer encoded text (a
  // password inside a Basic credential): the characters that depend on the value alone
  const raw = Buffer.from(value, 'utf8');
  for (let shift = 0; shift < 3; shift++) {
    const enc = Buffer.concat([Buffer.alloc(shift), raw]).toString('base64');
    const stable = enc.slice(shift ? 4 : 0, Math.floor((shift + raw.length) / 3) * 4);
    add('base64', stable);
    add('base64url', stable.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return [...seen].map(([text, form]) => ({ form, bytes: Buffer.from(text, 'utf8') }));
}

/** Canaries of a tap directory (the tap's records plus `extra`), numbered, deduplicated, short ones left out. */
export function loadCanaries(dir: string, extra: readonly string[] = KNOWN_PLANTED): { canaries: Canary[]; skipped: number } {
  const bySource = new Map<string, string[]>();
  const note = (value: string, source: string) => {
    const list = bySource.get(value);
    if (list) list.push(source);
    else bySource.set(value, [source]);
  };
  for (const v of extra) note(v, 'known planted value (leak-scan.ts)');
  const cdir = join(dir, CANARY_DIR);
  let names: string[] = [];
  try {
    names = readdirSync(cdir).sort();
  } catch {
    names = [];
  }
  for (const name of names) {
    for (const line of readFileSync(join(cdir, name), 'utf8').split('\n')) {
      if (!line) continue;
      try {
        const { source, value } = JSON.parse(line) as { source: string; value: string };
        if (typeof value === 'string') note(value, String(source));
      } catch {
        // a line cut short by a killed process
      }
    }
  }
  const canaries: Canary[] = [];
  let skipped = 0;
  for (const [value, sources] of bySource) {
    if (value.length < MIN_CANARY_LENGTH || /^\d+$/.test(value) || LOOPBACK_ADDRESS.test(value) || PUBLIC_VALUES.includes(value) || PUBLIC_PEM.test(value)) {
      skipped++;
      continue;
    }
    canaries.push({ n: canaries.length + 1, value, source: sources[0], sources: sources.length, forms: canaryForms(value) });
  }
  return { canaries, skipped };
}

/** Tap files of a directory (every regular file but the canaries). */
function tapFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f !== CANARY_DIR && statSync(join(dir, f)).isFile())
    .sort();
}

function redactedContext(buf: Buffer, start: number, end: number, canaries: readonly Canary[]): string {
  const from = Math.max(0, start - 48);
  const to = Math.min(buf.length, end + 48);
  // look a canary's length further out, so one crossing the window's edge is redacted whole
  const longest = Math.max(...canaries.flatMap((c) => c.forms.map((f) => f.bytes.length)));
  const wideFrom = Math.max(0, from - longest);
  const wide = buf.subarray(wideFrom, Math.min(buf.length, to + longest));
  const mark: Array<number | undefined> = new Array(wide.length);
  for (const c of canaries) {
    for (const f of c.forms) {
      for (let i = wide.indexOf(f.bytes); i !== -1; i = wide.indexOf(f.bytes, i + 1)) {
        for (let j = i; j < i + f.bytes.length; j++) mark[j] ??= c.n;
      }
    }
  }
  let out = from > 0 ? '…' : '';
  for (let i = from - wideFrom; i < to - wideFrom; i++) {
    const m = mark[i];
    if (m !== undefined) {
      if (mark[i - 1] !== m || i === from - wideFrom) out += `«canary #${m}»`;
      continue;
    }
    const b = wide[i];
    out += b === 0x0a ? '\\n' : b === 0x09 ? '\\t' : b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.';
  }
  return out + (to < buf.length ? '…' : '');
}

/**
 * Scan every tap file of `dir` for every canary.
 * @param maxHitsPerPair occurrences reported per file and canary (all are counted in `hits` up to this)
 */
export function scanTapDir(dir: string, opts: { extra?: readonly string[]; maxHitsPerPair?: number } = {}): LeakScanResult {
  const t0 = Date.now();
  const { canaries, skipped } = loadCanaries(dir, opts.extra);
  const maxPerPair = opts.maxHitsPerPair ?? 3;
  const hits: LeakHit[] = [];
  let bytes = 0;
  let exempt = 0;
  const files = tapFiles(dir);
  for (const file of files) {
    const buf = readFileSync(join(dir, file));
    bytes += buf.length;
    const rules = EXEMPT.filter((r) => r.file.test(file));
    for (const c of canaries) {
      let found = 0;
      for (const f of c.forms) {
        for (let i = buf.indexOf(f.bytes); i !== -1 && found < maxPerPair; i = buf.indexOf(f.bytes, i + f.bytes.length)) {
          if (rules.some((r) => i >= r.before.length && buf.toString('latin1', i - r.before.length, i) === r.before)) {
            exempt++;
            continue;
          }
          found++;
          hits.push({ file, offset: i, canary: c.n, source: c.source, form: f.form, context: redactedContext(buf, i, i + f.bytes.length, canaries) });
        }
      }
    }
  }
  return { files: files.length, bytes, canaries: canaries.length, skipped, exempt, hits, ms: Date.now() - t0 };
}

/** Report lines: a summary, then one block per hit. Never contains a canary value. */
export function formatLeakReport(r: LeakScanResult): string[] {
  const mb = (r.bytes / 1024 / 1024).toFixed(1);
  const lines = [
    `leak-scan: ${r.files} tap files, ${mb} MiB scanned, ${r.canaries} canaries (${r.skipped} planted values skipped: under ${MIN_CANARY_LENGTH} chars, all digits, or public), ${r.exempt} exempt occurrences, ${r.hits.length} hits, ${r.ms} ms`,
  ];
  for (const h of r.hits) {
    lines.push(`leak-scan: LEAK in ${h.file} at byte ${h.offset}: canary #${h.canary} (${h.source}), ${h.form}`);
    lines.push(`    ${h.context}`);
  }
  return lines;
}
