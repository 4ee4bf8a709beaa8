import type { AddressInfo } from 'node:net'
import t from 'tap'
import { ADMIN_KEY, buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { countEvents } from '../helpers/usage.js'
import { ev, seed } from './support.js'

/**
 * A heavy read takes turns with everyone else. An export is read page by page and yields
 * between pages, so a write and a small read sent while it streams are answered before it ends
 * (on the embedded engine, whose one connection and one thread the export shares with them,
 * an export used to run its pages back to back and everything else waited for all of it).
 * Nothing here is timed: only the order of completion is checked.
 */

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)
await app.listen({ port: 0, host: '127.0.0.1' })
const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
const headers = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }

const END = Date.now() - 60_000
const SEEDED = 6000
await seed(
  app,
  Array.from({ length: SEEDED }, (_, i) =>
    ev(`e${i}`, new Date(END - Math.floor((i / SEEDED) * 300 * 86_400_000)).toISOString(), { metadata: { userId: `u${i % 50}`, note: 'x'.repeat(200) } }),
  ),
)

t.test('a write and a small read sent while an export streams are answered before the export ends', async (t) => {
  const before = await countEvents(database)
  const order: string[] = []
  const startDate = new Date(END - 350 * 86_400_000).toISOString().slice(0, 10)
  const res = await fetch(`${base}/api/usage/export?format=jsonl&startDate=${startDate}`, { headers })
  t.equal(res.status, 200)
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  const first = await reader.read()
  t.notOk(first.done, 'the export has started streaming')
  let lines = 0
  const count = (chunk: Uint8Array) => {
    for (const byte of chunk) if (byte === 10) lines++
  }
  count(first.value as Uint8Array)

  // Both sent now, while the rest of the export is still to be read; the export is read on
  // as fast as this process can.
  const write = fetch(`${base}/api/usage`, {
    method: 'POST',
    headers,
    body: JSON.stringify(ev('during-export', new Date(END).toISOString())),
  }).then(async (r) => {
    order.push('write')
    return { status: r.status, body: await r.text() }
  })
  const read = fetch(`${base}/api/usage/events?limit=5`, { headers }).then(async (r) => {
    order.push('read')
    return { status: r.status, body: await r.text() }
  })
  const exported = (async () => {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      count(value)
    }
    order.push('export')
  })()
  const [w, r] = await Promise.all([write, read, exported])
  t.equal(w.status, 201, `the write is acknowledged (${w.body.slice(0, 200)})`)
  t.equal(r.status, 200, `the small read answers (${r.body.slice(0, 200)})`)
  t.ok(lines >= SEEDED, `the whole export arrived (${lines} lines)`)
  t.same(order.slice(-1), ['export'], `the export finished last (order: ${order.join(', ')})`)
  t.equal(await countEvents(database), before + 1, 'the write is stored')
})
