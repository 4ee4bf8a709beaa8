import t from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { ADMIN_KEY } from './helpers/app.js'
import { persistentStorageEnv } from './helpers/db.js'
import { getJson, postBatch, SEED_EVENT } from './helpers/usage.js'

t.test('data survives a restart of the service', async (t) => {
  const storage = persistentStorageEnv(t, 'restart')
  // Exactly what `npm start` does: configuration from the environment, migrations at start.
  const env = { LOG_LEVEL: 'silent', ADMIN_API_KEY: ADMIN_KEY, ...storage }

  const first = await buildApp(loadConfig(env))
  const res = await postBatch(first, [
    { ...SEED_EVENT, id: 'r1' },
    { ...SEED_EVENT, id: 'r2', estimatedCost: 0.5 },
  ])
  t.equal(res.json().created, 2)
  const before = await getJson(first, '/api/usage')
  await first.close()

  const second = await buildApp(loadConfig(env))
  const after = await getJson(second, '/api/usage')
  t.same(after.body, before.body)
  t.equal((after.body as { totalCost: number }).totalCost, 0.50675)
  // A re-send after the restart is still recognised as a duplicate.
  const again = await postBatch(second, [{ ...SEED_EVENT, id: 'r1' }])
  t.equal(again.json().duplicates, 1)
  await second.close()
})
