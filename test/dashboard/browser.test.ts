import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { AddressInfo } from 'node:net'
import { chromium, type Page } from 'playwright-core'
import t from 'tap'
import { resolveRange, type Filters } from '../../web/src/state.js'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { get, seed } from '../analytics/support.js'

/**
 * The dashboard in Debian's Chromium against a seeded service listening on port 0, under the
 * service's Content-Security-Policy (added here to every response, so the page is tested under it
 * whatever else sets headers). One browser launch for the whole file.
 */

const CSP =
  "default-src 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'none'; form-action 'self'; " +
  "script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'"
const BROWSER_TZ = 'America/New_York'
const RESULTS = path.resolve('test-results')

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)

// Two bots over the last 20 days at every hour of the day (so day buckets move with the zone),
// failures, an unpriced provider and metadata.
const now = Date.now()
const events: Record<string, unknown>[] = []
const models = [
  ['openai', 'gpt-4o-mini'],
  ['anthropic', 'claude-3-5-haiku-20241022'],
  ['acme', 'acme-large'],
]
for (let i = 0; i < 300; i++) {
  const [provider, model] = models[i % 3]
  const bot = i % 4 === 0 ? 'bot_beta' : 'bot_alpha'
  events.push({
    id: `e${i}`,
    botId: bot,
    provider,
    model,
    requestType: i % 5 === 0 ? 'embedding' : 'chat',
    inputTokens: 1000 + i * 7,
    outputTokens: 200 + i * 3,
    cacheReadTokens: i % 2 === 0 ? 300 : 0,
    estimatedCost: provider === 'acme' ? 0.002 : undefined,
    success: i % 9 !== 0,
    errorMessage: i % 9 === 0 ? (i % 2 === 0 ? 'rate limited by upstream' : 'context length exceeded') : undefined,
    latencyMs: 200 + ((i * 37) % 1800),
    metadata: { userId: `user_${i % 6}` },
    // Spread over 20 days, at shifting hours.
    createdAt: new Date(now - 60_000 - i * 97 * 60_000).toISOString(),
  })
}
await seed(app, events)
const created = await app.inject({
  method: 'POST',
  url: '/api/keys',
  headers: bearer(ADMIN_KEY),
  payload: { name: 'beta reader', scopes: ['read'], botId: 'bot_beta' },
})
const BETA_KEY = (created.json() as { key: string }).key
const budget = await app.inject({
  method: 'POST',
  url: '/api/budgets',
  headers: bearer(ADMIN_KEY),
  payload: { name: 'alpha monthly', scope: { botId: 'bot_alpha' }, period: 'month', limitUsd: 1000, thresholds: [50, 80] },
})
if (budget.statusCode !== 201) throw new Error(`budget: ${budget.statusCode} ${budget.body}`)

await app.listen({ port: 0, host: '127.0.0.1' })
const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

const userDataDir = mkdtempSync(path.join(tmpdir(), 'dashboard-chromium-'))
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  timezoneId: BROWSER_TZ,
  viewport: { width: 1400, height: 900 },
  acceptDownloads: true,
})
t.teardown(async () => {
  await context.close()
  rmSync(userDataDir, { recursive: true, force: true })
})
mkdirSync(RESULTS, { recursive: true })

const problems: string[] = []
const apiBodies: { url: string; body: string }[] = []
const page = context.pages()[0] ?? (await context.newPage())
page.on('console', (m) => {
  if (m.type() === 'error') problems.push(`console: ${m.text()}`)
})
page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`))
page.on('response', async (r) => {
  if (!r.url().includes('/api/')) return
  if (r.url().includes('key=') || r.url().includes(ADMIN_KEY)) problems.push(`a key in a URL: ${r.url()}`)
  try {
    apiBodies.push({ url: r.url(), body: await r.text() })
  } catch {
    // bodies of downloads and aborted requests are not kept
  }
})
await context.route(`${base}/**`, async (route) => {
  const response = await route.fetch({ maxRedirects: 0 })
  await route.fulfill({ response, headers: { ...response.headers(), 'content-security-policy': CSP } })
})

const card = async (p: Page, metric: string) => p.locator(`[data-metric="${metric}"]`).getAttribute('data-value')
const tableText = async (p: Page, chart: string) => {
  const panel = p.locator(`#${chart}`)
  if ((await panel.locator('.table-toggle').getAttribute('aria-pressed')) !== 'true') {
    // By keyboard: the table alternative must be reachable without a mouse.
    await panel.locator('.table-toggle').focus()
    await p.keyboard.press('Enter')
  }
  return panel.locator('table').innerText()
}
const callsColumn = async (p: Page) => {
  await tableText(p, 'chart-calls')
  return p.locator('#chart-calls tbody tr td:nth-child(2)').allInnerTexts()
}
/** Waits for the page to finish a load it started (the live status reads "Updated ..."). */
const settled = async (p: Page) => {
  // Filter changes set "Loading…" synchronously, so an old "Updated" is never mistaken for the new one.
  // A locator, not a string predicate: Playwright evaluates strings with eval, which the CSP refuses.
  await p.locator('#live-status', { hasText: /^Updated/ }).waitFor()
}
const qs = (f: Partial<Filters> & { range: Filters['range']; tz: string }, extra: Record<string, string> = {}) => {
  const r = resolveRange({ from: '', to: '', ...f }, new Date())
  return new URLSearchParams({ startDate: r.startDate, endDate: r.endDate, tz: f.tz, ...extra }).toString()
}

