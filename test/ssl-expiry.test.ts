// Certificate expiry (docs/tls.md, "Expiry"): the gauge gatehouse_ssl_certificate_expiry_timestamp_seconds
// has one series per served certificate and server name, valued at the certificate's notAfter as
// openssl reads it, follows a rotated reference within its ttl and loses a deleted resource's
// series; disabled and client resources have none. The log lines: a warning for a certificate in
// its last 30 days and an error for an expired one (still served), at install and once a day while
// served, none after close (a fake clock drives the gateway's timer). Certificates come from a test
// CA made with openssl (tls-pki.ts); their keys are leak-scan canaries. An expired certificate is
// still served (openssl s_client); `gatehouse validate` warns about certificates ending within 7
// days; with workers: 2 the gauge is merged, not summed.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { request } from 'undici';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bootGateway, delay, eventually, freePort, runCli, startGatehouse, tempDir } from './helpers/harness';
import { makeTestCa, pemBody, type IssuedPair, type TestCa } from './helpers/tls-pki';
import { memProvider } from './helpers/mem-provider';
import { plantCanary } from './helpers/leak-tap';
import { FakeClock } from '../core/testing';
import { aggregateMetrics, createMetrics, type MetricsJson } from '../core/observe/metrics';

const ADMIN_KEY = 'planted-ssl-expiry-admin-key';
const KEY_ENV = 'GH_SSL_EXPIRY_ADMIN_KEY';
const DAY = 86_400_000;
const HOUR = 3_600_000;
const METRIC = 'gatehouse_ssl_certificate_expiry_timestamp_seconds';

let ca: TestCa;

before(() => {
  plantCanary('ssl expiry admin key', ADMIN_KEY);
  process.env[KEY_ENV] = ADMIN_KEY;
  ca = makeTestCa('expiry test CA');
});

/** A certificate's notAfter in ms, as the openssl command reads it (not the code under test). */
function notAfter(p: IssuedPair): number {
  const out = execFileSync('openssl', ['x509', '-enddate', '-noout', '-in', p.certFile], { encoding: 'utf8' });
  const m = /^notAfter=(.+)$/m.exec(out);
  assert.ok(m, out);
  return Date.parse(m[1]);
}

