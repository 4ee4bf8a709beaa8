import { asc, eq, sql } from 'drizzle-orm'
import type { Database, Db } from '../db/connect.js'
import { priceOverrides } from '../db/schema.js'
import { formatUsd, parseUsd } from '../lib/money.js'
import type { PriceOverride, PriceTier } from './types.js'

type Row = typeof priceOverrides.$inferSelect

/** numeric columns come back padded ("3.000000000000"); prices are kept minimal ("3"). */
function trimDecimal(v: string): string {
  return formatUsd(parseUsd(v))
}
const trimOrNull = (v: string | null) => (v === null ? null : trimDecimal(v))

function toOverride(r: Row): PriceOverride {
  return {
    id: r.id,
    provider: r.provider,
    modelPattern: r.modelPattern,
    effectiveFrom: r.effectiveFrom,
    effectiveTo: r.effectiveTo,
    input: trimDecimal(r.input),
    output: trimDecimal(r.output),
    cacheRead: trimOrNull(r.cacheRead),
    cacheWrite: trimOrNull(r.cacheWrite),
    cacheWrite1h: trimOrNull(r.cacheWrite1h),
    reasoning: trimOrNull(r.reasoning),
    tiers: r.tiers as unknown as PriceTier[],
  }
}

export interface StoredOverride extends PriceOverride {
  note: string | null
  createdAt: Date
}

/** The database or a transaction on it. */
type Executor = Pick<Db, 'select' | 'insert' | 'update' | 'delete' | 'execute'>

export async function listOverrides(db: Executor): Promise<StoredOverride[]> {
  const rows = await db.select().from(priceOverrides).orderBy(asc(priceOverrides.provider), asc(priceOverrides.effectiveFrom))
  return rows.map((r) => ({ ...toOverride(r), note: r.note, createdAt: r.createdAt }))
}

export async function insertOverride(db: Executor, o: PriceOverride & { note: string | null }): Promise<void> {
  await db.insert(priceOverrides).values({ ...o, tiers: o.tiers as unknown as Row['tiers'] })
}

export async function replaceOverride(db: Executor, o: PriceOverride & { note: string | null }): Promise<boolean> {
  const { id, ...rest } = o
  const rows = await db
    .update(priceOverrides)
    .set({ ...rest, tiers: rest.tiers as unknown as Row['tiers'] })
    .where(eq(priceOverrides.id, id))
    .returning({ id: priceOverrides.id })
  return rows.length > 0
}

export async function deleteOverride(db: Executor, id: string): Promise<boolean> {
  const rows = await db.delete(priceOverrides).where(eq(priceOverrides.id, id)).returning({ id: priceOverrides.id })
  return rows.length > 0
}

/**
 * Runs `fn` in a transaction holding the overrides lock, so two admins (or instances) cannot
 * both pass the overlap check and store overlapping overrides.
 */
export function withOverridesLock<T>(database: Database, fn: (tx: Executor) => Promise<T>): Promise<T> {
  return database.db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext('price-overrides'))`)
    return fn(tx)
  })
}
