// When the served certificates end: the gauge `gatehouse_ssl_certificate_expiry_timestamp_seconds`
// (one series per served certificate and server name, read from the installed TLS table at each
// scrape: nothing on the request path, no series left by a deleted resource), and the log lines
// of a certificate that ends within 30 days (warn) or has ended (error, still served), at the
// install that brings it and then once a day per certificate while it is served (docs/tls.md,
// "Expiry"). Never a PEM or a key in a label or a log line: the SSL resource's id, the field, the
// names and the dates only.
import 'reflect-metadata';
import { inject, injectable } from 'tsyringe';
import type { Clock, Logger, Metrics } from '../contracts';
import { isLocalMetrics, type Series } from '../observe/metrics';
import type { ServedCertificate, TlsEntry, TlsTable } from '../request/tls-table';
import { CLOCK, LOGGER, METRICS, TIMERS, type Timers } from '../tokens';

const DAY_MS = 86_400_000;
/** How long before a certificate's notAfter the warnings start. */
export const EXPIRY_WARNING_DAYS = 30;
/** How often the installed certificates are looked at again (a certificate entering its last 30 days is noticed within this). */
export const EXPIRY_CHECK_MS = 3_600_000;
/** How often one certificate is logged again while it stays served. */
export const EXPIRY_REPEAT_MS = DAY_MS;

type Label = 'ssl_id' | 'sni' | 'cert';

/** Every certificate a table serves, with its resource's entry and names. */
export function* servedCertificates(table: TlsTable | undefined): Iterable<{ entry: TlsEntry; snis: readonly string[]; certificate: ServedCertificate }> {
  for (const { entry, snis } of table?.served ?? []) for (const certificate of entry.certificates ?? []) yield { entry, snis, certificate };
}

/** A served certificate that ends within some days, or has ended: where it is in the config, and when. */
export interface EndingCertificate {
  /** `ssls[2].cert`, `ssls[2].certs[0]`. */
  readonly path: string;
  readonly sslId: string;
  readonly notAfter: number;
}

/**
 * The certificates `table` serves that end within `days` of `now` or have ended, in config order
 * (`gatehouse validate`'s warnings). A resource is found in `ssls` by its id.
 */
export function endingCertificates(table: TlsTable, ssls: readonly { id: string }[], now: number, days: number): EndingCertificate[] {
  const out: EndingCertificate[] = [];
  for (const { entry, certificate } of servedCertificates(table)) {
    if (certificate.notAfter - now > days * DAY_MS) continue;
    out.push({ path: `ssls[${ssls.findIndex((s) => s.id === entry.sslId)}].${certificate.field}`, sslId: entry.sslId, notAfter: certificate.notAfter });
  }
  return out;
}

/** The expiry metric and warnings of one gateway's served certificates. */
@injectable()
export class CertificateExpiry {
  /** The TLS table of the installed snapshot (undefined before the first install and after close). */
  private table: TlsTable | undefined;
  /** When each certificate (SSL id, field, notAfter, expired or not) was last logged. */
  private readonly logged = new Map<string, number>();
  private timer: unknown;
  private readonly removeSource: () => void;

  constructor(
    @inject(LOGGER) private readonly logger: Logger,
    @inject(CLOCK) private readonly clock: Clock,
    @inject(TIMERS) private readonly timers: Timers,
    @inject(METRICS) metrics: Metrics,
  ) {
    // an embedder's own Metrics has no scrape-time gauge: no expiry metric there (docs/tls.md)
    this.removeSource = isLocalMetrics(metrics)
      ? metrics.collected<Label>('ssl_certificate_expiry_timestamp_seconds', 'When each served certificate ends (its notAfter, Unix seconds), by SSL resource, server name and field (cert, certs[0]...)', ['ssl_id', 'sni', 'cert'], () => this.series(), 'min')
      : () => undefined;
  }

  /** `table` is the one handshakes use now: log what ends soon among its certificates, and keep looking while it serves. */
  installed(table: TlsTable): void {
    this.table = table;
    this.check();
    if (this.timer === undefined && table.served.length > 0) this.schedule();
  }

  /** Stop the timer; the metric has no series any more. */
  close(): void {
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.timer = undefined;
    this.table = undefined;
    this.removeSource();
  }

  private schedule(): void {
    this.timer = this.timers.set(() => {
      this.timer = undefined;
      if (this.table === undefined) return;
      this.check();
      this.schedule();
    }, EXPIRY_CHECK_MS);
  }

  /** One series per served certificate and name. */
  private *series(): Iterable<Series<Label>> {
    for (const { entry, snis, certificate: c } of servedCertificates(this.table)) for (const sni of snis) yield { labels: { ssl_id: entry.sslId, sni, cert: c.field }, value: Math.floor(c.notAfter / 1000) };
  }

  /** Log each served certificate within its last 30 days (or past them) not logged in the last day. */
  private check(): void {
    const now = this.clock.now();
    const seen = new Set<string>();
    for (const { entry, snis, certificate: c } of servedCertificates(this.table)) {
      const left = c.notAfter - now;
      if (left > EXPIRY_WARNING_DAYS * DAY_MS) continue;
      // (expiring turns into expired: logged at once, as an error)
      const key = JSON.stringify([entry.sslId, c.field, c.notAfter, left <= 0]);
      seen.add(key);
      const last = this.logged.get(key);
      if (last !== undefined && now - last < EXPIRY_REPEAT_MS) continue;
      this.logged.set(key, now);
      const line = { ssl: entry.sslId, field: c.field, snis, not_after: new Date(c.notAfter).toISOString(), days_left: Math.floor(left / DAY_MS) };
      if (left <= 0) this.logger.error(line, 'an SSL certificate has expired and is still served: clients that check dates refuse it; replace it');
      else this.logger.warn(line, `an SSL certificate ends within ${EXPIRY_WARNING_DAYS} days: replace it before then`);
    }
    // a certificate no longer served (replaced, deleted) is forgotten: served again, it is logged again
    for (const key of this.logged.keys()) if (!seen.has(key)) this.logged.delete(key);
  }
}