/** The expiry series of a /metrics text: `ssl_id|sni|cert` → value. */
function expirySeries(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${METRIC}{`)) continue;
    const m = /^[^{]+\{(.*)\} (\S+)$/.exec(line);
    assert.ok(m, line);
    const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    assert.deepEqual(Object.keys(labels).sort(), ['cert', 'sni', 'ssl_id'], line);
    out.set(`${labels.ssl_id}|${labels.sni}|${labels.cert}`, Number(m[2]));
  }
  return out;
}

const seconds = (ms: number) => Math.floor(ms / 1000);

test('the expiry gauge: one series per served certificate and name at its notAfter; a rotated reference changes it within the ttl; a deleted resource has none', { timeout: 60000 }, async () => {
  const api = ca.issue('m-api', { names: ['api.example.test'], days: 10 });
  const apiRsa = ca.issue('m-api-rsa', { names: ['api.example.test'], keyType: 'rsa', days: 60 });
  const ref1 = ca.issue('m-ref1', { names: ['ref.example.test'], days: 20 });
  const ref2 = ca.issue('m-ref2', { names: ['ref.example.test'], days: 45 });
  const other = ca.issue('m-other', { names: ['off.example.test'], days: 3 });
  const values = new Map([
    ['ref/cert', ref1.cert],
    ['ref/key', ref1.key],
  ]);
  const g = await bootGateway(
    {
      admin: { key: `$env://${KEY_ENV}` },
      secret_cache: { ttl: 1 },
      secrets: [{ id: 'mem/main' }],
      ssls: [
        { id: 'api', cert: api.cert, key: api.key, certs: [apiRsa.cert], keys: [apiRsa.key], snis: ['api.example.test', '*.API.example.test'] },
        { id: 'ref', cert: '$secret://mem/main/ref/cert', key: '$secret://mem/main/ref/key', snis: ['ref.example.test'] },
        { id: 'off', cert: other.cert, key: other.key, snis: ['off.example.test'], status: 0 },
        { id: 'cli', cert: other.cert, key: other.key, snis: ['off.example.test'], type: 'client' },
      ],
    },
    { extensions: [memProvider(values)], adminListen: '127.0.0.1:0' },
  );
  const admin = `http://127.0.0.1:${g.gw.adminAddress!.port}`;
  const scrape = async () => {
    const r = await request(`${admin}/metrics`);
    assert.equal(r.statusCode, 200);
    return r.body.text();
  };
  try {
    const text = await scrape();
    assert.match(text, new RegExp(`# TYPE ${METRIC} gauge`));
    assert.deepEqual(
      expirySeries(text),
      new Map([
        ['api|api.example.test|cert', seconds(notAfter(api))],
        ['api|*.api.example.test|cert', seconds(notAfter(api))],
        ['api|api.example.test|certs[0]', seconds(notAfter(apiRsa))],
        ['api|*.api.example.test|certs[0]', seconds(notAfter(apiRsa))],
        ['ref|ref.example.test|cert', seconds(notAfter(ref1))],
      ]),
    );
    for (const p of [api, apiRsa, ref1, other]) assert.ok(!text.includes(pemBody(p.key).slice(0, 40)) && !text.includes(pemBody(p.cert).slice(0, 40)), 'no PEM in /metrics');

    // the secret manager rotates the pair: the next refresh (ttl 1 s) rebuilds, and the next scrape has the new date
    values.set('ref/cert', ref2.cert);
    values.set('ref/key', ref2.key);
    const took = await eventually('the rotated certificate in the metric', async () => expirySeries(await scrape()).get('ref|ref.example.test|cert') === seconds(notAfter(ref2)), 15000, 100);
    assert.ok(took < 15000);

    // a written certificate replaces the series of its field; a deleted resource leaves none
    const renewed = ca.issue('m-api2', { names: ['api.example.test'], days: 90 });
    let r = await request(`${admin}/admin/ssls/api`, { method: 'PUT', headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json' }, body: JSON.stringify({ cert: renewed.cert, key: renewed.key, snis: ['api.example.test'] }) });
    assert.equal(r.statusCode, 200, await r.body.text());
    assert.deepEqual(expirySeries(await scrape()), new Map([
      ['api|api.example.test|cert', seconds(notAfter(renewed))],
      ['ref|ref.example.test|cert', seconds(notAfter(ref2))],
    ]));
    r = await request(`${admin}/admin/ssls/ref`, { method: 'DELETE', headers: { 'x-api-key': ADMIN_KEY } });
    assert.equal(r.statusCode, 200, await r.body.text());
    assert.deepEqual(expirySeries(await scrape()), new Map([['api|api.example.test|cert', seconds(notAfter(renewed))]]));
  } finally {
    await g.close();
  }
});

