import { readFileSync } from 'node:fs'
import { calcPrice, findProvider } from '@pydantic/genai-prices'
import t from 'tap'
import { usageOf } from '../helpers/pricing.js'
import { costOfUsage, PriceCatalog, type PriceOverride } from '../../src/pricing/catalog.js'

const march = new Date('2025-03-10T12:00:00Z')

function override(fields: Partial<PriceOverride> & Pick<PriceOverride, 'id' | 'provider' | 'modelPattern'>): PriceOverride {
  return {
    effectiveFrom: new Date('2025-01-01T00:00:00Z'),
    effectiveTo: null,
    input: '1',
    output: '2',
    cacheRead: null,
    cacheWrite: null,
    cacheWrite1h: null,
    reasoning: null,
    tiers: [],
    ...fields,
  }
}

t.test('common spellings of a model resolve to the same dataset price', async (t) => {
  const catalog = new PriceCatalog({ corrections: [] }) // the dataset as shipped; corrections.test.ts covers the corrections
  const version = PriceCatalog.datasetVersion()
  const usage = usageOf({ inputTokens: 150, outputTokens: 300 })
  const groups: { label: string; cost: string; spellings: [string, string][] }[] = [
    {
      label: `genai-prices@${version}:anthropic/claude-3-5-sonnet`,
      cost: '0.00495', // 150*3/1e6 + 300*15/1e6
      spellings: [
        ['anthropic', 'claude-3-5-sonnet-20241022'],
        ['anthropic', 'claude-3-5-sonnet-latest'],
        ['anthropic', 'claude-3.5-sonnet'],
        ['anthropic', 'CLAUDE-3-5-SONNET-20241022'],
        ['anthropic', 'anthropic/claude-3-5-sonnet-20241022'],
        ['anthropic', 'claude-3-5-sonnet@20241022'],
        ['Anthropic', ' claude-3-5-sonnet-20240620 '],
      ],
    },
    {
      label: `genai-prices@${version}:openai/gpt-4o`,
      cost: '0.003375', // 150*2.5/1e6 + 300*10/1e6
      spellings: [
        ['openai', 'gpt-4o'],
        ['openai', 'gpt-4o-2024-08-06'],
        ['openai', 'gpt-4o-2024-11-20'],
        ['openai', 'gpt-4o-20240806'],
        ['openai', 'GPT-4o'],
        ['openai', 'openai/gpt-4o'],
        ['OpenAI', 'gpt-4o'],
      ],
    },
    {
      label: `genai-prices@${version}:google/gemini-1.5-pro`,
      cost: '0.0016875', // 150*1.25/1e6 + 300*5/1e6
      spellings: [
        ['google', 'gemini-1.5-pro'],
        ['google', 'models/gemini-1.5-pro'],
        ['google', 'gemini-1.5-pro-002'],
        ['google', 'gemini-1.5-pro-latest'],
        ['google', 'google/gemini-1.5-pro'],
        ['gemini', 'models/gemini-1.5-pro'],
        ['google-gemini', 'gemini-1.5-pro'],
        ['vertex_ai', 'gemini-1.5-pro-002'],
        ['Google', 'Gemini-1.5-Pro'],
      ],
    },
    {
      label: `genai-prices@${version}:google/gemini-2.5-flash`,
      cost: '0.000795', // 150*0.3/1e6 + 300*2.5/1e6
      spellings: [
        ['google', 'gemini-2.5-flash'],
        ['google', 'models/gemini-2.5-flash'],
        ['gemini', 'gemini-2.5-flash'],
        ['google-genai', 'models/gemini-2.5-flash'],
      ],
    },
  ]
  for (const group of groups) {
    for (const [provider, model] of group.spellings) {
      const quote = catalog.quote(provider, model, march, usage)
      t.ok(quote.priced, `${provider} ${model} is priced`)
      if (!quote.priced) continue
      t.equal(quote.price.sourceLabel, group.label, `${provider} ${model}`)
      t.equal(quote.cost, group.cost, `${provider} ${model}`)
    }
  }
})

