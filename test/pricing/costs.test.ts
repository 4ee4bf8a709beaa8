// Expected costs worked out by hand from the per-million prices of the bundled
// @pydantic/genai-prices dataset (printed and checked when this table was written), compared as
// exact decimal strings. Each row's comment is the computation.
import t from 'tap'
import { usageOf } from '../helpers/pricing.js'
import { PriceCatalog, type BillableUsage, type CostBreakdown, type PriceOverride } from '../../src/pricing/catalog.js'
import { parseUsd } from '../../src/lib/money.js'

const overrides: PriceOverride[] = [
  {
    // A negotiated 20% discount for the second half of February.
    id: 'ovr-sonnet-feb',
    provider: 'anthropic',
    modelPattern: 'claude-3-5-sonnet*',
    effectiveFrom: new Date('2025-02-15T00:00:00Z'),
    effectiveTo: new Date('2025-03-01T00:00:00Z'),
    input: '2.4',
    output: '12',
    cacheRead: '0.24',
    cacheWrite: '3',
    cacheWrite1h: null,
    reasoning: null,
    tiers: [],
  },
  {
    // Starts mid-month; the exact name also covers every spelling the dataset maps to gpt-4o.
    id: 'ovr-gpt4o-march',
    provider: 'openai',
    modelPattern: 'gpt-4o',
    effectiveFrom: new Date('2025-03-15T00:00:00Z'),
    effectiveTo: new Date('2025-04-01T00:00:00Z'),
    input: '2',
    output: '8',
    cacheRead: '1',
    cacheWrite: null,
    cacheWrite1h: null,
    reasoning: null,
    tiers: [],
  },
  {
    // The preview's separate thinking price, which the dataset does not distinguish.
    id: 'ovr-flash-thinking',
    provider: 'google',
    modelPattern: 'gemini-2.5-flash-preview-04-17',
    effectiveFrom: new Date('2025-04-17T00:00:00Z'),
    effectiveTo: null,
    input: '0.15',
    output: '0.6',
    cacheRead: null,
    cacheWrite: null,
    cacheWrite1h: null,
    reasoning: '3.5',
    tiers: [],
  },
  {
    // A private model with long-context tiers.
    id: 'ovr-acme-tiered',
    provider: 'acme',
    modelPattern: 'acme-large-*',
    effectiveFrom: new Date('2025-01-01T00:00:00Z'),
    effectiveTo: null,
    input: '1',
    output: '2',
    cacheRead: '0.1',
    cacheWrite: null,
    cacheWrite1h: null,
    reasoning: null,
    tiers: [
      { aboveInputTokens: 100_000, input: '2', output: '4' },
      { aboveInputTokens: 500_000, input: '3', output: '6', cacheRead: '0.3' },
    ],
  },
]

interface Row {
  provider: string
  model: string
  /** Default 2025-03-10T12:00:00Z. */
  at?: string
  usage: Partial<BillableUsage>
  /** Exact USD, or null for an unpriced event. */
  cost: string | null
  /** 'provider/model' for a dataset price, 'override:<id>' for an override. */
  source?: string
  /** Checked for the worked examples in docs/pricing.md. */
  breakdown?: CostBreakdown
}

