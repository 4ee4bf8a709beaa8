// One test per committed correction (src/pricing/corrections.ts): the dataset as shipped still
// gets the case wrong (else the correction is obsolete and should go), and with the correction
// the cost is the one computed by hand from the provider's published prices (exact decimals).
import t from 'tap'
import { usageOf } from '../helpers/pricing.js'
import { PriceCatalog, type BillableUsage } from '../../src/pricing/catalog.js'
import { CORRECTIONS } from '../../src/pricing/corrections.js'

interface Case {
  provider: string
  model: string
  at: string
  usage: Partial<BillableUsage>
  /** With the correction, from the published prices. */
  cost: string
  /** The dataset alone: a different cost, or null (unpriced). */
  datasetCost: string | null
}

const cases: Record<string, Case[]> = {
  'anthropic-claude-sonnet-4-long-context': [
    // above 200k the whole request: 250000*6/1e6 + 2000*22.5/1e6
    { provider: 'anthropic', model: 'claude-sonnet-4-20250514', at: '2025-09-01T00:00:00Z', usage: { inputTokens: 250_000, outputTokens: 2000 }, cost: '1.545', datasetCost: '0.78' },
    // with cache: 150000*6/1e6 + 50000*0.6/1e6 + 40000*7.5/1e6 + 10000*12/1e6 + 1000*22.5/1e6
    { provider: 'anthropic', model: 'claude-sonnet-4-0', at: '2025-09-01T00:00:00Z', usage: { inputTokens: 250_000, cacheReadTokens: 50_000, cacheWriteTokens: 50_000, cacheWrite1hTokens: 10_000, outputTokens: 1000 }, cost: '1.3725', datasetCost: '0.69' },
  ],
  'openai-o3-cached-input-before-2025-06-10': [
    // before the cut: 2000*10/1e6 + 8000*2.5/1e6 + 1000*40/1e6
    { provider: 'openai', model: 'o3-2025-04-16', at: '2025-05-01T00:00:00Z', usage: { inputTokens: 10_000, cacheReadTokens: 8000, outputTokens: 1000 }, cost: '0.08', datasetCost: '0.064' },
  ],
  'openai-ft-gpt-4o-cached-input': [
    // 2000*3.75/1e6 + 8000*1.875/1e6 + 1000*15/1e6
    { provider: 'openai', model: 'ft:gpt-4o-2024-08-06:acme::abc123', at: '2025-03-10T00:00:00Z', usage: { inputTokens: 10_000, cacheReadTokens: 8000, outputTokens: 1000 }, cost: '0.0375', datasetCost: '0.0525' },
  ],
  'openai-ft-gpt-4o-mini-cached-input': [
    // 2000*0.3/1e6 + 8000*0.15/1e6 + 1000*1.2/1e6
    { provider: 'openai', model: 'ft:gpt-4o-mini-2024-07-18:acme::abc123', at: '2025-03-10T00:00:00Z', usage: { inputTokens: 10_000, cacheReadTokens: 8000, outputTokens: 1000 }, cost: '0.003', datasetCost: '0.0042' },
  ],
  'openai-ft-gpt-4.1': [
    // 2000*3/1e6 + 8000*0.75/1e6 + 1000*12/1e6
    { provider: 'openai', model: 'ft:gpt-4.1-2025-04-14:acme:support:abc123', at: '2025-06-01T00:00:00Z', usage: { inputTokens: 10_000, cacheReadTokens: 8000, outputTokens: 1000 }, cost: '0.024', datasetCost: null },
  ],
  'openai-ft-gpt-4.1-mini': [
    // 2000*0.8/1e6 + 8000*0.2/1e6 + 1000*3.2/1e6
    { provider: 'openai', model: 'ft:gpt-4.1-mini-2025-04-14:acme::abc123', at: '2025-06-01T00:00:00Z', usage: { inputTokens: 10_000, cacheReadTokens: 8000, outputTokens: 1000 }, cost: '0.0064', datasetCost: null },
  ],
  'openai-ft-gpt-4.1-nano': [
    // 2000*0.2/1e6 + 8000*0.05/1e6 + 1000*0.8/1e6
    { provider: 'openai', model: 'ft:gpt-4.1-nano-2025-04-14:acme::abc123', at: '2025-06-01T00:00:00Z', usage: { inputTokens: 10_000, cacheReadTokens: 8000, outputTokens: 1000 }, cost: '0.0016', datasetCost: null },
  ],
  'google-gemini-1.5-pro-cached-input': [
    // up to 128k: 6000*1.25/1e6 + 4000*0.3125/1e6
    { provider: 'google', model: 'gemini-1.5-pro-002', at: '2025-03-10T00:00:00Z', usage: { inputTokens: 10_000, cacheReadTokens: 4000 }, cost: '0.00875', datasetCost: '0.0125' },
    // above 128k: 100000*2.5/1e6 + 100000*0.625/1e6 + 1000*10/1e6
    { provider: 'google', model: 'gemini-1.5-pro', at: '2025-03-10T00:00:00Z', usage: { inputTokens: 200_000, cacheReadTokens: 100_000, outputTokens: 1000 }, cost: '0.3225', datasetCost: '0.51' },
  ],
  'google-gemini-2.5-flash-preview-thinking': [
    // a thinking call: all output at 3.5: 1000*0.15/1e6 + 3000*3.5/1e6
    { provider: 'google', model: 'gemini-2.5-flash-preview-04-17', at: '2025-05-01T00:00:00Z', usage: { inputTokens: 1000, outputTokens: 3000, reasoningTokens: 2000 }, cost: '0.01065', datasetCost: '0.00195' },
    // audio prompt: 1000*0.15/1e6 + 9000*1/1e6 + 100*0.6/1e6 (no thinking: the plain output price)
    { provider: 'google', model: 'gemini-2.5-flash-preview-05-20', at: '2025-06-01T00:00:00Z', usage: { inputTokens: 10_000, inputAudioTokens: 9000, outputTokens: 100 }, cost: '0.00921', datasetCost: '0.00156' },
  ],
  'openai-gpt-4o-audio-preview-audio': [
    // 200*2.5/1e6 + 800*40/1e6 + 100*10/1e6 + 400*80/1e6
    { provider: 'openai', model: 'gpt-4o-audio-preview-2024-12-17', at: '2025-03-10T00:00:00Z', usage: { inputTokens: 1000, inputAudioTokens: 800, outputTokens: 500, outputAudioTokens: 400 }, cost: '0.0655', datasetCost: '0.0075' },
  ],
  'openai-gpt-4o-mini-audio-preview-audio': [
    // 200*0.15/1e6 + 800*10/1e6 + 100*0.6/1e6 + 400*20/1e6
    { provider: 'openai', model: 'gpt-4o-mini-audio-preview-2024-12-17', at: '2025-03-10T00:00:00Z', usage: { inputTokens: 1000, inputAudioTokens: 800, outputTokens: 500, outputAudioTokens: 400 }, cost: '0.01609', datasetCost: '0.00045' },
  ],
  'anthropic-claude-2.1-spelling': [
    // 1000*8/1e6 + 1000*24/1e6; strict matching alone refuses the minor-version suffix
    { provider: 'anthropic', model: 'claude-2.1', at: '2024-03-10T00:00:00Z', usage: { inputTokens: 1000, outputTokens: 1000 }, cost: '0.032', datasetCost: null },
  ],
}

