// The control path of one gateway: the one install() every snapshot swap goes through, and the jobs
// that build a new snapshot (a reload, an Admin API write, a rebuild after a secret change or at the
// end of a rotation grace), run one at a time by the change queue.
import 'reflect-metadata';
import { inject, injectable } from 'tsyringe';
import { DATA_KINDS, type Clock, type ConfigStore, type DataChange, type DataKind, type Histogram, type Logger, type Metrics } from '../contracts';
import { GatehouseError, statusOf, type ConfigIssue } from '../errors';
import { CLOCK, CONFIG_STORE, LOGGER, METRICS } from '../tokens';
import type { ValidatedConfig } from '../config/validate';
import { restartOnlyChanges } from '../config/restart-only';
import type { Snapshot } from '../request/snapshot';
import { DataPlane } from '../request/data-plane';
import { SnapshotBuilder } from '../build/snapshot-builder';
import type { Admission } from '../build/destinations';
import { CertificateExpiry } from '../build/tls-expiry';
import { dataSections } from '../stores/file-store';
import { ChangeQueue } from './change-queue';
import type { Touched } from '../build/incremental';
import { diffData, idOf, sameContent, type DataDocument } from './data-diff';
import { DocumentEdit, IndexedDocument } from './positions';
import { sectionOf } from '../config/section';

/** Outcome of an Admin API change. */
export type ChangeResult = { ok: true } | { ok: false; status: number; message: string; issues: readonly ConfigIssue[] };

export type ReloadResult = { ok: true; generation: number } | { ok: false; issues: readonly ConfigIssue[]; message: string };

/** Secret changes come in bursts (a rotation touches many references): one rebuild per this many ms. */
const REBUILD_DEBOUNCE_MS = 10;
/**
 * How close to an `admin.limits` entry this node's own count must come before a write asks the store
 * for the count of every writer's (an etcd count reads the whole range: 18 ms at 100,000 consumers).
 */
const LIMIT_SLACK = 100;
/** Past a rotation grace's end, so the rebuild's clock is past it too. */
const GRACE_MARGIN_MS = 5;
/** Resources whose positions are indexed per turn of the event loop after an install (about 2 ms). */
const PREPARE_SLICE = 10_000;

@injectable()
export class ConfigControl {
  /** The config the live snapshot was built from (secret changes rebuild from it). */
  private validated: ValidatedConfig | undefined;
  /**
   * The document the live snapshot was built from, as the store holds it (its resources are the
   * store's objects), with where each resource stands: the base of the next change. Undefined
   * when it is not known (a change refused by this gateway that another node wrote): the next
   * change reads it.
   */
  private raw: IndexedDocument | undefined;
  private readonly unsubscribe: () => void;
  /** How long changes take to apply (`gatehouse_config_apply_duration_seconds`). */
  private readonly applied: Histogram<'kind' | 'cause'>;
  /** Secrets whose value changed since the last rebuild for them (their keys). */
  private changedRefs = new Set<string>();
  private stopped = false;

