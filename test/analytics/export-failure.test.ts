import { sql } from 'drizzle-orm'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { request } from 'undici'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'

// An export that fails after its first byte must fail visibly: a CSV download is aborted (no
// terminating chunk, so the HTTP client errors), a JSON-lines download ends with an error line.
// The failure is a real one: the events table disappears while the export streams.
const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)
await app.listen({ port: 0, host: '127.0.0.1' })
const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
const RANGE = 'startDate=2025-01-01&endDate=2025-01-31'

// Rows large enough (4 KB each, 28 MB in all) that the export cannot run ahead of a client that
// stops reading: socket buffers hold a few MB, the export one batch of 2,000 rows beyond them.
const ROWS = 7000
await database.db.execute(sql`
  INSERT INTO usage_events (id, bot_id, created_at, provider, model, request_type, success, error_message, input_tokens, output_tokens, total_tokens)
  SELECT 'e' || i, 'bot_x', timestamptz '2025-01-02T00:00:00Z' + i * interval '1 second', 'acme', 'acme-large', 'message', false,
         repeat('x', 4000), 1, 1, 2
  FROM generate_series(1, ${ROWS}) AS i`)

async function withTableGone(run: () => Promise<void>): Promise<void> {
  await database.db.execute(sql`ALTER TABLE usage_events RENAME TO usage_events_gone`)
  try {
    await run()
  } finally {
    await database.db.execute(sql`ALTER TABLE usage_events_gone RENAME TO usage_events`)
  }
}

/** Starts an export, reads its first chunk, breaks the database, then reads on. */
async function exportBrokenMidway(format: 'csv' | 'jsonl'): Promise<{ status: number; text: string; error: unknown }> {
  const res = await request(`${base}/api/usage/export?format=${format}&${RANGE}`, { headers: bearer(ADMIN_KEY) })
  const chunks: Buffer[] = []
  const it = res.body[Symbol.asyncIterator]()
  const first = await it.next()
  if (!first.done) chunks.push(first.value as Buffer)
  let error: unknown = null
  await withTableGone(async () => {
    try {
      for (let next = await it.next(); !next.done; next = await it.next()) chunks.push(next.value as Buffer)
    } catch (err) {
      error = err
    }
  })
  return { status: res.statusCode, text: Buffer.concat(chunks).toString('utf8'), error }
}

t.test('a complete export has every row', async (t) => {
  const res = await request(`${base}/api/usage/export?format=jsonl&${RANGE}`, { headers: bearer(ADMIN_KEY) })
  const lines = (await res.body.text()).trim().split('\n')
  t.equal(res.statusCode, 200)
  t.equal(lines.length, ROWS)
  t.notOk(lines.some((l) => l.startsWith('{"error"')))
})

t.test('a failure before the first byte is an ordinary error answer', async (t) => {
  await withTableGone(async () => {
    for (const format of ['csv', 'jsonl']) {
      const res = await request(`${base}/api/usage/export?format=${format}&${RANGE}`, { headers: bearer(ADMIN_KEY) })
      const body = (await res.body.json()) as { statusCode: number; code: string }
      t.ok(res.statusCode >= 500, `${format}: ${res.statusCode}, not 200`)
      t.equal(body.statusCode, res.statusCode)
    }
  })
})

t.test('CSV: a mid-stream failure aborts the response, so the client sees an error', async (t) => {
  const { status, text, error } = await exportBrokenMidway('csv')
  t.equal(status, 200, 'the status was sent before the failure')
  t.ok(text.startsWith('id,botId,createdAt'), 'the header row came')
  t.ok(error instanceof Error, `reading the body fails (${String(error)})`)
  const rows = text.split('\r\n').length - 2
  t.ok(rows < ROWS, `the body is incomplete (${rows} of ${ROWS} rows)`)
})

t.test('JSON lines: a mid-stream failure ends with an error line', async (t) => {
  const { status, text, error } = await exportBrokenMidway('jsonl')
  t.equal(status, 200)
  t.equal(error, null, 'the response ends normally, so the error line arrives')
  const lines = text.trimEnd().split('\n')
  const last = JSON.parse(lines[lines.length - 1]) as { error?: { code: string; statusCode: number; message: string } }
  t.match(last, { error: { statusCode: 500, code: 'EXPORT_INCOMPLETE', error: 'Internal Server Error', message: /^The export failed after \d+ events and this file is incomplete/ } })
  const events = lines.length - 1
  t.ok(events > 0 && events < ROWS, `${events} events came before it`)
  t.equal(last.error?.message.match(/after (\d+) events/)?.[1], String(events), 'the error line says how many events came')
  t.ok(lines.slice(0, -1).every((l) => 'id' in (JSON.parse(l) as object)), 'every other line is an event')
})
