// The settings read once, when the gateway starts: its listeners and their options, the process
// model, the store, the logger, loaded modules. A new config that changes one keeps the old value
// until the next restart, and says so; every other setting applies with the snapshot that carries it.
import type { GatewayConfig } from './types';

/** Each restart-only setting: its path, how to read it, and whether its value may be logged. */
export const RESTART_ONLY: ReadonlyArray<{ readonly path: string; readonly get: (c: GatewayConfig) => unknown; readonly shown: boolean }> = [
  // a module cannot be unloaded from a running process
  { path: 'extensions', get: (c) => c.extensions, shown: true },
  { path: 'gateway.listen', get: (c) => c.gateway.listen, shown: true },
  { path: 'gateway.listen_tls', get: (c) => c.gateway.listen_tls, shown: true },
  { path: 'gateway.http2', get: (c) => c.gateway.http2, shown: true },
  { path: 'gateway.workers', get: (c) => c.gateway.workers, shown: true },
  { path: 'gateway.client_header_timeout', get: (c) => c.gateway.client_header_timeout, shown: true },
  { path: 'gateway.log_level', get: (c) => c.gateway.log_level, shown: true },
  { path: 'admin.listen', get: (c) => c.admin?.listen, shown: true },
  { path: 'admin.allow', get: (c) => c.admin?.allow, shown: true },
  // TLS on or off, and client certificates asked or not (the certificate, key and CA themselves apply live)
  { path: 'admin.tls', get: (c) => (c.admin?.tls === undefined ? 'off' : c.admin.tls.client_ca === undefined ? 'on' : 'on, with client_ca'), shown: true },
  // may hold an encryption key or a password
  { path: 'config_store', get: (c) => c.config_store, shown: false },
];

/**
 * The restart-only settings `next` changes from `live`, in {@link RESTART_ONLY}'s order, each with
 * its new value when that may be logged.
 */
export function restartOnlyChanges(live: GatewayConfig, next: GatewayConfig): Array<{ setting: string; value?: unknown }> {
  const out: Array<{ setting: string; value?: unknown }> = [];
  for (const s of RESTART_ONLY) {
    const value = s.get(next);
    if (JSON.stringify(value) === JSON.stringify(s.get(live))) continue;
    out.push(s.shown ? { setting: s.path, value } : { setting: s.path });
  }
  return out;
}
