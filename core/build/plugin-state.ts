// Plugin state that outlives config reloads (services.state), released when no config uses it.
//
// Every snapshot build takes a StateHold; each key a plugin gets through that build's services is
// counted once for it. The snapshot lets go of its hold when it is released (replaced, and its last
// request done), and a key no hold counts any more is disposed then. So a key the new config
// still gets (limit-count's counters for an unchanged window) lives on across the reload, and one
// it no longer gets (a Redis connection made with a password that has since rotated) is closed
// once the requests of the old config are finished, instead of living until the gateway closes.
//
// State of one build only (limit-count's check that the routes of a group agree) is not kept here:
// it is the plugin's `buildStart` value (services.build), made and dropped by the build itself
// (build/snapshot.ts), so nothing of it is counted, held or disposed.
import type { Logger, PluginState } from '../contracts';

interface StateEntry {
  readonly value: unknown;
  readonly dispose: ((value: any) => void | Promise<void>) | undefined;
  /** Holds that count this entry. */
  holders: number;
}

/** What one snapshot build got from the plugins' state; released with the snapshot. */
export class StateHold {
  /** Entries this hold counts, with where they are stored. */
  readonly entries = new Map<StateEntry, { plugin: string; key: string }>();
  released = false;
  /** The snapshots that keep this hold (an incremental build keeps the holds of the routes it did not touch). */
  private refs = 1;
  constructor(private readonly owner: PluginStates) {}

  /** One more snapshot keeps this hold. */
  retain(): void {
    if (!this.released) this.refs++;
  }

  /** A snapshot keeping it is done; the last one lets go of every entry it counts. */
  release(): void {
    if (this.released || --this.refs > 0) return;
    this.released = true;
    this.owner.releaseHold(this);
  }
}

export class PluginStates {
  private readonly plugins = new Map<string, Map<string, StateEntry>>();
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly logger: Logger) {}

  hold(): StateHold {
    return new StateHold(this);
  }

  /** The state of `plugin` as one build sees it: what it gets is counted for `hold`. */
  view(plugin: string, hold: StateHold | undefined): PluginState {
    let values = this.plugins.get(plugin);
    if (!values) this.plugins.set(plugin, (values = new Map()));
    const vals = values;
    return {
      get: <T>(key: string, init: () => T, dispose?: (value: T) => void | Promise<void>): T => {
        let e = vals.get(key);
        if (!e) vals.set(key, (e = { value: init(), dispose, holders: 0 }));
        // a hold already released (a plugin calling from an old config's timer) does not count:
        // the entry then lives until a later hold lets go of it, or the gateway closes
        if (hold !== undefined && !hold.released && !hold.entries.has(e)) {
          hold.entries.set(e, { plugin, key });
          e.holders++;
        }
        return e.value as T;
      },
      delete: async (key: string): Promise<void> => {
        const e = vals.get(key);
        if (!e) return;
        vals.delete(key);
        await e.dispose?.(e.value);
      },
    };
  }

  /** @internal called by StateHold.release */
  releaseHold(hold: StateHold): void {
    for (const [e, where] of hold.entries) {
      if (--e.holders > 0) continue;
      const vals = this.plugins.get(where.plugin);
      // deleted meanwhile (and maybe created again: that is another entry)
      if (vals?.get(where.key) !== e) continue;
      vals.delete(where.key);
      this.disposeLater(where.plugin, e);
    }
    hold.entries.clear();
  }

  private disposeLater(plugin: string, e: StateEntry): void {
    if (!e.dispose) return;
    const p = (async () => {
      try {
        await e.dispose!(e.value);
      } catch (err) {
        this.logger.warn({ plugin, err: (err as Error).message }, 'plugin state dispose failed');
      }
    })();
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** Dispose of everything (the gateway closes); waits for disposals already started. */
  async closeAll(): Promise<void> {
    for (const [plugin, vals] of this.plugins) {
      for (const e of vals.values()) this.disposeLater(plugin, e);
      vals.clear();
    }
    this.plugins.clear();
    await Promise.all([...this.pending]);
  }
}
