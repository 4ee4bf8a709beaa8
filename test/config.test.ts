import t from 'tap'
import { ConfigError, loadConfig } from '../src/config.js'
import { DEFAULT_READ_RANDOM_PAGE_COST } from '../src/db/connect.js'

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

t.test('scaling: REDIS_URL, REDIS_KEY_PREFIX and DATABASE_READ_URL', async (t) => {
  t.match(loadConfig({}), { redis: null, databaseReadUrl: null }, 'both off by default')
  const c = loadConfig({ DATABASE_URL: 'postgres://u@primary/db', DATABASE_READ_URL: 'postgres://u@replica/db', REDIS_URL: 'redis://cache:6379', REDIS_KEY_PREFIX: 'prod:' })
  t.match(c, { databaseReadUrl: 'postgres://u@replica/db', redis: { url: 'redis://cache:6379', keyPrefix: 'prod:', commandTimeoutMs: 1000 } })
  t.throws(() => loadConfig({ REDIS_URL: 'redis://cache:6379', REDIS_COMMAND_TIMEOUT_MS: '0' }), /REDIS_COMMAND_TIMEOUT_MS must be an integer between 10 and 60000/)
  t.throws(() => loadConfig({ DATABASE_READ_URL: 'postgres://u@replica/db' }), /DATABASE_READ_URL needs DATABASE_URL/)
  t.throws(() => loadConfig({ DATABASE_URL: 'postgres://u@p/db', DATABASE_READ_URL: 'mysql://x' }), /DATABASE_READ_URL must start with postgres/)
  t.throws(() => loadConfig({ REDIS_URL: 'cache:6379' }), /REDIS_URL must look like redis:\/\/host:6379/)
})

t.test('read pool, heavy-read turns and HTTP limits: defaults, and combinations that cannot work are refused', async (t) => {
  const c = loadConfig({})
  t.match(c, {
    pgReadPoolSize: 4,
    pgConnectTimeoutMs: 5000,
    queryTimeoutMs: 30_000,
    heavyReads: { maxConcurrent: 2, maxQueued: 8, maxQueueWaitMs: 10_000 },
    http: { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 72_000, idleTimeoutMs: 120_000, maxConnections: 10_000 },
  })
  t.throws(() => loadConfig({ HTTP_HEADERS_TIMEOUT_MS: '20000', HTTP_REQUEST_TIMEOUT_MS: '10000' }), {
    message: /HTTP_HEADERS_TIMEOUT_MS \(20000\) must not exceed HTTP_REQUEST_TIMEOUT_MS \(10000\)/,
  })
  t.throws(() => loadConfig({ QUERY_TIMEOUT_MS: '120000' }), { message: /HTTP_IDLE_TIMEOUT_MS \(120000\) must exceed QUERY_TIMEOUT_MS \+ ANALYTICS_MAX_QUEUE_WAIT_MS \(130000\)/ })
  t.doesNotThrow(() => loadConfig({ QUERY_TIMEOUT_MS: '120000', HTTP_IDLE_TIMEOUT_MS: '0' }), 'no idle timeout, no conflict')
  t.throws(() => loadConfig({ ANALYTICS_MAX_CONCURRENT: '0', PG_READ_POOL_SIZE: 'x' }), { message: /PG_READ_POOL_SIZE must be an integer/ })
  t.equal(loadConfig({}).pgReadRandomPageCost, DEFAULT_READ_RANDOM_PAGE_COST, 'unset: the default of db/connect.ts')
  t.equal(loadConfig({ PG_READ_RANDOM_PAGE_COST: '1.5' }).pgReadRandomPageCost, 1.5)
  t.equal(loadConfig({ PG_READ_RANDOM_PAGE_COST: '0' }).pgReadRandomPageCost, null, "0: the server's own setting")
  for (const bad of ['-1', 'fast', '1e3', '2000', '1.5.2']) {
    t.throws(() => loadConfig({ PG_READ_RANDOM_PAGE_COST: bad }), { message: /PG_READ_RANDOM_PAGE_COST must be a number between 0 and 1000/ }, bad)
  }
  t.throws(() => loadConfig({ ANALYTICS_MAX_CONCURRENT: '0' }), { message: /ANALYTICS_MAX_CONCURRENT must be an integer between 1 and 100/ })
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

t.test('ingest admission by event-loop delay and the listen backlog: defaults and bounds', async (t) => {
  t.match(loadConfig({}), { ingest: { maxLoopDelayMs: 50, maxQueueDelayMs: 50 }, http: { listenBacklog: 4096 } })
  t.match(loadConfig({ INGEST_MAX_LOOP_DELAY_MS: '0', HTTP_LISTEN_BACKLOG: '511' }), { ingest: { maxLoopDelayMs: 0 }, http: { listenBacklog: 511 } })
  t.throws(() => loadConfig({ INGEST_MAX_LOOP_DELAY_MS: '-1' }), /INGEST_MAX_LOOP_DELAY_MS must be an integer between 0 and 60000/)
  t.throws(() => loadConfig({ HTTP_LISTEN_BACKLOG: '0' }), /HTTP_LISTEN_BACKLOG must be an integer between 1 and 65535/)
})

t.test('METADATA_ROLLUP_KEYS: a comma list of valid, distinct metadata keys, and a bound', async (t) => {
  t.same(loadConfig({}).metadataRollups, { keys: [], maxValues: 1000 }, 'none declared by default')
  t.same(loadConfig({ METADATA_ROLLUP_KEYS: ' userId, chatId ,', METADATA_ROLLUP_MAX_VALUES: '50' }).metadataRollups, { keys: ['userId', 'chatId'], maxValues: 50 })
  t.throws(() => loadConfig({ METADATA_ROLLUP_KEYS: 'userId,user id' }), /METADATA_ROLLUP_KEYS has "user id"/)
  t.throws(() => loadConfig({ METADATA_ROLLUP_KEYS: 'userId,userId' }), /METADATA_ROLLUP_KEYS names a key twice/)
  t.throws(() => loadConfig({ METADATA_ROLLUP_MAX_VALUES: '0' }), /METADATA_ROLLUP_MAX_VALUES must be an integer between 1 and 1000000/)
})
