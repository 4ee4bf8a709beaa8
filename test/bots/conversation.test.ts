import { request } from 'undici'
import t from 'tap'
import { estimateTokens } from '../../bots/telegram/conversations.js'
import { FAKE_BOT_TOKEN } from '../helpers/fake-telegram.js'
import { waitFor } from '../helpers/wait.js'
import { converse, PROVIDER_KEYS, startBot, startUsageService, USER, type RunningBot } from './harness.js'

const service = await startUsageService(t)
const bots: RunningBot[] = []

/** The `messages` the bot sent to the (Anthropic) model in its latest call. */
function lastModelMessages(running: RunningBot): Array<{ role: string; content: string }> {
  const body = running.provider.requests.at(-1)?.body
  return (body?.messages ?? []) as Array<{ role: string; content: string }>
}

t.test('commands: /start, /help, /reset, an unknown command, a non-text message', async (t) => {
  const running = await startBot(t, service, { provider: 'anthropic', botId: 'tg_commands' })
  bots.push(running)
  const [welcome] = await converse(running, '/start')
  t.match(welcome, /claude-haiku-4-5 \(anthropic\)/, '/start names the model')
  t.match(welcome, '/usage')
  const [help] = await converse(running, '/help')
  t.match(help, /\/reset - Forget this conversation/)

  running.provider.enqueue({ text: 'Noted: your name is Ada.' })
  await converse(running, 'My name is Ada.')
  running.provider.enqueue({ text: 'You are Ada.' })
  await converse(running, 'What is my name?')
  t.same(
    lastModelMessages(running).map((message) => message.content),
    ['My name is Ada.', 'Noted: your name is Ada.', 'What is my name?'],
    'the conversation so far is sent to the model',
  )
  t.same(await converse(running, '/reset'), ['Done: I have forgotten this conversation.'])
  running.provider.enqueue({ text: 'I do not know.' })
  await converse(running, 'What is my name?')
  t.same(lastModelMessages(running).map((message) => message.content), ['What is my name?'], '/reset forgot the conversation')

  const modelCalls = running.provider.requests.length
  t.same(await converse(running, '/frobnicate'), ['I do not know that command. /help lists what I can do.'])
  await running.inject(
    running.telegram.update({
      message: { message_id: 999, from: { ...USER, is_bot: false }, chat: { id: USER.id, type: 'private', first_name: USER.first_name }, date: 1, sticker: { file_id: 'x', file_unique_id: 'y', type: 'regular', width: 1, height: 1, is_animated: false, is_video: false } },
    }),
  )
  t.equal(running.telegram.messagesTo(USER.id).at(-1)?.visibleText, 'I can only read text messages.', 'the non-text reply')
  t.equal(running.provider.requests.length, modelCalls, 'commands and stickers do not call the model')
})

t.test('history is bounded in messages and in chats', async (t) => {
  const running = await startBot(t, service, { provider: 'anthropic', botId: 'tg_history', env: { MAX_HISTORY: '4', MAX_CHATS: '3' } })
  bots.push(running)
  for (let n = 1; n <= 6; n++) {
    running.provider.enqueue({ text: `answer ${n}` })
    await converse(running, `message ${n}`)
  }
  t.same(
    lastModelMessages(running).map((message) => message.content),
    ['message 5', 'answer 5', 'message 6'],
    'the model saw at most MAX_HISTORY messages, starting with a user turn',
  )
  t.same(
    running.bot.conversations.history(USER.id).map((turn) => turn.text),
    ['message 5', 'answer 5', 'message 6', 'answer 6'],
    'the chat keeps MAX_HISTORY messages',
  )

  for (const chatId of [501, 502, 503, 504]) {
    running.provider.enqueue({ text: `hello ${chatId}` })
    await converse(running, `hi from ${chatId}`, { chatId })
  }
  t.equal(running.bot.conversations.chatCount, 3, 'at most MAX_CHATS chats are remembered')
  t.same(running.bot.conversations.history(USER.id), [], 'the least recently active chats were forgotten first')
  t.same(running.bot.conversations.history(501), [])
  t.same(running.bot.conversations.history(502).map((turn) => turn.text), ['hi from 502', 'hello 502'])
  running.provider.enqueue({ text: 'who are you?' })
  await converse(running, 'remember me?')
  t.same(lastModelMessages(running).map((message) => message.content), ['remember me?'], 'a forgotten chat starts afresh')
})

