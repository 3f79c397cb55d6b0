// template-plugin: the header reaches the client on proxied responses; bad config is refused at load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestGateway } from 'gatehouse-gateway/testing';
import templatePlugin from './index';

/** A gateway with one route `/*` proxied to the test kit's echo upstream, using the plugin with `conf`. */
function gatewayWith(conf: Record<string, unknown>) {
  return startTestGateway({
    extensions: [templatePlugin],
    config: (upstream) => ({
      routes: [{ id: 'r', uri: '/*', plugins: { 'template-plugin': conf }, upstream: { nodes: { [upstream]: 1 } } }],
    }),
  });
}

test('adds X-Hello: hello to a proxied response by default', async (t) => {
  const gw = await gatewayWith({});
  t.after(() => gw.close());
  const res = await gw.request('/anything?x=1');
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-hello'), 'hello');
  // the response came from the upstream, which saw the request as sent
  assert.equal(res.json().url, '/anything?x=1');
  assert.equal(gw.upstream.requests.length, 1);
});

test('uses the configured header name and value', async (t) => {
  const gw = await gatewayWith({ header_name: 'X-Served-By', header_value: 'edge-1' });
  t.after(() => gw.close());
  const res = await gw.request('/');
  assert.equal(res.headers.get('x-served-by'), 'edge-1');
  assert.equal(res.headers.get('x-hello'), null);
});

test('refuses an invalid header name at load, naming the route and plugin', async () => {
  await assert.rejects(gatewayWith({ header_name: 'not a header' }), /routes\[0\]\.plugins\.template-plugin/);
});

test('refuses a secret reference in the header at load: every client would get the secret', async () => {
  await assert.rejects(gatewayWith({ header_value: '$env://HOME' }), /routes\[0\]\.plugins\.template-plugin\.header_value: is sent back to clients/);
});

test('refuses an unknown config field at load', async () => {
  await assert.rejects(gatewayWith({ header: 'X-Typo' }), /routes\[0\]\.plugins\.template-plugin/);
});
