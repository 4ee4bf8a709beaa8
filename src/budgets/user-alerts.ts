import type { Database } from '../db/connect.js'
import type { AlertCandidate } from './alert-store.js'
import { CHANNELS, type Budget } from './budget-store.js'
import type { PeriodWindow } from './periods.js'
import { spendByUser, type UserSpend } from './user-spend.js'

/** Users shown by the status of a per-user budget. */
export const STATUS_USERS = 100

function scopeOf(b: Budget): Budget['scope'] & { botId: string } {
  return { ...b.scope, botId: b.scope.botId ?? '' }
}

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
  const { users } = await spendByUser(database, { scope: scopeOf(b), key: b.perUser.key, window, limit: maxUsers, atLeast: (b.limit * lowest + 99n) / 100n })
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
): Promise<{ userId: string | null; spent: bigint; top: UserSpend }> {
  const key = b.perUser?.key ?? ''
  const top = await spendByUser(database, { scope: scopeOf(b), key, window, limit: STATUS_USERS })
  if (userId === undefined) return { userId: top.users[0]?.userId ?? null, spent: top.users[0]?.spent ?? 0n, top }
  const listed = top.users.find((u) => u.userId === userId)
  if (listed) return { userId, spent: listed.spent, top }
  const one = await spendByUser(database, { scope: scopeOf(b), key, window, limit: 1, userId })
  return { userId, spent: one.users[0]?.spent ?? 0n, top }
}
