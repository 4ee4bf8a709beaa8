import t from 'tap'
import { overrideProblems, type PriceOverride } from '../../src/pricing/catalog.js'
import { compileOverride, globMatcher, pickOverride } from '../../src/pricing/overrides.js'

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

/** The glob semantics as a RegExp (fine for the short names here; it backtracks on long ones). */
const globAsRegExp = (glob: string) =>
  new RegExp(`^${glob.split('*').map((literal) => literal.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`)

t.test('glob matching keeps its semantics: * is any run, everything else literal, whole name', async (t) => {
  const cases: [string, string, boolean][] = [
    ['gpt-4o*', 'gpt-4o-mini', true],
    ['gpt-4o*', 'gpt-4o', true],
    ['gpt-4o*', 'xgpt-4o', false],
    ['*mini', 'gpt-4o-mini', true],
    ['*mini', 'gpt-4o-mini-2024', false],
    ['gpt*mini', 'gpt-mini', true],
    ['a*a', 'a', false],
    ['a*a', 'aa', true],
    ['*', '', true],
    ['**', 'anything', true],
    ['claude-3.5*', 'claude-3x5-sonnet', false],
    ['a*b*c', 'abcabc', true],
    ['a*b*c', 'acb', false],
    ['ab*ba', 'aba', false],
    ['exact', 'exact', true],
    ['exact', 'exactly', false],
  ]
  for (const [glob, name, expected] of cases) {
    t.equal(globMatcher(glob)(name), expected, `${glob} ~ ${name}`)
    t.equal(globAsRegExp(glob).test(name), expected, `(reference) ${glob} ~ ${name}`)
  }
  // Every glob over a small alphabet agrees with the reference on every short name.
  const words = (alphabet: string, max: number): string[] => {
    let level = ['']
    const all = ['']
    for (let n = 1; n <= max; n++) {
      level = level.flatMap((w) => [...alphabet].map((c) => w + c))
      all.push(...level)
    }
    return all
  }
  const names = words('ab', 5)
  let disagreements = 0
  for (const glob of words('ab*', 4)) {
    const matcher = globMatcher(glob)
    const reference = globAsRegExp(glob)
    for (const name of names) if (matcher(name) !== reference.test(name)) disagreements++
  }
  t.equal(disagreements, 0, 'same answers as the regular expression on all small cases')
})

t.test('a pathological glob is matched without backtracking', { timeout: 5000 }, async (t) => {
  // As a RegExp this took seconds per event; the yields let tap's timeout fire on such code.
  const [compiled] = [{ ...draft({ modelPattern: '*a*a*a*a*a*a*a*b', effectiveFrom: new Date(0), effectiveTo: null }), id: 'evil' }].map(
    compileOverride,
  )
  const name = 'a'.repeat(60)
  for (let event = 0; event < 20; event++) {
    t.equal(pickOverride([compiled], 'openai', [name, `${name}c`], new Date()), null)
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(pickOverride([compiled], 'openai', [`${name}b`], new Date())?.id, 'evil', 'and it still matches what it should')
})
