// Writes openapi.yaml from the route schemas: `npm run openapi`. A test fails when the
// committed file drifts from what the routes produce.
import { writeFileSync } from 'node:fs'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { OPENAPI_PATH, renderOpenApi } from '../src/plugins/openapi.js'

const app = await buildApp(loadConfig({ LOG_LEVEL: 'warn', DATA_DIR: 'memory://' }))
try {
  writeFileSync(OPENAPI_PATH, await renderOpenApi(app))
  console.warn(`wrote ${OPENAPI_PATH}`)
} finally {
  await app.close()
}