t.test('resolve describes where a dataset price comes from and when it applies', async (t) => {
  const catalog = new PriceCatalog({ corrections: [] }) // the dataset as shipped; corrections.test.ts covers the corrections
  const before = catalog.resolve('openai', 'o3', new Date('2025-06-09T23:59:59Z'))
  const after = catalog.resolve('openai', 'o3', new Date('2025-06-10T00:00:00Z'))
  t.match(before, {
    source: { kind: 'dataset', version: PriceCatalog.datasetVersion(), providerId: 'openai', modelId: 'o3' },
    provider: 'openai',
    model: 'o3',
    input: '10',
    output: '40',
    cacheRead: '0.5',
    cacheWrite: null,
    reasoning: null,
    effectiveFrom: null,
    effectiveTo: new Date('2025-06-10T00:00:00Z'),
  })
  t.match(after, { input: '2', output: '8', effectiveFrom: new Date('2025-06-10T00:00:00Z'), effectiveTo: null })
})

t.test('dataset tiers become PriceTier rows', async (t) => {
  const price = new PriceCatalog().resolve('anthropic', 'claude-sonnet-4-5', march)
  t.same(price?.tiers, [
    { aboveInputTokens: 200_000, input: '6', output: '22.5', cacheRead: '0.6', cacheWrite: '7.5', cacheWrite1h: '12' },
  ])
})

t.test('a model the dataset does not know is unpriced', async (t) => {
  const catalog = new PriceCatalog()
  t.equal(catalog.resolve('anthropic', 'claude-9-ultra', march), null)
  t.equal(catalog.resolve('my-proxy', 'gpt-4o', march), null, 'no guessing across providers')
  t.equal(catalog.resolve('openai', '', march), null)
  t.equal(catalog.resolve('openai', 'whisper-1', march), null, 'priced per audio hour, not per token')
  t.same(catalog.quote('openai', 'gpt-unknown', march, usageOf({ inputTokens: 1 })), {
    priced: false,
    reason: 'no price for provider openai model gpt-unknown',
  })
})

t.test('an invalid date or usage is a programming error', async (t) => {
  const catalog = new PriceCatalog()
  t.throws(() => catalog.resolve('openai', 'gpt-4o', new Date('nope')), RangeError)
  t.throws(() => catalog.quote('openai', 'gpt-4o', march, usageOf({ inputTokens: -1 })), {
    message: /usage.inputTokens/,
  })
  t.throws(() => catalog.quote('openai', 'gpt-4o', march, usageOf({ outputTokens: 1.5 })), {
    message: /usage.outputTokens/,
  })
})

t.test('inconsistent parts are clamped, not billed negative', async (t) => {
  const price = { input: '3', output: '15', cacheRead: '0.3', cacheWrite: '3.75', cacheWrite1h: '6', reasoning: null, tiers: [] }
  const cost = costOfUsage(price, usageOf({ inputTokens: 100, cacheReadTokens: 200, outputTokens: 10, reasoningTokens: 20 }))
  t.equal(cost.cost, '0.00036') // uncached 0; 200*0.3/1e6 + plain output 0 + 20*15/1e6
  t.equal(cost.breakdown.input, '0')
})

