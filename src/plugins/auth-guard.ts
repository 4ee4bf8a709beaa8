import fp from 'fastify-plugin'
import type { FastifyBaseLogger } from 'fastify'
import { ensureAdminKey } from '../auth/keys.js'
import { Authenticator, guardRoutes } from '../auth/plugin.js'
import type { Config } from '../config.js'
import type { Database } from '../db/connect.js'

function printAdminKey(key: string): void {
  process.stdout.write(
    [
      '',
      '================================================================================',
      ' No ADMIN_API_KEY was configured and the database had no admin key, so one was',
      ' created. It is shown ONCE; only its hash is stored. Save it now:',
      '',
      `   ${key}`,
      '',
      ' Use it as  Authorization: Bearer <key>  to create bot keys with POST /api/keys.',
      '================================================================================',
      '',
    ].join('\n') + '\n',
  )
}

/**
 * The service's authenticator. Warns loudly when AUTH_DISABLED is set; otherwise, without
 * ADMIN_API_KEY, makes sure an admin key exists and shows a newly created one once.
 */
export async function createAuthenticator(
  database: Database,
  config: Config,
  opts: { log: FastifyBaseLogger; announceAdminKey?: (key: string) => void; announceChange: () => void },
): Promise<Authenticator> {
  if (config.authDisabled) {
    opts.log.warn('AUTH_DISABLED=true: EVERY ENDPOINT IS OPEN TO ANYONE WHO CAN REACH THIS SERVICE. Use only for local experiments.')
  } else if (config.adminApiKey === null) {
    const created = await ensureAdminKey(database)
    if (created) (opts.announceAdminKey ?? printAdminKey)(created)
  }
  return new Authenticator(database, {
    adminApiKey: config.adminApiKey,
    authDisabled: config.authDisabled,
    cacheTtlMs: config.authCacheTtlMs,
    lastUsedFlushMs: 60_000,
    announceChange: opts.announceChange,
  })
}

/** Every route registered after it in the same scope needs a key with the route's scope (guardRoutes). */
export const authGuard = fp<{ auth: Authenticator }>(async (scope, { auth }) => {
  guardRoutes(scope, auth)
})
