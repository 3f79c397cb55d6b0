// Config validation: exact issue paths and messages, every issue in one pass, YAML parse positions,
// defaults and normalisation (including what the compiled snapshot derives from them).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import mocking from '../../plugins/mocking';
import proxyRewrite from '../../plugins/proxy-rewrite';
import envProvider from '../../providers/env';
import vaultProvider from '../../providers/vault';
import awsProvider from '../../providers/aws';
import { SENT_TO_CLIENT } from '../contracts';
import { definePlugin } from '../sdk';
import { banner } from '../../test/helpers/plugins';
import { GatehouseError, type ConfigIssue } from '../errors';
import { Gateway } from '../gateway';
import { silentLogger } from '../observe/log';
import { parseConfigText } from './loader';
import { createRegistry } from './registry';
import { validateConfig } from './validate';

const registry = createRegistry([mocking, proxyRewrite], [envProvider, vaultProvider, awsProvider]);
const NODES = { '127.0.0.1:8080': 1 };

/** The issues of an invalid document, as `path: message` lines. */
function issuesOf(doc: unknown): string[] {
  const r = validateConfig(doc, registry);
  assert.ok(r.issues, 'expected the document to be rejected');
  return r.issues.map((i: ConfigIssue) => (i.path ? `${i.path}: ${i.message}` : i.message));
}

function valid(doc: unknown) {
  const r = validateConfig(doc, registry);
  assert.deepEqual(r.issues, undefined);
  return r.config!;
}

function parseError(text: string, source = 'gatehouse.yaml'): GatehouseError {
  try {
    parseConfigText(text, source);
  } catch (err) {
    assert.ok(err instanceof GatehouseError);
    return err;
  }
  assert.fail('expected a parse error');
}

describe('createRegistry', () => {
  test('exposes plugins by name with a compiled route check, and provider checks by manager', () => {
    assert.equal(registry.plugins.get('mocking'), mocking);
    assert.equal(typeof registry.pluginCheck('mocking'), 'function');
    assert.equal(registry.pluginCheck('nope'), undefined);
    assert.equal(registry.pluginConsumerCheck('mocking'), undefined);
    assert.equal(typeof registry.providerCheck('env'), 'function');
    assert.equal(typeof registry.providerCheck('vault'), 'function');
    assert.equal(registry.providerCheck('gcp'), undefined);
  });

  test('a compiled plugin check reports paths under the given base and applies defaults', () => {
    const check = registry.pluginCheck('mocking')!;
    assert.deepEqual(check({ response_status: 'x' }, 'base.mocking'), [{ path: 'base.mocking.response_status', message: 'must be an integer' }]);
    const conf: Record<string, unknown> = {};
    assert.deepEqual(check(conf, 'x'), []);
    assert.equal(conf.response_status, 200);
  });
});

