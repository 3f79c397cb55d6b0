// The change queue on its own: jobs one at a time in order, a failing job not stopping the next,
// reloads coalesced while they wait, a burst of secret changes rebuilding once, the grace timer
// re-armed by each install, and nothing timed left once closed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChangeQueue } from './change-queue';

/** A job that holds the queue until released. */
function gate(): { job: () => Promise<void>; release: () => void } {
  let release!: () => void;
  const open = new Promise<void>((r) => (release = r));
  return { job: () => open, release };
}

test('jobs run one at a time, in the order queued, and a failing job does not stop the next', async () => {
  const q = new ChangeQueue();
  const log: string[] = [];
  const job = (name: string, ms: number, fail = false) => async () => {
    log.push(`${name} start`);
    await sleep(ms);
    log.push(`${name} end`);
    if (fail) throw new Error(`${name} failed`);
    return name;
  };
  const a = q.run(job('a', 20));
  const b = q.run(job('b', 1, true));
  const c = q.run(job('c', 1));
  assert.equal(await a, 'a');
  await assert.rejects(b, /b failed/);
  assert.equal(await c, 'c');
  assert.deepEqual(log, ['a start', 'a end', 'b start', 'b end', 'c start', 'c end']);
});

test('a coalesced call joins the job of its key that waits its turn, not one that already started', async () => {
  const q = new ChangeQueue();
  let runs = 0;
  const held = gate();
  const busy = q.run(held.job);
  const reload = () => q.coalesce('reload', async () => ++runs);
  const first = reload();
  assert.equal(reload(), first, 'queued behind the busy job: the second call shares the first');
  held.release();
  await busy;
  assert.equal(await first, 1);
  // the first started and finished: a new call builds again, seeing what changed since
  assert.equal(await reload(), 2);
  // a call while the job of its key runs queues a new one after it
  let during: Promise<number> | undefined;
  const started = q.coalesce('reload', async () => {
    during = reload();
    return ++runs;
  });
  assert.equal(await started, 3);
  assert.equal(await during, 4);
});

test('debounce runs one job for a burst, queued behind the running ones', async () => {
  const q = new ChangeQueue();
  const log: string[] = [];
  const held = gate();
  const busy = q.run(() => held.job().then(() => void log.push('busy')));
  for (let i = 0; i < 5; i++) q.debounce('secrets', 5, async () => void log.push(`rebuild ${i}`));
  await sleep(30);
  assert.deepEqual([...log], [], 'the timed job waits for the job before it');
  held.release();
  await busy;
  await q.run(async () => undefined);
  assert.deepEqual([...log], ['busy', 'rebuild 0']);
  // after it fired, the next change arms a new one
  q.debounce('secrets', 5, async () => void log.push('rebuild again'));
  await sleep(30);
  assert.deepEqual(log, ['busy', 'rebuild 0', 'rebuild again']);
});

test('delay replaces the pending job of its key; a delay that is not finite only drops it', async () => {
  const q = new ChangeQueue();
  const log: string[] = [];
  q.delay('grace', 5, async () => void log.push('old'));
  q.delay('grace', 10, async () => void log.push('new'));
  await sleep(40);
  assert.deepEqual(log, ['new']);
  q.delay('grace', 5, async () => void log.push('dropped'));
  q.delay('grace', Infinity, async () => void log.push('never'));
  await sleep(30);
  assert.deepEqual(log, ['new']);
});

test('close drops the pending timed jobs and arms no new ones; queued jobs still run', async () => {
  const q = new ChangeQueue();
  const log: string[] = [];
  q.debounce('secrets', 5, async () => void log.push('rebuild'));
  q.delay('grace', 5, async () => void log.push('grace'));
  q.close();
  q.debounce('secrets', 1, async () => void log.push('rebuild after close'));
  q.delay('grace', 1, async () => void log.push('grace after close'));
  assert.equal(await q.run(async () => 'queued'), 'queued');
  await sleep(30);
  assert.deepEqual(log, []);
});
