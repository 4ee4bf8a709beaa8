/**
 * The example request of every route, as the API docs show it and Swagger UI's "Try it out" sends
 * it. Each must be accepted as it is (test/openapi-examples.test.ts sends every one): a body in
 * full, the query parameters that show what a route can do (optional ones left out stay at their
 * defaults), and path ids, which stand for the id of a resource created by the route's POST.
 *
 * Keyed by "METHOD url" as the route is registered; documentRoutes (src/plugins/openapi.ts) attaches each
 * example to the route's schema, where @fastify/swagger turns it into the OpenAPI example.
 */
export interface RouteExample {
  body?: Record<string, unknown>
  query?: Record<string, string | number | boolean>
  params?: Record<string, string>
}

/** The seed contract's own example call. */
export const SEED_USAGE_EXAMPLE = {
  botId: 'bot_123',
  model: 'claude-opus',
  provider: 'anthropic',
  inputTokens: 150,
  outputTokens: 300,
  totalTokens: 450,
  estimatedCost: 0.00675,
  requestType: 'message',
  success: true,
}

/** What an id looks like (a UUIDv7); the docs' path examples. */
const EXAMPLE_ID = '019ad5e2-3b4c-7d8e-9f01-23456789abcd'

const OVERRIDE_EXAMPLE = {
  provider: 'anthropic',
  modelPattern: 'claude-3-5-sonnet*',
  effectiveFrom: '2025-03-01T00:00:00Z',
  input: 2.4,
  output: 12,
  cacheRead: 0.24,
  cacheWrite: 3,
  note: 'contract 2025',
}

export const ROUTE_EXAMPLES: Record<string, RouteExample> = {
  'POST /api/keys': { body: { name: 'bot 123', scopes: ['ingest', 'read'], botId: 'bot_123' } },
  'DELETE /api/keys/:id': { params: { id: EXAMPLE_ID } },

  'POST /api/usage': { body: SEED_USAGE_EXAMPLE },
  'POST /api/usage/batch': {
    body: {
      events: [
        { id: 'call-41', botId: 'bot_123', model: 'gpt-4o', provider: 'openai', inputTokens: 1200, outputTokens: 80, cacheReadTokens: 1024, latencyMs: 640 },
        { id: 'call-42', botId: 'bot_123', model: 'gemini-1.5-pro', provider: 'google', inputTokens: 10, outputTokens: 5, metadata: { chatId: 1001 } },
      ],
    },
  },
  'GET /api/usage': { query: { botId: 'bot_123', limit: 5 } },

  'GET /api/prices': { query: { provider: 'anthropic' } },
  'GET /api/prices/resolve': { query: { provider: 'anthropic', model: 'claude-3-5-sonnet-20241022' } },
  'POST /api/prices/quote': {
    body: {
      provider: 'anthropic',
      model: 'claude-sonnet-4-5-20250929',
      inputTokens: 1200,
      outputTokens: 300,
      cacheReadTokens: 1000,
      webSearchRequests: 2,
      serviceTier: 'batch',
    },
  },
  'GET /api/prices/unmatched': { query: { startDate: '2025-03-01', endDate: '2025-03-31', limit: 20 } },
  'POST /api/prices/overrides': { body: OVERRIDE_EXAMPLE },
  'PUT /api/prices/overrides/:id': { params: { id: EXAMPLE_ID }, body: { ...OVERRIDE_EXAMPLE, output: 11, note: 'contract 2025, renegotiated' } },
  'DELETE /api/prices/overrides/:id': { params: { id: EXAMPLE_ID } },
  'POST /api/prices/reprice': { body: { startDate: '2025-03-01', endDate: '2025-03-31' } },

  'GET /api/usage/timeseries': { query: { interval: 'day', groupBy: 'model', tz: 'Europe/Berlin' } },
  'GET /api/usage/summary': { query: { botId: 'bot_123' } },
  'GET /api/usage/breakdown': { query: { groupBy: 'model,botId', sort: 'cost', limit: 20 } },
  'GET /api/usage/errors': { query: { botId: 'bot_123', limit: 20 } },
  'GET /api/usage/events': { query: { botId: 'bot_123', limit: 100 } },
  'GET /api/usage/export': { query: { format: 'csv', botId: 'bot_123' } },
  'GET /api/reports/monthly': { query: { month: '2025-03', format: 'json' } },

  'POST /api/budgets': {
    body: {
      name: 'bot_123 monthly',
      scope: { botId: 'bot_123' },
      period: 'month',
      limitUsd: 50,
      thresholds: [50, 80, 100],
      channels: { webhook: { url: 'https://example.com/hooks/budget' } },
    },
  },
  'GET /api/budgets': { query: { botId: 'bot_123' } },
  'GET /api/budgets/:id': { params: { id: EXAMPLE_ID } },
  'PATCH /api/budgets/:id': { params: { id: EXAMPLE_ID }, body: { limitUsd: 75, thresholds: [80, 100] } },
  'DELETE /api/budgets/:id': { params: { id: EXAMPLE_ID } },
  'GET /api/budgets/:id/status': { params: { id: EXAMPLE_ID }, query: { userId: '4242' } },
  'GET /api/budgets/allowance': { query: { botId: 'bot_123', userId: '4242' } },
  'GET /api/alerts': { query: { since: '2025-03-01T00:00:00Z', limit: 20 } },

  'POST /api/spend-alerts': {
    body: {
      name: 'bot_123 spikes',
      scope: { botId: 'bot_123' },
      per: 'bot',
      multiple: 3,
      minSpendUsd: 5,
      baselineDays: 7,
      channels: { webhook: { url: 'https://example.com/hooks/spend' } },
    },
  },
  'GET /api/spend-alerts/:id': { params: { id: EXAMPLE_ID } },
  'PATCH /api/spend-alerts/:id': { params: { id: EXAMPLE_ID }, body: { multiple: 4, minSpendUsd: 10 } },
  'DELETE /api/spend-alerts/:id': { params: { id: EXAMPLE_ID } },
  'GET /api/spend-alerts/:id/status': { params: { id: EXAMPLE_ID } },
  'GET /api/spend-alerts/:id/spikes': { params: { id: EXAMPLE_ID }, query: { limit: 20 } },

  'POST /api/report-schedules': {
    body: {
      name: 'Ops weekly',
      period: 'week',
      timeZone: 'Europe/Berlin',
      sendHour: 9,
      channels: { webhook: { url: 'https://example.com/hooks/report' } },
    },
  },
  'GET /api/report-schedules/:id': { params: { id: EXAMPLE_ID } },
  'PATCH /api/report-schedules/:id': { params: { id: EXAMPLE_ID }, body: { sendHour: 8, enabled: true } },
  'DELETE /api/report-schedules/:id': { params: { id: EXAMPLE_ID } },
  'GET /api/report-schedules/:id/preview': { params: { id: EXAMPLE_ID }, query: { period: 'previous' } },
  'GET /api/report-schedules/:id/sends': { params: { id: EXAMPLE_ID }, query: { limit: 20 } },
}
