import t from 'tap'
import { loadConfig } from '../../src/config.js'
import { canonicalTimeZone } from '../../src/lib/time-zone.js'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'

/**
 * One time zone rule for the whole service: budgets accepted US/Pacific-New while analytics
 * refused it. Now config, budgets, analytics and reports accept and refuse the same names and
 * agree on the canonical name they store and echo.
 */

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)

const ACCEPTED: [string, string][] = [
  ['UTC', 'UTC'],
  ['utc', 'UTC'],
  ['Europe/Berlin', 'Europe/Berlin'],
  ['europe/berlin', 'Europe/Berlin'],
  ['US/Pacific-New', 'America/Los_Angeles'],
  ['US/Pacific', 'America/Los_Angeles'],
  ['America/Argentina/Buenos_Aires', canonicalTimeZone('America/Argentina/Buenos_Aires') ?? 'unknown'],
  ['Asia/Kolkata', canonicalTimeZone('Asia/Kolkata') ?? 'unknown'],
  ['Etc/GMT+5', 'Etc/GMT+5'],
]
const REFUSED = ['Mars/Olympus_Mons', '+05:30', 'Nowhere', 'Europe/Berlin/Extra/Deep', "Europe/Berlin'; SELECT 1 --", 'Europe/Berlin ', 'x'.repeat(64)]

const budget = (timeZone: string) =>
  app.inject({ method: 'POST', url: '/api/budgets', headers: bearer(ADMIN_KEY), payload: { period: 'month', limitUsd: 10, timeZone } })
const series = (tz: string) =>
  app.inject({ method: 'GET', url: `/api/usage/timeseries?tz=${encodeURIComponent(tz)}&startDate=2024-03-01&endDate=2024-03-03`, headers: bearer(ADMIN_KEY) })
const report = (tz: string) => app.inject({ method: 'GET', url: `/api/reports/monthly?month=2024-03&tz=${encodeURIComponent(tz)}`, headers: bearer(ADMIN_KEY) })
const configZone = (zone: string) => {
  try {
    return loadConfig({ BUDGET_TIMEZONE: zone, DATA_DIR: 'memory://' }).budgets.timeZone
  } catch (err) {
    return err as Error
  }
}

t.test('budgets, analytics, reports and config accept the same zones and agree on their canonical name', async (t) => {
  for (const [zone, canonical] of ACCEPTED) {
    const b = await budget(zone)
    t.equal(b.statusCode, 201, `budget accepts ${zone}: ${b.body.slice(0, 200)}`)
    t.equal((b.json() as { timeZone: string }).timeZone, canonical, `budget stores ${zone} as ${canonical}`)
    const s = await series(zone)
    t.equal(s.statusCode, 200, `timeseries accepts ${zone}: ${s.body.slice(0, 200)}`)
    t.equal((s.json() as { tz: string }).tz, canonical, `timeseries echoes ${canonical}`)
    const r = await report(zone)
    t.equal(r.statusCode, 200, `report accepts ${zone}: ${r.body.slice(0, 200)}`)
    t.equal((r.json() as { tz: string }).tz, canonical)
    t.equal(configZone(zone), canonical, `BUDGET_TIMEZONE=${zone} is ${canonical}`)
  }
})

t.test('budgets, analytics, reports and config refuse the same zones with the same message', async (t) => {
  for (const zone of REFUSED) {
    const expected = (field: string) => `${field} must be an IANA time zone name such as UTC or Europe/Berlin (got "${zone}")`
    const b = await budget(zone)
    t.equal(b.statusCode, 400, `budget refuses ${JSON.stringify(zone)}`)
    if (zone.length < 64) t.equal((b.json() as { message: string }).message, expected('body.timeZone'))
    for (const res of [await series(zone), await report(zone)]) {
      t.equal(res.statusCode, 400, `analytics refuses ${JSON.stringify(zone)}`)
      if (zone.length < 64) t.equal((res.json() as { message: string }).message, expected('querystring.tz'))
    }
    // Environment variables are trimmed before validation, so only the API sees the space.
    if (zone !== zone.trim()) continue
    const c = configZone(zone)
    t.ok(c instanceof Error && c.message.includes(expected('BUDGET_TIMEZONE')), `BUDGET_TIMEZONE=${JSON.stringify(zone)} is refused`)
  }
})