const rows: Row[] = [
  // Anthropic, claude-3-5-sonnet: input 3, output 15, cache read 0.3, cache write 3.75, 1h write 6
  { provider: 'anthropic', model: 'claude-3-5-sonnet-20241022', usage: { inputTokens: 150, outputTokens: 300 }, cost: '0.00495', source: 'anthropic/claude-3-5-sonnet' }, // seed: 150*3/1e6 + 300*15/1e6
  { provider: 'anthropic', model: 'claude-3-5-sonnet-20241022', usage: { inputTokens: 10_000, cacheReadTokens: 8000, outputTokens: 500 }, cost: '0.0159' }, // 2000*3/1e6 + 8000*0.3/1e6 + 500*15/1e6
  { provider: 'anthropic', model: 'claude-3-5-sonnet-20241022', usage: { inputTokens: 5000, cacheWriteTokens: 4000, outputTokens: 200 }, cost: '0.021' }, // 1000*3/1e6 + 4000*3.75/1e6 + 200*15/1e6
  { provider: 'anthropic', model: 'claude-3-5-sonnet-20241022', usage: { inputTokens: 5000, cacheWriteTokens: 4000, cacheWrite1hTokens: 4000, outputTokens: 200 }, cost: '0.03' }, // 1000*3/1e6 + 4000*6/1e6 + 200*15/1e6
  { provider: 'anthropic', model: 'claude-3-5-sonnet-latest', usage: { inputTokens: 20_000, cacheReadTokens: 10_000, cacheWriteTokens: 6000, cacheWrite1hTokens: 2000, outputTokens: 1000 }, cost: '0.057', breakdown: { input: '0.012', cacheRead: '0.003', cacheWrite: '0.027', output: '0.015', inputAudio: '0', outputAudio: '0', webSearch: '0' } }, // 4000*3/1e6 + 10000*0.3/1e6 + 4000*3.75/1e6 + 2000*6/1e6 + 1000*15/1e6
  { provider: 'anthropic', model: 'claude-3-5-haiku-20241022', usage: { inputTokens: 1000, outputTokens: 1000 }, cost: '0.0048', source: 'anthropic/claude-3-5-haiku-latest' }, // 1000*0.8/1e6 + 1000*4/1e6
  { provider: 'anthropic', model: 'claude-3-haiku-20240307', usage: { inputTokens: 1234, outputTokens: 567 }, cost: '0.00101725' }, // 1234*0.25/1e6 + 567*1.25/1e6
  { provider: 'anthropic', model: 'claude-opus-4-20250514', usage: { inputTokens: 2000, cacheReadTokens: 1000, outputTokens: 300 }, cost: '0.039', source: 'anthropic/claude-opus-4-0' }, // 1000*15/1e6 + 1000*1.5/1e6 + 300*75/1e6
  // claude-sonnet-4-5: base 3/15 (cache 0.3/3.75/6); prompts above 200k: 6/22.5 (cache 0.6/7.5/12)
  { provider: 'anthropic', model: 'claude-sonnet-4-5-20250929', at: '2025-10-01T00:00:00Z', usage: { inputTokens: 200_000, outputTokens: 1000 }, cost: '0.615' }, // exactly 200k is not above it: 200000*3/1e6 + 1000*15/1e6
  { provider: 'anthropic', model: 'claude-sonnet-4-5-20250929', at: '2025-10-01T00:00:00Z', usage: { inputTokens: 250_000, cacheReadTokens: 50_000, outputTokens: 2000 }, cost: '1.275' }, // 200000*6/1e6 + 50000*0.6/1e6 + 2000*22.5/1e6
  { provider: 'anthropic', model: 'claude-sonnet-4-5', at: '2025-10-01T00:00:00Z', usage: { inputTokens: 300_000, cacheWriteTokens: 100_000, cacheWrite1hTokens: 100_000 }, cost: '2.4' }, // 200000*6/1e6 + 100000*12/1e6
  // claude-sonnet-4-6 is tiered until 2026-03-13, flat afterwards
  { provider: 'anthropic', model: 'claude-sonnet-4-6', at: '2026-02-01T00:00:00Z', usage: { inputTokens: 300_000, outputTokens: 1000 }, cost: '1.8225' }, // 300000*6/1e6 + 1000*22.5/1e6
  { provider: 'anthropic', model: 'claude-sonnet-4-6', at: '2026-04-01T00:00:00Z', usage: { inputTokens: 300_000, outputTokens: 1000 }, cost: '0.915' }, // 300000*3/1e6 + 1000*15/1e6
  // override ovr-sonnet-feb from 2025-02-15: 2.4/12, cache read 0.24, cache write 3, 1h write null -> 3
  { provider: 'anthropic', model: 'claude-3-5-sonnet-20241022', at: '2025-02-14T23:59:59Z', usage: { inputTokens: 5000, cacheWriteTokens: 4000, cacheWrite1hTokens: 1000, outputTokens: 200 }, cost: '0.02325', source: 'anthropic/claude-3-5-sonnet' }, // 1000*3/1e6 + 3000*3.75/1e6 + 1000*6/1e6 + 200*15/1e6
  { provider: 'anthropic', model: 'claude-3-5-sonnet-20241022', at: '2025-02-20T09:00:00Z', usage: { inputTokens: 5000, cacheWriteTokens: 4000, cacheWrite1hTokens: 1000, outputTokens: 200 }, cost: '0.0168', source: 'override:ovr-sonnet-feb' }, // 1000*2.4/1e6 + 3000*3/1e6 + 1000*3/1e6 + 200*12/1e6

  // OpenAI: cached input is a part of inputTokens and billed at the cache-read price
  { provider: 'openai', model: 'gpt-4o-2024-08-06', usage: { inputTokens: 1000, outputTokens: 500 }, cost: '0.0075', source: 'openai/gpt-4o' }, // 1000*2.5/1e6 + 500*10/1e6
  { provider: 'openai', model: 'gpt-4o-2024-08-06', usage: { inputTokens: 3000, cacheReadTokens: 2048, outputTokens: 100 }, cost: '0.00594' }, // 952*2.5/1e6 + 2048*1.25/1e6 + 100*10/1e6
  { provider: 'openai', model: 'gpt-4o-mini', usage: { inputTokens: 10_000, cacheReadTokens: 5000, outputTokens: 2000 }, cost: '0.002325' }, // 5000*0.15/1e6 + 5000*0.075/1e6 + 2000*0.6/1e6
  { provider: 'openai', model: 'gpt-4.1', usage: { inputTokens: 100_000 }, cost: '0.2' }, // 100000*2/1e6
  { provider: 'openai', model: 'o3-mini', usage: { inputTokens: 500, outputTokens: 3000, reasoningTokens: 2500 }, cost: '0.01375' }, // 500*1.1/1e6 + (500+2500)*4.4/1e6: reasoning billed as output
  { provider: 'openai', model: 'o3-mini-2025-01-31', usage: { inputTokens: 5000, cacheReadTokens: 3000, outputTokens: 2000, reasoningTokens: 1500 }, cost: '0.01265', source: 'openai/o3-mini', breakdown: { input: '0.0022', cacheRead: '0.00165', cacheWrite: '0', output: '0.0088', inputAudio: '0', outputAudio: '0', webSearch: '0' } }, // 2000*1.1/1e6 + 3000*0.55/1e6 + 2000*4.4/1e6
  { provider: 'openai', model: 'o1-2024-12-17', usage: { inputTokens: 1000, outputTokens: 2000, reasoningTokens: 1500 }, cost: '0.135', source: 'openai/o1' }, // 1000*15/1e6 + 2000*60/1e6
  // o3 dropped from 10/40 to 2/8 on 2025-06-10 in the dataset
  { provider: 'openai', model: 'o3', at: '2025-05-01T00:00:00Z', usage: { inputTokens: 1000, outputTokens: 1000, reasoningTokens: 800 }, cost: '0.05' }, // 1000*10/1e6 + 1000*40/1e6
  { provider: 'openai', model: 'o3-2025-04-16', at: '2025-06-10T00:00:00Z', usage: { inputTokens: 1000, outputTokens: 1000, reasoningTokens: 800 }, cost: '0.01' }, // 1000*2/1e6 + 1000*8/1e6
  // gpt-5.4: 2.5/15 (cache read 0.25); prompts above 271999 tokens: 5/22.5 (cache read 0.5)
  { provider: 'openai', model: 'gpt-5.4', at: '2026-04-01T00:00:00Z', usage: { inputTokens: 300_000, cacheReadTokens: 100_000, outputTokens: 1000 }, cost: '1.0725' }, // 200000*5/1e6 + 100000*0.5/1e6 + 1000*22.5/1e6
  { provider: 'openai', model: 'gpt-5.4', at: '2026-04-01T00:00:00Z', usage: { inputTokens: 271_999 }, cost: '0.6799975' }, // 271999*2.5/1e6
  { provider: 'openai', model: 'gpt-5.4-2026-03-05', at: '2026-04-01T00:00:00Z', usage: { inputTokens: 272_000 }, cost: '1.36' }, // 272000*5/1e6
  { provider: 'openai', model: 'gpt-5-nano', at: '2025-09-01T00:00:00Z', usage: { inputTokens: 1_000_000, cacheReadTokens: 900_000, outputTokens: 10_000 }, cost: '0.0135' }, // 100000*0.05/1e6 + 900000*0.005/1e6 + 10000*0.4/1e6
  { provider: 'openai', model: 'text-embedding-3-small', usage: { inputTokens: 12_345 }, cost: '0.0002469' }, // 12345*0.02/1e6
  // override ovr-gpt4o-march: [2025-03-15, 2025-04-01) at 2/8, cache read 1
  { provider: 'openai', model: 'gpt-4o', at: '2025-03-14T23:59:59.999Z', usage: { inputTokens: 1000, outputTokens: 500 }, cost: '0.0075', source: 'openai/gpt-4o' }, // 1000*2.5/1e6 + 500*10/1e6
  { provider: 'openai', model: 'gpt-4o-2024-08-06', at: '2025-03-15T00:00:00Z', usage: { inputTokens: 1000, outputTokens: 500 }, cost: '0.006', source: 'override:ovr-gpt4o-march' }, // 1000*2/1e6 + 500*8/1e6
  { provider: 'openai', model: 'gpt-4o-2024-08-06', at: '2025-03-20T00:00:00Z', usage: { inputTokens: 3000, cacheReadTokens: 2048, outputTokens: 100 }, cost: '0.004752', source: 'override:ovr-gpt4o-march' }, // 952*2/1e6 + 2048*1/1e6 + 100*8/1e6
  { provider: 'openai', model: 'gpt-4o-mini', at: '2025-03-20T00:00:00Z', usage: { inputTokens: 1000, outputTokens: 500 }, cost: '0.00045', source: 'openai/gpt-4o-mini' }, // not covered by 'gpt-4o': 1000*0.15/1e6 + 500*0.6/1e6
  { provider: 'openai', model: 'gpt-4o', at: '2025-04-01T00:00:00Z', usage: { inputTokens: 1000, outputTokens: 500 }, cost: '0.0075', source: 'openai/gpt-4o' }, // effectiveTo is exclusive

  // Google: Gemini reports cached and thinking tokens inside its totals, as we do
  { provider: 'google', model: 'models/gemini-1.5-pro', usage: { inputTokens: 10_000, outputTokens: 1000 }, cost: '0.0175', source: 'google/gemini-1.5-pro+corrections:google-gemini-1.5-pro-cached-input' }, // 10000*1.25/1e6 + 1000*5/1e6
  { provider: 'google', model: 'gemini-1.5-pro-002', usage: { inputTokens: 200_000, outputTokens: 1000 }, cost: '0.51' }, // above 128k: 200000*2.5/1e6 + 1000*10/1e6
  { provider: 'google', model: 'gemini-1.5-pro', usage: { inputTokens: 10_000, cacheReadTokens: 4000 }, cost: '0.00875' }, // the dataset has no cache price; the correction's 0.3125: 6000*1.25/1e6 + 4000*0.3125/1e6
  { provider: 'google', model: 'gemini-2.5-pro', usage: { inputTokens: 100_000, cacheReadTokens: 40_000, outputTokens: 2000 }, cost: '0.1' }, // 60000*1.25/1e6 + 40000*0.125/1e6 + 2000*10/1e6
  { provider: 'google', model: 'gemini-2.5-pro', usage: { inputTokens: 300_000, cacheReadTokens: 100_000, outputTokens: 5000, reasoningTokens: 3000 }, cost: '0.6' }, // above 200k: 200000*2.5/1e6 + 100000*0.25/1e6 + 5000*15/1e6
  { provider: 'gemini', model: 'gemini-2.5-flash', usage: { inputTokens: 1000, outputTokens: 5000, reasoningTokens: 4000 }, cost: '0.0128', source: 'google/gemini-2.5-flash' }, // thinking billed as output: 1000*0.3/1e6 + 5000*2.5/1e6
  { provider: 'google', model: 'models/gemini-2.5-flash', usage: { inputTokens: 12_000, cacheReadTokens: 8000, outputTokens: 3000, reasoningTokens: 2200 }, cost: '0.00894', breakdown: { input: '0.0012', cacheRead: '0.00024', cacheWrite: '0', output: '0.0075', inputAudio: '0', outputAudio: '0', webSearch: '0' } }, // 4000*0.3/1e6 + 8000*0.03/1e6 + 3000*2.5/1e6
  { provider: 'google', model: 'models/gemini-2.5-flash', usage: { inputTokens: 50_000, cacheReadTokens: 40_000, outputTokens: 100 }, cost: '0.00445' }, // 10000*0.3/1e6 + 40000*0.03/1e6 + 100*2.5/1e6
  { provider: 'google', model: 'gemini-2.0-flash-001', usage: { inputTokens: 1_000_000, outputTokens: 1_000_000 }, cost: '0.5' }, // 1000000*0.1/1e6 + 1000000*0.4/1e6
  { provider: 'google', model: 'gemini-1.5-flash', usage: { inputTokens: 1000, cacheReadTokens: 500, outputTokens: 100 }, cost: '0.000076875' }, // 500*0.075/1e6 + 500*0.01875/1e6 + 100*0.3/1e6
  { provider: 'google', model: 'gemini-1.5-flash-002', usage: { inputTokens: 200_000, cacheReadTokens: 100_000, outputTokens: 1000 }, cost: '0.01935' }, // above 128k: 100000*0.15/1e6 + 100000*0.0375/1e6 + 1000*0.6/1e6
  // override ovr-flash-thinking from 2025-04-17 (thinking tokens at 3.5, the rest of the output at 0.6) wins over the correction
  { provider: 'google', model: 'models/gemini-2.5-flash-preview-04-17', at: '2025-04-16T12:00:00Z', usage: { inputTokens: 1000, outputTokens: 3000, reasoningTokens: 2000 }, cost: '0.01065', source: 'google/gemini-2.5-flash-preview+corrections:google-gemini-2.5-flash-preview-thinking' }, // the correction's thinking output price for all output of a thinking call: 1000*0.15/1e6 + 3000*3.5/1e6
  { provider: 'google', model: 'models/gemini-2.5-flash-preview-04-17', at: '2025-05-01T12:00:00Z', usage: { inputTokens: 1000, outputTokens: 3000, reasoningTokens: 2000 }, cost: '0.00775', source: 'override:ovr-flash-thinking' }, // 1000*0.15/1e6 + 1000*0.6/1e6 + 2000*3.5/1e6

  // override ovr-acme-tiered: 1/2 (cache read 0.1); above 100k 2/4 (cache read inherited 0.1); above 500k 3/6 (cache read 0.3)
  { provider: 'acme', model: 'acme-large-2', usage: { inputTokens: 1000, outputTokens: 1000 }, cost: '0.003', source: 'override:ovr-acme-tiered' }, // 1000*1/1e6 + 1000*2/1e6
  { provider: 'acme', model: 'acme-large-2', usage: { inputTokens: 150_000, cacheReadTokens: 50_000, outputTokens: 1000 }, cost: '0.209' }, // 100000*2/1e6 + 50000*0.1/1e6 + 1000*4/1e6
  { provider: 'ACME', model: 'Acme-Large-2', usage: { inputTokens: 600_000, cacheReadTokens: 100_000, outputTokens: 1000 }, cost: '1.536' }, // 500000*3/1e6 + 100000*0.3/1e6 + 1000*6/1e6

  // unknown models are unpriced, never $0
  { provider: 'anthropic', model: 'claude-9-ultra', usage: { inputTokens: 1000, outputTokens: 1000 }, cost: null },
  { provider: 'openai', model: 'gpt-unknown', usage: { inputTokens: 1000, outputTokens: 1000 }, cost: null },
  { provider: 'google', model: 'gemini-0.1-ultra', usage: { inputTokens: 1000, outputTokens: 1000 }, cost: null },
  { provider: 'acme', model: 'acme-small', usage: { inputTokens: 1000, outputTokens: 1000 }, cost: null },
  { provider: 'acme', model: 'acme-large-2', at: '2024-12-31T23:59:59Z', usage: { inputTokens: 1000 }, cost: null }, // before the override
]