describe('validateConfig issues', () => {
  test('an empty nodes map is reported with its path and the exact message', () => {
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uri: '/', upstream: { nodes: {} } }] }), ['routes[0].upstream.nodes: must have at least 1 entry']);
  });

  test('durations a Node timer cannot hold (over 2147483 s, about 24.8 days) are refused with their path', () => {
    const up = { nodes: NODES, timeout: { read: 2147484 }, keepalive_pool: { idle_timeout: 3e9 }, checks: { passive: { cooldown: 1e12 } } };
    const issues = issuesOf({ gateway: { drain_timeout: 2147484 }, routes: [{ id: 'r', uri: '/', upstream: up }] });
    for (const path of ['gateway.drain_timeout', 'routes[0].upstream.timeout.read', 'routes[0].upstream.keepalive_pool.idle_timeout', 'routes[0].upstream.checks.passive.cooldown']) {
      assert.ok(issues.some((i) => i.startsWith(`${path}: must be <= 2147483`)), `${path} in ${JSON.stringify(issues)}`);
    }
    valid({ gateway: { drain_timeout: 2147483 }, routes: [{ id: 'r', uri: '/', upstream: { nodes: NODES, timeout: { read: 2147483 } } }] });
  });

  test('an empty nodes list is reported with the same message', () => {
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uri: '/', upstream: { nodes: [] } }] }), ['routes[0].upstream.nodes: must have at least 1 entry']);
  });

  test('an empty nodes map in upstreams is reported under upstreams', () => {
    assert.deepEqual(issuesOf({ upstreams: [{ id: 'u', nodes: {} }] }), ['upstreams[0].nodes: must have at least 1 entry']);
  });

  test('unknown fields are rejected at every level', () => {
    assert.deepEqual(issuesOf({ gatway: {} }), ['gatway: is not a known field']);
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uri: '/', upstream: { nodes: NODES, retry: 1 } }] }), ['routes[0].upstream.retry: is not a known field']);
    // a misspelt uri is both unknown and leaves the route without one
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', urii: '/', upstream: { nodes: NODES } }] }), ['routes[0].urii: is not a known field', 'routes[0].uri: is required']);
  });

  test('an unknown plugin is named with its path', () => {
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uri: '/', plugins: { 'key-auht': {} } }] }), ['routes[0].plugins.key-auht: unknown plugin "key-auht"']);
  });

  test("a plugin's own schema errors carry the path into the plugin config", () => {
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uri: '/', plugins: { mocking: { response_status: 700 } } }] }), ['routes[0].plugins.mocking.response_status: must be <= 599']);
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uri: '/', plugins: { mocking: { response_status: 'ok' } } }] }), ['routes[0].plugins.mocking.response_status: must be an integer']);
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uri: '/', plugins: { mocking: { delay: 1, colour: 'red' } } }] }), ['routes[0].plugins.mocking.colour: is not a known field']);
  });

  test('a plugin without a consumer schema cannot be configured on a consumer', () => {
    assert.deepEqual(issuesOf({ consumers: [{ username: 'jack', plugins: { mocking: {} } }] }), ['consumers[0].plugins.mocking: plugin "mocking" has no consumer configuration']);
  });

  test('a value outside an enum lists the allowed values', () => {
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uri: '/', upstream: { type: 'random', nodes: NODES } }] }), [
      'routes[0].upstream.type: must be one of: "roundrobin", "chash", "least_conn"',
    ]);
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uri: '/', methods: ['GET', 'FETCH'] }] }), [
      'routes[0].methods[1]: must be one of: "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "PURGE"',
    ]);
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uri: '/', status: 2 }] }), ['routes[0].status: must be one of: 0, 1']);
  });

  test('type errors, formats and required fields read plainly', () => {
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uri: 'no-slash' }] }), ['routes[0].uri: has an invalid format (must match ^/)']);
    assert.deepEqual(issuesOf({ routes: {} }), ['routes: must be an array']);
    assert.deepEqual(issuesOf({ upstreams: [{ nodes: NODES }] }), ['upstreams[0].id: is required']);
    assert.deepEqual(issuesOf({ routes: [{ uri: '/' }] }), ['routes[0].id: is required']);
    assert.deepEqual(issuesOf({ gateway: { listen: 'localhost' } }), ['gateway.listen: has an invalid format (must match ^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]*):[0-9]{1,5}$)']);
    assert.deepEqual(issuesOf({ gateway: { workers: 0 } }), ['gateway.workers: has an invalid value']);
  });

  test('a duplicate route id is reported on the second route, also across string and number ids', () => {
    assert.deepEqual(issuesOf({ routes: [{ id: 'a', uri: '/a' }, { id: 'b', uri: '/b' }, { id: 'a', uri: '/c' }] }), ['routes[2].id: duplicate route id "a"']);
    assert.deepEqual(issuesOf({ routes: [{ id: 1, uri: '/a' }, { id: '1', uri: '/b' }] }), ['routes[1].id: duplicate route id "1"']);
  });

  test('a duplicate upstream id is reported', () => {
    assert.deepEqual(issuesOf({ upstreams: [{ id: 'u', nodes: NODES }, { id: 'u', nodes: NODES }] }), ['upstreams[1].id: duplicate upstream id "u"']);
  });

  test('an upstream_id naming no upstream is reported with the id', () => {
    assert.deepEqual(issuesOf({ upstreams: [{ id: 'real', nodes: NODES }], routes: [{ id: 'r', uri: '/', upstream_id: 'missing' }] }), [
      'routes[0].upstream_id: refers to unknown upstream "missing"',
    ]);
  });

  test('uri and uris together are rejected, and so is a route with neither', () => {
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uri: '/a', uris: ['/b'] }] }), ['routes[0].uris: cannot be used together with uri']);
    assert.deepEqual(issuesOf({ routes: [{ id: 'r' }] }), ['routes[0].uri: is required']);
  });

  test('other exclusive pairs and uri shapes are rejected', () => {
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uri: '/a', host: 'a.test', hosts: ['b.test'] }] }), ['routes[0].hosts: cannot be used together with host']);
    assert.deepEqual(issuesOf({ upstreams: [{ id: 'u', nodes: NODES }], routes: [{ id: 'r', uri: '/a', upstream_id: 'u', upstream: { nodes: NODES } }] }), [
      'routes[0].upstream_id: cannot be used together with upstream',
    ]);
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uris: ['/ok/*', '/a/*/b'] }] }), ['routes[0].uris[1]: "*" is only allowed at the end']);
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uri: '/', upstream: { nodes: { '127.0.0.1:8080': 0 } } }] }), ['routes[0].upstream.nodes: must have at least one node with a weight above 0']);
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uri: '/', upstream: { nodes: { '127.0.0.1:70000': 1 } } }] }), ['routes[0].upstream.nodes[0]: port 70000 is out of range']);
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uri: '/', upstream: { nodes: NODES, pass_host: 'rewrite' } }] }), ['routes[0].upstream.upstream_host: is required when pass_host is "rewrite"']);
  });

  test('a secret resource of an unknown manager is reported, a known one is checked by its provider', () => {
    assert.deepEqual(issuesOf({ secrets: [{ id: 'gcp/prod' }] }), ['secrets[0].id: unknown secret manager "gcp"']);
    assert.deepEqual(issuesOf({ secrets: [{ id: 'env/x' }] }), ['secrets[0].id: the env manager needs no secret resource: use $env://NAME references directly']);
  });

  test('provider schema alternatives and dependencies read as sentences, not JSON-schema jargon', () => {
    const vault = (extra: Record<string, unknown>) => ({ secrets: [{ id: 'vault/a', uri: 'http://127.0.0.1:8200', prefix: 'kv', ...extra }] });
    assert.deepEqual(issuesOf(vault({ token: 't', auth: { method: 'approle', role_id: 'r', secret_id: 's' } })), ['secrets[0]: must set only one of: token, auth']);
    assert.deepEqual(issuesOf(vault({})), ['secrets[0]: must set one of: token, auth']);
    assert.deepEqual(issuesOf(vault({ auth: { method: 'approle', role_id: 'r' } })), ['secrets[0].auth.secret_id: is required']);
    assert.deepEqual(issuesOf({ secrets: [{ id: 'aws/a', access_key_id: 'AKIDEXAMPLE' }] }), ['secrets[0]: needs secret_access_key when access_key_id is set']);
  });

  test('admin.allow entries must be addresses or CIDR ranges', () => {
    assert.deepEqual(issuesOf({ admin: { allow: ['127.0.0.0/8', 'localhost', '10.0.0.0/40'] } }), [
      'admin.allow[1]: "localhost" is not an IP address or CIDR range',
      'admin.allow[2]: "10.0.0.0/40" has an invalid prefix length',
    ]);
  });

  test('gateway.trusted_proxies entries must be addresses or CIDR ranges', () => {
    assert.deepEqual(issuesOf({ gateway: { trusted_proxies: ['10.0.0.0/8', '::1', 'lb.internal', '192.168.0.0/33'] } }), [
      'gateway.trusted_proxies[2]: "lb.internal" is not an IP address or CIDR range',
      'gateway.trusted_proxies[3]: "192.168.0.0/33" has an invalid prefix length',
    ]);
  });

  test('malformed references and references to unknown managers or resources are reported with their path', () => {
    const route = (v: string) => ({ id: 'r', uri: '/r', plugins: { 'proxy-rewrite': { headers: { set: { 'x-v': v } } } } });
    assert.deepEqual(issuesOf({ routes: [route('$secret://vault/gw/jack')] }), [
      'routes[0].plugins.proxy-rewrite.headers.set.x-v: invalid reference: missing segments: expected $secret://<manager>/<id>/<path>/<field> (the last segment is the field)',
    ]);
    assert.deepEqual(issuesOf({ routes: [route('$secret://nosuch/gw/jack/key')] }), ['routes[0].plugins.proxy-rewrite.headers.set.x-v: unknown secret manager "nosuch"']);
    assert.deepEqual(issuesOf({ routes: [route('$env://1X')] }), ['routes[0].plugins.proxy-rewrite.headers.set.x-v: invalid reference: "1X" is not a valid environment variable name']);
  });

  test('references are collected from plugin configs, consumers and gateway settings with their paths', () => {
    const r = validateConfig(
      {
        admin: { key: '$env://ADMIN_KEY' },
        routes: [{ id: 'r', uri: '/r', plugins: { 'proxy-rewrite': { headers: { set: { 'x-v': '$env://BODY' } } }, mocking: { content_type: 'text/plain' } } }],
      },
      registry,
    );
    assert.ok(r.config);
    assert.deepEqual(
      r.refs.map((x) => [x.path, x.ref.text]),
      [
        ['routes[0].plugins.proxy-rewrite.headers.set.x-v', '$env://BODY'],
        ['admin.key', '$env://ADMIN_KEY'],
      ],
    );
  });

  test('every schema problem in a document is reported in one pass', () => {
    assert.deepEqual(
      issuesOf({
        gateway: { listen: 'nowhere', workers: 'many' },
        routes: [
          { id: 'a', uri: '/a', upstream: { nodes: {} } },
          { id: 'b', uri: '/b', methods: ['GET', 'GOT'], upstream: { nodes: NODES, type: 'random' } },
        ],
        upstreams: [{ id: 'u', nodes: [] }],
      }),
      [
        'gateway.listen: has an invalid format (must match ^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]*):[0-9]{1,5}$)',
        'gateway.workers: has an invalid value',
        'routes[0].upstream.nodes: must have at least 1 entry',
        'routes[1].methods[1]: must be one of: "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "PURGE"',
        'routes[1].upstream.type: must be one of: "roundrobin", "chash", "least_conn"',
        'upstreams[0].nodes: must have at least 1 entry',
      ],
    );
  });

  test('every cross-reference problem in a document is reported in one pass', () => {
    assert.deepEqual(
      issuesOf({
        routes: [
          { id: 'a', uri: '/a', upstream_id: 'ghost' },
          { id: 'a', uri: '/b', uris: ['/c'] },
          { id: 'c', uri: '/d', plugins: { nope: {}, mocking: { response_status: 99 } } },
        ],
      }),
      [
        'routes[0].upstream_id: refers to unknown upstream "ghost"',
        'routes[1].id: duplicate route id "a"',
        'routes[1].uris: cannot be used together with uri',
        'routes[2].plugins.nope: unknown plugin "nope"',
        'routes[2].plugins.mocking.response_status: must be >= 100',
      ],
    );
  });

  test('schema problems and cross-reference problems are reported together', () => {
    assert.deepEqual(
      issuesOf({
        routes: [
          { id: 'a', uri: '/a', upstream: { nodes: {} } },
          { id: 'b', uri: '/b', plugins: { nope: {} } },
          { id: 'a', uri: '/c', upstream_id: 'ghost' },
        ],
      }),
      [
        'routes[0].upstream.nodes: must have at least 1 entry',
        'routes[1].plugins.nope: unknown plugin "nope"',
        'routes[2].id: duplicate route id "a"',
        'routes[2].upstream_id: refers to unknown upstream "ghost"',
      ],
    );
  });

  test('a part the schema rejected adds no follow-on noise, even when its shape is broken', () => {
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uri: '/', plugins: 'mocking' }] }), ['routes[0].plugins: must be an object']);
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uri: 5 }] }), ['routes[0].uri: must be a string']);
    assert.deepEqual(issuesOf({ upstreams: [{ id: 'u', nodes: 'a:1' }], routes: [{ id: 'r', uri: '/', upstream_id: 'u' }] }), ['upstreams[0].nodes: must be an object or an array']);
    assert.deepEqual(issuesOf({ routes: [{ id: 'r', uri: '/', upstream: {} }] }), ['routes[0].upstream.nodes: is required']);
  });

  test('a document that is not a mapping is rejected without throwing', () => {
    assert.deepEqual(issuesOf([]), ['must be an object']);
    assert.deepEqual(issuesOf('routes'), ['must be an object']);
  });
});

