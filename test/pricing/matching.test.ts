// Strict matching: a newer model whose name extends an older model's (a version number after the
// matched prefix) is flagged unpriced, naming the model it was not priced as; dated snapshots,
// suffixes and the dataset's own spellings still resolve.
import t from 'tap'
import { calcPrice } from '@pydantic/genai-prices'
import { usageOf } from '../helpers/pricing.js'
import { PriceCatalog } from '../../src/pricing/catalog.js'
import { strictlyMatches } from '../../src/pricing/matching.js'

const catalog = new PriceCatalog()
const at = new Date('2025-10-01T00:00:00Z')
const loose = (provider: string, model: string) => calcPrice({}, model, { providerId: provider, timestamp: at })?.model.id ?? null

t.test('newer versions of a prefix-matched model are refused, with the reason', async (t) => {
  const refused: [string, string, string][] = [
    ['anthropic', 'claude-sonnet-5-5', 'anthropic/claude-sonnet-5'],
    ['anthropic', 'claude-sonnet-5-5-20261001', 'anthropic/claude-sonnet-5'],
    ['anthropic', 'anthropic/claude-sonnet-5-5', 'anthropic/claude-sonnet-5'],
  ]
  for (const [provider, model, olderModel] of refused) {
    t.not(loose(provider, model.slice(model.lastIndexOf('/') + 1)), null, `the dataset alone would price ${model}`)
    t.same(catalog.explain(provider, model, at), { price: null, refused: olderModel }, model)
    const quote = catalog.quote(provider, model, at, usageOf({ inputTokens: 1000, outputTokens: 1000 }))
    t.match(quote, { priced: false, reason: `no price for provider ${provider} model ${model}: the name extends ${olderModel} with a newer version number` })
  }
})

t.test('snapshots, dates, suffixes and the dataset spellings still resolve', async (t) => {
  const accepted: [string, string, string][] = [
    ['anthropic', 'claude-sonnet-5', 'claude-sonnet-5'],
    ['anthropic', 'claude-sonnet-4-5-20250929', 'claude-sonnet-4-5'],
    ['anthropic', 'claude-sonnet-4@20250514', 'claude-sonnet-4-0'],
    ['anthropic', 'claude-3-5-sonnet-latest', 'claude-3-5-sonnet'],
    ['openai', 'gpt-4-32k-0613', 'gpt-4-32k'],
    ['openai', 'gpt-3.5-turbo-16k', 'gpt-3.5-turbo-16k'],
    ['openai', 'gpt-4o-20240806', 'gpt-4o'],
    ['openai', 'gpt-4o-audio-preview-2024-12-17', 'gpt-4o-audio-preview'],
    ['google', 'gemini-1.5-pro-002', 'gemini-1.5-pro'],
    ['google', 'gemini-2.0-flash-lite-001', 'gemini-2.0-flash-lite'],
    ['google', 'gemini-2.5-flash-preview-05-20', 'gemini-2.5-flash-preview'],
  ]
  for (const [provider, model, id] of accepted) t.equal(catalog.resolve(provider, model, at)?.model, id, model)
})

t.test('the rule, on the dataset match logic itself', async (t) => {
  const prefix = { starts_with: 'claude-sonnet-5' }
  t.ok(strictlyMatches(prefix, 'claude-sonnet-5'))
  t.ok(strictlyMatches(prefix, 'claude-sonnet-5-20260101'))
  t.ok(strictlyMatches(prefix, 'claude-sonnet-5@20260101'))
  t.notOk(strictlyMatches(prefix, 'claude-sonnet-5-5'))
  t.notOk(strictlyMatches(prefix, 'claude-sonnet-5.1'))
  t.notOk(strictlyMatches(prefix, 'claude-sonnet-5-12-preview'))
  t.ok(strictlyMatches({ or: [{ starts_with: 'x-1' }, { equals: 'x-1-2' }] }, 'x-1-2'), 'an exact name wins over a refused prefix')
  t.notOk(strictlyMatches({ contains: 'gemini-1.5-pro' }, 'gemini-1.5-pro-2'))
  t.ok(strictlyMatches({ contains: 'gemini-1.5-pro' }, 'vertex/gemini-1.5-pro-002'))
})
