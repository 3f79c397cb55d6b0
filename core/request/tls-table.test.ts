// Choosing a certificate by server name: exact before wildcard, one label deep, no case, a fallback
// only for clients that send no name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSecureContext } from 'node:tls';
import { EMPTY_TLS_TABLE, TlsTable, type TlsEntry } from './tls-table';

const entry = (sslId: string): TlsEntry => ({ sslId, context: createSecureContext() });

test('exact names win over wildcards; a wildcard covers one label; names are compared without case', () => {
  const exact = entry('exact');
  const wild = entry('wild');
  const deep = entry('deep');
  const t = new TlsTable(
    new Map([['api.example.com', exact]]),
    new Map([
      ['example.com', wild],
      ['b.example.com', deep],
    ]),
    undefined,
  );
  assert.equal(t.size, 3);
  assert.equal(t.select('api.example.com'), exact);
  assert.equal(t.select('API.Example.COM'), exact);
  assert.equal(t.select('www.example.com'), wild);
  assert.equal(t.select('a.b.example.com'), deep, 'a deeper wildcard of its own');
  assert.equal(t.select('a.c.example.com'), undefined, 'not two labels under *.example.com');
  assert.equal(t.select('example.com'), undefined, 'the bare domain is not covered by *.example.com');
  assert.equal(t.select('.example.com'), undefined, 'an empty label is no label');
  assert.equal(t.select('other.org'), undefined);
  assert.equal(t.select(undefined), undefined, 'no fallback: a client without a name gets none');
  assert.equal(t.select(''), undefined);
});

test('a client that sends no server name gets the fallback; a name the table lacks does not', () => {
  const fb = entry('fallback');
  const t = new TlsTable(new Map(), new Map(), fb);
  assert.equal(t.select(undefined), fb);
  assert.equal(t.select(''), fb);
  assert.equal(t.select('unknown.example.com'), undefined);
  assert.equal(EMPTY_TLS_TABLE.select('x.example.com'), undefined);
  assert.equal(EMPTY_TLS_TABLE.size, 0);
});
