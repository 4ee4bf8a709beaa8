import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { extname, join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Errors } from '../errors.js'

/** Where `npm run build:dashboard` (run by `npm install`) writes the built page. */
export const DASHBOARD_DIST = fileURLToPath(new URL('../../dist/dashboard/', import.meta.url))

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.woff2': 'font/woff2',
  '.map': 'application/json; charset=utf-8',
}

interface Asset {
  body: Buffer
  type: string
}

/** Reads every built file once: the page is small, and serving from memory needs no file I/O per request. */
function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>()
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name)
      if (statSync(path).isDirectory()) walk(path)
      else {
        const type = CONTENT_TYPES[extname(name)]
        if (type) assets.set(relative(dir, path).split(sep).join('/'), { body: readFileSync(path), type })
      }
    }
  }
  walk(dir)
  return assets
}

export interface DashboardOptions {
  /** Directory of the built page; default dist/dashboard. */
  dir?: string
}

/**
 * Serves the dashboard page at /dashboard (and redirects / there). The page is static and talks
 * only to the public API with the key the user signs in with. File names under assets/ carry a
 * content hash, so they are cached for a year; index.html is revalidated on every load.
 */
export const dashboardRoutes: FastifyPluginAsync<DashboardOptions> = async (app, opts) => {
  const dir = opts.dir ?? DASHBOARD_DIST
  const assets = existsSync(join(dir, 'index.html')) ? loadAssets(dir) : null
  if (!assets) app.log.warn({ dir }, 'dashboard is not built (run npm run build:dashboard); /dashboard answers 404')

  const send = (reply: FastifyReply, path: string) => {
    const asset = assets?.get(path)
    if (!asset) {
      throw new Errors.notFound(assets ? `No dashboard file '${path}'` : 'The dashboard is not built: run npm run build:dashboard')
    }
    const immutable = path.startsWith('assets/')
    return reply
      .header('content-type', asset.type)
      .header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .send(asset.body)
  }

  app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/dashboard', 302))
  app.get('/dashboard', { schema: { hide: true } }, async (_request, reply) => send(reply, 'index.html'))
  app.get<{ Params: { '*': string } }>('/dashboard/*', { schema: { hide: true } }, async (request, reply) =>
    send(reply, request.params['*'] === '' ? 'index.html' : request.params['*']),
  )
}