t.test('overrides: precedence, aliases and replacement', async (t) => {
  const catalog = new PriceCatalog({
    overrides: [
      override({ id: 'all-claude', provider: 'anthropic', modelPattern: 'claude-*', input: '1' }),
      override({ id: 'sonnet-family', provider: 'anthropic', modelPattern: 'claude-3-5-sonnet*', input: '2' }),
      override({ id: 'sonnet-exact', provider: 'anthropic', modelPattern: 'claude-3-5-sonnet-20241022', input: '3' }),
      override({ id: 'old-flash', provider: 'gemini', modelPattern: 'gemini-2.0-flash', effectiveTo: new Date('2025-02-01T00:00:00Z') }),
      override({ id: 'new-flash', provider: 'gemini', modelPattern: 'gemini-2.0-flash', effectiveFrom: new Date('2025-02-01T00:00:00Z') }),
      override({ id: 'private', provider: 'in-house', modelPattern: 'llama-70b-ft', input: '0.5', output: '0.5' }),
    ],
  })
  t.equal(catalog.resolve('anthropic', 'claude-3-5-sonnet-20241022', march)?.sourceLabel, 'override:sonnet-exact')
  t.equal(catalog.resolve('anthropic', 'claude-3-5-sonnet-latest', march)?.sourceLabel, 'override:sonnet-family')
  t.equal(catalog.resolve('anthropic', 'claude-3-haiku-20240307', march)?.sourceLabel, 'override:all-claude')
  t.equal(catalog.resolve('anthropic', 'claude-3-haiku-20240307', new Date('2024-12-31T00:00:00Z'))?.sourceLabel,
    `genai-prices@${PriceCatalog.datasetVersion()}:anthropic/claude-3-haiku`, 'before every override')
  t.equal(catalog.resolve('google', 'models/gemini-2.0-flash-001', new Date('2025-01-15T00:00:00Z'))?.sourceLabel,
    'override:old-flash', "provider alias and the dataset id 'gemini-2.0-flash' both match")
  t.equal(catalog.resolve('google', 'gemini-2.0-flash', new Date('2025-02-01T00:00:00Z'))?.sourceLabel, 'override:new-flash')

  const priv = catalog.resolve('In-House', 'LLAMA-70B-FT', march)
  t.match(priv, {
    source: { kind: 'override', overrideId: 'private' },
    sourceLabel: 'override:private',
    provider: 'in-house',
    model: 'llama-70b-ft',
    input: '0.5',
    effectiveFrom: new Date('2025-01-01T00:00:00Z'),
    effectiveTo: null,
  })
  const quote = catalog.quote('in-house', 'llama-70b-ft', march, usageOf({ inputTokens: 2000, outputTokens: 2000 }))
  t.match(quote, { priced: true, cost: '0.002' }) // 2000*0.5/1e6 + 2000*0.5/1e6

  catalog.setOverrides([])
  t.equal(catalog.resolve('in-house', 'llama-70b-ft', march), null, 'setOverrides replaces the list')
  t.equal(catalog.resolve('anthropic', 'claude-3-5-sonnet-20241022', march)?.source.kind, 'dataset')
})

t.test('an invalid override is refused when loaded, not used', async (t) => {
  const catalog = new PriceCatalog()
  t.throws(
    () => catalog.setOverrides([override({ id: 'broken', provider: 'openai', modelPattern: 'gpt-4o', effectiveFrom: new Date('x') })]),
    { message: 'invalid price override broken: effectiveFrom must be a valid date' },
  )
  t.throws(() => new PriceCatalog({ overrides: [override({ id: 'neg', provider: 'openai', modelPattern: 'gpt-4o', input: '-1' })] }), TypeError)
})

t.test('a glob matches only where its stars say', async (t) => {
  const catalog = new PriceCatalog({
    overrides: [override({ id: 'dotted', provider: 'openai', modelPattern: 'gpt-4.1*' })],
  })
  t.equal(catalog.resolve('openai', 'gpt-4.1-mini', march)?.sourceLabel, 'override:dotted')
  t.not(catalog.resolve('openai', 'gpt-4o', march)?.sourceLabel, 'override:dotted', "'.' is literal")
  t.equal(catalog.resolve('openai', 'gpt-401', march), null, "'.' does not match any character")
})

t.test('listDataset lists effective prices', async (t) => {
  const catalog = new PriceCatalog()
  const all = catalog.listDataset({ at: march })
  t.same([...new Set(all.map((price) => price.provider))].sort(), ['anthropic', 'google', 'openai'])
  t.ok(all.length > 100, `${all.length} prices`)
  t.ok(all.every((price) => price.source.kind === 'dataset' && price.sourceLabel.startsWith('genai-prices@')))

  const gemini = catalog.listDataset({ at: march, provider: 'gemini', model: 'gemini-2.5-pro' })
  t.same(gemini.map((price) => price.model), ['gemini-2.5-pro', 'gemini-2.5-pro-tts'])
  const spelled = catalog.listDataset({ at: march, provider: 'openai', model: 'gpt-4o-2024-08-06' })
  t.same(spelled.map((price) => price.model), ['gpt-4o'], 'a spelling finds the model it resolves to')

  const o3At = (at: string) => catalog.listDataset({ at: new Date(at), provider: 'openai', model: 'o3' }).find((p) => p.model === 'o3')
  t.equal(o3At('2025-05-01T00:00:00Z')?.input, '10')
  t.equal(o3At('2025-07-01T00:00:00Z')?.input, '2')

  const bedrock = catalog.listDataset({ at: march, provider: 'aws' })
  t.ok(bedrock.length > 0 && bedrock.every((price) => price.provider === 'aws'), 'any dataset provider when asked')
  t.same(catalog.listDataset({ at: march, provider: 'nobody' }), [])
})

