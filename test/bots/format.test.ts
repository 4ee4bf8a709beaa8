import t from 'tap'
import { boundHistory, ConversationStore, type Turn } from '../../bots/telegram/conversations.js'
import { splitMessage } from '../../bots/telegram/split-message.js'
import { markdownToTelegramHtml } from '../../bots/telegram/telegram-html.js'
import { formatUsd, usagePeriods } from '../../bots/telegram/usage-report.js'
import { parseTelegramHtml } from '../helpers/fake-telegram.js'

function visible(markdown: string): string {
  const parsed = parseTelegramHtml(markdownToTelegramHtml(markdown))
  if ('error' in parsed) throw new Error(`${parsed.error} for ${JSON.stringify(markdown)}`)
  return parsed.text
}

t.test('Markdown to Telegram HTML', async (t) => {
  const cases: Array<[string, string]> = [
    ['**bold** and __bold__', '<b>bold</b> and <b>bold</b>'],
    ['*it* and _it_', '<i>it</i> and <i>it</i>'],
    ['~~gone~~ ||secret||', '<s>gone</s> <tg-spoiler>secret</tg-spoiler>'],
    ['`a < b`', '<code>a &lt; b</code>'],
    ['``code with ` tick``', '<code>code with ` tick</code>'],
    ['**bold with `code` inside**', '<b>bold with <code>code</code> inside</b>'],
    ['[site](https://x.test/?a=1&b="2")', '<a href="https://x.test/?a=1&amp;b=&quot;2&quot;">site</a>'],
    ['[bad](javascript:alert(1))', '[bad](javascript:alert(1))'],
    ['# Title', '<b>Title</b>'],
    ['- one\n* two', '• one\n• two'],
    ['> quoted\n> more', '<blockquote>quoted\nmore</blockquote>'],
    ['```ts\nconst x = a < b && c\n```', '<pre><code class="language-ts">const x = a &lt; b &amp;&amp; c</code></pre>'],
    ['```\nplain\n```', '<pre>plain</pre>'],
    ['```python\nunclosed <tag>', '<pre><code class="language-python">unclosed &lt;tag&gt;</code></pre>'],
    ['**unclosed bold', '**unclosed bold'],
    ['*a **b** c*', '<i>a <b>b</b> c</i>'],
    ['# ', '# '],
    ['snake_case_name and 2*3*4', 'snake_case_name and 2*3*4'],
    ['a * b * c', 'a * b * c'],
    ['<script>alert("x")</script>', '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'],
    ['AT&T &amp; co', 'AT&amp;T &amp;amp; co'],
  ]
  for (const [markdown, html] of cases) t.equal(markdownToTelegramHtml(markdown), html, JSON.stringify(markdown))
})

t.test('any input converts to HTML Telegram accepts, never longer to the reader than the input', async (t) => {
  const alphabet = ['*', '**', '_', '__', '~~', '||', '`', '```', '[', ']', '(', ')', 'https://a.b', '<', '>', '&', '"', '#', '> ', '- ', '\n', ' ', 'a', 'bc', 'é', '😀', '&amp;', '<b>', '</i>']
  let seed = 7
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed % n
  }
  let failures = 0
  for (let run = 0; run < 3000; run++) {
    const length = 1 + random(40)
    let markdown = ''
    for (let i = 0; i < length; i++) markdown += alphabet[random(alphabet.length)]
    if (markdown.trim() === '') continue
    const parsed = parseTelegramHtml(markdownToTelegramHtml(markdown))
    if ('error' in parsed || parsed.text.length > markdown.trim().length) {
      failures++
      if (failures <= 5) t.fail(`${JSON.stringify(markdown)} -> ${JSON.stringify(markdownToTelegramHtml(markdown))}: ${'error' in parsed ? parsed.error : 'longer'}`)
    }
  }
  t.equal(failures, 0, 'no generated input produced HTML Telegram would refuse')
})

