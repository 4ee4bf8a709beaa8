import t from 'tap'
import { overrideProblems, type PriceOverride } from '../../src/pricing/catalog.js'

type Draft = Omit<PriceOverride, 'id'> & { id?: string }

function draft(fields: Partial<Draft> = {}): Draft {
  return {
    provider: 'openai',
    modelPattern: 'gpt-4o*',
    effectiveFrom: new Date('2025-03-15T00:00:00Z'),
    effectiveTo: new Date('2025-04-01T00:00:00Z'),
    input: '2',
    output: '8',
    cacheRead: '1',
    cacheWrite: null,
    cacheWrite1h: null,
    reasoning: null,
    tiers: [],
    ...fields,
  }
}

const stored: PriceOverride = {
  ...draft({ effectiveFrom: new Date('2025-01-01T00:00:00Z'), effectiveTo: new Date('2025-02-01T00:00:00Z') }),
  id: 'jan',
}

const fieldsOf = (problems: { field: string }[]) => problems.map((problem) => problem.field)

t.test('a valid override has no problems', async (t) => {
  t.same(overrideProblems(draft(), [stored]), [])
  t.same(overrideProblems(draft({ effectiveTo: null }), [stored]), [], 'open-ended after a closed one')
  t.same(
    overrideProblems(
      draft({
        tiers: [
          { aboveInputTokens: 128_000, input: '4', output: '16' },
          { aboveInputTokens: 200_000, input: '5', output: '20', cacheRead: '2', cacheWrite: null },
        ],
      }),
      [],
    ),
    [],
  )
})

t.test('negative or unparseable prices name their field', async (t) => {
  const problems = overrideProblems(
    draft({ input: '-1', output: 'ten', cacheRead: '1e-3', cacheWrite: '0.0000000000001', reasoning: '-0.5' }),
    [],
  )
  t.same(fieldsOf(problems), ['input', 'output', 'cacheRead', 'cacheWrite', 'reasoning'])
  t.match(problems[0], { field: 'input', message: 'must not be negative' })
  t.match(problems[1].message, /decimal string/)
})

t.test('required prices are required', async (t) => {
  const problems = overrideProblems({ ...draft(), input: undefined as unknown as string }, [])
  t.same(fieldsOf(problems), ['input'])
  t.match(problems[0].message, /required/)
})

t.test('from must be before to', async (t) => {
  t.same(fieldsOf(overrideProblems(draft({ effectiveTo: new Date('2025-03-15T00:00:00Z') }), [])), ['effectiveTo'])
  t.same(fieldsOf(overrideProblems(draft({ effectiveTo: new Date('2025-03-01T00:00:00Z') }), [])), ['effectiveTo'])
  t.same(fieldsOf(overrideProblems(draft({ effectiveFrom: new Date('garbage') }), [])), ['effectiveFrom'])
})

t.test('tiers must be sorted, positive and priced', async (t) => {
  const problems = overrideProblems(
    draft({
      tiers: [
        { aboveInputTokens: 200_000, input: '5', output: '20' },
        { aboveInputTokens: 128_000, input: '4', output: '16' },
        { aboveInputTokens: -5, input: '4', output: '-16' },
        { aboveInputTokens: 1.5, input: '4', output: '16', cacheWrite1h: 'x' },
      ],
    }),
    [],
  )
  t.same(fieldsOf(problems), [
    'tiers[1].aboveInputTokens',
    'tiers[2].aboveInputTokens',
    'tiers[2].output',
    'tiers[3].aboveInputTokens',
    'tiers[3].cacheWrite1h',
  ])
  t.match(problems[0].message, /sorted ascending/)
  t.same(
    fieldsOf(overrideProblems(draft({ tiers: [{ aboveInputTokens: 1000, input: '1', output: '1' }, { aboveInputTokens: 1000, input: '1', output: '1' }] }), [])),
    ['tiers[1].aboveInputTokens'],
    'equal thresholds',
  )
})

t.test('provider and pattern must be present', async (t) => {
  t.same(fieldsOf(overrideProblems(draft({ provider: ' ', modelPattern: '' }), [])), ['provider', 'modelPattern'])
  t.same(fieldsOf(overrideProblems(draft({ modelPattern: 'gpt 4o' }), [])), ['modelPattern'])
  t.same(fieldsOf(overrideProblems(draft({ modelPattern: 'x'.repeat(201) }), [])), ['modelPattern'])
})

t.test('overlap with another override for the same provider and pattern', async (t) => {
  const overlapping = draft({ effectiveFrom: new Date('2025-01-20T00:00:00Z'), effectiveTo: null })
  const problems = overrideProblems(overlapping, [stored])
  t.same(fieldsOf(problems), ['effectiveFrom'])
  t.match(problems[0].message, /overlaps override jan/)

  t.same(overrideProblems(draft({ effectiveFrom: new Date('2025-02-01T00:00:00Z') }), [stored]), [], 'touching ranges do not overlap')
  t.same(overrideProblems(overlapping, [{ ...stored, modelPattern: 'gpt-4o' }]), [], 'another pattern')
  t.same(overrideProblems(overlapping, [{ ...stored, provider: 'azure' }]), [], 'another provider')
  t.same(
    fieldsOf(overrideProblems({ ...overlapping, provider: 'OpenAI', modelPattern: 'GPT-4o*' }, [stored])),
    ['effectiveFrom'],
    'provider and pattern compare case-insensitively',
  )
  t.same(
    fieldsOf(overrideProblems({ ...draft({ provider: 'gemini', modelPattern: 'gemini-2.5-pro' }) }, [{ ...stored, id: 'g', provider: 'google', modelPattern: 'gemini-2.5-pro', effectiveTo: null }])),
    ['effectiveFrom'],
    'provider aliases are the same provider',
  )
  t.same(overrideProblems({ ...overlapping, id: 'jan' }, [stored]), [], 'an update does not overlap itself')
  t.same(
    fieldsOf(overrideProblems(draft({ effectiveFrom: new Date('2024-01-01T00:00:00Z'), effectiveTo: null }), [stored, { ...stored, id: 'mar', effectiveFrom: new Date('2025-03-01T00:00:00Z'), effectiveTo: null }])),
    ['effectiveFrom', 'effectiveFrom'],
    'every overlapping override is named',
  )
})
