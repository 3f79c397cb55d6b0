// The build counters of a gateway's /metrics (docs/performance.md): how many snapshot builds, which
// objects they compiled, consumer index and router builds — what tests read to show that a change
// rebuilt only what it should.
import { request } from 'undici';

/** `name{labels}` → value of every build counter, read from the Admin listener at `adminUrl` (`http://host:port`). */
export async function buildCounters(adminUrl: string): Promise<Map<string, number>> {
  const r = await request(`${adminUrl}/metrics`);
  const out = new Map<string, number>();
  for (const line of (await r.body.text()).split('\n')) {
    const m = /^gatehouse_(snapshot_builds_total|build_compiled_total|consumer_index_builds_total|router_builds_total)(\{[^}]*\})? (\d+)/.exec(line);
    if (m) out.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  }
  return out;
}
