/** The public API, called with the signed-in key. The key lives in sessionStorage only. */

const KEY_STORAGE = 'llm-usage-dashboard.key'

export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(KEY_STORAGE)
  } catch {
    return null
  }
}

export function storeKey(key: string | null): void {
  if (key === null) sessionStorage.removeItem(KEY_STORAGE)
  else sessionStorage.setItem(KEY_STORAGE, key)
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

type Params = Record<string, string | number | boolean | undefined>

function query(params: Params): string {
  const p = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') p.set(k, String(v))
  const s = p.toString()
  return s ? `?${s}` : ''
}

export class Api {
  constructor(private readonly key: string) {}

  private async request(path: string, params: Params): Promise<Response> {
    let response: Response
    try {
      response = await fetch(path + query(params), { headers: { authorization: `Bearer ${this.key}`, accept: 'application/json' } })
    } catch {
      throw new ApiError(0, 'NETWORK', 'The service did not answer: is it running?')
    }
    if (!response.ok) {
      let code = 'HTTP_' + response.status
      let message = `${response.status} ${response.statusText}`
      try {
        const body = (await response.json()) as { code?: string; message?: string }
        if (body.code) code = body.code
        if (body.message) message = body.message
      } catch {
        // not JSON: keep the status line
      }
      throw new ApiError(response.status, code, message)
    }
    return response
  }

  async get<T>(path: string, params: Params = {}): Promise<T> {
    return (await (await this.request(path, params)).json()) as T
  }

  async blob(path: string, params: Params = {}): Promise<Blob> {
    return (await this.request(path, params)).blob()
  }
}
