// Shared test harness: real upstream servers on port 0, a real gateway on port 0, a log capture.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { startGateway, type Gateway, type GatewayOptions } from '../../core/gateway';
import { createLogger } from '../../core/log';
import type { Logger } from '../../core/contracts';

export interface Upstream {
  readonly server: Server;
  readonly port: number;
  /** "127.0.0.1:<port>" — a node key for configs */
  readonly node: string;
  /** Requests seen, in order (method, url, headers). */
  readonly seen: Array<{ method: string; url: string; headers: IncomingMessage['headers'] }>;
  close(): Promise<void>;
}

/** Start an HTTP upstream on 127.0.0.1:0. Default handler: JSON echo of method, url, headers, body size, and `name`. */
export async function startUpstream(handler?: (req: IncomingMessage, res: ServerResponse) => void, name = 'upstream'): Promise<Upstream> {
  const seen: Upstream['seen'] = [];
  const h =
    handler ??
    ((req: IncomingMessage, res: ServerResponse) => {
      let bytes = 0;
      req.on('data', (d: Buffer) => (bytes += d.length));
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ name, method: req.method, url: req.url, headers: req.headers, bytes }));
      });
    });
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    h(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    node: `127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A logger whose JSON lines are kept in memory (and parsed), for asserting on logs. */
export function captureLogger(level = 'info'): { logger: Logger; lines: Array<Record<string, any>>; text: () => string } {
  const lines: Array<Record<string, any>> = [];
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) {
        if (!l) continue;
        raw.push(l);
        try {
          lines.push(JSON.parse(l));
        } catch {
          lines.push({ raw: l });
        }
      }
      cb();
    },
  });
  return { logger: createLogger({ level, destination: sink }), lines, text: () => raw.join('\n') };
}

export interface TestGateway {
  readonly gw: Gateway;
  /** "http://127.0.0.1:<port>" */
  readonly url: string;
  readonly port: number;
  readonly logs: ReturnType<typeof captureLogger>;
  close(): Promise<void>;
}

/** Boot a real gateway on 127.0.0.1:0 from an in-memory config (or any GatewayOptions). */
export async function bootGateway(config: Record<string, unknown>, opts: Partial<GatewayOptions> = {}): Promise<TestGateway> {
  const logs = captureLogger();
  const gw = await startGateway({ config, logger: logs.logger, listen: '127.0.0.1:0', ...opts });
  const port = gw.address.port;
  return { gw, url: `http://127.0.0.1:${port}`, port, logs, close: () => gw.close(1000) };
}

/** Sleep. */
export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