describe('parseConfigText', () => {
  test('a duplicate key names the file, line and column once', () => {
    const err = parseError('routes:\n  - id: a\n    id: b\n');
    assert.equal(err.code, 'GH_ERR_CONFIG_PARSE');
    assert.equal(err.message, 'configuration cannot be parsed: gatehouse.yaml:3:5: Map keys must be unique');
  });

  test('an unclosed flow mapping names where the parser gave up', () => {
    const err = parseError('routes:\n  - id: a\n    upstream: { nodes: { "a:1": 1 }\n', '/etc/gh.yaml');
    assert.match(err.message, /^configuration cannot be parsed: \/etc\/gh\.yaml:4:1: Flow map in block collection must be sufficiently indented and end with a }$/);
  });

  test('bad indentation is reported at its line and column', () => {
    assert.match(parseError('gateway:\n  listen: 1\n bad: 2\n').message, /gatehouse\.yaml:3:1: All mapping items must start at the same column$/);
  });

  test('several syntax errors are all reported, one per line', () => {
    const lines = parseError('a: 1\na: 2\nb: [1, 2\n').message.split('\n');
    assert.ok(lines.length >= 2, lines.join('\n'));
    assert.match(lines[0], /gatehouse\.yaml:2:1: Map keys must be unique$/);
    assert.ok(lines.slice(1).every((l) => /^gatehouse\.yaml:\d+:\d+: /.test(l)), lines.join('\n'));
  });

  test('a document that is a list or a scalar is rejected with what it was', () => {
    assert.equal(parseError('- a\n- b\n').message, 'configuration cannot be parsed: gatehouse.yaml: the document must be a mapping (key: value), not a list');
    assert.match(parseError('42\n').message, /gatehouse\.yaml: the document must be a mapping \(key: value\), not number$/);
  });

  test('JSON is accepted, and an empty file is an empty document', () => {
    assert.deepEqual(parseConfigText('{"routes": [{"id": "r", "uri": "/"}]}', 'x.json'), { routes: [{ id: 'r', uri: '/' }] });
    assert.deepEqual(parseConfigText('', 'x.yaml'), {});
    assert.deepEqual(parseConfigText('# only a comment\n', 'x.yaml'), {});
  });
});

