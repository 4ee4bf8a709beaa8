import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns'
import { BlockList, isIP } from 'node:net'
import { Agent, buildConnector } from 'undici'

/**
 * The guard against server-side request forgery for every alert request to a URL that a budget
 * supplies (webhooks, and any channel added later that posts to a user's URL): destinations in
 * private, loopback, link-local and other non-public ranges are refused unless the operator sets
 * ALERT_WEBHOOK_ALLOW_PRIVATE=true. The check runs inside the connection itself (`guardedAgent`):
 * a host name is resolved once, every address it resolves to is checked, and the socket connects
 * to the address that was checked, so a name that changes its answer between check and connect
 * (DNS rebinding) cannot slip through. Redirects are not followed (undici's default).
 */

const V4_RANGES: [string, number][] = [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, cloud metadata (169.254.169.254)
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
]

const V6_RANGES: [string, number][] = [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
  ['2001:db8::', 32], // documentation
]

/** IPv6 forms that carry an IPv4 address: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d), NAT64. */
const V4_IN_V6_PREFIXES = ['::ffff:', '::', '64:ff9b::']

const blocked = new BlockList()
for (const [net, bits] of V4_RANGES) {
  blocked.addSubnet(net, bits, 'ipv4')
  for (const prefix of V4_IN_V6_PREFIXES) blocked.addSubnet(`${prefix}${net}`, 96 + bits, 'ipv6')
}
for (const [net, bits] of V6_RANGES) blocked.addSubnet(net, bits, 'ipv6')

/** True for an address alerts must not reach by default; false for public ones. */
export function isNonPublicAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, '')
  const family = isIP(bare)
  if (family === 0) return false
  return blocked.check(bare, family === 4 ? 'ipv4' : 'ipv6')
}

export class BlockedDestinationError extends Error {
  readonly code = 'ALERT_DESTINATION_BLOCKED'
  constructor(readonly host: string, readonly address: string) {
    super(
      `${host === address ? address : `${host} resolves to ${address}, which`} is a private, loopback or link-local address: ` +
        'set ALERT_WEBHOOK_ALLOW_PRIVATE=true to allow it',
    )
  }
}

/** `localhost` and `*.localhost` always mean this machine (RFC 6761), whatever DNS says. */
const isLocalhostName = (host: string) => /(^|\.)localhost\.?$/i.test(host)

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void

/** dns.lookup that refuses a name when any address it resolves to is not public. */
function guardedLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, [])
    const bad = addresses.find((a) => isNonPublicAddress(a.address))
    if (bad || (isLocalhostName(hostname) && addresses.length > 0)) {
      return callback(new BlockedDestinationError(hostname, (bad ?? addresses[0]).address), [])
    }
    if (options.all) return callback(null, addresses)
    const first = addresses[0]
    callback(null, first.address, first.family)
  })
}

/**
 * The dispatcher every alert request to a budget-supplied URL must use. With `allowPrivate` it is
 * a plain Agent; otherwise its connector refuses non-public IP literals itself (net.connect skips
 * the lookup for them) and resolves names through guardedLookup.
 */
export function guardedAgent(opts: { allowPrivate: boolean; timeoutMs: number }): Agent {
  const timeouts = { headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs }
  if (opts.allowPrivate) return new Agent({ connect: { timeout: opts.timeoutMs }, ...timeouts })
  const connector = buildConnector({ timeout: opts.timeoutMs, lookup: guardedLookup })
  return new Agent({
    ...timeouts,
    connect: (options, callback) => {
      const host = options.hostname.replace(/^\[|\]$/g, '')
      if (isIP(host) !== 0 && isNonPublicAddress(host)) return callback(new BlockedDestinationError(host, host), null)
      return connector(options, callback)
    },
  })
}

/**
 * The same rule when a budget is created or changed, for a clear 400: null when the URL may be
 * used, else why not. A name that does not resolve now is accepted (delivery checks again).
 */
export async function webhookDestinationProblem(url: string, opts: { allowPrivate: boolean; timeoutMs: number }): Promise<string | null> {
  if (opts.allowPrivate) return null
  let host: string
  try {
    host = new URL(url).hostname.replace(/^\[|\]$/g, '')
  } catch {
    return null // the URL check in the definition names this
  }
  if (isIP(host) !== 0) return isNonPublicAddress(host) ? new BlockedDestinationError(host, host).message : null
  if (isLocalhostName(host)) return new BlockedDestinationError(host, 'this machine').message
  const addresses = await new Promise<LookupAddress[]>((resolve) => {
    const timer = setTimeout(() => resolve([]), opts.timeoutMs)
    dnsLookup(host, { all: true }, (err, found) => {
      clearTimeout(timer)
      resolve(err ? [] : found)
    })
  })
  const bad = addresses.find((a) => isNonPublicAddress(a.address))
  return bad ? new BlockedDestinationError(host, bad.address).message : null
}