  constructor(
    @inject(LOGGER) private readonly logger: Logger,
    @inject(CLOCK) private readonly clock: Clock,
    @inject(METRICS) metrics: Metrics,
    @inject(CONFIG_STORE) private readonly store: ConfigStore,
    private readonly builder: SnapshotBuilder,
    private readonly plane: DataPlane,
    private readonly queue: ChangeQueue,
    /** The expiry metric and warnings of the installed snapshot's certificates. */
    private readonly expiry: CertificateExpiry,
  ) {
    this.applied = metrics.histogram('config_apply_duration_seconds', 'From the start of a change (a write, a reload, a store change, a secret rotation, a grace end) to its snapshot serving, by how it was built', ['kind', 'cause'], [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
    // a secret the live config uses changed: rebuild from the same config with the new values
    this.unsubscribe = this.builder.resolver.onChange((c) => {
      if (!this.plane.current?.refKeys.has(c.ref.key)) return;
      this.changedRefs.add(c.ref.key);
      this.queue.debounce('secrets', REBUILD_DEBOUNCE_MS, () => {
        const keys = this.changedRefs;
        this.changedRefs = new Set();
        return this.rebuild('secrets changed', this.builder.dependants(this.validated!, keys));
      });
    });
  }

  /** Whether {@link close} ran: no job swaps a snapshot any more. */
  get closed(): boolean {
    return this.stopped;
  }

  /** Whether the document's positions are being indexed in the background. */
  private preparing = false;

  /**
   * Index the document's positions a slice per turn of the event loop (about 2 ms each), so that
   * the first Admin write of each kind finds them made instead of indexing 100,000 consumers while
   * requests wait. Whatever document is current at each turn is the one indexed. (An unref'd
   * immediate would run only when something else wakes the event loop.)
   */
  private prepareWrites(): void {
    if (this.preparing) return;
    this.preparing = true;
    const step = () => {
      const doc = this.raw;
      if (doc === undefined || doc.prepare(PREPARE_SLICE)) this.preparing = false;
      else setImmediate(step);
    };
    setImmediate(step);
  }

  /**
   * Make `snapshot` (built from `v`) the one new requests use: the one path of the first build, a
   * reload, an Admin API change and a rebuild after a secret change. The replaced snapshot is
   * retired (its pools close when its last request finishes); a changed restart-only setting is
   * reported; `why` is logged (the first install logs nothing: the gateway's listen() does).
   */
  install(v: ValidatedConfig, snapshot: Snapshot, why?: string, raw?: DataDocument | IndexedDocument, since?: { started: number; cause: string }): void {
    const old = this.plane.current as Snapshot | undefined;
    if (old) for (const c of restartOnlyChanges(old.config, snapshot.config)) this.logger.warn(c, `${c.setting} changed: takes effect at the next restart`);
    this.validated = v;
    this.raw = raw === undefined || raw instanceof IndexedDocument ? raw : IndexedDocument.of(raw);
    if (this.raw !== undefined && !this.raw.prepared) this.prepareWrites();
    const kind = this.builder.installed(snapshot);
    this.plane.current = snapshot;
    this.expiry.installed(snapshot.tls);
    if (since !== undefined) this.applied.observe({ kind, cause: since.cause }, (performance.now() - since.started) / 1000);
    old?.retire();
    // when a rotation grace in the live snapshot ends, rebuild so the old credential stops working
    const grace = Number.isFinite(snapshot.expiresAt) ? Math.max(0, snapshot.expiresAt - this.clock.now()) + GRACE_MARGIN_MS : Infinity;
    this.queue.delay('grace', grace, () => this.rebuild('rotation grace ended', this.builder.graceEnded(this.clock.now())));
    if (why !== undefined) this.logger.info({ generation: snapshot.generation, routes: snapshot.routes.length }, why);
  }

  /** A reload (Gateway.reload): validated from the store's document again, coalesced with the calls that wait with it. */
  reload(): Promise<ReloadResult> {
    return this.queue.coalesce('reload', () => this.reloadNow('reload'));
  }

  /**
   * Resources the store says another process changed (an etcd watch event, a journal record):
   * applied like a write, without persisting them again. What does not fit is read again whole.
   */
  applyStoreChanges(changes: readonly DataChange[]): Promise<ReloadResult> {
    return this.queue.run(async (): Promise<ReloadResult> => {
      const started = performance.now();
      const doc = this.raw === undefined || changes.some((c) => c.kind === 'secrets') ? undefined : this.raw.apply(changes);
      if (doc !== undefined) {
        const r = await this.applyData(doc, changes, 'config changed in the store', { started, cause: 'store' });
        if (r !== undefined) return r;
      }
      return this.reloadNow('store');
    });
  }

  /**
   * An Admin API write (Gateway.change): `edit` reads and writes the store's document one resource
   * at a time; what it changed is validated, built, persisted, then installed, or else nothing is
   * left behind. Only what it changed is validated, compiled and written when that can be done.
   */
  change(edit: (doc: DocumentEdit, stored?: number) => void, counted?: { kind: DataKind; limit: number }): Promise<ChangeResult> {
    return this.queue.run(async (): Promise<ChangeResult> => {
      const started = performance.now();
      if (this.stopped) return { ok: false, status: 503, message: 'gateway is closing', issues: [] };
      if (!this.store.writeData) return { ok: false, status: 403, message: 'this config store does not take writes', issues: [] };
      let base: IndexedDocument;
      let stored: number | undefined;
      try {
        // 403 for a store that refuses writes by design (readonly), 503 for one that is down; a config
        // file that cannot be read or parsed right now is the same failure as the load: 500
        await this.store.assertWritable?.();
        base = this.raw ?? IndexedDocument.of(await this.store.load());
        // a limit counts what the store holds, every node's writes included, once this node's own
        // view comes near it (another node's writes reach this view within milliseconds)
        const near = counted !== undefined && base.section(counted.kind).length >= counted.limit - LIMIT_SLACK;
        if (near && this.store.count) stored = await this.store.count(counted!.kind);
      } catch (err) {
        // the stored config itself is broken (e.g. a hand-written value in etcd): say where, change nothing
        return this.storeRefusal(err, 'admin change refused: the stored config cannot be read');
      }
      const pending = new DocumentEdit(base);
      try {
        edit(pending, stored);
      } catch (err) {
        return { ok: false, status: (err as { status?: number }).status ?? 400, message: (err as Error).message, issues: [] };
      }
      const changes = pending.changes();
      if (changes.length === 0) return { ok: true };
      const next = base.apply(changes)!;
      let v: ValidatedConfig;
      let snapshot: Snapshot;
      let admitted: Admission | undefined;
      try {
        if (this.raw !== undefined && !changes.some((c) => c.kind === 'secrets')) {
          // the proxy runs on this thread: requests that arrived meanwhile are served between the steps
          await turn();
          v = this.builder.validateChanges(this.validated!, changes, () => next.doc, base.at);
          await turn();
          const built = await this.builder.buildChanges(v, touchedBy(changes), next.at);
          snapshot = built ?? (await this.builder.build(v));
        } else {
          v = this.builder.validate(next.doc);
          // where credentials go is settled before the build contacts any secret backend
          admitted = await this.builder.admit(v);
          snapshot = await this.builder.build(v);
        }
      } catch (err) {
        // a refused change leaves nothing behind: not even the secret backends the build touched, or
        // the bindings it made
        await admitted?.release();
        await this.revert();
        const issues = err instanceof GatehouseError ? err.issues : [];
        // bindings that cannot be read or written (the store is down) are the store's failure, not the write's
        const status = issues.length || !(err instanceof GatehouseError) ? 400 : statusOf(err);
        return { ok: false, status, message: issues.length ? `${issues[0].path}: ${issues[0].message}` : (err as Error).message, issues };
      }
      try {
        if (this.store.writeChanges) await this.store.writeChanges(changes, () => dataSections(next.doc));
        else await this.store.writeData(dataSections(next.doc));
      } catch (err) {
        snapshot.retire();
        await admitted?.release();
        await this.revert();
        // a store's own refusal is answered with its message (an etcd user with a read-only role: 500
        // with etcd's error, as APISIX); anything else is not for the client to read
        return this.storeRefusal(err, 'admin change not persisted', 'the change could not be persisted');
      }
      this.install(v, snapshot, 'admin change applied', next, { started, cause: 'write' });
      return { ok: true };
    });
  }

  /**
   * The live config's resource `id` of `kind`, found where the document it was validated from
   * lists it (the same resources in the same order), or undefined when it has none.
   */
  resource(kind: DataKind, id: string): unknown {
    const config = this.plane.current?.config;
    if (config === undefined || !(kind === 'routes' || kind === 'upstreams' || kind === 'consumers' || kind === 'secrets' || kind === 'ssls')) return undefined;
    // the section, read item by item: asking for the list would make a config's changed section an array
    const section = sectionOf(config, kind);
    const p = this.raw !== undefined && this.validated?.config === config ? this.raw.at(kind, id) : undefined;
    if (p !== undefined && (p === -1 || (p < section.length && idOf(kind, section.get(p)) === id))) return p === -1 ? undefined : section.get(p);
    return section.find((x) => idOf(kind, x) === id);
  }

  /** Swap nothing in any more: drop the pending rebuilds and stop listening to secret changes. */
  close(): void {
    this.stopped = true;
    this.queue.close();
    this.expiry.close();
    this.unsubscribe();
  }

  /** The live config again, with the secret values and the clock of now. */
  private async rebuild(why: string, touched?: Touched): Promise<ReloadResult> {
    const since = { started: performance.now(), cause: why === 'secrets changed' ? 'secret' : 'grace' };
    if (touched !== undefined && !this.stopped) {
      let snapshot: Snapshot | undefined;
      try {
        snapshot = await this.builder.buildChanges(this.validated!, touched, this.raw?.at);
      } catch {
        // what the whole build says about it (a plugin refusing a value fails closed there, logged)
        snapshot = undefined;
      }
      if (snapshot !== undefined) {
        if (this.stopped) {
          snapshot.retire();
          return { ok: false, issues: [], message: 'gateway is closed' };
        }
        this.install(this.validated!, snapshot, why, this.raw, since);
        return { ok: true, generation: snapshot.generation };
      }
    }
    return this.swap(this.validated!, why, this.raw, since);
  }

  /**
   * Data changes whose document is known (`doc`, the live one with them applied): validated and
   * compiled as far as they reach, installed.
   * @returns undefined when only a full reload will do
   */
  private async applyData(doc: IndexedDocument, changes: readonly DataChange[], why: string, since: { started: number; cause: string }): Promise<ReloadResult | undefined> {
    if (this.stopped) return { ok: false, issues: [], message: 'gateway is closed' };
    let v: ValidatedConfig;
    let snapshot: Snapshot | undefined;
    try {
      v = this.builder.validateChanges(this.validated!, changes, () => doc.doc, this.raw?.at);
      snapshot = await this.builder.buildChanges(v, touchedBy(changes), doc.at);
    } catch (err) {
      // refused: the last good config keeps serving; the document this gateway has is no longer the store's
      this.raw = undefined;
      return this.rejected(err);
    }
    if (snapshot === undefined) return undefined;
    if (this.stopped) {
      snapshot.retire();
      return { ok: false, issues: [], message: 'gateway is closed' };
    }
    this.install(v, snapshot, why, doc, since);
    return { ok: true, generation: snapshot.generation };
  }

  /**
   * The store's document read again, inside a job already queued: when only data changed since the
   * live one (an edit of the file's resources, another process's write), that difference is
   * applied; otherwise the whole document.
   */
  private async reloadNow(cause: 'reload' | 'store'): Promise<ReloadResult> {
    const started = performance.now();
    let raw: DataDocument;
    try {
      raw = await (this.store.reload ? this.store.reload() : this.store.load());
    } catch (err) {
      return this.rejected(err);
    }
    const base = this.raw?.doc;
    if (base !== undefined && sameSettings(base, raw)) {
      const changes = diffData(base, raw, sameContent);
      if (changes !== undefined && changes.length > 0 && !changes.some((c) => c.kind === 'secrets')) {
        const r = await this.applyData(IndexedDocument.of({ ...base, ...raw }), changes, 'config reloaded', { started, cause });
        if (r !== undefined) return r;
      }
    }
    return this.reloadWhole(raw, { started, cause });
  }

  /** The document `raw` validated, admitted, built and swapped in whole. */
  private async reloadWhole(raw: DataDocument, since: { started: number; cause: string }): Promise<ReloadResult> {
    let v: ValidatedConfig;
    let admitted: Admission;
    try {
      v = this.builder.validate(raw);
      admitted = await this.builder.admit(v);
    } catch (err) {
      return this.rejected(err);
    }
    const r = await this.swap(v, 'config reloaded', raw, since);
    if (!r.ok) await admitted.release();
    return r;
  }

  /** Build a snapshot of `v` and swap it in atomically. */
  private async swap(v: ValidatedConfig, why: string, raw: DataDocument | IndexedDocument | undefined, since?: { started: number; cause: string }): Promise<ReloadResult> {
    if (this.stopped) return { ok: false, issues: [], message: 'gateway is closed' };
    let snapshot: Snapshot;
    try {
      snapshot = await this.builder.build(v);
    } catch (err) {
      await this.revert();
      return this.rejected(err);
    }
    if (this.stopped) {
      snapshot.retire();
      return { ok: false, issues: [], message: 'gateway is closed' };
    }
    this.install(v, snapshot, why, raw, since);
    return { ok: true, generation: snapshot.generation };
  }

  /** Bring what a refused build touched back in line with the live config. */
  private revert(): Promise<void> {
    return this.builder.revert(this.validated!).catch(() => undefined);
  }

  private rejected(err: unknown): ReloadResult {
    // the store may hold what was refused: the next write reads the stored document again
    this.raw = undefined;
    const issues = err instanceof GatehouseError ? err.issues : [];
    const message = err instanceof Error ? err.message : String(err);
    this.logger.error({ source: this.store.description, errors: issues.length ? issues.map((i) => `${i.path}: ${i.message}`) : [message] }, 'config reload rejected; the last good config keeps serving');
    return { ok: false, issues, message };
  }

  /**
   * The answer to an Admin API write that the config store refused: the coded error's own status
   * and message (errors.ts), logged when it is the server's fault (5xx).
   * @param otherwise the message for an error that is not a store's coded refusal (default: its own)
   */
  private storeRefusal(err: unknown, logged: string, otherwise?: string): ChangeResult {
    const status = statusOf(err);
    const message = (err as Error).message;
    if (status >= 500) this.logger.error({ store: this.store.description, err: message }, logged);
    return { ok: false, status, message: err instanceof GatehouseError || otherwise === undefined ? message : otherwise, issues: [] };
  }
}

/** The resources a list of changes touches. */
function touchedBy(changes: readonly DataChange[]): Touched {
  const t = { consumers: new Set<string>(), routes: new Set<string>(), upstreams: new Set<string>() };
  for (const c of changes) if (c.kind === 'consumers' || c.kind === 'routes' || c.kind === 'upstreams') t[c.kind].add(c.id);
  return t;
}

/** Whether two documents differ in their data sections only. */
function sameSettings(a: DataDocument, b: DataDocument): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)].filter((k) => !(DATA_KINDS as readonly string[]).includes(k)));
  for (const k of keys) if (!sameContent(a[k], b[k])) return false;
  return true;
}

/** Let the event loop serve what is waiting (requests) before the next step of a change. */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
