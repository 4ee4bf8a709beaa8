import t from 'tap'
import { ConfigError, loadConfig } from '../src/config.js'

t.test('defaults', async (t) => {
  const c = loadConfig({})
  t.match(c, { port: 3000, host: '0.0.0.0', databaseUrl: null, migrate: true, logLevel: 'info', corsOrigins: [], authDisabled: false })
  t.match(c.dataDir, /\/data$/)
})

t.test('one error lists every bad variable', async (t) => {
  try {
    loadConfig({ PORT: 'eighty', LOG_LEVEL: 'loud', DATABASE_URL: 'mysql://x', MIGRATE: 'perhaps', CORS_ORIGINS: 'https://ok.example,not-an-origin' })
    t.fail('should throw')
  } catch (err) {
    t.ok(err instanceof ConfigError)
    const problems = (err as ConfigError).problems
    t.equal(problems.length, 5)
    t.match((err as Error).message, /PORT must be an integer/)
    t.match((err as Error).message, /LOG_LEVEL must be one of/)
    t.match((err as Error).message, /DATABASE_URL must start with postgres/)
    t.match((err as Error).message, /MIGRATE must be true or false/)
    t.match((err as Error).message, /CORS_ORIGINS entry "not-an-origin"/)
  }
})

t.test('values are parsed', async (t) => {
  const c = loadConfig({ PORT: '8080', DATABASE_URL: 'postgres://u@h/db', MIGRATE: 'false', CORS_ORIGINS: 'https://a.example, https://b.example', LOG_LEVEL: 'debug' })
  t.match(c, { port: 8080, databaseUrl: 'postgres://u@h/db', migrate: false, corsOrigins: ['https://a.example', 'https://b.example'], logLevel: 'debug' })
})

t.test('PUBLIC_URL and the metrics settings', async (t) => {
  t.match(loadConfig({}), { publicUrl: null, metrics: { port: null, maxBots: 50, maxModels: 200 } })
  t.match(loadConfig({ PUBLIC_URL: 'https://usage.example.com/', METRICS_PORT: '9464', METRICS_MAX_BOTS: '5' }), {
    publicUrl: 'https://usage.example.com',
    metrics: { port: 9464, maxBots: 5 },
  })
  t.throws(() => loadConfig({ PUBLIC_URL: 'usage.example.com', METRICS_PORT: '0', METRICS_MAX_BOTS: '0' }), {
    message: /PUBLIC_URL must be an http\(s\) URL[\s\S]*METRICS_PORT must be an integer between 1 and 65535[\s\S]*METRICS_MAX_BOTS/,
  })
})
