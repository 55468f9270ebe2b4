// Seam's own fake of its API (@seamapi/fake-seam-connect, pinned in
// package.json), started for codewatch's tests by internal/seamtest.
//
//   node server.mjs [PORT]        PORT (or $SEAMFAKE_PORT) 0 or unset: a free one
//
// It binds 127.0.0.1 only, loads the package's default seed, and prints ONE
// line of JSON to stdout when it is ready:
//
//   {"url":"http://127.0.0.1:PORT","api_key":"seam_apikey1_token",
//    "workspace_id":"seed_workspace_1","devices":["august_device_1","august_device_2"],
//    "fake_version":"1.86.0"}
//
// It runs until stdin closes or it gets SIGTERM/SIGINT, so a test that dies
// cannot leave it behind.
//
// Besides the fake's own routes (Seam's API plus /_fake/...), the same
// server answers a few /_codewatch/... routes for what the fake's HTTP API
// cannot do. They take a JSON body, need no auth (loopback only) and answer
// {"ok":true,...} or Seam's error shape:
//
//   POST /_codewatch/add_event          {event_type, ...any event fields}
//        stores an event, never sent as a webhook; workspace_id defaults to
//        the seed workspace, event_id/created_at are the fake's unless given,
//        occurred_at defaults to created_at -> {event}
//   POST /_codewatch/set_device_online  {device_id, online}
//        sets properties.online and adds (offline) or drops (online) a
//        device_offline error, as Seam does -> {device}
//   POST /_codewatch/add_access_code    {device_id, code, name?, ...any access code fields}
//        puts a code straight into the database (no event, any status,
//        errors or warnings) -> {access_code}
//   POST /_codewatch/update_access_code {access_code_id, ...fields to replace}
//        -> {access_code}
//   POST /_codewatch/update_device      {device_id, ...fields to replace}
//        (display_name, location, custom_metadata: names, issue 22) -> {device}
import http from 'node:http'
import net from 'node:net'
import { readFileSync } from 'node:fs'
import { createFake } from '@seamapi/fake-seam-connect'

const HOST = '127.0.0.1'

const main = async () => {
  const wanted = Number(process.argv[2] ?? process.env.SEAMFAKE_PORT ?? 0)
  if (!Number.isInteger(wanted) || wanted < 0 || wanted > 65535) {
    throw new Error(`port must be 0..65535, got ${process.argv[2] ?? process.env.SEAMFAKE_PORT}`)
  }
  const port = wanted === 0 ? await freePort() : wanted

  const fake = await createFake()
  const seed = await fake.seed()
  const db = fake.database

  // The fake's server calls listen(port) with no host, which binds every
  // interface; hold it to loopback for the one call startServer makes.
  const listen = http.Server.prototype.listen
  http.Server.prototype.listen = function (p, ...rest) {
    const cb = rest.find((a) => typeof a === 'function')
    return listen.call(this, p, HOST, cb)
  }
  let server
  try {
    server = await fake.startServer({ port, baseUrl: `http://${HOST}:${port}` })
  } finally {
    http.Server.prototype.listen = listen
  }

  // Put /_codewatch/ in front of the fake's own request handler.
  const httpServer = server.server
  const handlers = httpServer.listeners('request')
  httpServer.removeAllListeners('request')
  httpServer.on('request', (req, res) => {
    if (req.url.startsWith('/_codewatch/')) {
      control(db, seed, req, res)
      return
    }
    for (const h of handlers) h.call(httpServer, req, res)
  })

  const pkg = JSON.parse(
    readFileSync(new URL('./node_modules/@seamapi/fake-seam-connect/package.json', import.meta.url)),
  )
  process.stdout.write(
    JSON.stringify({
      url: `http://${HOST}:${port}`,
      api_key: seed.seam_apikey1_token,
      workspace_id: seed.seed_workspace_1,
      devices: [seed.august_device_1, seed.august_device_2],
      fake_version: pkg.version,
    }) + '\n',
  )

  const stop = () => {
    httpServer.closeAllConnections?.()
    httpServer.close()
    process.exit(0)
  }
  process.stdin.on('end', stop)
  process.stdin.on('close', stop)
  process.stdin.resume()
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

// freePort asks the kernel for a free loopback port.
const freePort = () =>
  new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, HOST, () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })

