import { isIP } from 'node:net';
import { badInput } from '../../errors.ts';

// `--trust-proxy` / WPBACKUP_TRUST_PROXY: the reverse proxies whose X-Forwarded-For the server believes.
// Given to Fastify's trustProxy as a list, which (through @fastify/proxy-addr) uses the header only when
// the direct peer is in the list, and then takes the right-most address that is not: entries further
// left were written by the client and prove nothing. Off (the peer's address) when not set.

const NAMED = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** The comma-separated list as entries, each checked: an address, address/prefix, or a named range. */
export function parseTrustProxy(text: string | undefined, source = '--trust-proxy'): string[] | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const entries = text.split(',').map((e) => e.trim()).filter((e) => e !== '');
  for (const e of entries) {
    if (!validEntry(e)) {
      throw badInput(`${source}: "${e}" is not an IP address or CIDR range`, 'Give addresses or ranges separated by commas, e.g. 10.0.0.5,192.168.0.0/16,::1 (or loopback, linklocal, uniquelocal)');
    }
  }
  return entries;
}

function validEntry(e: string): boolean {
  if (NAMED.has(e)) return true;
  const [addr = '', prefix, extra] = e.split('/');
  if (extra !== undefined) return false;
  const family = isIP(addr);
  if (family === 0) return false;
  if (prefix === undefined) return true;
  if (!/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}
