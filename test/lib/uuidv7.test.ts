import t from 'tap'
import { uuidv7 } from '../../src/lib/uuidv7.js'

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

t.test('RFC 9562 version 7 ids: well formed, unique and ordered across random-pool refills', async (t) => {
  // 5,000 ids span many refills of the 256-id random pool and many ids per millisecond.
  const ids = Array.from({ length: 5000 }, () => uuidv7())
  t.equal(ids.filter((id) => !V7.test(id)).length, 0, 'version and variant bits set on every id')
  t.equal(new Set(ids).size, ids.length, 'no id repeats')
  t.same([...ids].sort(), ids, 'ids sort in creation order')
  t.equal(new Set(ids.map((id) => id.slice(19))).size, ids.length, 'the random tails differ (fresh bytes for every id)')
})

t.test('the timestamp is the creation time in ms, and never goes backwards', async (t) => {
  const msOf = (id: string) => parseInt(id.replace(/-/g, '').slice(0, 12), 16)
  const later = Date.now() + 86_400_000
  t.equal(msOf(uuidv7(later)), later)
  t.equal(msOf(uuidv7(later - 5000)), later, 'a clock step back keeps the last timestamp, so order holds')
})