const catalog = new PriceCatalog({ overrides })
const version = PriceCatalog.datasetVersion()

t.ok(rows.length >= 30, `${rows.length} cases`)
t.ok(new Set(rows.map((row) => row.provider)).size >= 3)

for (const row of rows) {
  const at = row.at ?? '2025-03-10T12:00:00Z'
  t.test(`${row.provider} ${row.model} at ${at}: ${JSON.stringify(row.usage)}`, async (t) => {
    const quote = catalog.quote(row.provider, row.model, new Date(at), usageOf(row.usage))
    if (row.cost === null) {
      t.same(quote, { priced: false, reason: `no price for provider ${row.provider} model ${row.model}` })
      return
    }
    if (!quote.priced) {
      t.fail(quote.reason)
      return
    }
    t.equal(quote.cost, row.cost)
    t.equal(quote.costPico, parseUsd(row.cost))
    if (row.breakdown !== undefined) t.same(quote.breakdown, row.breakdown)
    const parts = Object.values(quote.breakdown).reduce((sum, part) => sum + parseUsd(part), 0n)
    t.equal(parts, quote.costPico, 'the breakdown adds up to the cost')
    if (row.source !== undefined) {
      const label = row.source.startsWith('override:') ? row.source : `genai-prices@${version}:${row.source}`
      t.equal(quote.price.sourceLabel, label)
    }
  })
}

t.test('the tier a request was billed at is reported', async (t) => {
  const quote = catalog.quote('google', 'gemini-2.5-pro', new Date('2025-08-01T00:00:00Z'), usageOf({ inputTokens: 200_001 }))
  t.ok(quote.priced)
  if (!quote.priced) return
  t.equal(quote.tierAboveInputTokens, 200_000)
  t.equal(quote.cost, '0.5000025') // 200001*2.5/1e6
})
