// Swagger UI in a real browser (headless Chromium), under the service's real headers: it renders
// without a single Content-Security-Policy violation, and "Try it out" on POST /api/usage sends the
// documented example, which the service stores.
import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'
import t from 'tap'
import { ADMIN_KEY, bearer, buildTestApp } from './helpers/app.js'
import { createTestDatabase } from './helpers/db.js'
import { SEED_EVENT } from './helpers/usage.js'

const CHROMIUM = '/usr/bin/chromium'
if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`)

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)
const base = await app.listen({ host: '127.0.0.1', port: 0 })

const browser: Browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
})
t.teardown(() => browser.close())

t.test('Swagger UI loads under the CSP without violations, and Try it out sends the accepted example', async (t) => {
  const page = await browser.newPage()
  const problems: string[] = []
  page.on('console', (m) => {
    if (m.type() === 'error' || /Content.Security.Policy/i.test(m.text())) problems.push(`console ${m.type()}: ${m.text()}`)
  })
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
  // Injected by the browser itself, so the CSP does not apply to this listener.
  await page.addInitScript({
    content:
      "document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`))",
  })

  const answer = await page.goto(`${base}/docs/`)
  t.equal(answer?.status(), 200)
  t.match(answer?.headers()['content-security-policy'], /script-src 'self';/, 'served under the CSP')
  await page.locator('#operations-usage-post_api_usage').waitFor({ timeout: 30_000 })

  // Authorize with the admin key, as a user pastes it.
  await page.locator('.auth-wrapper .authorize').click()
  await page.locator('.modal-ux input').first().fill(ADMIN_KEY)
  await page.locator('.modal-ux .auth-btn-wrapper .authorize').click()
  await page.locator('.modal-ux .btn-done').click()

  const operation = page.locator('#operations-usage-post_api_usage')
  await operation.locator('.opblock-summary').first().click()
  await operation.locator('.try-out__btn').click()
  const body = JSON.parse(await operation.locator('textarea.body-param__text').inputValue()) as unknown
  t.same(body, SEED_EVENT, 'the body Try it out fills in is the seed example')
  await operation.locator('.execute').click()
  const status = operation.locator('.live-responses-table tbody .response-col_status').first()
  await status.waitFor({ timeout: 30_000 })
  t.match(await status.innerText(), /201/, 'the service answered 201 Created')

  const stats = await app.inject({ method: 'GET', url: '/api/usage', headers: bearer(ADMIN_KEY) })
  t.equal((stats.json() as { totalCost: number }).totalCost, SEED_EVENT.estimatedCost, 'the example was stored')
  t.same(problems, [], 'no CSP violation, console error or page error')
  await page.close()
})