t.test('history is bounded in (estimated) tokens', async (t) => {
  const budget = 200
  const running = await startBot(t, service, { provider: 'anthropic', botId: 'tg_tokens', env: { MAX_HISTORY: '50', MAX_HISTORY_TOKENS: String(budget) } })
  bots.push(running)
  const tokensOf = (texts: string[]) => texts.reduce((sum, text) => sum + estimateTokens(text), 0)
  for (let n = 1; n <= 6; n++) {
    const question = `question ${n} ${'q'.repeat(180)}`
    const answer = `answer ${n} ${'a'.repeat(180)}`
    running.provider.enqueue({ text: answer })
    await converse(running, question)
    const sent = lastModelMessages(running)
    t.ok(tokensOf(sent.map((message) => message.content)) <= budget, `call ${n}: the prompt is within MAX_HISTORY_TOKENS`)
    t.equal(sent[0].role, 'user', `call ${n}: starts with a user turn`)
    t.equal(sent.at(-1)?.content, question, `call ${n}: ends with the new message`)
    if (n > 1) t.match(sent.map((message) => message.content).join('|'), `answer ${n - 1} `, `call ${n}: keeps the previous exchange`)
    t.ok(tokensOf(running.bot.conversations.history(USER.id).map((turn) => turn.text)) <= budget, `after call ${n}: stored history within budget`)
  }
  t.ok(running.provider.requests.length === 6)
  t.notMatch(JSON.stringify(running.provider.requests.at(-1)?.body), 'question 1 ', 'old turns were dropped')

  running.provider.enqueue({ text: 'z'.repeat(4 * budget + 40) })
  await converse(running, 'say a lot')
  t.same(running.bot.conversations.history(USER.id), [], 'an answer that alone exceeds the budget is not kept')
})

t.test('two quick messages in one chat are answered in order, the second seeing the first', async (t) => {
  const running = await startBot(t, service, { provider: 'anthropic', botId: 'tg_order' })
  bots.push(running)
  running.provider.enqueue({ text: 'first answer', latencyMs: 150 }, { text: 'second answer' })
  // Handed over together, as one getUpdates batch would be: the second must wait for the first.
  await Promise.all([
    running.inject(running.telegram.textUpdate('first question', { from: USER })),
    running.inject(running.telegram.textUpdate('second question', { from: USER })),
  ])
  t.equal(running.telegram.messagesTo(USER.id).length, 2, 'both answers')
  t.same(running.telegram.messagesTo(USER.id).map((message) => message.visibleText), ['first answer', 'second answer'])
  t.same(
    lastModelMessages(running).map((message) => message.content),
    ['first question', 'first answer', 'second question'],
    'the second call included the first exchange',
  )
})

