// The official OpenAI Node SDK against a real `tilt serve` process on a loopback port: completions, chat, streaming,
// the alignment extension (passed as an extra body field, which the SDK forwards), error handling, and SIGTERM.
// Run by build.ps1 test (JUnit report) or: cd tests/Server.Tests/sdk && npm ci && npm test
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import OpenAI from 'openai';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const cli = process.env.TILT_CLI ?? path.join(root, 'src/Cli/bin/Release/net10.0/tilt.dll');
const KEY = 'sdk-test-key';

let server;
let exited;
let client;

before(async () => {
  // Two models (the same file under two names) and an alias: a model name the server does not serve is then a 404
  // (a server with one model answers any name).
  const model = process.env.TILT_MODEL ?? path.resolve(root, '../shared/models/stories260K.gguf');
  server = spawn('dotnet', [cli, 'serve', '--port', '0', '--api-key', KEY, '--kv-f32', '--drain-seconds', '5',
    '--model', `stories260K=${model}`, '--model', `tales=${model}`, '--alias', 'gpt-4o-mini=tales'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  exited = new Promise((resolve) => server.on('exit', (code, signal) => resolve({ code, signal })));
  let stderr = '';
  server.stderr.on('data', (d) => { stderr += d; });
  const baseURL = await new Promise((resolve, reject) => {
    let out = '';
    let url;
    const timer = setTimeout(() => reject(new Error(`tilt serve did not get ready in 60 s: ${out} ${stderr}`)), 60_000);
    server.stdout.on('data', (d) => {
      out += d;
      url ??= /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
      if (url && out.includes('ready:')) { clearTimeout(timer); resolve(url); }
    });
    server.on('exit', (code) => { clearTimeout(timer); reject(new Error(`tilt serve exited with ${code}: ${out} ${stderr}`)); });
  });
  client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: KEY, maxRetries: 0, timeout: 60_000 });
});

after(async () => {
  if (server && server.exitCode === null) server.kill('SIGKILL');
});

test('completions: text, usage, reproducible by seed', async () => {
  const a = await client.completions.create({ model: 'stories260K', prompt: 'Once upon a time', max_tokens: 16, seed: 3 });
  const b = await client.completions.create({ model: 'stories260K', prompt: 'Once upon a time', max_tokens: 16, seed: 3 });
  assert.equal(a.object, 'text_completion');
  assert.ok(a.choices[0].text.length > 0);
  assert.equal(a.choices[0].text, b.choices[0].text);
  assert.ok(['stop', 'length'].includes(a.choices[0].finish_reason));
  assert.equal(a.usage.total_tokens, a.usage.prompt_tokens + a.usage.completion_tokens);
});

test('chat completions with n = 2', async () => {
  const r = await client.chat.completions.create({
    model: 'stories260K', messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 16, n: 2, seed: 1,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices.length, 2);
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1]);
  for (const c of r.choices) {
    assert.equal(c.message.role, 'assistant');
    assert.ok(c.message.content.length > 0);
  }
});

test('streaming chat equals the non-streamed answer', async () => {
  const params = { model: 'stories260K', messages: [{ role: 'user', content: 'Lily' }], max_tokens: 20, seed: 5 };
  const whole = await client.chat.completions.create(params);
  const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    for (const c of chunk.choices) {
      text += c.delta?.content ?? '';
      finish = c.finish_reason ?? finish;
    }
    usage = chunk.usage ?? usage;
  }
  assert.ok(chunks > 2);
  assert.equal(text, whole.choices[0].message.content);
  assert.ok(finish);
  assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
});

test('alignment extension: best-of-n with candidates, blockwise streamed by block', async () => {
  const bon = await client.completions.create({
    model: 'stories260K', prompt: 'Once upon a time', max_tokens: 16, seed: 2,
    alignment: { strategy: 'bon', n: 4, reward: 'sentiment', return_candidates: true },
  });
  const a = bon.choices[0].alignment;
  assert.equal(a.strategy, 'bon');
  assert.equal(typeof a.reward, 'number');
  assert.equal(a.kl.method, 'best_of_n_estimate');
  assert.ok(a.kl_bound.value >= a.kl.value - 1e-9);
  assert.equal(a.candidates.length, 4);
  assert.equal(a.candidates.filter((c) => c.selected).length, 1);
  assert.equal(Math.max(...a.candidates.map((c) => c.reward)), a.reward);

  const stream = await client.completions.create({
    model: 'stories260K', prompt: 'Once upon a time', max_tokens: 24, seed: 2, stream: true,
    alignment: { strategy: 'blockwise', k: 4, block: 8, reward: 'length:20' },
  });
  const pieces = [];
  let last;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      if (c.text) pieces.push(c.text);
      if (c.finish_reason) last = c;
    }
  }
  assert.ok(pieces.length >= 2 && pieces.length <= 3, `blocks: ${pieces.length}`);
  assert.equal(last.alignment.strategy, 'blockwise');
  assert.equal(last.alignment.kl.method, 'block_estimate');
});

