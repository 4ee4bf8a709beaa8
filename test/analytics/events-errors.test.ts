import t from 'tap'
import { buildTestApp } from '../helpers/app.js'
import { createTestDatabase, resetTables } from '../helpers/db.js'
import { ev, get, seed } from './support.js'

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)
t.beforeEach(() => resetTables(database))

interface Event {
  id: string
  botId: string
  createdAt: string
  success: boolean
  errorMessage: string | null
}
interface EventsPage {
  events: Event[]
  nextCursor: string | null
}
interface ErrorsPage {
  failures: number
  errors: Event[]
  nextCursor: string | null
  topMessages: { message: string | null; count: number; lastSeen: string }[]
}

async function readAll(url: string, onPage?: (page: number) => Promise<void>): Promise<string[]> {
  const ids: string[] = []
  let cursor: string | null = null
  for (let page = 0; page < 50; page++) {
    const res: { status: number; body: EventsPage; text: string } = await get<EventsPage>(app, cursor === null ? url : `${url}&cursor=${encodeURIComponent(cursor)}`)
    if (res.status !== 200) throw new Error(res.text)
    ids.push(...res.body.events.map((e) => `${e.botId}/${e.id}`))
    cursor = res.body.nextCursor
    if (cursor === null) return ids
    await onPage?.(page)
  }
  throw new Error('too many pages')
}

t.test('events: newest first, ties broken by bot and id, pages never repeat or skip', async (t) => {
  // Five events share each instant, so the cursor must carry more than the timestamp.
  const events = Array.from({ length: 40 }, (_, i) =>
    ev(`e${String(i).padStart(2, '0')}`, new Date(Date.UTC(2024, 6, 1, 0, Math.floor(i / 5))).toISOString(), { botId: i % 2 ? 'bot_b' : 'bot_a' }),
  )
  await seed(app, events)
  const all = await readAll('/api/usage/events?startDate=2024-07-01&endDate=2024-07-01&limit=7')
  t.equal(all.length, 40)
  t.equal(new Set(all).size, 40, 'no repeats')
  const single = await get<EventsPage>(app, '/api/usage/events?startDate=2024-07-01&endDate=2024-07-01&limit=1000')
  t.same(all, single.body.events.map((e) => `${e.botId}/${e.id}`), 'pages concatenate to the one-page order')
  const times = single.body.events.map((e) => e.createdAt)
  t.same(times, [...times].sort().reverse(), 'newest first')
  t.equal(single.body.nextCursor, null)
})

t.test('pagination is stable while events are inserted between pages', async (t) => {
  await seed(app, Array.from({ length: 30 }, (_, i) => ev(`s${String(i).padStart(2, '0')}`, new Date(Date.UTC(2024, 6, 2, 1, i)).toISOString())))
  let inserted = 0
  const all = await readAll('/api/usage/events?startDate=2024-07-02&endDate=2024-07-02&limit=8', async () => {
    // Newer than everything, in the middle of what is left, and at an already-paged instant.
    await seed(app, [
      ev(`late${inserted}`, '2024-07-02T23:00:00Z'),
      ev(`mid${inserted}`, new Date(Date.UTC(2024, 6, 2, 1, 3)).toISOString()),
      ev(`old${inserted}`, new Date(Date.UTC(2024, 6, 2, 1, 29)).toISOString(), { botId: 'bot_z' }),
    ])
    inserted++
  })
  t.ok(inserted >= 3, 'inserts happened between pages')
  t.same(
    all.sort(),
    Array.from({ length: 30 }, (_, i) => `bot_a/s${String(i).padStart(2, '0')}`),
    'exactly the events that existed when the first page was read, each once',
  )
  const fresh = await get<EventsPage>(app, '/api/usage/events?startDate=2024-07-02&endDate=2024-07-02&limit=1000')
  t.equal(fresh.body.events.length, 30 + 3 * inserted, 'a new listing sees them')
})

