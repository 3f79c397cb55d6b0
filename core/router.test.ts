// Router internals: one tree serves every method when no route restricts methods; a route that
// does restrict them switches to per-method trees with the same answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRouter } from './router';

const route = (id: string, uri: string, methods?: string[], priority = 0) => ({ id, uris: [uri], methods, priority });

test('without method restrictions every method (even one outside the usual list) finds the same routes', () => {
  const r = buildRouter([route('exact', '/a/x'), route('param', '/a/:id'), route('prefix', '/p/*')]);
  for (const m of ['GET', 'POST', 'DELETE', 'HEAD', 'OPTIONS', 'PROPFIND']) {
    assert.equal(r.find(m, '', '/a/x')?.route.id, 'exact', m);
    assert.equal(r.find(m, '', '/a/7')?.route.id, 'param', m);
    assert.equal(r.find(m, '', '/a/7')?.params.id, '7', m);
    assert.equal(r.find(m, '', '/p/q/r')?.route.id, 'prefix', m);
    assert.equal(r.find(m, '', '/nope'), null, m);
  }
});

test('with one restricted route the others still answer every listed method, and the restriction holds', () => {
  const r = buildRouter([route('get-only', '/a/x', ['GET']), route('param', '/a/:id')]);
  assert.equal(r.find('GET', '', '/a/x')?.route.id, 'get-only');
  assert.equal(r.find('POST', '', '/a/x')?.route.id, 'param', 'POST /a/x falls to the param route, as in a per-method tree');
  assert.equal(r.find('DELETE', '', '/a/9')?.route.id, 'param');
});
