// ip-restriction: let only listed client addresses in (whitelist), or keep listed ones out
// (blacklist), by IP or CIDR, IPv4 and IPv6 (as Apache APISIX's ip-restriction).
import { BlockList, isIP } from 'node:net';
import { definePlugin, type RequestContext } from 'gatehouse-gateway/sdk';
import { schema, type IpRestrictionConfig } from './schema';

const JSON_TYPE = { 'content-type': 'application/json' };

/**
 * One BlockList holding every entry of `list`, built once per route.
 * @throws Error naming `field[i]` for an entry that is not an address, or a prefix too long for its family
 */
function buildList(list: readonly string[], field: string): BlockList {
  const blocks = new BlockList();
  list.forEach((entry, i) => {
    const slash = entry.indexOf('/');
    const address = slash === -1 ? entry : entry.slice(0, slash);
    const version = isIP(address);
    if (version === 0) throw new Error(`${field}[${i}]: "${entry}" is not an IP address or CIDR (e.g. 10.0.0.0/8, 2001:db8::/32)`);
    const family = version === 4 ? 'ipv4' : 'ipv6';
    if (slash === -1) {
      blocks.addAddress(address, family);
      return;
    }
    const prefix = Number(entry.slice(slash + 1));
    const max = version === 4 ? 32 : 128;
    if (!(prefix <= max)) throw new Error(`${field}[${i}]: "${entry}" has a prefix length above ${max}, the most an IPv${version} CIDR can have`);
    blocks.addSubnet(address, prefix, family);
  });
  return blocks;
}

export default definePlugin<IpRestrictionConfig>({
  name: 'ip-restriction',
  version: '1.0.0',
  // as APISIX: access phase, after the rewrite-phase plugins (authentication, cors preflights)
  priority: 3000,
  schema,
  create(conf) {
    const allowList = conf.whitelist !== undefined;
    const blocks = allowList ? buildList(conf.whitelist!, 'whitelist') : buildList(conf.blacklist!, 'blacklist');
    const status = conf.response_code;
    const body = JSON.stringify({ message: conf.message });
    return {
      access: function ipRestriction(ctx: RequestContext) {
        let ip = ctx.clientIp;
        // a link-local client's zone (fe80::1%eth0) is not part of its address
        const zone = ip.indexOf('%');
        if (zone !== -1) ip = ip.slice(0, zone);
        const version = isIP(ip);
        // an IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d; BlockList matches it against IPv4 entries
        const listed = version !== 0 && blocks.check(ip, version === 4 ? 'ipv4' : 'ipv6');
        // fail closed: an address that cannot be read is never allowed
        if (version === 0 || listed !== allowList) ctx.respond(status, body, JSON_TYPE);
      },
    };
  },
});