test('log-likelihood scoring: echo + logprobs + max_tokens 0 read as a harness does, against tilt score', async () => {
  const context = 'Once upon a time';
  for (const continuation of [', there was a little', ', there was a girl']) {
    const r = await client.completions.create({ model: 'stories260K', prompt: context + continuation, max_tokens: 0, echo: true, logprobs: 1 });
    const choice = r.choices[0];
    assert.equal(choice.text, context + continuation);
    assert.equal(r.usage.completion_tokens, 0);
    const lp = choice.logprobs;
    assert.equal(lp.token_logprobs[0], null);
    assert.equal(lp.tokens.length, r.usage.prompt_tokens);
    // The continuation's tokens are those at or after the context's end; greedy when each is its row's top alternative.
    let sum = 0;
    let greedy = true;
    for (let i = 0; i < lp.tokens.length; i++) {
      if (lp.text_offset[i] < context.length) continue;
      sum += lp.token_logprobs[i];
      const best = Object.entries(lp.top_logprobs[i]).sort((a, b) => b[1] - a[1])[0][0];
      if (best !== lp.tokens[i]) greedy = false;
    }
    // The same pair through the CLI (DecodingEngine.ScoreAsync on an engine of its own; F16 KV there, F32 here).
    const out = JSON.parse(execFileSync('dotnet', [cli, 'score', '--prompt', context, '--text', continuation], { cwd: root }).toString());
    assert.ok(Math.abs(out.logprob - sum) < 5e-3, `server ${sum} vs tilt score ${out.logprob}`);
    assert.equal(greedy, out.isGreedy);
  }
});

test('per-token logprobs: completions logprobs N and chat top_logprobs, streamed too', async () => {
  const c = await client.completions.create({ model: 'stories260K', prompt: 'Once upon a time', max_tokens: 8, seed: 2, logprobs: 3 });
  const lp = c.choices[0].logprobs;
  assert.equal(lp.tokens.length, c.usage.completion_tokens);
  assert.equal(lp.token_logprobs.length, lp.tokens.length);
  assert.ok(lp.top_logprobs.every((t) => Object.keys(t).length >= 1 && Object.keys(t).length <= 3));
  const chat = await client.chat.completions.create({
    model: 'stories260K', messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 8, seed: 2, logprobs: true, top_logprobs: 2,
  });
  const content = chat.choices[0].logprobs.content;
  assert.equal(content.length, chat.usage.completion_tokens);
  assert.ok(content.every((e) => e.top_logprobs.length === 2 && Array.isArray(e.bytes)));
  const stream = await client.chat.completions.create({
    model: 'stories260K', messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 8, seed: 2, logprobs: true, top_logprobs: 2, stream: true,
  });
  const streamed = [];
  for await (const chunk of stream) for (const ch of chunk.choices) streamed.push(...(ch.logprobs?.content ?? []));
  assert.deepEqual(streamed.map((e) => e.token), content.map((e) => e.token));
});

test('stop with alignment ends decoding at the stop', async () => {
  const r = await client.completions.create({
    model: 'stories260K', prompt: 'Once upon a time', max_tokens: 64, seed: 3, stop: ['.'], alignment: { strategy: 'bon', n: 4 },
  });
  assert.ok(!r.choices[0].text.includes('.'));
});

test('errors come back as the SDK\'s typed errors', async () => {
  await assert.rejects(
    client.completions.create({ model: 'stories260K', prompt: 'x', alignment: { strategy: 'mcts' } }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'alignment.strategy');
  await assert.rejects(
    client.completions.create({ model: 'stories260K', prompt: 'x', alignment: { strategy: 'bon', reward: 'lexicon:/etc/passwd' } }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'alignment.reward');
  await assert.rejects(
    client.completions.create({ model: 'stories260K', prompt: 'x', max_tokens: 1_000_000 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'max_tokens');
  await assert.rejects(
    client.completions.create({ model: 'gpt-5', prompt: 'x' }),
    (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
  const wrongKey = new OpenAI({ baseURL: client.baseURL, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(wrongKey.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  const models = await client.models.list();
  assert.equal(models.data[0].id, 'stories260K');
  assert.deepEqual(models.data.map((m) => m.id), ['stories260K', 'tales']);
  // An alias routes to its model, and the response names the model.
  const aliased = await client.completions.create({ model: 'gpt-4o-mini', prompt: 'Once', max_tokens: 4, seed: 1 });
  assert.equal(aliased.model, 'tales');
});

test('SIGTERM: the server drains and exits with code 0', async () => {
  server.kill('SIGTERM');
  const { code, signal } = await exited;
  assert.equal(signal, null);
  assert.equal(code, 0);
});