t.test('a reply over 4096 characters is split at paragraph boundaries, code blocks intact', async (t) => {
  const running = await startBot(t, service, { provider: 'openai', botId: 'tg_split' })
  bots.push(running)
  const paragraphs = Array.from({ length: 30 }, (_, n) => `Paragraph ${n}: ${'lorem ipsum dolor sit amet '.repeat(8).trim()}.`)
  const code = ['```python', ...Array.from({ length: 120 }, (_, n) => `print("line ${n}")  # a comment`), '```'].join('\n')
  const answer = `${paragraphs.slice(0, 15).join('\n\n')}\n\n${code}\n\n${paragraphs.slice(15).join('\n\n')}`
  t.ok(answer.length > 2 * 4096, `the answer is long (${answer.length} characters)`)
  running.provider.enqueue({ text: answer })
  await running.inject(running.telegram.textUpdate('write a lot', { from: USER }))
  t.ok(running.telegram.messagesTo(USER.id).some((message) => message.visibleText.includes('Paragraph 29')), 'the last piece')
  const pieces = running.telegram.messagesTo(USER.id)
  t.ok(pieces.length >= 3, `sent in ${pieces.length} messages`)
  for (const piece of pieces) {
    t.ok(piece.visibleText.length <= 4096, `piece of ${piece.visibleText.length} visible characters`)
    t.equal(piece.parseMode, 'HTML')
    t.equal(piece.text.split('<pre>').length, piece.text.split('</pre>').length, 'code blocks closed in each piece')
  }
  const visible = pieces.map((piece) => piece.visibleText).join('\n')
  let position = -1
  for (let n = 0; n < 30; n++) {
    const at = visible.indexOf(`Paragraph ${n}:`)
    t.ok(at > position, `paragraph ${n} present, in order`)
    position = at
  }
  for (let n = 0; n < 120; n++) t.ok(visible.includes(`print("line ${n}")`), `code line ${n} present`)
  t.notOk(pieces.some((piece) => /Paragraph \d+: [^\n]*$/.test(piece.visibleText) && !piece.visibleText.endsWith('.')), 'no paragraph cut in the middle')
})

t.test('Markdown is rendered as Telegram HTML; broken markup is sent as text, never failing the send', async (t) => {
  const running = await startBot(t, service, { provider: 'google', botId: 'tg_markdown' })
  bots.push(running)
  running.provider.enqueue({ text: 'Use **bold**, _italic_, `code` and [docs](https://example.com/a?b=1&c=2).' })
  const [rendered] = await converse(running, 'format please')
  t.equal(rendered, 'Use bold, italic, code and docs.')
  t.match(running.telegram.sent.at(-1)?.text, '<b>bold</b>, <i>italic</i>, <code>code</code> and <a href="https://example.com/a?b=1&amp;c=2">docs</a>')

  const broken = 'Unclosed **bold, a <script>alert(1)</script> tag, 1 < 2 && 3 > 2, `open code, snake_case_name, 2*3*4, [x](javascript:alert(1))\n```js\nconst a = "<b>"'
  running.provider.enqueue({ text: broken })
  const [sent] = await converse(running, 'break things')
  t.match(sent, '<script>alert(1)</script>', 'tags in the answer are shown as text')
  t.match(sent, '1 < 2 && 3 > 2')
  t.match(sent, 'Unclosed **bold')
  t.match(sent, 'snake_case_name, 2*3*4')
  t.match(sent, 'const a = "<b>"', 'an unclosed code block is still code')
  t.equal(running.telegram.sent.at(-1)?.parseMode, 'HTML', 'sent as HTML: the fake validates it like Telegram')
})

t.test('when Telegram refuses the markup anyway, the answer is re-sent as plain text', async (t) => {
  const running = await startBot(t, service, { provider: 'anthropic', botId: 'tg_fallback' })
  bots.push(running)
  running.telegram.failNext('sendMessage', { error_code: 400, description: 'Bad Request: can\'t parse entities: Unsupported start tag "x" at byte offset 4' })
  running.provider.enqueue({ text: 'Some **bold** answer' })
  const [answer] = await converse(running, 'hello')
  t.equal(answer, 'Some **bold** answer', 'the user gets the raw text')
  const attempts = running.telegram.callsOf('sendMessage').slice(-2)
  t.equal(attempts[0].params.parse_mode, 'HTML')
  t.equal(attempts[1].params.parse_mode, undefined, 'then without a parse mode')
  t.match(running.log(), 'Telegram refused the HTML reply; sent as plain text')

  running.provider.enqueue({ text: '```\n```' })
  t.same(await converse(running, 'an empty code block'), ['```\n```'], 'markup that leaves no visible text is sent as it came')
})

t.test('Telegram flood control (429 retry_after) is waited out', async (t) => {
  const running = await startBot(t, service, { provider: 'anthropic', botId: 'tg_flood' })
  bots.push(running)
  running.telegram.failNext('sendMessage', { error_code: 429, description: 'Too Many Requests: retry after 1', parameters: { retry_after: 1 } })
  running.provider.enqueue({ text: 'eventually' })
  const started = Date.now()
  t.same(await converse(running, 'hi'), ['eventually'])
  t.ok(Date.now() - started >= 900, 'waited retry_after before sending again')
})