const control = (db, seed, req, res) => {
  const send = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(JSON.stringify(body))
  }
  const fail = (status, type, message) => send(status, { error: { type, message }, ok: false })
  if (req.method !== 'POST') return fail(405, 'method_not_allowed', 'use POST')
  let raw = ''
  req.setEncoding('utf8')
  req.on('data', (c) => (raw += c))
  req.on('end', () => {
    let body
    try {
      body = raw === '' ? {} : JSON.parse(raw)
    } catch (err) {
      return fail(400, 'invalid_input', `body is not JSON: ${err.message}`)
    }
    if (body == null || typeof body !== 'object' || Array.isArray(body)) {
      return fail(400, 'invalid_input', 'body must be a JSON object')
    }
    const route = req.url.split('?')[0]
    try {
      switch (route) {
        case '/_codewatch/add_event': {
          if (typeof body.event_type !== 'string') return fail(400, 'invalid_input', 'event_type is required')
          // occurred_at follows a given created_at, so a back-dated event is
          // back-dated throughout (the fake would stamp it now).
          const occurred_at = body.occurred_at ?? body.created_at
          const event = db.addEvent({
            workspace_id: seed.seed_workspace_1,
            ...(occurred_at != null ? { occurred_at } : {}),
            ...body,
          })
          return send(200, { event, ok: true })
        }
        case '/_codewatch/set_device_online': {
          const device = db.devices.find((d) => d.device_id === body.device_id)
          if (device == null) return fail(404, 'device_not_found', `no device ${body.device_id}`)
          if (typeof body.online !== 'boolean') return fail(400, 'invalid_input', 'online must be true or false')
          const errors = (device.errors ?? []).filter((e) => e.error_code !== 'device_offline')
          if (!body.online) {
            errors.push({
              error_code: 'device_offline',
              message: 'Device is offline',
              is_device_error: true,
              created_at: new Date().toISOString(),
            })
          }
          const updated = db.updateDevice({ device_id: device.device_id, properties: { online: body.online }, errors })
          return send(200, { device: updated, ok: true })
        }
        case '/_codewatch/add_access_code': {
          const device = db.devices.find((d) => d.device_id === body.device_id)
          if (device == null) return fail(404, 'device_not_found', `no device ${body.device_id}`)
          if (typeof body.code !== 'string' || body.code === '') return fail(400, 'invalid_input', 'code is required')
          const access_code = db.addAccessCode({
            workspace_id: device.workspace_id,
            name: 'codewatch test code',
            type: 'ongoing',
            ...body,
          })
          return send(200, { access_code, ok: true })
        }
        case '/_codewatch/update_access_code': {
          const found = db.access_codes.find((c) => c.access_code_id === body.access_code_id)
          if (found == null) return fail(404, 'access_code_not_found', `no access code ${body.access_code_id}`)
          const access_code = db.updateAccessCode(body)
          return send(200, { access_code, ok: true })
        }
        case '/_codewatch/update_device': {
          const device = db.devices.find((d) => d.device_id === body.device_id)
          if (device == null) return fail(404, 'device_not_found', `no device ${body.device_id}`)
          const updated = db.updateDevice(body)
          return send(200, { device: updated, ok: true })
        }
        default:
          return fail(404, 'not_found', `no route ${route}`)
      }
    } catch (err) {
      return fail(500, 'internal_error', String(err?.message ?? err))
    }
  })
}

main().catch((err) => {
  process.stderr.write(`seamtest: ${err?.stack ?? err}\n`)
  process.exit(1)
})
