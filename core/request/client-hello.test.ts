// The ClientHello reader against real ClientHellos (Node's TLS client, and OpenSSL's s_client
// with TLS 1.2 and 1.3), whole and cut at every byte; against corruptions of them (never throws,
// never reads past what it was given); and against bytes that are no TLS at all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { execFile } from 'node:child_process';
import { prng } from '../../test/helpers/prng';
import { MAX_HELLO_BYTES, readClientHello } from './client-hello';

/** The first bytes a client sends to a server that never answers: its ClientHello. */
async function helloBytes(send: (port: number) => () => void): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const server = createServer((sock) => {
      let buf = Buffer.alloc(0);
      sock.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        if (readClientHello(buf).kind === 'more') return;
        stop();
        sock.destroy();
        server.close();
        resolve(buf);
      });
    });
    let stop = () => undefined as void;
    server.listen(0, '127.0.0.1', () => (stop = send((server.address() as AddressInfo).port)));
    server.on('error', reject);
  });
}

const nodeHello = (servername: string | undefined) =>
  helloBytes((port) => {
    const s = connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
    s.on('error', () => undefined);
    return () => s.destroy();
  });

const opensslHello = (servername: string | undefined, version: '-tls1_2' | '-tls1_3') =>
  helloBytes((port) => {
    const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, version, ...(servername ? ['-servername', servername] : ['-noservername'])], () => undefined);
    return () => child.kill();
  });

test('real ClientHellos give the name the client sent (lower case), or none; every cut before the end asks for more', async () => {
  const cases: Array<[Buffer, string | undefined, string]> = [
    [await nodeHello('api.example.com'), 'api.example.com', 'node'],
    [await nodeHello('API.Example.COM'), 'api.example.com', 'node, upper case'],
    [await opensslHello('www.example.org', '-tls1_3'), 'www.example.org', 'openssl 1.3'],
    [await opensslHello('www.example.org', '-tls1_2'), 'www.example.org', 'openssl 1.2'],
    [await opensslHello(undefined, '-tls1_3'), undefined, 'openssl without a name'],
  ];
  for (const [hello, name, what] of cases) {
    assert.deepEqual(readClientHello(hello), { kind: 'hello', servername: name }, what);
    // the ClientHello's own record: the reader needs all of it, and nothing after it
    const recordEnd = 5 + hello.readUInt16BE(3);
    for (let cut = 0; cut < recordEnd; cut++) assert.deepEqual(readClientHello(hello.subarray(0, cut)), { kind: 'more' }, `${what}: cut at ${cut}`);
    // split over two records (a legal fragmentation): the same name
    const body = hello.subarray(5, recordEnd);
    const at = 1 + (body.length >> 1);
    const rec = (b: Buffer) => Buffer.concat([Buffer.from([22, 3, 1, b.length >> 8, b.length & 255]), b]);
    assert.deepEqual(readClientHello(Buffer.concat([rec(body.subarray(0, at)), rec(body.subarray(at))])), { kind: 'hello', servername: name }, `${what}: two records`);
    assert.deepEqual(readClientHello(Buffer.concat([rec(body.subarray(0, 2)), rec(body.subarray(2))])), { kind: 'hello', servername: name }, `${what}: header split`);
  }
});

test('corrupted ClientHellos never throw and never read past the buffer; bytes that are no TLS are said so at once', async () => {
  const base = await nodeHello('api.example.com');
  const rnd = prng(7);
  for (let i = 0; i < 4000; i++) {
    const b = Buffer.from(base);
    const flips = 1 + Math.floor(rnd() * 4);
    for (let f = 0; f < flips; f++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
    const cut = rnd() < 0.3 ? Math.floor(rnd() * b.length) : b.length;
    const r = readClientHello(b.subarray(0, cut));
    assert.ok(['more', 'hello', 'not-tls'].includes(r.kind));
    if (r.kind === 'hello' && r.servername !== undefined) assert.match(r.servername, /^[a-z0-9_.-]+$/);
  }
  for (const text of ['GET / HTTP/1.1\r\nHost: x\r\n\r\n', 'PRI * HTTP/2.0\r\n', '\x80\x2e\x01\x03\x01']) {
    assert.deepEqual(readClientHello(Buffer.from(text, 'latin1')), { kind: 'not-tls' }, JSON.stringify(text));
  }
  // a record that claims more than any ClientHello: refused without waiting for it
  assert.deepEqual(readClientHello(Buffer.from([22, 3, 1, 0xff, 0xff, 1, 0xff, 0xff, 0xff])), { kind: 'not-tls' });
  // a handshake message that is no ClientHello (a ServerHello)
  assert.deepEqual(readClientHello(Buffer.from([22, 3, 3, 0, 4, 2, 0, 0, 0])), { kind: 'not-tls' });
  // endless small records that never complete a hello: refused once past the cap
  const tiny = Buffer.from([22, 3, 1, 0, 1, 1]);
  const many = Buffer.concat(Array.from({ length: Math.ceil(MAX_HELLO_BYTES / tiny.length) + 10 }, () => tiny));
  assert.notEqual(readClientHello(many).kind, 'hello');
});
