// `admin.allow` and `gateway.trusted_proxies`: lists of addresses and CIDR ranges, checked when the
// config is validated and compiled into node's BlockList (for the Admin API, for each snapshot).
import { BlockList, isIP } from 'node:net';

/** A compiled `admin.allow` list. @throws Error naming the first entry that is not an address or CIDR */
export function allowList(entries: readonly string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const raw of entries) {
    const [addr, bits] = raw.split('/');
    const family = isIP(addr);
    if (family === 0) throw new Error(`${JSON.stringify(raw)} is not an IP address or CIDR range`);
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(addr, type);
    else {
      const n = Number(bits);
      if (!Number.isInteger(n) || n < 0 || n > (family === 6 ? 128 : 32) || bits === '') throw new Error(`${JSON.stringify(raw)} has an invalid prefix length`);
      list.addSubnet(addr, n, type);
    }
  }
  return (address) => {
    // IPv4 clients of a dual-stack listener appear as ::ffff:a.b.c.d
    const v4 = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
    const family = isIP(v4);
    if (family === 0) return false;
    return list.check(v4, family === 6 ? 'ipv6' : 'ipv4');
  };
}