t.test('long polling: launch registers the commands, updates are fetched and answered, stop() confirms them and ends polling', async (t) => {
  const running = await startBot(t, service, { provider: 'anthropic', botId: 'tg_polling', receive: 'launch' })
  bots.push(running)
  t.ok(running.telegram.callsOf('setMyCommands').length === 1, 'the command list is registered with Telegram')
  const [welcome] = await converse(running, '/start')
  t.match(welcome, /claude-haiku-4-5 \(anthropic\)/, '/start names the model')
  running.provider.enqueue({ text: 'Answered over long polling.' })
  t.same(await converse(running, 'hello'), ['Answered over long polling.'])
  t.ok(
    running.telegram.callsOf('getUpdates').some((call) => JSON.stringify(call.params.allowed_updates) === '["message"]'),
    'polls for messages only',
  )
  await running.bot.stop('test')
  await t.resolves(running.bot.untilStopped(), 'untilStopped() resolves after stop()')
  t.equal(running.telegram.pendingUpdates, 0, 'every update handled was confirmed to Telegram')
})

t.test('webhook mode: setWebhook with the secret, updates POSTed to the listener are answered', async (t) => {
  const running = await startBot(t, service, {
    provider: 'openai',
    botId: 'tg_webhook',
    receive: 'launch',
    env: {
      TELEGRAM_WEBHOOK_URL: 'https://bot.example.test/telegram/hook',
      TELEGRAM_WEBHOOK_HOST: '127.0.0.1',
      TELEGRAM_WEBHOOK_PORT: '0',
      TELEGRAM_WEBHOOK_SECRET: 'webhook-secret_123',
      LLM_TIMEOUT_MS: '10000',
    },
  })
  bots.push(running)
  t.same(running.telegram.webhook, { url: 'https://bot.example.test/telegram/hook', secretToken: 'webhook-secret_123' })
  t.equal(running.telegram.callsOf('getUpdates').length, 0, 'no polling in webhook mode')
  const port = running.bot.webhookAddress()?.port
  t.ok(port, 'the listener is up')
  const endpoint = `http://127.0.0.1:${port}/telegram/hook`
  const update = {
    update_id: 1,
    message: { message_id: 1, from: { ...USER, is_bot: false }, chat: { id: USER.id, type: 'private', first_name: USER.first_name }, date: 1, text: 'via webhook' },
  }
  const post = (secret: string) =>
    request(endpoint, { method: 'POST', body: JSON.stringify(update), headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secret } })

  const forged = await post('wrong-secret')
  await forged.body.dump()
  t.equal(forged.statusCode, 403, 'a request without the secret token is refused')

  running.provider.enqueue({ text: 'webhook answer', latencyMs: 2000 })
  const accepted = await post('webhook-secret_123')
  await accepted.body.dump()
  t.equal(accepted.statusCode, 200)
  t.equal(running.telegram.messagesTo(USER.id).length, 0, 'acknowledged before the model answered (Telegram re-sends slow webhooks)')
  await waitFor(() => running.telegram.messagesTo(USER.id).length === 1, 'the webhook answer')
  t.equal(running.telegram.messagesTo(USER.id)[0].visibleText, 'webhook answer')

  await running.bot.stop('test')
  await t.rejects(post('webhook-secret_123'), 'the listener is closed by stop()')
})

t.test('no secret ever reaches the logs', async (t) => {
  t.ok(bots.length >= 5)
  for (const running of bots) {
    const log = running.log()
    t.ok(log.length > 0, `${running.botId} logged`)
    for (const secret of [FAKE_BOT_TOKEN, FAKE_BOT_TOKEN.split(':')[1], running.usageKey, ...Object.values(PROVIDER_KEYS), 'webhook-secret_123']) {
      t.notMatch(log, secret, `${running.botId}: a secret is not in the log`)
    }
  }
})
