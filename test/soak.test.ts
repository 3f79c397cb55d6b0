// The soak in short (test/soak/soak.ts has the timing model; `npm run soak` runs the full 70 s):
// a `gatehouse start` process at a fixed rate while Vault keys rotate and the config file is
// edited; no current or in-grace key is refused, no expired key passes, RSS stays flat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLASSES, formatFigures, runSoak, SHORT_SOAK } from './soak/soak';

test('soak (short): key rotation in Vault and config edits under a fixed request rate, with exact key verdicts and flat RSS', { timeout: 90_000 }, async (t) => {
  const f = await runSoak(SHORT_SOAK);
  t.diagnostic(`\n${formatFigures(f)}`);
  // violations also hold the checks without a figure of their own here: the upstream saw exactly the
  // accepted requests, no reload was rejected, no key or token in the gateway's output
  assert.deepEqual(f.violations, []);
  for (const cls of CLASSES) {
    const c = f.classes[cls];
    assert.ok(c.sent > 0, `${cls} keys were sent`);
    assert.equal(c.other, 0, `${cls}: every answer was the upstream's or a 401`);
  }
  assert.equal(f.classes.current.rejected, 0, 'no current key was refused');
  assert.equal(f.classes.inGrace.rejected, 0, 'no key in its grace was refused');
  assert.equal(f.classes.expired.accepted, 0, 'no expired key was accepted');
  assert.ok(f.classes.current.accepted > 0 && f.classes.inGrace.accepted > 0 && f.classes.expired.rejected > 0, 'each class was judged');
  assert.ok(f.rotations >= 5 * SHORT_SOAK.consumers, `the keys rotated (${f.rotations})`);
  assert.ok(f.reloads >= 3 && f.reloadsApplied === f.reloads, `every config edit was served (${f.reloadsApplied}/${f.reloads})`);
  assert.ok(f.rss.growthPct < SHORT_SOAK.maxRssGrowthPct, `RSS grew ${f.rss.growthPct.toFixed(1)} %`);
});