t.test('events take every filter', async (t) => {
  await seed(app, [
    ev('f1', '2024-07-03T00:00:00Z', { botId: 'bot_a', model: 'm1', provider: 'p1', requestType: 'message' }),
    ev('f2', '2024-07-03T00:01:00Z', { botId: 'bot_b', model: 'm2', provider: 'p1', requestType: 'embedding', success: false }),
    ev('f3', '2024-07-03T00:02:00Z', { botId: 'bot_b', model: 'm1', provider: 'p2' }),
  ])
  const ids = async (qs: string, range = 'startDate=2024-07-03&endDate=2024-07-03') =>
    (await get<EventsPage>(app, `/api/usage/events?${range}&${qs}`)).body.events.map((e) => e.id)
  t.same(await ids('botId=bot_b'), ['f3', 'f2'])
  t.same(await ids('model=m1'), ['f3', 'f1'])
  t.same(await ids('provider=p1'), ['f2', 'f1'])
  t.same(await ids('requestType=embedding'), ['f2'])
  t.same(await ids('success=false'), ['f2'])
  t.same(await ids('', 'startDate=2024-07-03&endDate=2024-07-03T00:01:00Z'), ['f2', 'f1'], 'endDate timestamps are inclusive')
  t.same(await ids('', 'startDate=2024-07-04&endDate=2024-07-05'), [], 'empty range')
})

t.test('errors: newest failures first, top messages, failure count, pagination', async (t) => {
  const failures = Array.from({ length: 12 }, (_, i) =>
    ev(`x${String(i).padStart(2, '0')}`, new Date(Date.UTC(2024, 6, 4, i)).toISOString(), {
      success: false,
      errorMessage: i % 3 === 0 ? 'rate limited' : i % 3 === 1 ? 'timeout' : i === 2 ? null : 'upstream 500',
      ...(i === 2 ? { errorMessage: undefined } : {}),
    }),
  )
  await seed(app, [...failures, ev('ok1', '2024-07-04T05:30:00Z'), ev('ok2', '2024-07-04T23:00:00Z')])
  const first = await get<ErrorsPage>(app, '/api/usage/errors?startDate=2024-07-04&endDate=2024-07-04&limit=5&top=3')
  t.equal(first.status, 200)
  t.equal(first.body.failures, 12)
  t.same(first.body.errors.map((e) => e.id), ['x11', 'x10', 'x09', 'x08', 'x07'])
  t.ok(first.body.errors.every((e) => !e.success))
  t.same(first.body.topMessages.map((m) => [m.message, m.count]), [
    ['timeout', 4],
    ['rate limited', 4],
    ['upstream 500', 3],
  ])
  t.equal(first.body.topMessages[0].lastSeen, '2024-07-04T10:00:00.000Z', 'ties: the most recent first')
  const rest: string[] = []
  let cursor = first.body.nextCursor
  while (cursor) {
    const next = await get<ErrorsPage>(app, `/api/usage/errors?startDate=2024-07-04&endDate=2024-07-04&limit=5&cursor=${encodeURIComponent(cursor)}`)
    rest.push(...next.body.errors.map((e) => e.id))
    cursor = next.body.nextCursor
  }
  t.same(rest, ['x06', 'x05', 'x04', 'x03', 'x02', 'x01', 'x00'])
  const byBot = await get<ErrorsPage>(app, '/api/usage/errors?startDate=2024-07-04&endDate=2024-07-04&botId=nobody')
  t.same([byBot.body.failures, byBot.body.errors, byBot.body.topMessages], [0, [], []])
})

t.test('bad cursors and parameters get 400', async (t) => {
  const cases: [string, RegExp][] = [
    ['/api/usage/events?cursor=garbage', /querystring\.cursor is not a cursor returned by this endpoint/],
    [`/api/usage/events?cursor=${Buffer.from('["a","b","c","d"]').toString('base64url')}`, /querystring\.cursor is not a cursor/],
    // A NUL is refused at the edge, before the cursor is decoded (the same rule as every string).
    ['/api/usage/errors?cursor=%00', /querystring\.cursor contains a NUL character/],
    ['/api/usage/errors?cursor=bm90LWpzb24', /querystring\.cursor is not a cursor/],
    ['/api/usage/events?limit=1001', /querystring\.limit must be <= 1000/],
    ['/api/usage/errors?success=true', /querystring has unknown field 'success'/],
    ['/api/usage/errors?top=101', /querystring\.top must be <= 100/],
    ['/api/usage/events?startDate=2030-01-01', /querystring\.startDate must be before now when querystring\.endDate is omitted/],
  ]
  for (const [url, message] of cases) {
    const res = await get(app, url)
    t.equal(res.status, 400, url)
    t.match(res.body, { code: 'VALIDATION_ERROR', message }, url)
  }
})