const corrected = new PriceCatalog()
const shipped = new PriceCatalog({ corrections: [] })

t.same(Object.keys(cases).sort(), CORRECTIONS.map((c) => c.id).sort(), 'every correction has a case, and every case a correction')

for (const correction of CORRECTIONS) {
  t.test(correction.id, async (t) => {
    t.match(correction.source, /^https:\/\/[a-z.]+\.(com|dev|google)\//, 'names the provider page it comes from')
    t.match(correction.checked, /^\d{4}-\d{2}-\d{2}$/, 'says when it was checked')
    for (const c of cases[correction.id]) {
      const at = new Date(c.at)
      const usage = usageOf(c.usage)
      const quote = corrected.quote(c.provider, c.model, at, usage)
      t.ok(quote.priced, `${c.model} is priced`)
      if (!quote.priced) continue
      t.equal(quote.cost, c.cost, `${c.model}: the published price`)
      t.ok(quote.price.corrections.some((applied) => applied.id === correction.id), 'the price lists the correction')
      t.ok(quote.price.sourceLabel.includes(correction.id), `the stored price source names it: ${quote.price.sourceLabel}`)
      const before = shipped.quote(c.provider, c.model, at, usage)
      t.equal(before.priced ? before.cost : null, c.datasetCost, 'the dataset alone still gets it wrong (else drop the correction)')
    }
  })
}

t.test('a correction with a validity range ends where it says, and the price says so', async (t) => {
  const usage = usageOf({ inputTokens: 10_000, cacheReadTokens: 8000, outputTokens: 1000 })
  const before = corrected.resolve('openai', 'o3', new Date('2025-06-09T23:59:59Z'))
  t.match(before, { cacheRead: '2.5', input: '10', effectiveFrom: null, effectiveTo: new Date('2025-06-10T00:00:00Z') })
  const after = corrected.quote('openai', 'o3', new Date('2025-06-10T00:00:00Z'), usage)
  t.ok(after.priced)
  if (!after.priced) return
  t.same(after.price.corrections, [], 'no correction after the cut')
  t.equal(after.cost, '0.016') // 2000*2/1e6 + 8000*0.5/1e6 + 1000*8/1e6
})

t.test('an override still wins over a corrected price', async (t) => {
  const catalog = new PriceCatalog({
    overrides: [
      {
        id: 'ovr-sonnet4',
        provider: 'anthropic',
        modelPattern: 'claude-sonnet-4-0',
        effectiveFrom: new Date('2025-01-01T00:00:00Z'),
        effectiveTo: null,
        input: '2',
        output: '10',
        cacheRead: null,
        cacheWrite: null,
        cacheWrite1h: null,
        reasoning: null,
        tiers: [],
      },
    ],
  })
  const quote = catalog.quote('anthropic', 'claude-sonnet-4-20250514', new Date('2025-09-01T00:00:00Z'), usageOf({ inputTokens: 250_000, outputTokens: 2000 }))
  t.ok(quote.priced)
  if (!quote.priced) return
  t.equal(quote.price.sourceLabel, 'override:ovr-sonnet4')
  t.equal(quote.cost, '0.52') // 250000*2/1e6 + 2000*10/1e6: no tier in the override
})
