// A config's data section (its routes, upstreams, consumers or secret resources) as a persistent
// list: the next section after a change of a few resources shares all but one chunk of pointers
// per change with the one before, so a write at 100,000 consumers copies a few hundred pointers,
// not 100,000. Configs built from a change carry their sections and show each as an ordinary
// frozen array, made on first read (a full build, a whole validation, an Admin API list): the
// incremental paths read the sections and never ask for the array.
import type { DataKind } from '../contracts';
import type { GatewayConfig } from './types';

/** Items per chunk: a change copies one chunk and the chunk pointers (about 2 × √100,000). */
const CHUNK = 512;
const SHIFT = 9;

/** An immutable list of a section's items, changed by making the next one. */
export class Section<T> {
  /** The items as one array, once made. */
  private flat: readonly T[] | undefined;
  /** The items in chunks of CHUNK (the last one shorter), once made. */
  private chunked: ReadonlyArray<readonly T[]> | undefined;

  private constructor(
    readonly length: number,
    chunks: ReadonlyArray<readonly T[]> | undefined,
    flat: readonly T[] | undefined,
    /** Whether `flat` is the section's own (frozen when shown), not a list it was made of. */
    private readonly owned: boolean,
  ) {
    this.chunked = chunks;
    this.flat = flat;
  }

  /** The section of a list (read as it is, never modified, chunked when first changed). */
  static of<T>(items: readonly T[]): Section<T> {
    return new Section(items.length, undefined, items, false);
  }

  /** The section of `items`, which become its own: nothing else may hold them. */
  static own<T>(items: T[]): Section<T> {
    return new Section(items.length, undefined, items, true);
  }

  /** Whether the section is held as one array (it was made of one, or {@link toArray} made it). */
  get isArray(): boolean {
    return this.flat !== undefined;
  }

  /** The item at `i` (0 ≤ i < length). */
  get(i: number): T {
    if (this.flat !== undefined) return this.flat[i];
    return this.chunked![i >>> SHIFT][i & (CHUNK - 1)];
  }

  /** The section with the items at these indexes replaced (each index < length). */
  with(replaced: ReadonlyMap<number, T>): Section<T> {
    if (replaced.size === 0) return this;
    const chunks = [...this.chunks()];
    const copied = new Set<number>();
    for (const [i, item] of replaced) {
      const c = i >>> SHIFT;
      if (!copied.has(c)) {
        chunks[c] = [...chunks[c]];
        copied.add(c);
      }
      (chunks[c] as T[])[i & (CHUNK - 1)] = item;
    }
    return new Section(this.length, chunks, undefined, true);
  }

  /** The section with `items` appended. */
  concat(items: readonly T[]): Section<T> {
    if (items.length === 0) return this;
    const chunks = [...this.chunks()];
    // the last chunk filled up, then new ones (each made at its length: no array grown item by item)
    let k = 0;
    if (chunks.length && chunks[chunks.length - 1].length < CHUNK) {
      const last = chunks.pop()!;
      k = Math.min(CHUNK - last.length, items.length);
      chunks.push(last.concat(items.slice(0, k)));
    }
    for (; k < items.length; k += CHUNK) chunks.push(items.slice(k, k + CHUNK));
    return new Section(this.length + items.length, chunks, undefined, true);
  }

  /** The first item `test` holds for, read item by item (the section is not made an array). */
  find(test: (item: T) => boolean): T | undefined {
    const i = this.findIndex(test);
    return i === -1 ? undefined : this.get(i);
  }

  /** The index of the first item `test` holds for, or -1. */
  findIndex(test: (item: T) => boolean): number {
    for (let i = 0; i < this.length; i++) if (test(this.get(i))) return i;
    return -1;
  }

  /** Every item as one array (made once per section): frozen, unless it is the list the section was made of. */
  toArray(): readonly T[] {
    if (this.flat === undefined) {
      const out = new Array<T>(this.length);
      let k = 0;
      for (const c of this.chunked!) for (let j = 0; j < c.length; j++) out[k++] = c[j];
      this.flat = out;
    }
    return this.owned && !Object.isFrozen(this.flat) ? Object.freeze(this.flat) : this.flat;
  }

  private chunks(): ReadonlyArray<readonly T[]> {
    if (this.chunked === undefined) {
      const flat = this.flat!;
      const chunks: T[][] = [];
      for (let i = 0; i < flat.length; i += CHUNK) chunks.push(flat.slice(i, i + CHUNK));
      this.chunked = chunks;
    }
    return this.chunked;
  }
}

/** The kinds whose sections a config built from a change carries. */
export type SectionKind = Extract<DataKind, 'routes' | 'upstreams' | 'consumers' | 'secrets' | 'ssls'>;

/** A config's own sections (a symbol: not an enumerable key, so the config reads and serialises as before). */
const SECTIONS = Symbol('gatehouse.sections');

type WithSections = GatewayConfig & { readonly [SECTIONS]?: Partial<Record<SectionKind, Section<unknown>>> };

/** The section `kind` of `config`: the one it carries, or its list seen as one (a config from a whole validation). */
export function sectionOf<T = unknown>(config: GatewayConfig, kind: SectionKind): Section<T> {
  return ((config as WithSections)[SECTIONS]?.[kind] ?? Section.of(config[kind] as readonly unknown[])) as Section<T>;
}

/**
 * `config` with the sections in `changed` in place of its own: frozen, every other key the very
 * value of `config`, each changed section shown as an array made when first read.
 */
export function withSections(config: GatewayConfig, changed: ReadonlyMap<SectionKind, Section<unknown>>): GatewayConfig {
  const sections: Partial<Record<SectionKind, Section<unknown>>> = { ...(config as WithSections)[SECTIONS] };
  const props = Object.getOwnPropertyDescriptors(config) as Record<PropertyKey, PropertyDescriptor>;
  for (const [kind, section] of changed) {
    sections[kind] = section;
    props[kind] = listProperty(section);
  }
  props[SECTIONS] = { value: Object.freeze(sections), enumerable: false };
  return Object.freeze(Object.defineProperties({}, props)) as GatewayConfig;
}

/** The property showing `section` as an array (made in its own scope: a getter closes over the section only, never over a config). */
function listProperty(section: Section<unknown>): PropertyDescriptor {
  return { get: () => section.toArray(), enumerable: true, configurable: false };
}