describe('defaults and normalisation', () => {
  test('an empty document gets every gateway default and empty sections', () => {
    const c = valid({});
    assert.deepEqual(c.gateway, { listen: '0.0.0.0:9080', http2: true, workers: 1, drain_timeout: 10, client_header_timeout: 60, client_body_timeout: 60, client_body_min_rate: 500, client_max_body_size: 0, access_log: true, log_level: 'info', underscores_in_headers: false, trusted_proxies: [], tls: {} });
    assert.deepEqual(c.config_store, { type: 'file', readonly: false });
    assert.deepEqual(c.secret_cache, { ttl: 300, neg_ttl: 60, stale_if_error: 86400, rotation_grace: 300 });
    assert.deepEqual([c.routes, c.upstreams, c.consumers, c.secrets, c.extensions], [[], [], [], [], []]);
    assert.equal(c.admin, undefined);
    assert.deepEqual(valid(null), c);
  });

  test('a route gets priority 0, status 1, no plugins, and its uri as a one-element uris', () => {
    const r = valid({ routes: [{ id: 'r', uri: '/x' }] }).routes[0];
    assert.deepEqual(r, { id: 'r', uris: ['/x'], priority: 0, status: 1, plugins: {} });
  });

  test('ids become strings and host becomes a lowercased hosts list', () => {
    const c = valid({ upstreams: [{ id: 7, nodes: NODES }], routes: [{ id: 42, uri: '/', host: 'API.Example.com', upstream_id: 7 }] });
    assert.equal(c.routes[0].id, '42');
    assert.equal(c.routes[0].upstream_id, '7');
    assert.equal(c.upstreams[0].id, '7');
    assert.deepEqual(c.routes[0].hosts, ['api.example.com']);
  });

  test('an upstream gets timeouts of 60 s, roundrobin, http, pass_host, pool and passive check defaults', () => {
    const u = valid({ routes: [{ id: 'r', uri: '/', upstream: { nodes: NODES } }] }).routes[0].upstream!;
    assert.deepEqual(u, {
      type: 'roundrobin',
      nodes: [{ host: '127.0.0.1', port: 8080, weight: 1 }],
      hash_on: 'vars',
      scheme: 'http',
      pass_host: 'pass',
      timeout: { connect: 60, send: 60, read: 60 },
      keepalive_pool: { size: 320, idle_timeout: 60, requests: 1000 },
      checks: { passive: { failures: 3, cooldown: 10, http_statuses: [] } },
    });
  });

  test('a partial timeout keeps the given values and defaults the rest', () => {
    const u = valid({ routes: [{ id: 'r', uri: '/', upstream: { nodes: NODES, timeout: { read: 2.5 } } }] }).routes[0].upstream!;
    assert.deepEqual(u.timeout, { connect: 60, send: 60, read: 2.5 });
  });

  test('nodes in map form become a list, with the default port of the scheme', () => {
    const c = valid({
      routes: [
        { id: 'a', uri: '/a', upstream: { nodes: { 'svc.local': 2, '[::1]:9000': 1, '10.0.0.1:81': 0 } } },
        { id: 'b', uri: '/b', upstream: { scheme: 'https', nodes: { 'secure.local': 1 } } },
        { id: 'c', uri: '/c', upstream: { nodes: [{ host: 'list.local', port: 8081 }] } },
      ],
    });
    assert.deepEqual(c.routes[0].upstream!.nodes, [
      { host: 'svc.local', port: 80, weight: 2 },
      { host: '[::1]', port: 9000, weight: 1 },
      { host: '10.0.0.1', port: 81, weight: 0 },
    ]);
    assert.deepEqual(c.routes[1].upstream!.nodes, [{ host: 'secure.local', port: 443, weight: 1 }]);
    assert.deepEqual(c.routes[2].upstream!.nodes, [{ host: 'list.local', port: 8081, weight: 1 }]);
  });

  test('plugin defaults are applied from the plugin schema', () => {
    const c = valid({ routes: [{ id: 'r', uri: '/', plugins: { mocking: null } }] });
    assert.deepEqual(c.routes[0].plugins.mocking, { delay: 0, response_status: 200, content_type: 'application/json;charset=utf8', with_mock_header: true });
  });

  test('the result is deeply frozen and the input is left untouched', () => {
    const input = { routes: [{ id: 'r', uri: '/', upstream: { nodes: { ...NODES } } }] };
    const before = structuredClone(input);
    const c = valid(input);
    assert.deepEqual(input, before);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.routes) && Object.isFrozen(c.routes[0].upstream!.nodes[0]) && Object.isFrozen(c.gateway));
    assert.throws(() => {
      (c.routes as unknown as unknown[]).push({});
    }, TypeError);
  });

  test('retries default to the number of usable nodes minus one in the compiled snapshot', async () => {
    const gw = await Gateway.create({
      logger: silentLogger(),
      watch: false,
      config: {
        upstreams: [{ id: 'shared', nodes: { '127.0.0.1:1': 1, '127.0.0.1:2': 1, '127.0.0.1:3': 1, '127.0.0.1:4': 1 } }],
        routes: [
          { id: 'three', uri: '/3', upstream: { nodes: { '127.0.0.1:1': 1, '127.0.0.1:2': 5, '127.0.0.1:3': 1 } } },
          { id: 'weight-zero', uri: '/w', upstream: { nodes: { '127.0.0.1:1': 1, '127.0.0.1:2': 0, '127.0.0.1:3': 1 } } },
          { id: 'one', uri: '/1', upstream: { nodes: NODES } },
          { id: 'explicit', uri: '/e', upstream: { nodes: { '127.0.0.1:1': 1, '127.0.0.1:2': 1 }, retries: 0 } },
          { id: 'by-ref', uri: '/r', upstream_id: 'shared' },
        ],
      },
    });
    try {
      const retries = Object.fromEntries(gw.snapshot.routes.map((r) => [r.id, gw.snapshot.upstreamOf(r)?.retries]));
      assert.deepEqual(retries, { three: 2, 'weight-zero': 1, one: 0, explicit: 0, 'by-ref': 3 });
      assert.equal(gw.config.routes[0].upstream!.retries, undefined);
    } finally {
      await gw.close(0);
    }
  });
});