t.test('splitting long replies', async (t) => {
  t.same(splitMessage('short'), ['short'])
  t.same(splitMessage('  \n  '), [])

  const paragraphs = Array.from({ length: 10 }, (_, n) => `p${n} ${'word '.repeat(100).trim()}`)
  const pieces = splitMessage(paragraphs.join('\n\n'), 1200)
  t.ok(pieces.every((piece) => piece.length <= 1200), 'every piece within the limit')
  t.ok(pieces.every((piece) => /^p\d /.test(piece) && piece.endsWith('word')), 'cut at paragraph boundaries')
  t.equal(pieces.join('\n\n'), paragraphs.join('\n\n'), 'nothing lost')

  const oneLine = 'word '.repeat(1000).trim()
  const lineCuts = splitMessage(oneLine, 500)
  t.ok(lineCuts.every((piece) => piece.length <= 500 && !piece.startsWith(' ') && piece.endsWith('word')), 'cut at spaces when there is no line break')
  t.equal(lineCuts.join(' '), oneLine)

  const noSpaces = '😀'.repeat(700)
  const hardCuts = splitMessage(noSpaces, 501)
  t.ok(hardCuts.every((piece) => piece.length <= 501 && !/^[\udc00-\udfff]/.test(piece)), 'a surrogate pair is never cut in two')
  t.equal(hardCuts.join(''), noSpaces)

  const code = ['intro', '```js', ...Array.from({ length: 100 }, (_, n) => `console.log(${n})`), '```', 'outro'].join('\n')
  const codePieces = splitMessage(code, 600)
  t.ok(codePieces.length > 2)
  for (const piece of codePieces) {
    t.ok(piece.length <= 600)
    t.equal((piece.match(/^```/gm) ?? []).length % 2, 0, 'each piece has balanced fences')
    t.doesNotThrow(() => visible(piece))
  }
  t.ok(codePieces.slice(1, -1).every((piece) => piece.startsWith('```js\n')), 'the code block reopens with its language')
  const rendered = codePieces.map(visible).join('\n')
  for (let n = 0; n < 100; n++) t.ok(rendered.includes(`console.log(${n})`))
})

t.test('history bounds', async (t) => {
  const turns = (...texts: string[]): Turn[] => texts.map((text, i) => ({ role: i % 2 === 0 ? 'user' : 'assistant', text }))
  t.same(boundHistory(turns('a', 'b', 'c', 'd', 'e'), { maxMessages: 4, maxTokens: 1000 }), turns('c', 'd', 'e').map((turn, i) => ({ ...turn, role: i % 2 === 0 ? 'user' : 'assistant' })))
  t.same(boundHistory(turns('x'.repeat(400), 'y', 'z'), { maxMessages: 10, maxTokens: 50 }).map((turn) => turn.text), ['z'], 'token budget, starting with a user turn')
  t.same(boundHistory(turns('x'.repeat(4000)), { maxMessages: 10, maxTokens: 50 }).length, 1, 'the message being answered is always kept')

  const store = new ConversationStore({ maxMessages: 10, maxTokens: 1000, maxChats: 2 })
  store.recordExchange(1, 'q1', 'a1')
  store.recordExchange(2, 'q2', 'a2')
  store.prompt(1, 'peek') // reading does not refresh: only answered exchanges do
  store.recordExchange(1, 'q1b', 'a1b')
  store.recordExchange(3, 'q3', 'a3')
  t.equal(store.chatCount, 2)
  t.same(store.history(2), [], 'least recently active chat evicted')
  t.equal(store.history(1).length, 4)
  t.ok(store.forget(1))
  t.same(store.history(1), [])
})

t.test('usage formatting', async (t) => {
  t.equal(formatUsd(0), '$0.00')
  t.equal(formatUsd(12.345), '$12.35')
  t.equal(formatUsd(0.0123), '$0.0123')
  t.equal(formatUsd(0.000141), '$0.000141')
  t.equal(formatUsd(0.0000001), '< $0.000001')
  t.same(usagePeriods(new Date('2025-03-09T23:59:59Z')), { today: '2025-03-09', monthStart: '2025-03-01' })
})