t.test('a wrong key gets a clear message, and the key never reaches a URL', async (t) => {
  await page.goto(`${base}/`)
  t.match(page.url(), /\/dashboard$/, '/ redirects to the dashboard')
  await page.fill('#key', 'usk_not_a_real_key')
  await page.click('#signin-form button')
  await page.locator('#signin-error').waitFor()
  t.match(await page.locator('#signin-error').innerText(), /not accepted \(401\)/)
  t.equal(await page.evaluate('sessionStorage.length'), 0, 'a rejected key is not kept')
  // Chromium itself logs the rejected request; that one line is the expected outcome here.
  const expected = problems.filter((p) => /status of 401/.test(p))
  t.equal(expected.length, 1)
  problems.splice(0, problems.length, ...problems.filter((p) => !expected.includes(p)))
})

t.test('signed in: the cards equal the API for the same filter', async (t) => {
  await page.fill('#key', ADMIN_KEY)
  await page.click('#signin-form button')
  await settled(page)
  t.notOk(page.url().includes(ADMIN_KEY))
  t.equal(await page.locator('#f-tz').inputValue(), BROWSER_TZ, "the time zone defaults to the browser's")
  const api = await get<{ totals: Record<string, number>; latency: { p95Ms: number } }>(app, `/api/usage/summary?${qs({ range: '7d', tz: BROWSER_TZ })}`)
  t.equal(api.status, 200)
  t.ok(api.body.totals.calls > 50 && api.body.totals.calls < 300, 'the default 7 days hold part of the seed')
  for (const metric of ['calls', 'cost', 'totalTokens', 'inputTokens', 'outputTokens', 'cacheReadTokens', 'successRate', 'unpricedCalls']) {
    t.equal(Number(await card(page, metric)), api.body.totals[metric], metric)
  }
  t.equal(Number(await card(page, 'p95')), api.body.latency.p95Ms, 'p95')
  t.match(await page.locator('[data-metric="unpricedCalls"]').innerText(), /see the events/, 'unpriced events warn and link to the events')
  t.equal(await page.locator('#chart-cost canvas').count(), 1, 'the cost chart is drawn')
  t.match(await page.locator('#budgets-body').innerText(), /alpha monthly[\s\S]*of \$1,000\.00/, 'the budget with its spend and limit')
  t.equal(await page.locator('#budgets-body [role="progressbar"]').count(), 1)
  await page.screenshot({ path: path.join(RESULTS, 'dashboard-desktop.png'), fullPage: true })
  await page.screenshot({ path: path.join(RESULTS, 'dashboard-overview.png') })
})

t.test('range, bot and time zone change the charts and the URL', async (t) => {
  const week = await callsColumn(page)
  t.equal(week.length, 7, 'seven day buckets')
  await page.selectOption('#f-range', '30d')
  await settled(page)
  t.match(page.url(), /range=30d/)
  const month = await callsColumn(page)
  t.equal(month.length, 30)
  const api = await get<{ buckets: { calls: number }[] }>(app, `/api/usage/timeseries?${qs({ range: '30d', tz: BROWSER_TZ })}&interval=day`)
  t.same(month, api.body.buckets.map((b) => b.calls.toLocaleString('en-US')), 'the calls table is the API time series')

  await page.selectOption('#f-bot', 'bot_alpha')
  await settled(page)
  t.match(page.url(), /bot=bot_alpha/)
  const alpha = await get<{ totals: { calls: number } }>(app, `/api/usage/summary?${qs({ range: '30d', tz: BROWSER_TZ }, { botId: 'bot_alpha' })}`)
  t.equal(Number(await card(page, 'calls')), alpha.body.totals.calls)
  t.not(await callsColumn(page), month, 'the bot filter changes the chart')

  await page.selectOption('#f-tz', 'Asia/Kolkata')
  await settled(page)
  t.match(page.url(), /tz=Asia%2FKolkata/)
  const kolkata = await get<{ buckets: { calls: number }[] }>(
    app,
    `/api/usage/timeseries?${qs({ range: '30d', tz: 'Asia/Kolkata' }, { botId: 'bot_alpha' })}&interval=day`,
  )
  const shifted = await callsColumn(page)
  t.same(shifted, kolkata.body.buckets.map((b) => b.calls.toLocaleString('en-US')), 'the buckets follow the chosen zone')

  // Back to the default view with the browser's own history.
  await page.goBack()
  await page.goBack()
  await settled(page)
  t.notMatch(page.url(), /bot=/)
})

