import type { Database } from '../db/connect.js'
import type { AlertCandidate } from './alert-store.js'
import { CHANNELS, type Budget } from './budget-store.js'
import type { PeriodWindow } from './periods.js'
import { spendOfUser, topUsers, type UserSpend } from './user-spend.js'

/** Users shown by the status of a per-user budget. */
export const STATUS_USERS = 100

/**
 * The threshold alerts a per-user budget owes: each user whose spend this period crossed a
 * threshold not yet known to have fired for that user. Only users over the lowest threshold are
 * read, at most `maxUsers` (the highest spenders). Per-user budgets do not alert projections.
 */
export async function perUserCandidates(
  database: Database,
  b: Budget,
  window: PeriodWindow,
  known: Set<string>,
  maxUsers: number,
): Promise<AlertCandidate[]> {
  if (b.perUser === null || b.thresholds.length === 0) return []
  const lowest = BigInt(Math.min(...b.thresholds))
  const users = (await topUsers(database, { scope: b.scope, key: b.perUser.key }, window, maxUsers)).filter((u) => u.spent * 100n >= b.limit * lowest)
  const channels = CHANNELS.filter((c) => b.channels[c] !== undefined)
  const candidates: AlertCandidate[] = []
  for (const u of users) {
    for (const t of b.thresholds) {
      if (u.spent * 100n >= b.limit * BigInt(t) && !known.has(userAlertKey(t, u.userId))) {
        candidates.push({ budgetId: b.id, window, kind: 'threshold', threshold: t, limit: b.limit, spent: u.spent, projected: null, channels, userId: u.userId })
      }
    }
  }
  return candidates
}

export const userAlertKey = (threshold: number, userId: string) => `threshold:${threshold}:${userId}`

/** A per-user budget's standing: the asked-for user, else the top spender, and the top users. */
export async function perUserStanding(
  database: Database,
  b: Budget,
  window: PeriodWindow,
  userId: string | undefined,
): Promise<{ userId: string | null; spent: bigint; top: UserSpend[] }> {
  const u = { scope: b.scope, key: b.perUser?.key ?? '' }
  const top = await topUsers(database, u, window, STATUS_USERS)
  if (userId === undefined) return { userId: top[0]?.userId ?? null, spent: top[0]?.spent ?? 0n, top }
  const listed = top.find((x) => x.userId === userId)
  return { userId, spent: listed ? listed.spent : await spendOfUser(database, u, window, userId), top }
}
