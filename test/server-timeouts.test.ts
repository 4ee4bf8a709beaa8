import type { FastifyInstance } from 'fastify'
import net from 'node:net'
import t, { type Test } from 'tap'
import { ADMIN_KEY, buildTestApp } from './helpers/app.js'
import { createTestDatabase } from './helpers/db.js'

/**
 * A client cannot hold the server's sockets for free: a body trickled in byte by byte is cut
 * at HTTP_REQUEST_TIMEOUT_MS, a socket that never finishes its headers is closed at
 * HTTP_HEADERS_TIMEOUT_MS, and sockets past HTTP_MAX_CONNECTIONS are refused on accept.
 * Raw sockets against a listening app: each test waits for the server to act, with tap's
 * per-test timeout as the only clock.
 */

const database = await createTestDatabase(t)

async function listening(t: Test, env: Record<string, string>): Promise<{ app: FastifyInstance; port: number }> {
  const { app } = await buildTestApp(t, database, env)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('not listening on a port')
  return { app, port: address.port }
}

/** A raw socket, its received bytes and a promise that settles when the server closes it. */
async function rawSocket(port: number) {
  const socket = net.connect({ port, host: '127.0.0.1' })
  let received = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => (received += chunk))
  socket.on('error', () => undefined)
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  return { socket, closed, received: () => received }
}

const TIGHT = { HTTP_HEADERS_TIMEOUT_MS: '300', HTTP_REQUEST_TIMEOUT_MS: '600', HTTP_IDLE_TIMEOUT_MS: '0' }

t.test('a body sent one byte at a time is cut with 408 at the request timeout', { timeout: 30_000 }, async (t) => {
  const { port } = await listening(t, TIGHT)
  const { socket, closed, received } = await rawSocket(port)
  socket.write(
    'POST /api/usage HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
      `Authorization: Bearer ${ADMIN_KEY}\r\nContent-Length: 100000\r\n\r\n{`,
  )
  const trickle = setInterval(() => {
    if (!socket.destroyed) socket.write(' ')
  }, 50)
  await closed
  clearInterval(trickle)
  t.match(received(), /^(HTTP\/1\.1 408 |$)/, 'answered 408 Request Timeout (or just closed), never accepted')
})

t.test('a socket that sends part of its headers and stalls is closed', { timeout: 30_000 }, async (t) => {
  const { port } = await listening(t, TIGHT)
  const { socket, closed, received } = await rawSocket(port)
  socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n')
  await closed
  t.match(received(), /^(HTTP\/1\.1 408 |$)/)
})

t.test('a socket that sends nothing at all is closed', { timeout: 30_000 }, async (t) => {
  const { port } = await listening(t, TIGHT)
  const { closed } = await rawSocket(port)
  await closed
  t.pass('closed by the server')
})

t.test('connections beyond HTTP_MAX_CONNECTIONS are closed on accept; requests within it are served', { timeout: 30_000 }, async (t) => {
  const { port } = await listening(t, { HTTP_MAX_CONNECTIONS: '2' })
  const held = [await rawSocket(port), await rawSocket(port)]
  const extra = await rawSocket(port)
  await extra.closed
  t.equal(extra.received(), '', 'the third socket is dropped without an answer')
  held[0].socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')
  await held[0].closed
  t.match(held[0].received(), /^HTTP\/1\.1 200 /, 'a socket within the cap is served')
  for (const h of held) h.socket.destroy()
})
