import type { FastifyInstance } from 'fastify'
import { Writable } from 'node:stream'
import { buildApp, type AppDeps } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import type { Database } from '../../src/db/connect.js'

/** The ADMIN_API_KEY every test app is configured with. */
export const ADMIN_KEY = 'usk_test_admin_key_0123456789abcdef'

export const bearer = (key: string) => ({ authorization: `Bearer ${key}` })

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    LOG_LEVEL: 'info',
    MIGRATE: 'false',
    DATA_DIR: 'memory://',
    ADMIN_API_KEY: ADMIN_KEY,
    // Load shedding reacts to the machine: parallel test files on 2 cores would trip it at random
    // (a slow run of 200 concurrent posts did: on the embedded engine the oldest waited > 75 ms).
    // test/usage/backpressure.test.ts turns each rule on where it is the subject.
    MAX_EVENT_LOOP_DELAY_MS: '0',
    MAX_HEAP_USED_BYTES: '0',
    INGEST_MAX_QUEUE_DELAY_MS: '60000',
    // A burst of concurrent injects is one long turn of the loop, which this rule sheds on Postgres.
    INGEST_MAX_LOOP_DELAY_MS: '0',
    ...env,
  })
}

export interface TestApp {
  app: FastifyInstance
  /** Every log line the app wrote, parsed. */
  logs: Record<string, unknown>[]
  rawLog: () => string
}

/** Builds the app on a test database, capturing its logs; closed when the test ends. */
export async function buildTestApp(
  t: { teardown(fn: () => unknown): void },
  database: Database,
  env: Record<string, string> = {},
  deps: Pick<AppDeps, 'budgetClock'> = {},
): Promise<TestApp> {
  const chunks: string[] = []
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk))
      cb()
    },
  })
  const config = testConfig(env)
  const app = await buildApp(config, { ...deps, database, logDestination: stream })
  t.teardown(() => app.close())
  const rawLog = () => chunks.join('')
  return {
    app,
    get logs() {
      return rawLog()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>)
    },
    rawLog,
  }
}
