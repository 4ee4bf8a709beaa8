import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { ADMIN_KEY, bearer } from '../helpers/app.js'
import { persistentStorageEnv } from '../helpers/db.js'
import { getJson, postUsage, SEED_EVENT } from '../helpers/usage.js'

t.test('npm run reprice prices events stored before their override existed', async (t) => {
  const storage = persistentStorageEnv(t, 'reprice')
  // Load shedding reacts to the machine (parallel test files on 2 cores), never the subject here.
  const env = { LOG_LEVEL: 'silent', ADMIN_API_KEY: ADMIN_KEY, MAX_EVENT_LOOP_DELAY_MS: '0', ...storage }

  let app = await buildApp(loadConfig(env))
  const stored = await postUsage(app, { ...SEED_EVENT, model: 'acme-private', provider: 'acme', estimatedCost: undefined, createdAt: '2025-01-10T00:00:00Z' })
  t.match(stored.json(), { priced: false, estimatedCost: null })
  const override = await app.inject({
    method: 'POST',
    url: '/api/prices/overrides',
    headers: bearer(ADMIN_KEY),
    payload: { provider: 'acme', modelPattern: 'acme-private', effectiveFrom: '2025-01-01T00:00:00Z', input: 1, output: 2 },
  })
  t.equal(override.statusCode, 201)
  await app.close()

  const { stdout } = await promisify(execFile)(process.execPath, ['--import=tsx', 'scripts/reprice.ts', '--from', '2025-01-01', '--to', '2025-01-31'], {
    env: { ...process.env, ...env },
  })
  t.same(JSON.parse(stdout), { scanned: 1, changed: 1, costDelta: '0.00075' }, '150*1/1e6 + 300*2/1e6')

  app = await buildApp(loadConfig(env))
  t.teardown(() => app.close())
  const { body } = await getJson<{ recentUsage: Record<string, unknown>[]; totalCost: number }>(app, '/api/usage', bearer(ADMIN_KEY))
  t.match(body.recentUsage[0], { priced: true, estimatedCost: 0.00075, priceSource: `override:${override.json().id}` })
  t.equal(body.totalCost, 0.00075)
})
