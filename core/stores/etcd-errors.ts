// What an etcd failure means, in one line an operator can act on: refused credentials or
// permissions (waiting will not help), a TLS handshake that failed and why, or etcd unreachable,
// from the gRPC and Node TLS messages etcd3 passes on. Never a credential.
import { EtcdAuthenticationFailedError, EtcdPermissionDeniedError } from 'etcd3';
import { GatehouseError, withoutNodeCaHint } from '../errors';

/** The first line of an error's message, without Node 24's --use-system-ca hint (see withoutNodeCaHint). */
export function firstLine(err: unknown): string {
  return withoutNodeCaHint(((err as { message?: string }).message ?? String(err)).split('\n')[0]);
}

/**
 * gRPC's message without its status prefix and trailing resolution note:
 * "14 UNAVAILABLE: No connection established. Last error: … Resolution note: " → "No connection established. Last error: …".
 */
function grpcCause(line: string): string {
  const cleaned = line.replace(/^\d+ [A-Z_]+: /, '').replace(/\s*Resolution note:.*$/, '').trim();
  return cleaned === '' ? line : cleaned;
}

/**
 * What a failed TLS handshake means, from gRPC's "Last error: …" (Node's TLS error); undefined when it was no TLS failure.
 * @param withCa whether config_store.tls.ca is set (else Node's default CAs verify etcd)
 */
function tlsCause(message: string, withCa: boolean): string | undefined {
  const last = withoutNodeCaHint(/Last error: (?:Error: )?(.*?)(?: \(\d{4}-[^)]*\))?(?:\. Resolution note|$)/m.exec(message)?.[1] ?? '');
  const alert = /alert ([a-z ]+?)(?::|$)/.exec(last)?.[1];
  if (alert) return `etcd refused the TLS handshake (alert: ${alert}): it requires a client certificate signed by a CA it trusts (config_store.tls.cert and key)`;
  if (/certificate|self[- ]signed|issuer|Hostname\/IP does not match/i.test(last)) {
    // without tls.ca, Node's built-in CAs (plus NODE_EXTRA_CA_CERTS) verify etcd, not the operating system's store
    const signer = withCa ? 'config_store.tls.ca' : 'a CA Node.js trusts by default (set config_store.tls.ca to the CA that signed it)';
    return `certificate verify failed (${last}): etcd's server certificate is not signed by ${signer} or does not name the endpoint's host`;
  }
  if (/wrong version number|packet length too long|EPROTO/i.test(last)) return `TLS handshake failed (${last}): is the endpoint http://?`;
  return undefined;
}

/**
 * One line naming etcd, its endpoints and the cause; never a credential. Refused credentials or
 * permissions are GH_ERR_STORE_DENIED (waiting will not help); anything else, TLS failures
 * included, is GH_ERR_STORE_UNAVAILABLE.
 * @param root the prefix with its trailing slash
 */
export function etcdFailure(err: unknown, doing: 'read' | 'write', o: { readonly endpoints: readonly string[]; readonly auth?: { readonly username: string }; readonly tls?: { readonly ca?: Buffer } }, root: string): GatehouseError {
  const where = `etcd ${o.endpoints.join(',')}`;
  const msg = (err as { message?: string }).message ?? String(err);
  const who = o.auth ? `etcd user "${o.auth.username}"` : 'this client (no config_store.user)';
  if (err instanceof EtcdAuthenticationFailedError) return new GatehouseError('GH_ERR_STORE_DENIED', `${where}: authentication failed, invalid user ID or password (config_store.user "${o.auth?.username ?? ''}")`);
  if (err instanceof EtcdPermissionDeniedError) {
    return new GatehouseError('GH_ERR_STORE_DENIED', `${where}: permission denied: ${who} may not ${doing} under ${root} (grant its role ${doing === 'write' ? 'readwrite' : 'read'} on that prefix)`);
  }
  if (msg.includes('etcdserver: user name is empty')) return new GatehouseError('GH_ERR_STORE_DENIED', `${where}: authentication is enabled on etcd and this client has no credentials (set config_store.user and password)`);
  if (msg.includes('etcdserver: authentication is not enabled')) return new GatehouseError('GH_ERR_STORE_DENIED', `${where}: config_store.user is set but authentication is not enabled on etcd`);
  const tls = tlsCause(msg, o.tls?.ca !== undefined);
  if (tls) return new GatehouseError('GH_ERR_STORE_UNAVAILABLE', `${where}: ${tls}`);
  return new GatehouseError('GH_ERR_STORE_UNAVAILABLE', `${where}: ${grpcCause(firstLine(err))}`);
}