describe('issue paths', () => {
  test('an object key made of digits is quoted ("0"), an array index is not ([0])', () => {
    const issues = issuesOf({
      routes: [{ id: 'r', uri: '/r', plugins: { '0': {} }, upstream: { nodes: { '127.0.0.1:1': 'heavy' } } }],
      upstreams: [{ id: 'u', nodes: [{ host: '127.0.0.1', port: 1, weight: 1 }], timeout: { '7': 1 } }],
    });
    assert.ok(issues.some((i) => i.startsWith('routes[0].plugins["0"]: ')), issues.join('\n'));
    assert.ok(issues.some((i) => i.startsWith('routes[0].upstream.nodes["127.0.0.1:1"]: ')), issues.join('\n'));
    assert.ok(issues.some((i) => i.startsWith('upstreams[0].timeout["7"]: ')), issues.join('\n'));
    assert.equal(issues.some((i) => /\[0\]\[|plugins\[0\]|timeout\[7\]/.test(i)), false, issues.join('\n'));
  });
});

describe('fields sent back to clients (x-sent-to-client)', () => {
  const withBanner = createRegistry([mocking, banner], [envProvider, vaultProvider]);
  const vault = { id: 'vault/gw', uri: 'http://127.0.0.1:1', prefix: 'kv', token: 't' };
  const issues = (doc: unknown) => (validateConfig(doc, withBanner).issues ?? []).map((i) => `${i.path}: ${i.message}`);
  const REFUSED = 'is sent back to clients, so it cannot be a secret reference: write the value itself';

  test("a reference anywhere in mocking's body, content type or headers is refused at its own path, whatever its manager", () => {
    const mock = { response_example: '$env://BODY', content_type: '$ENV://TYPE', response_headers: { 'x-ok': 'plain', 'x-leak': '$secret://vault/gw/app/key', 'a/b~c': '$env://SLASHED' } };
    assert.deepEqual(issues({ secrets: [vault], routes: [{ id: 'r', uri: '/r', plugins: { mocking: mock } }] }), [
      `routes[0].plugins.mocking.content_type: ${REFUSED}`,
      `routes[0].plugins.mocking.response_example: ${REFUSED}`,
      `routes[0].plugins.mocking.response_headers.x-leak: ${REFUSED}`,
      `routes[0].plugins.mocking.response_headers["a/b~c"]: ${REFUSED}`,
    ]);
  });

  test('literal values stay valid, "$" inside a value included; a reference in an unmarked field is still collected', () => {
    const r = validateConfig(
      {
        routes: [{ id: 'r', uri: '/r', plugins: { mocking: { response_example: 'costs $5, see $env://X', response_headers: { 'x-a': '$5' } }, banner: { page: { title: 'hi', lines: ['a'] }, upstream_token: '$env://TOKEN' } } }],
        consumers: [{ username: 'jack', plugins: { banner: { greeting: 'hello', key: '$env://JACK_KEY' } } }],
      },
      withBanner,
    );
    assert.deepEqual(r.issues, undefined);
    assert.deepEqual(
      r.refs!.map((x) => x.path),
      ['routes[0].plugins.banner.upstream_token', 'consumers[0].plugins.banner.key'],
    );
  });

  test("a third-party plugin's marked field covers its whole subtree, in route and consumer configs", () => {
    assert.deepEqual(
      issues({
        routes: [{ id: 'r', uri: '/r', plugins: { banner: { page: { title: '$env://TITLE', lines: ['ok', '$env://LINE'] }, upstream_token: '$env://TOKEN' } } }],
        consumers: [{ username: 'jack', plugins: { banner: { greeting: '$env://GREETING', key: '$env://JACK_KEY' } } }],
      }),
      [`routes[0].plugins.banner.page.title: ${REFUSED}`, `routes[0].plugins.banner.page.lines[1]: ${REFUSED}`, `consumers[0].plugins.banner.greeting: ${REFUSED}`],
    );
  });

  test('the keyword takes a boolean: anything else is a schema that does not compile; false marks nothing', () => {
    const plugin = (mark: unknown) => definePlugin({ name: 'odd', version: '1.0.0', priority: 1, schema: { type: 'object', properties: { body: { type: 'string', [SENT_TO_CLIENT]: mark } } }, create: () => ({}) });
    assert.throws(() => createRegistry([plugin('yes')], []), /x-sent-to-client/);
    const off = createRegistry([plugin(false)], [envProvider]);
    assert.deepEqual(validateConfig({ routes: [{ id: 'r', uri: '/r', plugins: { odd: { body: '$env://BODY' } } }] }, off).issues, undefined);
  });
});
