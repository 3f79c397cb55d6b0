// Peer of the bench: fastify + @fastify/http-proxy (reply-from over undici, keep-alive to the upstream),
// proxying /ip to the upstream with the same API-key check as the others, done in a preHandler hook
// (the plugin's documented place for authentication). Env: UPSTREAM_PORT, API_KEY. Reports its port over IPC.
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import proxy from '@fastify/http-proxy';

async function main(): Promise<void> {
  const consumers = new Map([[process.env.API_KEY ?? '', 'bench']]);
  const app = Fastify({ logger: false });
  await app.register(proxy, {
    upstream: `http://127.0.0.1:${process.env.UPSTREAM_PORT}`,
    prefix: '/ip',
    rewritePrefix: '/ip',
    async preHandler(req: FastifyRequest, reply: FastifyReply): Promise<void> {
      const key = req.headers.apikey;
      const consumer = typeof key === 'string' ? consumers.get(key) : undefined;
      if (consumer === undefined) {
        await reply.code(401).send({ message: 'Invalid API key in request' });
        return;
      }
      req.headers['x-consumer-username'] = consumer;
    },
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  process.send?.({ port: (app.server.address() as AddressInfo).port });
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}

void main();
