import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'
import { DataDirLockedError } from './db/data-dir-lock.js'
import { listenMetrics } from './plugins/metrics.js'

let config
try {
  config = loadConfig()
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message)
    process.exit(1)
  }
  throw err
}

const app = await buildApp(config).catch((err: unknown) => {
  // Another process owns the embedded data dir: say who, and stop before touching it.
  if (err instanceof DataDirLockedError) {
    console.error(err.message)
    process.exit(1)
  }
  throw err
})
let closeMetrics: (() => Promise<void>) | null = null

let stopping = false
async function shutdown(signal: string) {
  if (stopping) return
  stopping = true
  app.log.info({ signal }, 'shutting down: finishing in-flight requests')
  // A hung close must not keep the process alive forever.
  const timer = setTimeout(() => {
    app.log.error('graceful shutdown timed out after 15 s; exiting')
    process.exit(1)
  }, 15_000)
  timer.unref()
  try {
    await closeMetrics?.()
    await app.close()
    process.exit(0)
  } catch (err) {
    app.log.error({ err }, 'error during shutdown')
    process.exit(1)
  }
}
process.on('SIGINT', () => void shutdown('SIGINT'))
process.on('SIGTERM', () => void shutdown('SIGTERM'))

try {
  // Node's default backlog (511) overflowed when 512 clients connected at once: the kernel dropped
  // their SYNs and they retried after 1 s and 3 s. The kernel caps it at net.core.somaxconn.
  await app.listen({ port: config.port, host: config.host, backlog: config.http.listenBacklog })
  app.log.info(`docs at http://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${config.port}/docs`)
  if (config.metrics.port !== null) {
    closeMetrics = (await listenMetrics(app.metrics, config.metrics.port, config.host)).close
    app.log.info(`metrics at http://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${config.metrics.port}/metrics (no key)`)
  }
} catch (err) {
  app.log.error({ err }, 'failed to start')
  await app.close().catch(() => undefined)
  process.exit(1)
}
