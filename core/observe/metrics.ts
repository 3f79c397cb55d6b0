// Metrics: a prom-client registry per gateway behind the Metrics contract.
import { AggregatorRegistry, Registry, Counter as PCounter, Histogram as PHistogram, Gauge as PGauge } from 'prom-client';
import type { Counter, Gauge, Histogram, Metrics } from '../contracts';

type Any = PCounter<string> | PHistogram<string> | PGauge<string>;

/** One registry's metrics as plain JSON (`Registry.getMetricsAsJSON()`), safe to send over IPC. */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** One series of a {@link LocalMetrics.collected} gauge: its labels and value. */
export interface Series<L extends string> {
  readonly labels: Readonly<Record<L, string>>;
  readonly value: number;
}

/** The Metrics contract plus what a node:cluster worker sends its primary for aggregation. */
export interface LocalMetrics extends Metrics {
  /** Every metric of this registry as JSON, for {@link aggregateMetrics}. */
  json(): Promise<MetricsJson>;
  /**
   * A gauge whose series are read at each scrape (prom-client's `collect`): exactly the series
   * `read` gives then, none left from an earlier scrape, nothing recorded in between. Several
   * sources of one name add their series.
   * @param aggregator how a cluster primary merges the workers' values (prom-client's: 'sum', 'min', 'max', 'first'…)
   * @returns a function that removes this source (its series are gone from the next scrape)
   */
  collected<L extends string>(name: string, help: string, labelNames: readonly L[], read: () => Iterable<Series<L>>, aggregator?: 'sum' | 'min' | 'max' | 'first' | 'average' | 'omit'): () => void;
}

/** Whether `m` is a registry made by {@link createMetrics} (an embedder may pass its own Metrics). */
export function isLocalMetrics(m: Metrics): m is LocalMetrics {
  return typeof (m as Partial<LocalMetrics>).collected === 'function';
}

/** Create an isolated metrics registry (never the prom-client global one). */
export function createMetrics(prefix = 'gatehouse_'): LocalMetrics {
  const registry = new Registry();
  const made = new Map<string, Any>();
  /** The sources of each collected gauge, by full name. */
  const sources = new Map<string, Set<() => Iterable<Series<string>>>>();
  const named = (n: string) => (n.startsWith(prefix) ? n : prefix + n);
  function get<T extends Any>(name: string, make: () => T): T {
    const full = named(name);
    let m = made.get(full);
    if (!m) {
      m = make();
      made.set(full, m);
    }
    return m as T;
  }
  return {
    counter<L extends string>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
      return get(name, () => new PCounter({ name: named(name), help, labelNames: [...labelNames], registers: [registry] })) as unknown as Counter<L>;
    },
    histogram<L extends string>(name: string, help: string, labelNames: readonly L[] = [], buckets?: number[]): Histogram<L> {
      return get(name, () => new PHistogram({ name: named(name), help, labelNames: [...labelNames], registers: [registry], ...(buckets ? { buckets } : {}) })) as unknown as Histogram<L>;
    },
    gauge<L extends string>(name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
      return get(name, () => new PGauge({ name: named(name), help, labelNames: [...labelNames], registers: [registry] })) as unknown as Gauge<L>;
    },
    collected<L extends string>(name: string, help: string, labelNames: readonly L[], read: () => Iterable<Series<L>>, aggregator: 'sum' | 'min' | 'max' | 'first' | 'average' | 'omit' = 'sum'): () => void {
      const full = named(name);
      let mine = sources.get(full);
      if (!mine) {
        const set = (mine = new Set());
        sources.set(full, set);
        get(name, () => {
          return new PGauge({
            name: full,
            help,
            labelNames: [...labelNames],
            registers: [registry],
            aggregator,
            collect(this: PGauge<string>) {
              this.reset();
              for (const source of set) for (const s of source()) this.set(s.labels, s.value);
            },
          });
        });
      }
      const source = read as () => Iterable<Series<string>>;
      mine.add(source);
      return () => void mine.delete(source);
    },
    render: () => registry.metrics(),
    contentType: registry.contentType,
    json: () => registry.getMetricsAsJSON(),
  };
}

/** Content-Type of {@link aggregateMetrics}' output (the same as a single registry's). */
export const AGGREGATED_CONTENT_TYPE: string = Registry.PROMETHEUS_CONTENT_TYPE;

/**
 * Prometheus text of several registries' JSON merged with prom-client's AggregatorRegistry
 * semantics: values with the same name and labels are combined by each metric's `aggregator`
 * (counters, histograms and, by default, gauges are summed).
 */
export function aggregateMetrics(parts: readonly MetricsJson[]): Promise<string> {
  return AggregatorRegistry.aggregate([...parts]).metrics();
}
