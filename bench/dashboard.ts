/**
 * Dashboard benchmark: time to the first meaningful paint of /dashboard on the embedded default
 * (PGlite) with N events, in Debian's Chromium.
 *
 *   npx tsx bench/dashboard.ts [--events 100000] [--runs 5] [--tz UTC]
 *
 * Generates the events in SQL over the 30 days before now (20 bots, 8 models, 5% failures) and
 * builds the rollups from them, as bench/query.ts does. The browser is signed in already (the key
 * in sessionStorage, as after a sign-in); each run is a reload of /dashboard with the default
 * view (last 7 days). "Meaningful paint" is the moment the cards and all six charts are drawn
 * (the page writes "Updated ..." right after), measured from navigation start with the page's
 * own performance clock; first contentful paint is reported beside it. The first run is cold
 * (empty browser cache); the median is over the warm runs.
 */
import { sql } from 'drizzle-orm'
import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { chromium } from 'playwright-core'
import { rebuildRollups } from '../src/usage/rollups.js'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { connectDatabase } from '../src/db/connect.js'
import { migrateDatabase } from '../src/db/migrate.js'

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '100000' },
    runs: { type: 'string', default: '5' },
    tz: { type: 'string', default: 'UTC' },
  },
})
const EVENTS = Number(args.events)
const RUNS = Number(args.runs)
const ADMIN_KEY = 'usk_bench_admin_key_0123456789abcdef'
const log = (line: string): void => void process.stdout.write(`${line}\n`)

async function main(): Promise<void> {
  const database = await connectDatabase({ databaseUrl: null, dataDir: 'memory://', schema: 'public', poolSize: 1 })
  await migrateDatabase(database)
  log(`# bench:dashboard: ${EVENTS.toLocaleString('en')} events over 30 days on the embedded engine, browser tz ${args.tz}`)
  await database.db.execute(sql`
    INSERT INTO usage_events (id, bot_id, created_at, received_at, provider, model, request_type, success, error_message,
      input_tokens, output_tokens, total_tokens, cache_read_tokens, reasoning_tokens, latency_ms, cost, reported_cost,
      priced, price_source, metadata)
    SELECT 'ev' || g, 'bot_' || (g % 20), ts, ts, CASE WHEN m < 4 THEN 'anthropic' ELSE 'openai' END, 'model_' || m,
      CASE WHEN m = 7 THEN 'embedding' ELSE 'message' END, NOT failed, CASE WHEN failed THEN 'upstream error ' || (g % 13) END,
      inp, outp, inp + outp, inp / 4, outp / 10, (200 + exp(random() * 8))::int,
      round((inp * (m + 1) * 0.000001 + outp * (m + 1) * 0.000004)::numeric, 12), NULL, true, 'bench',
      jsonb_build_object('userId', 'user_' || (g % 500))
    FROM (
      SELECT g, now() - (random() * 30 * 86400) * interval '1 second' AS ts, (g / 20) % 8 AS m, random() < 0.05 AS failed,
        (random() * 4000)::int AS inp, (random() * 1000)::int AS outp
      FROM generate_series(1, ${EVENTS}) g
    ) s`)
  await rebuildRollups(database)
  const app = await buildApp(loadConfig({ ADMIN_API_KEY: ADMIN_KEY, LOG_LEVEL: 'silent', MIGRATE: 'false', DATA_DIR: 'memory://' }), { database })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/dashboard`
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'bench-dashboard-'))
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timezoneId: args.tz,
    viewport: { width: 1400, height: 900 },
  })
  try {
    const page = context.pages()[0] ?? (await context.newPage())
    await context.addInitScript(`sessionStorage.setItem('llm-usage-dashboard.key', ${JSON.stringify(ADMIN_KEY)})`)
    const results: { meaningful: number; fcp: number }[] = []
    const requests: string[] = []
    page.on('requestfinished', (request) => {
      const t = request.timing()
      if (request.url().includes('/api/')) requests.push(`    ${(t.responseEnd - t.requestStart).toFixed(0).padStart(5)} ms  ${request.url().split('?')[0].replace(/^.*\/api\//, '/api/')}`)
    })
    for (let run = 0; run <= RUNS; run++) {
      await page.goto(url)
      await page
        .waitForFunction("document.getElementById('live-status')?.textContent?.startsWith('Updated')", null, { timeout: 60_000 })
        .catch(async (err: unknown) => {
          const shown = await page.evaluate("[document.getElementById('banner')?.textContent, document.getElementById('signin-error')?.textContent]")
          throw new Error(`the page did not finish loading (it shows ${JSON.stringify(shown)})`, { cause: err })
        })
      const timing = (await page.evaluate(
        `({ meaningful: performance.getEntriesByName('dashboard:meaningful-paint')[0].startTime, complete: performance.now(),
            fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1 })`,
      )) as { meaningful: number; fcp: number; complete: number }
      results.push(timing)
      if (run === RUNS && process.env.BENCH_VERBOSE) log(requests.slice(-20).join('\n'))
      requests.length = 0
      log(
        `  run ${run}${run === 0 ? ' (cold)' : ''}: meaningful paint ${timing.meaningful.toFixed(0)} ms ` +
          `(first contentful paint ${timing.fcp.toFixed(0)} ms, everything loaded ${timing.complete.toFixed(0)} ms)`,
      )
    }
    const warm = results.slice(1).map((r) => r.meaningful).sort((a, b) => a - b)
    log(`cold ${results[0].meaningful.toFixed(0)} ms; warm median ${warm[Math.floor(warm.length / 2)].toFixed(0)} ms, max ${warm[warm.length - 1].toFixed(0)} ms (target < 1000 ms)`)
  } finally {
    await context.close()
    rmSync(userDataDir, { recursive: true, force: true })
    await app.close()
    await database.close()
  }
}

await main()