test('log lines: a warning in the last 30 days, an error once expired (still served), at install and once a day; a certificate entering its last 30 days is noticed; nothing after close', { timeout: 60000 }, async () => {
  const soon = ca.issue('l-soon', { names: ['soon.example.test'], days: 10 });
  const gone = ca.issue('l-gone', { names: ['gone.example.test'], expired: true });
  const later = ca.issue('l-later', { names: ['later.example.test'], days: 40 });
  const off = ca.issue('l-off', { names: ['off.example.test'], days: 5 });
  const clock = new FakeClock(Date.now());
  const g = await bootGateway(
    {
      ssls: [
        { id: 'soon', ...pair(soon), snis: ['soon.example.test'] },
        { id: 'gone', ...pair(gone), snis: ['gone.example.test', '*.gone.example.test'] },
        { id: 'later', ...pair(later), snis: ['later.example.test'] },
        { id: 'off', ...pair(off), snis: ['off.example.test'], status: 0 },
      ],
    },
    { clock, timers: clock, listenTls: '127.0.0.1:0' },
  );
  const expiryLines = () => g.logs.lines.filter((l) => typeof l.ssl === 'string' && 'days_left' in l);
  const expect = (p: IssuedPair, id: string, snis: string[]) => ({ level: notAfter(p) <= clock.now() ? 50 : 40, ssl: id, field: 'cert', snis, not_after: new Date(notAfter(p)).toISOString(), days_left: Math.floor((notAfter(p) - clock.now()) / DAY) });
  const shape = (l: Record<string, any>) => ({ level: l.level, ssl: l.ssl, field: l.field, snis: l.snis, not_after: l.not_after, days_left: l.days_left });
  try {
    // at the first install: soon (warn), gone (error, and still served); later and the disabled one: nothing
    assert.deepEqual(expiryLines().map(shape), [expect(soon, 'soon', ['soon.example.test']), expect(gone, 'gone', ['gone.example.test', '*.gone.example.test'])]);
    // an expired certificate is still served: openssl s_client gets it (its notAfter) in a real handshake
    // (asynchronously: the gateway answers in this process)
    const hello = await new Promise<{ stdout: string; stderr: string }>((resolve) => {
      const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${g.gw.tlsAddress!.port}`, '-servername', 'gone.example.test'], { encoding: 'utf8', timeout: 20000 }, (_err, stdout, stderr) => resolve({ stdout, stderr }));
      child.stdin!.end();
    });
    const end = spawnSync('openssl', ['x509', '-noout', '-enddate'], { input: hello.stdout, encoding: 'utf8' });
    assert.equal(Date.parse(end.stdout.trim().replace(/^notAfter=/, '')), notAfter(gone), `s_client: ${hello.stderr.slice(0, 300)}`);
    assert.match(expiryLines()[0].msg, /ends within 30 days/);
    assert.match(expiryLines()[1].msg, /has expired and is still served/);

    // not again within the day; once more when the day has passed
    clock.advance(23 * HOUR);
    assert.equal(expiryLines().length, 2);
    clock.advance(HOUR);
    assert.deepEqual(expiryLines().slice(2).map(shape), [expect(soon, 'soon', ['soon.example.test']), expect(gone, 'gone', ['gone.example.test', '*.gone.example.test'])]);

    // eleven days on: soon has expired (an error now), later entered its last 30 days (a warning, within the hour)
    const at = expiryLines().length;
    // (hour by hour, noting the fake time each line appears at)
    const when = new Map<Record<string, any>, number>();
    for (let h = 0; h < 11 * 24; h++) {
      clock.advance(HOUR);
      for (const l of expiryLines()) if (!when.has(l)) when.set(l, clock.now());
    }
    const since = expiryLines().slice(at);
    const soonLast = since.filter((l) => l.ssl === 'soon').at(-1)!;
    assert.equal(soonLast.level, 50);
    assert.ok(soonLast.days_left < 0);
    const laterFirst = since.find((l) => l.ssl === 'later');
    assert.ok(laterFirst, 'later is warned about once in its last 30 days');
    assert.equal(laterFirst.level, 40);
    assert.equal(laterFirst.days_left, 29);
    // once a day each over 11 days (soon: once more when it turned expired, at once)
    assert.equal(since.filter((l) => l.ssl === 'gone').length, 11);
    const soonLines = since.filter((l) => l.ssl === 'soon');
    assert.ok(soonLines.length >= 10 && soonLines.length <= 12, `soon: ${soonLines.length} lines in 11 days`);
    const turned = soonLines.findIndex((l) => l.level === 50);
    assert.ok(turned > 0 && soonLines.slice(turned).every((l) => l.level === 50), 'warnings, then errors');
    assert.ok(when.get(soonLines[turned])! - notAfter(soon) <= HOUR, 'expired: logged within the hour, not a day after the last warning');
    assert.ok(!since.some((l) => l.ssl === 'off'), 'a disabled resource is not served: no line');
    for (const p of [soon, gone, later, off]) assert.ok(!g.logs.text().includes(pemBody(p.cert).slice(0, 40)), 'no PEM in the log');
  } finally {
    await g.close();
  }
  const closed = expiryLines().length;
  clock.advance(3 * DAY);
  assert.equal(expiryLines().length, closed, 'the timer stopped with the gateway');
});

const pair = (p: IssuedPair) => ({ cert: p.cert, key: p.key });

test('the collected gauge: read at each scrape, gone with its source, and not summed over workers (the earliest date)', async () => {
  const parts: MetricsJson[] = [];
  for (const value of [2000, 1000]) {
    const m = createMetrics();
    let series = [{ labels: { ssl_id: 'a', sni: 'a.test', cert: 'cert' }, value }];
    const remove = m.collected('ssl_certificate_expiry_timestamp_seconds', 'h', ['ssl_id', 'sni', 'cert'], () => series, 'min');
    assert.match(await m.render(), new RegExp(`${METRIC}\\{ssl_id="a",sni="a.test",cert="cert"\\} ${value}`));
    series = [];
    assert.doesNotMatch(await m.render(), new RegExp(`${METRIC}\\{`), 'no series left from the last scrape');
    series = [{ labels: { ssl_id: 'a', sni: 'a.test', cert: 'cert' }, value }];
    parts.push(await m.json());
    remove();
    assert.doesNotMatch(await m.render(), new RegExp(`${METRIC}\\{`), 'a removed source has no series');
  }
  assert.match(await aggregateMetrics(parts), new RegExp(`${METRIC}\\{ssl_id="a",sni="a.test",cert="cert"\\} 1000\\n`));
});

test('gatehouse validate (the CLI on a config file): a served certificate ending within 7 days or ended is a warning with its path, id and date; references resolved; exit 0', { timeout: 60000 }, async () => {
  const soon = ca.issue('v-soon', { names: ['soon.example.test'], days: 5 });
  const gone = ca.issue('v-gone', { names: ['gone.example.test'], expired: true });
  const fine = ca.issue('v-fine', { names: ['fine.example.test'], days: 20 });
  const extra = ca.issue('v-extra', { names: ['fine.example.test'], keyType: 'rsa', days: 3 });
  const ref = ca.issue('v-ref', { names: ['ref.example.test'], days: 2 });
  const off = ca.issue('v-off', { names: ['off.example.test'], days: 1 });
  process.env.GH_EXPIRY_REF_CERT = ref.cert;
  process.env.GH_EXPIRY_REF_KEY = ref.key;
  const dir = tempDir('gatehouse-ssl-expiry-');
  const file = join(dir, 'gatehouse.yaml');
  const ssls = [
    { id: 'fine', ...pair(fine), certs: [extra.cert], keys: [extra.key], snis: ['fine.example.test'] },
    { id: 'soon', ...pair(soon), snis: ['soon.example.test'] },
    { id: 'off', ...pair(off), snis: ['off.example.test'], status: 0 },
    { id: 'gone', ...pair(gone), snis: ['gone.example.test'] },
    { id: 'ref', cert: '$env://GH_EXPIRY_REF_CERT', key: '$env://GH_EXPIRY_REF_KEY', snis: ['ref.example.test'] },
  ];
  writeFileSync(file, JSON.stringify({ ssls }));
  const r = await runCli(['validate', '-c', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${file}: ok (0 routes)\n`);
  const iso = (p: IssuedPair) => new Date(notAfter(p)).toISOString();
  assert.deepEqual(r.stderr.split('\n').filter(Boolean), [
    `warning: ssls[0].certs[0]: the certificate of SSL resource "fine" expires on ${iso(extra)}, within 7 days`,
    `warning: ssls[1].cert: the certificate of SSL resource "soon" expires on ${iso(soon)}, within 7 days`,
    `warning: ssls[3].cert: the certificate of SSL resource "gone" expired on ${iso(gone)} (it is still served)`,
    `warning: ssls[4].cert: the certificate of SSL resource "ref" expires on ${iso(ref)}, within 7 days`,
  ]);

  // nothing ending soon: no warning; an invalid file: its errors, exit 1, as before
  writeFileSync(file, JSON.stringify({ ssls: [ssls[0]].map((s) => ({ ...s, certs: undefined, keys: undefined })) }));
  const quiet = await runCli(['validate', '-c', file]);
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.equal(quiet.stderr, '');
  writeFileSync(file, JSON.stringify({ ssls: [{ ...ssls[1], key: fine.key }] }));
  const bad = await runCli(['validate', '-c', file]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /ssls\[0\]\.key: does not match its certificate \(ssls\[0\]\.cert\)/);
  assert.doesNotMatch(bad.stderr, /warning/);
});

test('workers: 2 — /metrics on any worker shows each certificate\'s date once (merged by min, not summed); each worker logs the warning', { timeout: 60000 }, async () => {
  const soon = ca.issue('w-soon', { names: ['soon.example.test'], days: 12 });
  const [port, adminPort] = [await freePort(), await freePort()];
  const file = join(tempDir('gatehouse-ssl-expiry-'), 'gatehouse.yaml');
  writeFileSync(file, JSON.stringify({ gateway: { listen: `127.0.0.1:${port}`, workers: 2 }, admin: { listen: `127.0.0.1:${adminPort}`, key: ADMIN_KEY }, ssls: [{ id: 'soon', ...pair(soon), snis: ['soon.example.test'] }] }));
  const gw = await startGatehouse(file, port);
  try {
    const warned = () => new Set(gw.logLines().filter((l) => l.ssl === 'soon' && l.level === 40).map((l) => l.worker));
    await eventually('both workers log the warning', () => warned().size === 2, 15000);
    const adminUp = () => new Set(gw.logLines().filter((l) => l.msg === 'gatehouse admin API listening').map((l) => l.worker));
    await eventually('both Admin APIs listen', () => adminUp().size === 2, 15000);
    for (let i = 0; i < 4; i++) {
      // a connection of its own each time: the workers answer in turn
      const r = await request(`http://127.0.0.1:${adminPort}/metrics`, { reset: true });
      assert.equal(r.statusCode, 200);
      assert.deepEqual(expirySeries(await r.body.text()), new Map([['soon|soon.example.test|cert', seconds(notAfter(soon))]]));
      await delay(10);
    }
  } finally {
    await gw.kill();
  }
});
