import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { and, eq, isNull, sql } from 'drizzle-orm'
import type { Database } from '../db/connect.js'
import { apiKeys } from '../db/schema.js'
import { uuidv7 } from '../lib/uuidv7.js'
import type { ApiKeyInfo, Scope } from './schemas.js'

/** Every key starts with this, so a leaked one is recognisable (and greppable by secret scanners). */
export const KEY_PREFIX = 'usk_'

/** A new secret: the prefix plus 192 random bits, base64url. */
export function generateKey(): string {
  return KEY_PREFIX + randomBytes(24).toString('base64url')
}

/** Keys carry 192 bits of entropy, so one fast hash is enough; no salt or KDF is needed. */
export function keyDigest(key: string): Buffer {
  return createHash('sha256').update(key).digest()
}

/** The stored form of a key: its digest in hex. */
export function hashKey(key: string): string {
  return keyDigest(key).toString('hex')
}

/** Constant-time comparison of two key digests (equal length by construction). */
export function sameDigest(a: Buffer, b: Buffer): boolean {
  return timingSafeEqual(a, b)
}

export interface StoredKey {
  id: string
  name: string
  prefix: string
  hash: string
  scopes: Scope[]
  botId: string | null
  createdAt: Date
  revokedAt: Date | null
  lastUsedAt: Date | null
}

export function toKeyInfo(k: StoredKey): ApiKeyInfo {
  return {
    id: k.id,
    name: k.name,
    prefix: k.prefix,
    scopes: k.scopes,
    botId: k.botId,
    createdAt: k.createdAt.toISOString(),
    revokedAt: k.revokedAt?.toISOString() ?? null,
    lastUsedAt: k.lastUsedAt?.toISOString() ?? null,
  }
}

export async function createKey(
  database: Database,
  input: { name: string; scopes: Scope[]; botId?: string | null },
): Promise<{ key: string; record: StoredKey }> {
  const key = generateKey()
  const [row] = await database.db
    .insert(apiKeys)
    .values({
      id: uuidv7(),
      name: input.name,
      prefix: key.slice(0, KEY_PREFIX.length + 6),
      hash: hashKey(key),
      scopes: input.scopes,
      botId: input.botId ?? null,
    })
    .returning()
  return { key, record: row as StoredKey }
}

export async function findActiveKeyByHash(database: Database, hash: string): Promise<StoredKey | null> {
  const [row] = await database.db
    .select()
    .from(apiKeys)
    .where(and(eq(apiKeys.hash, hash), isNull(apiKeys.revokedAt)))
    .limit(1)
  return (row as StoredKey | undefined) ?? null
}

export async function listKeys(database: Database): Promise<StoredKey[]> {
  return (await database.db.select().from(apiKeys).orderBy(apiKeys.createdAt)) as StoredKey[]
}

/** Marks a key revoked; returns it (already-revoked keys keep their first revocation time). */
export async function revokeKey(database: Database, id: string): Promise<StoredKey | null> {
  const [row] = await database.db
    .update(apiKeys)
    .set({ revokedAt: sql`coalesce(${apiKeys.revokedAt}, now())` })
    .where(eq(apiKeys.id, id))
    .returning()
  return (row as StoredKey | undefined) ?? null
}

/** One UPDATE for all keys used since the last flush, instead of a write per request. */
export async function recordLastUsed(database: Database, used: Map<string, Date>): Promise<void> {
  if (used.size === 0) return
  const payload = JSON.stringify([...used].map(([id, at]) => ({ id, at: at.toISOString() })))
  await database.db.execute(sql`
    UPDATE api_keys k SET last_used_at = GREATEST(coalesce(k.last_used_at, u.at), u.at)
    FROM json_to_recordset(${payload}::json) AS u(id text, at timestamptz)
    WHERE k.id = u.id`)
}

/**
 * First start without ADMIN_API_KEY: creates an admin key unless an active one exists. The
 * check and insert run under a transaction-scoped advisory lock so instances starting together
 * create exactly one. Returns the new secret, or null when nothing was created.
 */
export async function ensureAdminKey(database: Database): Promise<string | null> {
  return database.db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext('bootstrap-admin-key'))`)
    const existing = await tx
      .select({ id: apiKeys.id })
      .from(apiKeys)
      // A key bound to a bot is never an admin, whatever it was stored with.
      .where(and(isNull(apiKeys.revokedAt), isNull(apiKeys.botId), sql`'admin' = ANY(${apiKeys.scopes})`))
      .limit(1)
    if (existing.length > 0) return null
    const key = generateKey()
    await tx.insert(apiKeys).values({
      id: uuidv7(),
      name: 'bootstrap admin',
      prefix: key.slice(0, KEY_PREFIX.length + 6),
      hash: hashKey(key),
      scopes: ['admin'],
      botId: null,
    })
    return key
  })
}