t.test('datasetVersion is the installed package version', async (t) => {
  const manifest = JSON.parse(
    readFileSync(new URL('../../node_modules/@pydantic/genai-prices/package.json', import.meta.url), 'utf8'),
  ) as { version: string }
  t.equal(PriceCatalog.datasetVersion(), manifest.version)
})

t.test('pricing works with the network disabled', async (t) => {
  const realFetch = globalThis.fetch
  let fetches = 0
  globalThis.fetch = async () => {
    fetches++
    throw new Error('network disabled in this test')
  }
  t.teardown(() => {
    globalThis.fetch = realFetch
  })
  const catalog = new PriceCatalog()
  for (const price of catalog.listDataset({ at: march })) {
    catalog.quote(price.provider, price.model, march, usageOf({ inputTokens: 10, outputTokens: 10 }))
  }
  t.equal(fetches, 0)
})

// A consistency check, not an expected-cost test: for every Anthropic, OpenAI and Google model,
// our exact cost must agree with the dataset's own floating-point calculator, which confirms the
// buckets, cache fallbacks, tiers and dates are read the way the dataset means them.
t.test('agrees with the dataset calculator on every model of the three providers', async (t) => {
  const catalog = new PriceCatalog({ corrections: [] }) // the dataset as shipped; corrections.test.ts covers the corrections
  const usages = [
    usageOf({ inputTokens: 1000, outputTokens: 500 }),
    usageOf({ inputTokens: 50_000, cacheReadTokens: 20_000, cacheWriteTokens: 10_000, cacheWrite1hTokens: 4000, outputTokens: 3000 }),
    usageOf({ inputTokens: 300_000, cacheReadTokens: 100_000, cacheWriteTokens: 50_000, cacheWrite1hTokens: 10_000, outputTokens: 2000 }),
  ]
  const dates = ['2025-03-01T00:00:00Z', '2026-04-01T00:00:00Z', '2027-02-01T00:00:00Z'].map((d) => new Date(d))
  let compared = 0
  for (const providerId of ['anthropic', 'openai', 'google']) {
    const provider = findProvider({ providerId })
    if (provider === undefined) {
      t.fail(`dataset has no provider ${providerId}`)
      continue
    }
    for (const at of dates) {
      const ours = new Map(catalog.listDataset({ provider: providerId, at }).map((price) => [price.model, price]))
      for (const model of provider.models) {
        const price = ours.get(model.id)
        if (price === undefined) continue
        // Match any name to exactly this model, so its own match rules do not get in the way.
        const single = { ...provider, fallback_model_providers: [], models: [{ ...model, match: { contains: '' } }] }
        for (const usage of usages) {
          const theirs = calcPrice(
            {
              input_tokens: usage.inputTokens,
              output_tokens: usage.outputTokens,
              cache_read_tokens: usage.cacheReadTokens,
              cache_write_tokens: usage.cacheWriteTokens,
              cache_write_1h_tokens: usage.cacheWrite1hTokens,
            },
            model.id,
            { provider: single, timestamp: at },
          )
          const exact = Number(costOfUsage(price, usage).cost)
          const expected = theirs?.total_price ?? Number.NaN
          if (Math.abs(exact - expected) > 1e-9 * Math.max(1, expected)) {
            t.fail(`${providerId}/${model.id} at ${at.toISOString()}: ours ${exact}, dataset ${expected}`)
          }
          compared++
        }
      }
    }
  }
  t.ok(compared > 1000, `${compared} comparisons`)
})

t.test('time-of-day prices (DeepSeek off-peak) follow the event time in UTC', async (t) => {
  const catalog = new PriceCatalog()
  const usage = usageOf({ inputTokens: 1_000_000, outputTokens: 1_000_000 })
  const peak = catalog.quote('deepseek', 'deepseek-chat', new Date('2025-03-10T12:00:00Z'), usage)
  const offPeak = catalog.quote('deepseek', 'deepseek-chat', new Date('2025-03-10T17:00:00Z'), usage)
  t.match(peak, { priced: true, cost: '1.37' }) // 0.27 + 1.1, between 00:30 and 16:30 UTC
  t.match(offPeak, { priced: true, cost: '0.685' }) // 0.135 + 0.55
  t.match(catalog.resolve('deepseek', 'deepseek-chat', new Date('2025-03-10T12:00:00Z')), { effectiveFrom: null, effectiveTo: null })
})
