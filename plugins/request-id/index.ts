// request-id: give every request an id (or keep the one the client sent), send it upstream and back
// to the client, and leave it in ctx.vars for logs (as Apache APISIX's request-id).
import { randomFillSync, randomUUID } from 'node:crypto';
import { definePlugin, type Clock, type RequestContext } from 'gatehouse-gateway/sdk';
import { schema, type RequestIdConfig } from './schema';

/** The `ctx.vars` key holding the request's id (nginx's `$request_id` name). */
export const REQUEST_ID_VAR = 'request_id';

const NANOID_ALPHABET = Buffer.from('useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict', 'latin1');
const BASE62 = Buffer.from('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', 'latin1');
/** KSUID timestamps count seconds from 2014-05-13T16:53:20Z. */
const KSUID_EPOCH = 1400000000;

/** 21 URL-safe characters from 126 random bits (nanoid's default size and alphabet). */
function nanoid(): () => string {
  const random = Buffer.alloc(21);
  const out = Buffer.alloc(21);
  return function nanoidId() {
    randomFillSync(random);
    // 64 symbols: a byte's low 6 bits pick one without bias
    for (let i = 0; i < 21; i++) out[i] = NANOID_ALPHABET[random[i] & 63];
    return out.toString('latin1');
  };
}

/** `length` characters drawn uniformly from `charSet` (ASCII). */
function rangeId(length: number, charSet: string): () => string {
  const chars = Buffer.from(charSet, 'latin1');
  const n = chars.length;
  // reject random words above the largest multiple of n, so every character is equally likely
  const limit = Math.floor(0x100000000 / n) * n;
  const random = new Uint32Array(length);
  const out = Buffer.alloc(length);
  return function rangeIdId() {
    randomFillSync(random);
    for (let i = 0; i < length; i++) {
      let r = random[i];
      while (r >= limit) r = randomFillSync(new Uint32Array(1))[0];
      out[i] = chars[r % n];
    }
    return out.toString('latin1');
  };
}

/** A KSUID: 4 bytes of seconds since the KSUID epoch + 16 random bytes, as 27 base62 characters. */
function ksuid(clock: Clock): () => string {
  const bytes = Buffer.alloc(20);
  const words = new Uint32Array(5);
  const out = Buffer.alloc(27);
  return function ksuidId() {
    bytes.writeUInt32BE((Math.floor(clock.now() / 1000) - KSUID_EPOCH) >>> 0, 0);
    randomFillSync(bytes, 4, 16);
    for (let w = 0; w < 5; w++) words[w] = bytes.readUInt32BE(w * 4);
    // long division of the 160-bit number by 62, least significant digit first
    for (let i = 26; i >= 0; i--) {
      let rem = 0;
      for (let w = 0; w < 5; w++) {
        const acc = rem * 0x100000000 + words[w];
        words[w] = Math.floor(acc / 62);
        rem = acc % 62;
      }
      out[i] = BASE62[rem];
    }
    return out.toString('latin1');
  };
}

function generator(conf: RequestIdConfig, clock: Clock): () => string {
  switch (conf.algorithm) {
    case 'nanoid':
      return nanoid();
    case 'range_id':
      return rangeId(conf.range_id.length, conf.range_id.char_set);
    case 'ksuid':
      return ksuid(clock);
    default:
      return randomUUID;
  }
}

export default definePlugin<RequestIdConfig>({
  name: 'request-id',
  version: '1.0.0',
  // as APISIX: one of the first plugins to run, so every later plugin and the logs see the id
  priority: 12015,
  schema,
  create(conf, { clock }) {
    const header = conf.header_name.toLowerCase();
    const newId = generator(conf, clock);
    const rewrite = function requestId(ctx: RequestContext) {
      const sent = ctx.headers[header];
      let id = Array.isArray(sent) ? sent.join(', ') : sent;
      if (id === undefined || id === '') {
        // none sent (or empty): make one and send it upstream; a client's id passes as it came
        id = newId();
        ctx.setUpstreamHeader(header, id);
      }
      ctx.vars.set(REQUEST_ID_VAR, id);
    };
    if (!conf.include_in_response) return { rewrite };
    return {
      rewrite,
      response: function requestIdResponse(ctx: RequestContext) {
        // as APISIX: an id the upstream answered with is kept
        const answered = ctx.responseHeaders[header];
        if (answered !== undefined && answered !== '') return;
        const id = ctx.vars.get(REQUEST_ID_VAR);
        if (typeof id === 'string') ctx.setResponseHeader(header, id);
      },
    };
  },
});
