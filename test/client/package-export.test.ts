import t from 'tap'

t.test("the client is importable as the package's ./client subpath (built by npm install's prepare step)", async (t) => {
  const mod = (await import('llm-usage-tracker/client')) as Record<string, unknown>
  for (const name of ['UsageClient', 'fromEnv', 'instrumentAnthropic', 'instrumentOpenAI', 'instrumentGemini']) {
    t.type(mod[name], 'function', name)
  }
})
