// gateway.workers: several processes (node:cluster) share the listener; SIGTERM drains them all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { freePort, startGatehouse, tempDir, delay } from './helpers/harness';

test('workers: 2 runs two worker processes that both serve, and SIGTERM stops them all with exit 0', { timeout: 60000 }, async () => {
  const port = await freePort();
  const dir = tempDir();
  const file = join(dir, 'gatehouse.yaml');
  writeFileSync(file, `gateway: { listen: "127.0.0.1:${port}", workers: 2 }\nroutes:\n  - id: hi\n    uri: /hi\n    plugins: { mocking: { response_example: hi } }\n`);
  const gw = await startGatehouse(file, port);
  try {
    // both workers must be up before counting; new connections are spread over them
    const seen = new Set<number>();
    for (let round = 0; round < 40 && seen.size < 2; round++) {
      const agent = new Agent({ pipelining: 0 });
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          const r = await request(`http://127.0.0.1:${port}/hi`, { dispatcher: agent, reset: true });
          assert.equal(await r.body.text(), 'hi');
        }),
      );
      await agent.close();
      await delay(50);
      for (const l of gw.logLines()) if (l.type === 'access' && typeof l.worker === 'number') seen.add(l.worker);
    }
    assert.deepEqual([...seen].sort(), [1, 2], 'both workers answered requests');
    gw.child.kill('SIGTERM');
    const { code } = await gw.exited;
    assert.equal(code, 0);
    await assert.rejects(request(`http://127.0.0.1:${port}/hi`), /ECONNREFUSED/);
  } finally {
    await gw.kill();
  }
});