t.test('breakdown by a metadata key, errors, events paging', async (t) => {
  await page.selectOption('#f-dim', 'metadata')
  await page.fill('#f-meta', 'userId')
  await page.press('#f-meta', 'Enter')
  await page.locator('#breakdown-table th', { hasText: 'metadata.userId' }).waitFor()
  t.match(page.url(), /dim=metadata.userId/)
  t.equal(await page.locator('#breakdown-table tbody tr').count(), 6)
  t.match(await page.locator('#top-errors-table').innerText(), /rate limited by upstream/)
  await page.locator('#failures details').first().click()
  t.match(await page.locator('#failures details[open] pre').first().innerText(), /"success": false/)
  const first = await page.locator('#events-table tbody tr:not(.detail)').first().innerText()
  await page.click('#events-next')
  await page.locator('#events-page', { hasText: 'Page 2' }).waitFor()
  t.not(await page.locator('#events-table tbody tr:not(.detail)').first().innerText(), first, 'the next page shows other events')
})

t.test('an export downloads the file of the current filter', async (t) => {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-export="csv"]')])
  const file = path.join(RESULTS, 'export.csv')
  await download.saveAs(file)
  const lines = readFileSync(file, 'utf8').trim().split('\r\n')
  const calls = Number(await card(page, 'calls'))
  t.equal(lines.length - 1, calls, 'one line per event of the view, after the header')
  t.match(lines[0], /botId/)
})

t.test('phone width and dark mode', async (t) => {
  await page.setViewportSize({ width: 390, height: 844 })
  await page.emulateMedia({ colorScheme: 'dark' })
  await page.waitForTimeout(200)
  const overflow = Number(await page.evaluate('document.documentElement.scrollWidth - window.innerWidth'))
  t.ok(overflow <= 1, `no horizontal scrolling at phone width (overflow ${overflow}px)`)
  await page.screenshot({ path: path.join(RESULTS, 'dashboard-phone-dark.png') })
  await page.emulateMedia({ colorScheme: 'light' })
  await page.waitForTimeout(200)
  await page.screenshot({ path: path.join(RESULTS, 'dashboard-phone.png') })
  await page.screenshot({ path: path.join(RESULTS, 'dashboard-phone-full.png'), fullPage: true })
  await page.locator('#chart-cost').scrollIntoViewIfNeeded()
  await page.screenshot({ path: path.join(RESULTS, 'dashboard-phone-charts.png') })
  await page.locator('#events').scrollIntoViewIfNeeded()
  await page.screenshot({ path: path.join(RESULTS, 'dashboard-phone-events.png') })
  await page.setViewportSize({ width: 1400, height: 900 })
  await page.emulateMedia({ colorScheme: 'dark' })
  await page.waitForTimeout(200)
  await page.screenshot({ path: path.join(RESULTS, 'dashboard-dark.png') })
  await page.emulateMedia({ colorScheme: 'light' })
})

t.test('a bot-bound key sees only its bot, and the page says so', async (t) => {
  await page.click('#signout')
  t.equal(await page.evaluate('sessionStorage.length'), 0, 'sign-out forgets the key')
  apiBodies.length = 0
  await page.fill('#key', BETA_KEY)
  await page.click('#signin-form button')
  await settled(page)
  t.match(await page.locator('#bound').innerText(), /bound to bot “bot_beta”/)
  t.ok(await page.locator('#f-bot').isDisabled())
  await page.selectOption('#f-dim', 'botId')
  await page.locator('#breakdown-table th', { hasText: 'botId' }).waitFor()
  await settled(page)
  t.same(await page.locator('#breakdown-table tbody td:first-child').allInnerTexts(), ['bot_beta'])
  t.ok(apiBodies.length > 5)
  t.same(
    apiBodies.filter((b) => b.body.includes('bot_alpha')).map((b) => b.url),
    [],
    'no answer the page received mentions another bot',
  )
  t.match(await page.locator('#budgets-body').innerText(), /admin scope/)
})

t.test('no console errors, no CSP violations', async (t) => {
  t.same(problems, [])
})
