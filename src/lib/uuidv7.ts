import { randomFillSync } from 'node:crypto'

let lastMs = 0
let seq = 0

// Random bytes drawn from the CSPRNG 4 KiB at a time: one call per id cost more than the rest of
// building it, and ids are minted for every ingested event that comes without one.
const POOL_IDS = 256
const pool = Buffer.alloc(16 * POOL_IDS)
let poolOffset = pool.length

/**
 * RFC 9562 UUIDv7: 48-bit unix-ms timestamp, then random bits. Ids created in the same
 * millisecond by this process stay ordered via a 12-bit counter in rand_a, so primary-key
 * inserts append to the index instead of landing at random pages.
 */
export function uuidv7(now: number = Date.now()): string {
  if (now > lastMs) {
    lastMs = now
    seq = 0
  } else {
    seq++
    if (seq > 0xfff) {
      // Counter exhausted within one millisecond: borrow the next millisecond.
      lastMs++
      seq = 0
    }
  }
  const ms = lastMs
  if (poolOffset === pool.length) {
    randomFillSync(pool)
    poolOffset = 0
  }
  const b = pool.subarray(poolOffset, poolOffset + 16)
  poolOffset += 16
  b[0] = Math.floor(ms / 2 ** 40) & 0xff
  b[1] = Math.floor(ms / 2 ** 32) & 0xff
  b[2] = (ms >>> 24) & 0xff
  b[3] = (ms >>> 16) & 0xff
  b[4] = (ms >>> 8) & 0xff
  b[5] = ms & 0xff
  b[6] = 0x70 | ((seq >>> 8) & 0x0f)
  b[7] = seq & 0xff
  b[8] = (b[8] & 0x3f) | 0x80
  const h = b.toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}
